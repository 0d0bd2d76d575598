// Package servertest starts a real Causerie server on a loopback port, with SQLite in a temporary
// directory, and gives tests real HTTP and WebSocket clients for it. Nothing in it is a mock.
package servertest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	_ "github.com/jackc/pgx/v5/stdlib" // QueryRow's driver for PostgreSQL
	"github.com/redis/go-redis/v9"

	"github.com/causerie/causerie/app/bus/bustest"
	"github.com/causerie/causerie/app/config"
	"github.com/causerie/causerie/app/server"
	"github.com/causerie/causerie/app/store"
	"github.com/causerie/causerie/app/store/storetest"
)

// Timeout bounds every wait in tests: a frame that has not come by then is not coming.
const Timeout = 10 * time.Second

// Server is a running server. Its logs are kept for tests to inspect.
type Server struct {
	URL   string // http://127.0.0.1:port
	WSURL string // ws://127.0.0.1:port
	// MetricsURL is where /metrics is served when METRICS_ADDR is set (127.0.0.1:0 picks a port).
	MetricsURL string
	Config     config.Config
	DB         *store.DB
	App        *server.Server

	deps     server.Deps
	port     int
	logs     *syncBuffer
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

// Start starts a server configured by env (variables as in README.md) on top of test defaults, and stops
// it when the test ends.
func Start(t testing.TB, env map[string]string) *Server {
	t.Helper()
	vars := testEnv(t, env)
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	return launch(t, cfg, &syncBuffer{})
}

// testEnv is env on top of the defaults of a test server: loopback, any free port, a data directory of
// the test's own, a fixed secret, the cheapest bcrypt.
func testEnv(t testing.TB, env map[string]string) map[string]string {
	vars := map[string]string{
		"HOST":        "127.0.0.1",
		"PORT":        "0",
		"DATA_DIR":    t.TempDir(),
		"JWT_SECRET":  "test-secret-that-is-at-least-32-bytes-long",
		"BCRYPT_COST": "4",
		"LOG_LEVEL":   "debug",
	}
	maps.Copy(vars, env)
	return vars
}

// NodeEnvs returns the variables of n nodes of one deployment, node-1 to node-n, sharing PostgreSQL and
// Redis (ClusterEnv), without a rate limit, with env on top.
func NodeEnvs(t testing.TB, n int, env map[string]string) []map[string]string {
	t.Helper()
	shared := ClusterEnv(t)
	shared["RATE_LIMIT"] = "0"
	maps.Copy(shared, env)
	envs := make([]map[string]string, n)
	for i := range envs {
		envs[i] = maps.Clone(shared)
		envs[i]["NODE_ID"] = fmt.Sprintf("node-%d", i+1)
	}
	return envs
}

// ClusterEnv returns the variables that make servers share PostgreSQL and Redis as the nodes of one
// deployment: start every node of a test with the same map. The database schema and the Redis keys are
// the test's own and go when it ends. ClusterEnv skips t unless TEST_DATABASE_URL and TEST_REDIS_URL are
// set.
func ClusterEnv(t testing.TB) map[string]string {
	t.Helper()
	if os.Getenv(storetest.EnvURL) == "" || os.Getenv(bustest.EnvRedisURL) == "" {
		t.Skipf("%s and %s must both be set: multi-node tests skipped", storetest.EnvURL, bustest.EnvRedisURL)
	}
	redisURL, prefix := bustest.Redis(t)
	return map[string]string{
		"DATABASE_URL": storetest.PostgresURL(t),
		"REDIS_URL":    redisURL,
		"REDIS_PREFIX": prefix,
	}
}

// EachBackend runs test once per backend as a subtest: "sqlite" (SQLite and the in-process bus, the
// embedded default), then "postgres+redis" (the adapters of a deployment of several nodes), which skips
// without TEST_DATABASE_URL and TEST_REDIS_URL. start starts a server on the subtest's backend, with env
// on top. So the contract tests are written once and hold for both.
func EachBackend(t *testing.T, test func(t *testing.T, start func(env map[string]string) *Server)) {
	for _, backend := range []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{"sqlite", func(*testing.T) map[string]string { return map[string]string{} }},
		{"postgres+redis", func(t *testing.T) map[string]string { return ClusterEnv(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			base := backend.env(t)
			test(t, func(env map[string]string) *Server {
				t.Helper()
				vars := maps.Clone(base)
				maps.Copy(vars, env)
				return Start(t, vars)
			})
		})
	}
}

// RedisClient returns a client of TEST_REDIS_URL's Redis, closed when t ends, for tests that act on Redis
// from outside the server (cutting a node's connections, say).
func RedisClient(t testing.TB) *redis.Client {
	t.Helper()
	url, _ := bustest.Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// Restart stops s and starts a server with the same configuration, data and address, as an operator
// restarting the process would. Clients must reconnect to it by themselves.
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	s.Stop(t)
	s.deps.Close()
	cfg := s.Config
	cfg.Port = s.port
	return launch(t, cfg, s.logs)
}

func launch(t testing.TB, cfg config.Config, logs *syncBuffer) *Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	deps, err := server.Open(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, deps, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var ops net.Listener
	if cfg.MetricsAddr != "" {
		if ops, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{
		URL:    "http://" + ln.Addr().String(),
		WSURL:  "ws://" + ln.Addr().String(),
		Config: cfg,
		DB:     deps.Store,
		App:    srv,
		deps:   deps,
		port:   ln.Addr().(*net.TCPAddr).Port,
		logs:   logs,
		cancel: cancel,
		done:   make(chan error, 1),
	}
	if ops != nil {
		s.MetricsURL = "http://" + ops.Addr().String()
	}
	go func() { s.done <- srv.Serve(ctx, ln, ops) }()
	t.Cleanup(func() {
		s.Stop(t)
		deps.Close()
	})
	return s
}

// Stop shuts the server down gracefully and returns once Serve has returned. Later calls do nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stopOnce.Do(func() {
		s.cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(Timeout):
			t.Error("server did not stop")
		}
	})
}

// Logs returns everything the server logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// Do sends a request with an optional JSON body (as application/json) and bearer token and returns the
// status and the decoded JSON body (nil when the body is empty).
func (s *Server) Do(t testing.TB, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		header.Set("Content-Type", "application/json")
	}
	return s.DoWith(t, method, path, header, body)
}

// DoWith is Do with the request's headers given whole: it adds none, not even a Content-Type. A string
// or []byte body is sent as it is; any other is encoded as JSON.
func (s *Server) DoWith(t testing.TB, method, path string, header http.Header, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	s.ValidateResponse(t, req, resp.StatusCode, resp.Header, raw) // against docs/openapi.yaml
	if len(raw) == 0 {
		return resp.StatusCode, nil
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %q", method, path, raw)
	}
	return resp.StatusCode, out
}

// User is a registered account and its token.
type User struct {
	ID    int64
	Email string
	Name  string
	Token string
}

// Register creates an account with password "password123" and returns it.
func (s *Server) Register(t testing.TB, email string) User {
	t.Helper()
	status, body := s.Do(t, http.MethodPost, "/api/register", "", map[string]string{"email": email, "password": "password123"})
	if status != http.StatusCreated {
		t.Fatalf("register %s: status %d, body %v", email, status, body)
	}
	u := body["user"].(map[string]any)
	return User{ID: int64(u["id"].(float64)), Email: u["email"].(string), Name: u["name"].(string), Token: body["token"].(string)}
}

// CreateRoom makes the rooms names, public, as u: a room exists before anyone joins or posts to it.
func (s *Server) CreateRoom(t testing.TB, u User, names ...string) {
	t.Helper()
	for _, name := range names {
		if status, body := s.Do(t, http.MethodPost, "/api/rooms", u.Token, map[string]any{"name": name}); status != http.StatusCreated {
			t.Fatalf("create room %s: status %d, body %v", name, status, body)
		}
	}
}

// Client is a WebSocket client (gorilla/websocket, which shows close codes that x/net/websocket hides).
type Client struct {
	*websocket.Conn
	t testing.TB
}

// Dial opens a WebSocket to path (with its query) and fails the test if the upgrade is refused.
func (s *Server) Dial(t testing.TB, path string, header http.Header) *Client {
	t.Helper()
	c, resp, err := s.TryDial(path, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", path, err, status)
	}
	cl := &Client{Conn: c, t: t}
	t.Cleanup(func() { c.Close() })
	return cl
}

// DialWith opens a WebSocket to path with the client settings of d, and returns the handshake's answer.
func (s *Server) DialWith(t testing.TB, d *websocket.Dialer, path string) (*Client, *http.Response) {
	t.Helper()
	c, resp, err := d.Dial(s.WSURL+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{Conn: c, t: t}, resp
}

// TryDial opens a WebSocket and returns the handshake response whatever happened.
func (s *Server) TryDial(path string, header http.Header) (*websocket.Conn, *http.Response, error) {
	// gorilla's default buffers, as a user's client has: messages over 4 KiB go as several frames.
	d := websocket.Dialer{HandshakeTimeout: Timeout}
	return d.Dial(s.WSURL+path, header)
}

// Connect opens a WebSocket on /ws for u (query adds parameters, such as "&rooms=a,b") and reads the
// welcome and, for each room, the presence and history frames.
func (s *Server) Connect(t testing.TB, u User, query ...string) *Client {
	t.Helper()
	c := s.Dial(t, "/ws?token="+u.Token+strings.Join(query, ""), nil)
	w := c.Read()
	if w["type"] != "welcome" {
		t.Fatalf("first frame: got %v, want a welcome", w)
	}
	for _, room := range w["rooms"].([]any) {
		c.Expect("presence", room.(string))
		c.Expect("history", room.(string))
	}
	return c
}

// Expect reads the next frame and fails the test unless it has that type and room.
func (c *Client) Expect(typ, room string) map[string]any {
	c.t.Helper()
	f := c.Read()
	if f["type"] != typ || f["room"] != room {
		c.t.Fatalf("got %v, want a %s frame for room %s", f, typ, room)
	}
	return f
}

// Send writes v as a JSON text frame.
func (c *Client) Send(v any) {
	c.t.Helper()
	if err := c.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// SendText writes s as a text frame as is.
func (c *Client) SendText(s string) {
	c.t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Read returns the next frame as a JSON object, failing the test after Timeout. It skips the frames of
// noise, which other clients' comings and goings cause; ReadRaw does not.
func (c *Client) Read() map[string]any {
	c.t.Helper()
	for {
		f := c.ReadRaw()
		if !noise(f) {
			return f
		}
	}
}

// noise reports whether f is a frame Read passes over: presence changes, and the user's room list and
// read state, which come whenever the user's rooms change, on any connection of theirs.
func noise(f map[string]any) bool {
	switch f["type"] {
	case "joined", "left", "rooms", "read":
		return true
	}
	return false
}

// TryRead is Read without failing the test: it returns the error that ended the wait.
func (c *Client) TryRead(wait time.Duration) (map[string]any, error) {
	for {
		f, err := c.TryReadRaw(wait)
		if err != nil || !noise(f) {
			return f, err
		}
	}
}

// ReadRaw returns the next frame, whatever it is.
func (c *Client) ReadRaw() map[string]any {
	c.t.Helper()
	f, err := c.TryReadRaw(Timeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// TryReadRaw returns the next frame, or the error that ended the wait (a *websocket.CloseError carries
// the close code).
func (c *Client) TryReadRaw(wait time.Duration) (map[string]any, error) {
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	_, data, err := c.ReadMessage()
	if err != nil {
		return nil, err
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("frame is not a JSON object: %q", data)
	}
	return f, nil
}

// CloseCode reads until the connection closes and returns the close code the server sent; a server that
// hung up without a close frame gives 1006 (abnormal closure).
func (c *Client) CloseCode() int {
	c.t.Helper()
	for {
		_, err := c.TryRead(Timeout)
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			c.t.Fatal("connection still open after", Timeout)
		}
		c.t.Fatalf("connection ended without a close code: %v", err)
		return 0
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// QueryRow runs a query against the server's database (its SQLite file, or PostgreSQL) through a
// connection of its own, so tests can check what was stored without going through the code under test.
func QueryRow(t testing.TB, s *Server, query string, args ...any) *sql.Row {
	t.Helper()
	return database(t, s, "?mode=ro").QueryRow(query, args...)
}

// Exec runs a statement against the server's database through a connection of its own, as another node
// (or an operator) would, behind the server's back.
func Exec(t testing.TB, s *Server, statement string, args ...any) {
	t.Helper()
	if _, err := database(t, s, "").Exec(statement, args...); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

// database opens the server's database; sqliteMode is added to the SQLite file's URL.
func database(t testing.TB, s *Server, sqliteMode string) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", "file:"+s.Config.DataDir+"/causerie.db"+sqliteMode
	if s.Config.DatabaseURL != "" {
		driver, dsn = "pgx", s.Config.DatabaseURL
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Get returns the body of a GET that must answer 200.
func (s *Server) Get(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}
