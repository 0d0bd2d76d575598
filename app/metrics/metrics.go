// Package metrics exposes the hub's counters and request durations in the Prometheus text format.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/causerie/causerie/app/chat"
)

// Metrics owns a registry of its own, so several servers in one process (tests) do not collide.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.HistogramVec
}

// New registers the Go and process collectors, the hub's counters read from stats, and the request
// duration histogram.
func New(stats *chat.Stats) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "causerie_http_request_duration_seconds",
			Help:    "Duration of HTTP requests by method, route and status (WebSocket requests last as long as the connection).",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "status"}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "causerie_connections", Help: "Open WebSocket connections.",
		}, func() float64 { return float64(stats.Connections.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "causerie_messages_received_total", Help: "Chat messages accepted from clients.",
		}, func() float64 { return float64(stats.MessagesReceived.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "causerie_deliveries_total", Help: "Message frames queued to receiving connections.",
		}, func() float64 { return float64(stats.Deliveries.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "causerie_slow_clients_dropped_total", Help: "Connections closed because their outbound queue was full.",
		}, func() float64 { return float64(stats.SlowClientsDropped.Load()) }),
		badFrames{stats},
	)
	return m
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// ObserveRequest records one request.
func (m *Metrics) ObserveRequest(method, route string, status int, took time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Observe(took.Seconds())
}

var badFramesDesc = prometheus.NewDesc("causerie_bad_frames_total",
	"WebSocket frames refused, by error code.", []string{"code"}, nil)

// badFrames reads the per-code counters at scrape time; the codes are a small fixed set.
type badFrames struct{ stats *chat.Stats }

func (b badFrames) Describe(ch chan<- *prometheus.Desc) { ch <- badFramesDesc }

func (b badFrames) Collect(ch chan<- prometheus.Metric) {
	for code, n := range b.stats.BadFrames() {
		ch <- prometheus.MustNewConstMetric(badFramesDesc, prometheus.CounterValue, float64(n), code)
	}
}
