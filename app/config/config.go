// Package config reads Causerie's settings from the environment, once, at start-up.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config holds every setting. Each field's comment names its variable and default; README.md and
// .env.example carry the same table.
type Config struct {
	// Host is the interface to listen on (HOST, default empty: all interfaces).
	Host string
	// Port is the TCP port (PORT, default 8181, the course's; 0 picks a free port).
	Port int
	// DataDir holds the SQLite database and the generated JWT secret (DATA_DIR, default ./data).
	DataDir string
	// DatabaseURL is a PostgreSQL URL, postgres://user:password@host:5432/db (DATABASE_URL, default
	// empty: SQLite in DataDir). Every node of a deployment must use the same database.
	DatabaseURL string
	// DatabaseMaxConns caps the PostgreSQL connections of this node (DATABASE_MAX_CONNS, default 10).
	DatabaseMaxConns int
	// RedisURL is the Redis that carries events between nodes and keeps presence, redis://host:6379/0
	// (REDIS_URL, default empty: one node, in-process bus). It requires JWT_SECRET, shared by every node.
	RedisURL string
	// RedisPrefix starts every Redis key and channel name, so that deployments can share a Redis
	// (REDIS_PREFIX, default causerie:).
	RedisPrefix string
	// NodeID names this node in logs, Redis and metrics (NODE_ID, default the host name and a random
	// suffix, so that two processes on one host differ).
	NodeID string
	// PresenceTTL is how long a node's users stay present after it stops refreshing them, which is how
	// long the users of a crashed node linger (PRESENCE_TTL, default 15s, at least 3s; with REDIS_URL).
	PresenceTTL time.Duration
	// JWTSecret signs tokens (JWT_SECRET, at least 32 bytes). Empty means: generate one on first start
	// and keep it in DataDir.
	JWTSecret string
	// TokenTTL is how long a token is valid after it is issued (TOKEN_TTL, default 24h).
	TokenTTL time.Duration
	// SessionMax is how long a login lasts, refreshes included (SESSION_MAX, default 720h: 30 days).
	SessionMax time.Duration
	// BcryptCost is the bcrypt work factor for new passwords (BCRYPT_COST, default 10, 4 to 31).
	BcryptCost int
	// AllowedOrigins are the browser origins, besides the server's own host, that may open a WebSocket
	// (ALLOWED_ORIGINS, comma-separated, e.g. https://chat.example.com; default none).
	AllowedOrigins []string
	// TrustedProxies are the proxies (IP addresses or CIDR ranges) whose X-Forwarded-For is believed for a
	// client's address (TRUSTED_PROXIES, comma-separated, e.g. 10.0.0.0/8; default none: the address is the
	// socket's, and X-Forwarded-For, which any client can send, is ignored).
	TrustedProxies []*net.IPNet
	// MaxMessageBytes caps the text of one message (MAX_MESSAGE_BYTES, default 4096).
	MaxMessageBytes int
	// QueueBytes caps the bytes waiting to be written to one connection; a client whose queue is full
	// is disconnected (WS_QUEUE_BYTES, default 1048576).
	QueueBytes int
	// WriteTimeout bounds one write to a WebSocket; a peer that takes longer to read it is cut
	// (WS_WRITE_TIMEOUT, default 10s).
	WriteTimeout time.Duration
	// WriteDelay is how long a busy connection's writer waits for more to write with what it has
	// (WS_WRITE_DELAY, default 5ms; 0: none).
	WriteDelay time.Duration
	// Compression accepts permessage-deflate (RFC 7692) from WebSocket clients that offer it, browsers
	// among them (WS_COMPRESSION=1; default 0, off: it trades server CPU for bandwidth).
	Compression bool
	// PingInterval is how often the server pings each connection (PING_INTERVAL, default 25s).
	PingInterval time.Duration
	// PongWait is how long a connection may stay silent before it is closed (PONG_WAIT, default 60s;
	// must be longer than PING_INTERVAL).
	PongWait time.Duration
	// HistoryLimit is how many recent messages a client gets when it joins a room (HISTORY_LIMIT,
	// default 50, 0 to 200).
	HistoryLimit int
	// ResumeMax caps the messages replayed to a client resuming a room (RESUME_MAX, default 1000).
	ResumeMax int
	// RateLimit is how many frames per second one user may send, all connections and REST posts
	// together, on every node (RATE_LIMIT, default 20; 0 turns the limit off).
	RateLimit float64
	// RateBurst is how many frames a user may send at once above RateLimit (RATE_BURST, default 40).
	RateBurst int
	// MaxRooms caps the rooms one connection may be in (MAX_ROOMS, default 50).
	MaxRooms int
	// RoomsPerHour caps the rooms one user creates (POST /api/rooms) in an hour
	// (ROOMS_PER_HOUR, default 30; 0 is no cap). Counted in Redis with REDIS_URL.
	RoomsPerHour int
	// RegistrationsPerIP caps the accounts registered from one client address in an hour
	// (REGISTRATIONS_PER_IP, default 20; 0 is no cap). Counted in Redis with REDIS_URL.
	RegistrationsPerIP int
	// LoginFailures is how many login attempts one account may have from one address for free, ten times
	// as many from anywhere, twenty times as many per address (successes taken back); past them each
	// attempt makes the next wait, from LoginWindow/15 doubling up to LoginWindow (LOGIN_FAILURES, default
	// 5; 0 turns the limits off).
	LoginFailures int
	// LoginWindow is how long attempts are remembered after the first one, and the longest wait
	// (LOGIN_WINDOW, default 15m).
	LoginWindow time.Duration
	// MaxConnsPerUser caps one user's WebSockets on every node together (MAX_CONNS_PER_USER, default 20:
	// many tabs and devices, and the sockets of a reload storm not yet closed; 0 is no cap).
	MaxConnsPerUser int
	// MaxConnsPerIP caps the WebSockets from one client address on this node (MAX_CONNS_PER_IP, default
	// 1000: an office or a campus behind one address; 0 is no cap). See TrustedProxies.
	MaxConnsPerIP int
	// RequestTimeout bounds reading one HTTP request, body included, so that a client that stops sending
	// mid-request cannot hold a connection (REQUEST_TIMEOUT, default 30s; WebSockets are not affected).
	RequestTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown (SHUTDOWN_TIMEOUT, default 10s).
	ShutdownTimeout time.Duration
	// Pprof serves Go's profiler under /debug/pprof/ (DEBUG_PPROF=1; default off: it exposes the
	// process's internals to anyone who can reach the port).
	Pprof bool
	// MetricsAddr is a host:port of its own for /metrics and /debug/pprof/, such as 127.0.0.1:9181 or an
	// address on a private network, so that they are not served to the chat's users (METRICS_ADDR,
	// default empty: /metrics on the main port, as for a single machine).
	MetricsAddr string
	// LogFormat is text or json (LOG_FORMAT, default text).
	LogFormat string
	// LogLevel is debug, info, warn or error (LOG_LEVEL, default info).
	LogLevel string
}

// Load reads the configuration through getenv (os.Getenv in production) and returns one error that
// names every bad variable.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		Host:               getenv("HOST"),
		Port:               p.int("PORT", 8181, 0, 65535),
		DataDir:            p.string("DATA_DIR", "./data"),
		DatabaseURL:        strings.TrimSpace(getenv("DATABASE_URL")),
		DatabaseMaxConns:   p.int("DATABASE_MAX_CONNS", 10, 1, 1000),
		RedisURL:           strings.TrimSpace(getenv("REDIS_URL")),
		RedisPrefix:        p.string("REDIS_PREFIX", "causerie:"),
		NodeID:             p.string("NODE_ID", ""),
		PresenceTTL:        p.duration("PRESENCE_TTL", 15*time.Second),
		JWTSecret:          getenv("JWT_SECRET"),
		TokenTTL:           p.duration("TOKEN_TTL", 24*time.Hour),
		SessionMax:         p.duration("SESSION_MAX", 30*24*time.Hour),
		BcryptCost:         p.int("BCRYPT_COST", 10, 4, 31),
		AllowedOrigins:     p.list("ALLOWED_ORIGINS"),
		TrustedProxies:     p.networks("TRUSTED_PROXIES"),
		MaxMessageBytes:    p.int("MAX_MESSAGE_BYTES", 4096, 1, 60<<10),
		QueueBytes:         p.int("WS_QUEUE_BYTES", 1<<20, 64<<10, 1<<30),
		WriteTimeout:       p.duration("WS_WRITE_TIMEOUT", 10*time.Second),
		WriteDelay:         p.delay("WS_WRITE_DELAY", 5*time.Millisecond),
		Compression:        p.oneOf("WS_COMPRESSION", "0", "0", "1") == "1",
		PingInterval:       p.duration("PING_INTERVAL", 25*time.Second),
		PongWait:           p.duration("PONG_WAIT", 60*time.Second),
		HistoryLimit:       p.int("HISTORY_LIMIT", 50, 0, 200),
		ResumeMax:          p.int("RESUME_MAX", 1000, 1, 100000),
		RateLimit:          p.float("RATE_LIMIT", 20),
		RateBurst:          p.int("RATE_BURST", 40, 1, 1<<20),
		MaxRooms:           p.int("MAX_ROOMS", 50, 1, 10000),
		RoomsPerHour:       p.int("ROOMS_PER_HOUR", 30, 0, 1<<20),
		RegistrationsPerIP: p.int("REGISTRATIONS_PER_IP", 20, 0, 1<<20),
		LoginFailures:      p.int("LOGIN_FAILURES", 5, 0, 1<<20),
		LoginWindow:        p.duration("LOGIN_WINDOW", 15*time.Minute),
		MaxConnsPerUser:    p.int("MAX_CONNS_PER_USER", 20, 0, 1<<20),
		MaxConnsPerIP:      p.int("MAX_CONNS_PER_IP", 1000, 0, 1<<20),
		RequestTimeout:     p.duration("REQUEST_TIMEOUT", 30*time.Second),
		ShutdownTimeout:    p.duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		Pprof:              p.oneOf("DEBUG_PPROF", "0", "0", "1") == "1",
		MetricsAddr:        strings.TrimSpace(getenv("METRICS_ADDR")),
		LogFormat:          p.oneOf("LOG_FORMAT", "text", "text", "json"),
		LogLevel:           p.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		if c.RedisURL != "" {
			p.fail("JWT_SECRET", "must be at least 32 bytes, the same on every node (openssl rand -hex 32)")
		} else {
			p.fail("JWT_SECRET", "must be at least 32 bytes (or unset, to generate one)")
		}
	}
	if u := c.DatabaseURL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		p.fail("DATABASE_URL", "must be a postgres:// URL (or unset, for SQLite in DATA_DIR)")
	}
	if u := c.RedisURL; u != "" && !slices.ContainsFunc(redisSchemes, func(s string) bool { return strings.HasPrefix(u, s) }) {
		p.fail("REDIS_URL", "must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL (or unset, for a single node)")
	}
	if strings.ContainsAny(c.RedisPrefix, "{}") {
		// A Redis Cluster places keys and channels by the first {...} in their names: the ones
		// Causerie puts there must be the first.
		p.fail("REDIS_PREFIX", "must not contain { or }")
	}
	if c.RedisURL != "" && c.JWTSecret == "" {
		p.fail("JWT_SECRET", "must be set when REDIS_URL is: every node must verify the tokens the others issue")
	}
	if a := c.MetricsAddr; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			p.fail("METRICS_ADDR", "must be host:port, such as 127.0.0.1:9181 or :9181 (or unset, for /metrics on the main port)")
		}
	}
	if c.NodeID == "" {
		c.NodeID = defaultNodeID()
	} else if !validNodeID(c.NodeID) {
		p.fail("NODE_ID", "must be 1 to 64 characters of a-z, A-Z, 0-9, ., - and _")
	}
	if c.RedisURL != "" && c.PresenceTTL < 3*time.Second {
		p.fail("PRESENCE_TTL", "must be at least 3s: a node renews its presence every third of it, each renewal taking up to a second")
	}
	if c.PongWait <= c.PingInterval {
		p.fail("PONG_WAIT", "must be longer than PING_INTERVAL")
	}
	if len(p.errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(p.errs...))
	}
	return c, nil
}

// defaultNodeID is the host name and four random hex digits.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || !validNodeID(host) || len(host) > 59 {
		host = "node"
	}
	var b [2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return host + "-" + hex.EncodeToString(b[:])
}

func validNodeID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if !ok {
			return false
		}
	}
	return true
}

// redisSchemes start the URLs of one Redis and of a Redis Cluster, plain or over TLS.
var redisSchemes = []string{"redis://", "rediss://", "redis+cluster://", "rediss+cluster://"}

// Clustered reports whether this node shares its traffic with others.
func (c Config) Clustered() bool { return c.RedisURL != "" }

// Addr is the address to listen on.
func (c Config) Addr() string {
	return c.Host + ":" + strconv.Itoa(c.Port)
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(name, msg string) {
	p.errs = append(p.errs, fmt.Errorf("%s %s", name, msg))
}

func (p *parser) string(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) int(name string, def, min, max int) int {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		p.fail(name, fmt.Sprintf("must be a whole number from %d to %d, got %q", min, max, v))
		return def
	}
	return n
}

func (p *parser) float(name string, def float64) float64 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		p.fail(name, fmt.Sprintf("must be a number, 0 or more, got %q", v))
		return def
	}
	return f
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(name, fmt.Sprintf("must be a positive duration such as 30s or 24h, got %q", v))
		return def
	}
	return d
}

// delay reads a duration that may be 0, and is 0 when unset; at most a second.
func (p *parser) delay(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > time.Second {
		p.fail(name, fmt.Sprintf("must be a duration from 0 to 1s, such as 1ms, got %q", v))
		return 0
	}
	return d
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(strings.TrimSpace(p.getenv(name)))
	if v == "" {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(name, fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), v))
	return def
}

// networks reads a comma-separated list of IP addresses and CIDR ranges; an address is a range of one.
func (p *parser) networks(name string) []*net.IPNet {
	var out []*net.IPNet
	for _, item := range p.list(name) {
		prefix, err := netip.ParsePrefix(item)
		if addr, aerr := netip.ParseAddr(item); aerr == nil { // an address is a range of one
			addr = addr.Unmap()
			prefix, err = addr.Prefix(addr.BitLen())
		}
		if err != nil {
			p.fail(name, fmt.Sprintf("%q is not an IP address or a CIDR range such as 10.0.0.0/8", item))
			continue
		}
		prefix = prefix.Masked()
		out = append(out, &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), prefix.Addr().BitLen())})
	}
	return out
}

func (p *parser) list(name string) []string {
	var out []string
	for _, item := range strings.Split(p.getenv(name), ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, strings.TrimSuffix(item, "/"))
		}
	}
	return out
}
