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

// Metrics owns a registry of its own, so several servers in one process (tests) do not collide. Each
// node serves its own: a scraper tells them apart by target, and causerie_node_info names the node.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.HistogramVec
	commits  prometheus.Histogram
	batch    prometheus.Histogram
	busLag   prometheus.Histogram
}

var _ chat.Timings = (*Metrics)(nil)

// latencyBuckets run from 100 µs to 5 s: a commit or a hop over Redis takes a millisecond or so when all
// is well, and the tail is what matters.
var latencyBuckets = prometheus.ExponentialBucketsRange(0.0001, 5, 16)

// New registers the Go and process collectors, the node's info, and the histograms; Watch adds the hub's
// counters once the hub exists (the hub takes the Metrics as its Timings).
func New(node string) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "causerie_http_request_duration_seconds",
			Help:    "Duration of HTTP requests by method, route and status (WebSocket requests last as long as the connection).",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "status"}),
		commits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "causerie_store_commit_seconds",
			Help:    "Duration of one store transaction of the message pipeline, disk sync included.",
			Buckets: latencyBuckets,
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "causerie_store_commit_messages",
			Help:    "Messages stored per transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		busLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "causerie_bus_lag_seconds",
			Help:    "Time from an event's publication on another node to its delivery here (clocks of the nodes included).",
			Buckets: latencyBuckets,
		}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.commits, m.batch, m.busLag,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "causerie_node_info", Help: "Always 1; its label names this node (NODE_ID).",
			ConstLabels: prometheus.Labels{"node": node},
		}, func() float64 { return 1 }),
	)
	return m
}

// Commit records one transaction of n messages.
func (m *Metrics) Commit(took time.Duration, n int) {
	m.commits.Observe(took.Seconds())
	m.batch.Observe(float64(n))
}

// BusLag records one event's trip from another node.
func (m *Metrics) BusLag(took time.Duration) { m.busLag.Observe(took.Seconds()) }

// Watch registers the hub's counters, read from stats at scrape time.
func (m *Metrics) Watch(stats *chat.Stats) {
	m.registry.MustRegister(
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
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "causerie_caught_up_messages_total", Help: "Messages read back from the store to fill a gap in what the bus delivered.",
		}, func() float64 { return float64(stats.CaughtUp.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "causerie_bus_unserved_events_total", Help: "Room events the bus brought from other nodes for rooms this node neither serves nor asked for.",
		}, func() float64 { return float64(stats.Unserved.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "causerie_bus_room_subscriptions", Help: "Rooms whose events this node takes from Redis.",
		}, func() float64 { return float64(stats.Subscriptions.Load()) }),
		badFrames{stats},
	)
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
