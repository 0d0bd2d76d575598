// Package bench is Causerie's load tool: it opens many WebSocket connections to one or more servers, makes
// some of them send, and measures what every receiver gets: throughput, delivery latency, losses and
// duplicates. It drives the gorilla/websocket chat example the same way (Proto "gorilla"), so the two can
// be compared in one run. main.go parses its flags ("go run main.go bench -h").
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
)

// Protocols the tool speaks.
const (
	ProtoCauserie = "causerie"
	ProtoGorilla  = "gorilla"
)

// Config is one run. Zero values are not defaults: main.go's flags give those.
type Config struct {
	URLs     []string // base URLs, http://host:port; connections are spread over them
	Token    string   // use this token instead of registering users
	Users    int      // users to register when Token is empty; connections share them
	Conns    int
	Senders  int
	Rate     float64 // messages per second per sender; 0 is closed loop
	Inflight int     // closed loop: messages per sender not yet delivered to every receiver
	Duration time.Duration
	Ramp     time.Duration // connections are opened evenly over Ramp
	Dialers  int           // connections opened at once at most
	Rooms    int
	Proto    string
	Batch    bool // ask the server for several messages per frame (?batch=1)
	Compress bool // offer permessage-deflate, which a server with WS_COMPRESSION=1 accepts
	// LoginStorm is how many goroutines post wrong logins during the send phase, while GET /api/me is
	// timed every 50 ms: what a password-guessing storm does to everyone else.
	LoginStorm int
	Size       int // bytes of text per message
	Drain      time.Duration
	Progress   io.Writer // a line per second goes here when not nil
	// Warmup excludes messages sent in the first Warmup of the send phase from the latency figures (not
	// from the loss count): an open loop's first burst measures the start, not the steady state.
	Warmup time.Duration
	// ServerPID, when set, is a server process on this machine whose CPU time during the send phase and
	// memory at its end are reported (Linux: /proc).
	ServerPID int
}

// Report is what a run measured.
type Report struct {
	Proto            string           `json:"proto"`
	Conns            int              `json:"conns"`
	Senders          int              `json:"senders"`
	Rooms            int              `json:"rooms"`
	ConnectSeconds   float64          `json:"connect_seconds"`
	ConnectP99Ms     float64          `json:"connect_p99_ms"`
	Seconds          float64          `json:"seconds"`
	Sent             int64            `json:"sent"`
	Acked            int64            `json:"acked"`
	Refused          int64            `json:"refused"`
	Expected         int64            `json:"expected_deliveries"`
	Delivered        int64            `json:"delivered"`
	Lost             int64            `json:"lost"`
	Duplicated       int64            `json:"duplicated"`
	DeliveriesPerSec float64          `json:"deliveries_per_sec"`
	LatencyMs        Latency          `json:"latency_ms"`
	AckMs            Latency          `json:"ack_ms"`
	Errors           map[string]int64 `json:"errors"`
	Closed           int64            `json:"closed_by_server"`
	// WireBytesIn is every byte the connections read, handshakes and frame headers included: what
	// compression saves shows here.
	WireBytesIn      int64   `json:"wire_bytes_received"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
	// MeMs times GET /api/me, and StormStatuses counts the answers to the wrong logins, by HTTP status,
	// with LoginStorm.
	MeMs          *Latency         `json:"me_ms,omitempty"`
	StormStatuses map[string]int64 `json:"storm_statuses,omitempty"`
	ServerRSSKiB  int64            `json:"server_rss_kib,omitempty"`
}

// Latency is a summary of delivery latencies, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Run performs one run and reports it. It returns an error only when the run could not take place.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.check(); err != nil {
		return Report{}, err
	}
	raiseFileLimit()
	r := &run{cfg: cfg, id: randomID(), errs: map[string]int64{}}
	for i := range r.lat {
		r.lat[i].h = hdrhistogram.New(1, 60_000_000, 3) // 1 µs to 60 s
		r.ack[i].h = hdrhistogram.New(1, 60_000_000, 3)
	}
	tokens, err := r.tokens(ctx)
	if err != nil {
		return Report{}, err
	}
	if err := r.createRooms(ctx, tokens); err != nil {
		return Report{}, err
	}

	perRoom := make([]int, cfg.Rooms)
	for i := 0; i < cfg.Conns; i++ {
		perRoom[i%cfg.Rooms]++
	}
	expected := make([]int, cfg.Senders)
	for j := range expected {
		expected[j] = perRoom[j%cfg.Rooms] - 1
	}
	r.tr = newTracker(expected, cfg.Inflight)

	start := time.Now()
	if err := r.connect(ctx, tokens); err != nil {
		r.closeAll()
		return Report{}, err
	}
	connectTime := time.Since(start)

	sendCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	progressDone := r.progress(sendCtx)
	cpuStart := cpuSeconds(cfg.ServerPID)
	sendStart := time.Now()
	r.measureFrom = sendStart.Add(cfg.Warmup).UnixNano()
	var side sideLoad
	waitSide := func() {}
	if cfg.LoginStorm > 0 && cfg.Proto == ProtoCauserie {
		waitSide = side.start(sendCtx, cfg, tokens[0])
	}
	var wg sync.WaitGroup
	for j := 0; j < cfg.Senders; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.send(sendCtx, j)
		}()
	}
	if cfg.Senders == 0 {
		<-sendCtx.Done() // hold the connections open, idle, for the duration
	}
	wg.Wait()
	sendTime := time.Since(sendStart)
	cpu, rss := cpuSeconds(cfg.ServerPID)-cpuStart, rssKiB(cfg.ServerPID)
	r.drain(ctx)
	<-progressDone
	r.closing.Store(true)
	r.closeAll()
	waitSide()
	rep := r.report(connectTime, sendTime)
	rep.ServerCPUSeconds, rep.ServerRSSKiB = cpu, rss
	if cfg.LoginStorm > 0 {
		side.report(&rep)
	}
	return rep, nil
}

func (cfg Config) check() error {
	switch {
	case len(cfg.URLs) == 0:
		return errors.New("bench: no -url")
	case cfg.Conns < 2 || cfg.Senders < 0 || cfg.Senders > cfg.Conns:
		return errors.New("bench: need -conns of 2 or more and -senders from 0 (connections only) to -conns")
	case cfg.Rooms < 1 || cfg.Rooms > cfg.Conns/2:
		return errors.New("bench: -rooms must leave at least two connections per room")
	case cfg.Proto != ProtoCauserie && cfg.Proto != ProtoGorilla:
		return fmt.Errorf("bench: -proto must be %s or %s", ProtoCauserie, ProtoGorilla)
	case cfg.Proto == ProtoGorilla && cfg.Rooms != 1:
		return errors.New("bench: the gorilla chat has one room")
	case cfg.Proto == ProtoGorilla && cfg.Size > 400:
		return errors.New("bench: the gorilla chat refuses messages over 512 bytes: -size 400 at most")
	case cfg.Rate == 0 && cfg.Inflight < 1:
		return errors.New("bench: a closed loop (-rate 0) needs -inflight 1 or more")
	}
	return nil
}

type run struct {
	cfg     Config
	id      string
	tr      *tracker
	conns   []*conn
	closing atomic.Bool

	sent, acked, dups, closed atomic.Int64
	wireIn                    atomic.Int64
	// lat holds delivery latencies, ack acknowledgement latencies; sharded to keep readers apart.
	lat, ack [16]histogram
	// measureFrom is when (unix nanoseconds) a message must have been sent to count in the latencies.
	measureFrom int64
	connLat     []time.Duration

	mu   sync.Mutex
	errs map[string]int64
}

func (r *run) countError(kind string) {
	r.mu.Lock()
	r.errs[kind]++
	r.mu.Unlock()
}

// tokens returns one token per user: the given one, or fresh accounts registered over REST.
func (r *run) tokens(ctx context.Context) ([]string, error) {
	if r.cfg.Proto == ProtoGorilla {
		return []string{""}, nil
	}
	if r.cfg.Token != "" {
		return []string{r.cfg.Token}, nil
	}
	tokens := make([]string, r.cfg.Users)
	for i := range tokens {
		body, _ := json.Marshal(map[string]string{
			"email":    fmt.Sprintf("bench-%s-%d@example.com", r.id, i),
			"password": "bench-" + r.id,
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URLs[i%len(r.cfg.URLs)]+"/api/register", bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("bench: register: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("bench: register: %w", err)
		}
		var out struct{ Token string }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("bench: register: HTTP %d", resp.StatusCode)
		}
		tokens[i] = out.Token
	}
	return tokens, nil
}

// createRooms makes the run's rooms, each with a token of its own in turn, before anyone joins them.
func (r *run) createRooms(ctx context.Context, tokens []string) error {
	if r.cfg.Proto == ProtoGorilla {
		return nil
	}
	for i := range r.cfg.Rooms {
		body, _ := json.Marshal(map[string]string{"name": r.room(i)})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URLs[i%len(r.cfg.URLs)]+"/api/rooms", bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("bench: create room: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("bench: create room: %w", err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
		case http.StatusMethodNotAllowed: // a build from before issue 15, where a room is made by its first message
		case http.StatusTooManyRequests:
			return fmt.Errorf("bench: create room %d: over ROOMS_PER_HOUR: set it to 0 on the server, or give more -users", i)
		default:
			return fmt.Errorf("bench: create room %d: HTTP %d", i, resp.StatusCode)
		}
	}
	return nil
}

func (r *run) room(i int) string { return fmt.Sprintf("bench-%s-%d", r.id, i%r.cfg.Rooms) }

// connect opens every connection, spread over Ramp, at most Dialers at a time, and waits until each is in
// its room.
func (r *run) connect(ctx context.Context, tokens []string) error {
	r.conns = make([]*conn, r.cfg.Conns)
	r.connLat = make([]time.Duration, r.cfg.Conns)
	slots := make(chan struct{}, r.cfg.Dialers)
	errc := make(chan error, r.cfg.Conns)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range r.conns {
		if r.cfg.Ramp > 0 {
			time.Sleep(time.Until(start.Add(r.cfg.Ramp * time.Duration(i) / time.Duration(r.cfg.Conns))))
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			t0 := time.Now()
			c, err := r.dial(ctx, i, tokens[i%len(tokens)])
			if err != nil {
				errc <- err
				return
			}
			r.conns[i] = c
			select {
			case <-c.ready:
				r.connLat[i] = time.Since(t0)
			case <-time.After(30 * time.Second):
				errc <- fmt.Errorf("bench: connection %d: not in its room after 30s", i)
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return nil
}

func (r *run) dial(ctx context.Context, i int, token string) (*conn, error) {
	u, err := url.Parse(r.cfg.URLs[i%len(r.cfg.URLs)])
	if err != nil {
		return nil, fmt.Errorf("bench: url: %w", err)
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/ws"
	if r.cfg.Proto == ProtoCauserie {
		q := url.Values{"token": {token}, "rooms": {r.room(i)}}
		if r.cfg.Batch {
			q.Set("batch", "1")
		}
		u.RawQuery = q.Encode()
	}
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, WriteBufferSize: 8 << 10, ReadBufferSize: 16 << 10,
		EnableCompression: r.cfg.Compress, NetDialContext: r.dialTCP}
	ws, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, fmt.Errorf("bench: connection %d: %w (HTTP %d)", i, err, status)
	}
	c := &conn{ws: ws, run: r, index: i, sender: -1, ready: make(chan struct{}), last: make([]int64, r.cfg.Senders)}
	if i < r.cfg.Senders {
		c.sender = i
	}
	for s := range c.last {
		c.last[s] = -1
	}
	if r.cfg.Proto == ProtoGorilla {
		close(c.ready)
	}
	go c.read()
	return c, nil
}

func (r *run) closeAll() {
	for _, c := range r.conns {
		if c != nil {
			c.ws.Close()
		}
	}
}

// send sends sender j's messages until ctx ends: at Rate, or as deliveries free Inflight slots.
func (r *run) send(ctx context.Context, j int) {
	c := r.conns[j]
	pad := strings.Repeat("x", max(r.cfg.Size-40, 0))
	room := r.room(j)
	var frame []byte
	emit := func() bool {
		seq := r.tr.next(j)
		if seq < 0 {
			return false
		}
		text := fmt.Sprintf("b %d %d %d %s", j, seq, time.Now().UnixNano(), pad)
		if r.cfg.Proto == ProtoGorilla {
			frame = append(frame[:0], text...)
		} else {
			frame = fmt.Appendf(frame[:0], `{"type":"message","room":%q,"text":%q}`, room, text)
		}
		if err := c.write(frame); err != nil {
			r.tr.unsend(j)
			if !r.closing.Load() {
				r.countError("write")
			}
			return false
		}
		r.sent.Add(1)
		return true
	}
	if r.cfg.Rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if !emit() {
					return
				}
			}
		}
	}
	done := r.tr.senders[j].done
	for k := 0; k < r.cfg.Inflight; k++ {
		if !emit() {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			if !emit() {
				return
			}
		case <-time.After(5 * time.Second):
			// A message that never reaches everyone must not stall the loop: count it and go on.
			r.countError("slot timeout")
			if !emit() {
				return
			}
		}
	}
}

// drain waits until every expected delivery has arrived, or Drain has passed.
func (r *run) drain(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if exp, got := r.tr.totals(); got >= exp {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// progress writes a line per second while ctx lasts, and closes the channel it returns when it stops.
func (r *run) progress(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if r.cfg.Progress == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		var lastDelivered int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_, delivered := r.tr.totals()
				fmt.Fprintf(r.cfg.Progress, "%3.0fs  sent %d  acked %d  deliveries/s %d  dups %d  closed %d\n",
					time.Since(start).Seconds(), r.sent.Load(), r.acked.Load(), delivered-lastDelivered, r.dups.Load(), r.closed.Load())
				lastDelivered = delivered
			}
		}
	}()
	return done
}

func (r *run) report(connectTime, sendTime time.Duration) Report {
	expected, delivered := r.tr.totals()
	connect := hdrhistogram.New(1, 600_000_000, 3)
	for _, d := range r.connLat {
		connect.RecordValue(max(d.Microseconds(), 1))
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	r.mu.Lock()
	defer r.mu.Unlock()
	return Report{
		Proto:            r.cfg.Proto,
		Conns:            r.cfg.Conns,
		Senders:          r.cfg.Senders,
		Rooms:            r.cfg.Rooms,
		ConnectSeconds:   connectTime.Seconds(),
		ConnectP99Ms:     ms(connect.ValueAtQuantile(99)),
		Seconds:          sendTime.Seconds(),
		Sent:             r.sent.Load(),
		Acked:            r.acked.Load(),
		Refused:          r.tr.refusedTotal(),
		Expected:         expected,
		Delivered:        delivered,
		Lost:             expected - delivered,
		Duplicated:       r.dups.Load(),
		DeliveriesPerSec: float64(delivered) / sendTime.Seconds(),
		LatencyMs:        summarize(r.lat[:]),
		AckMs:            summarize(r.ack[:]),
		Errors:           r.errs,
		Closed:           r.closed.Load(),
		WireBytesIn:      r.wireIn.Load(),
	}
}

// String is the report for people.
func (rep Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d connections in %d room(s), %d sender(s)\n", rep.Proto, rep.Conns, rep.Rooms, rep.Senders)
	fmt.Fprintf(&b, "connect      %.2fs (p99 %.1f ms per connection)\n", rep.ConnectSeconds, rep.ConnectP99Ms)
	fmt.Fprintf(&b, "sent         %d in %.1fs, acked %d, refused %d\n", rep.Sent, rep.Seconds, rep.Acked, rep.Refused)
	fmt.Fprintf(&b, "deliveries   %d of %d expected: %.0f/s\n", rep.Delivered, rep.Expected, rep.DeliveriesPerSec)
	fmt.Fprintf(&b, "lost         %d, duplicated %d, connections closed by the server %d\n", rep.Lost, rep.Duplicated, rep.Closed)
	if rep.Delivered > 0 {
		fmt.Fprintf(&b, "read         %d bytes, %.0f per delivery\n", rep.WireBytesIn, float64(rep.WireBytesIn)/float64(rep.Delivered))
	}
	fmt.Fprintf(&b, "delivery ms  %s\n", rep.LatencyMs)
	if rep.MeMs != nil {
		fmt.Fprintf(&b, "/api/me ms   %s (during the login storm: %v)\n", *rep.MeMs, rep.StormStatuses)
	}
	if rep.Acked > 0 {
		fmt.Fprintf(&b, "ack ms       %s\n", rep.AckMs)
	}
	if rep.ServerCPUSeconds > 0 {
		fmt.Fprintf(&b, "server       %.2f CPU seconds while sending (%.0f%% of a core), %d KiB resident\n",
			rep.ServerCPUSeconds, 100*rep.ServerCPUSeconds/rep.Seconds, rep.ServerRSSKiB)
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintf(&b, "errors       %v\n", rep.Errors)
	}
	if rep.Errors["rate_limited"] > rep.Sent/2 {
		b.WriteString("warning      most messages were refused by the servers' rate limit, so these figures measure the\n" +
			"             limit; start the servers with RATE_LIMIT=0 to measure them, or send at -rate under it\n")
	}
	return b.String()
}

func (l Latency) String() string {
	return fmt.Sprintf("p50 %.2f  p90 %.2f  p99 %.2f  max %.2f", l.P50, l.P90, l.P99, l.Max)
}

type histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// record adds the time since sent, in microseconds, to one of shards, unless sent during the warm-up.
func (r *run) record(shards []histogram, i int, sent int64) {
	if sent < r.measureFrom {
		return
	}
	us := max(time.Since(time.Unix(0, sent)).Microseconds(), 1)
	s := &shards[i%len(shards)]
	s.mu.Lock()
	_ = s.h.RecordValue(us) // past the histogram's 60 s range is not a latency worth keeping
	s.mu.Unlock()
}

func summarize(shards []histogram) Latency {
	merged := hdrhistogram.New(1, 60_000_000, 3)
	for i := range shards {
		merged.Merge(shards[i].h)
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		P50: ms(merged.ValueAtQuantile(50)),
		P90: ms(merged.ValueAtQuantile(90)),
		P99: ms(merged.ValueAtQuantile(99)),
		Max: ms(merged.Max()),
	}
}

// cpuSeconds returns the user and system CPU time of process pid so far, 0 when unknown.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields after its closing parenthesis.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux platform Go supports.
const clockTicks = 100

// rssKiB returns the resident memory of process pid, 0 when unknown.
func rssKiB(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// raiseFileLimit lifts the soft limit on open files to the hard one: each connection is a descriptor.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// dialTCP opens a TCP connection that counts the bytes it reads into r.wireIn.
func (r *run) dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, n: &r.wireIn}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}
