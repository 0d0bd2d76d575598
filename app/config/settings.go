package config

import (
	"fmt"
	"io"
	"strings"
)

// Setting is one environment variable as the README's table shows it: its name, its default and what it
// does, in Markdown (code in backticks).
type Setting struct {
	Name, Default, Meaning string
}

// Row is the setting's row of the README's table.
func (s Setting) Row() string {
	return fmt.Sprintf("| `%s` | %s | %s |", s.Name, s.Default, s.Meaning)
}

// Settings is every variable Load reads, in the order of the README's table, which a test holds to it
// row for row; --help prints it. A default in backticks is the value Load takes when the variable is
// unset, which a test checks too.
var Settings = []Setting{
	{"HOST", "empty (all interfaces)", "interface to listen on"},
	{"PORT", "`8181`", "TCP port (`0`: any free port)"},
	{"DATA_DIR", "`./data`", "where the SQLite database (`causerie.db`) and a generated secret live"},
	{"DATABASE_URL", "empty (SQLite in `DATA_DIR`)", "PostgreSQL URL, `postgres://user:password@host:5432/db`; every node of a deployment uses the same database"},
	{"DATABASE_MAX_CONNS", "`10`", "PostgreSQL connections this node opens at most (1 to 1000)"},
	{"REDIS_URL", "empty (one node, in-process bus)", "the Redis that carries events between nodes and keeps presence, `redis://host:6379/0`, or a Redis Cluster (7 or later), `redis+cluster://host:6379?addr=host2:6379`; requires `JWT_SECRET`"},
	{"REDIS_PREFIX", "`causerie:`", "starts every Redis key and channel name; the same on every node; no `{` or `}`"},
	{"NODE_ID", "host name and 4 random hex digits", "this node's name in logs, Redis, metrics and `/healthz`: 1 to 64 of `a-z A-Z 0-9 . - _`"},
	{"PRESENCE_TTL", "`15s`", "with `REDIS_URL` (at least `3s`): how long the users of a node that stopped without a goodbye stay present"},
	{"JWT_SECRET", "generated", "HS256 signing secret, at least 32 bytes. When unset, a random one is created on first start in `DATA_DIR/jwt-secret` (mode 0600) and a warning is logged. Required with `REDIS_URL`, the same on every node."},
	{"TOKEN_TTL", "`24h`", "how long a token is valid"},
	{"SESSION_MAX", "`720h`", "how long a login lasts, refreshes included (30 days); then the user logs in again"},
	{"BCRYPT_COST", "`10`", "bcrypt work factor for new passwords (4 to 31)"},
	{"ALLOWED_ORIGINS", "empty", "extra browser origins allowed to open a WebSocket, comma-separated (`https://chat.example.com`); the server's own host is always allowed, and clients that send no `Origin` (Postman, CLI) too"},
	{"TRUSTED_PROXIES", "empty", "the proxies (IP addresses or CIDR ranges, comma-separated: `10.0.0.0/8`) whose `X-Forwarded-For` is believed for a client's address, in logs and per-address limits; without them the address is the socket's, and `X-Forwarded-For`, which any client can send, is ignored. Behind Caddy or nginx, list their addresses"},
	{"MAX_MESSAGE_BYTES", "`4096`", "largest message text, up to 61440 (60 KiB); a longer one gets a `too_long` error"},
	{"WS_QUEUE_BYTES", "`1048576`", "bytes that may wait to be written to one connection (at least 65536); a client that falls further behind is disconnected (close 4100)"},
	{"WS_WRITE_TIMEOUT", "`10s`", "how long one write to a WebSocket may take; a client that reads slower is cut (the client sees 1006)"},
	{"WS_WRITE_DELAY", "`5ms`", "how long a busy connection's writer (one whose last write carried several messages) waits, once it has something to send, for more to send with it: fewer, fuller writes under load for that much latency, a connection that gets one message at a time never waits (at most `1s`). `0` sends at once"},
	{"WS_COMPRESSION", "`0`", "`1` compresses WebSocket messages (permessage-deflate, RFC 7692) with clients that offer it, browsers among them: less bandwidth for more server CPU (see docs/performance.md)"},
	{"HISTORY_LIMIT", "`50`", "recent messages sent to a client that joins a room (0 to 200)"},
	{"RESUME_MAX", "`1000`", "most messages replayed to a client that resumes a room with `since` (1 to 100000); past it the replay says `complete:false`"},
	{"RATE_LIMIT", "`20`", "frames per second one user may send, all of the user's connections and REST posts together, on every node (`0`: no limit); past it frames are dropped with a `rate_limited` error (`retry_after_ms`), posts get 429. Pings have a budget of their own per connection (2 a second, bursts of 20; past it they go unanswered)"},
	{"RATE_BURST", "`40`", "frames a user may send at once above `RATE_LIMIT`"},
	{"MAX_ROOMS", "`50`", "rooms one connection may be in at once"},
	{"ROOMS_PER_HOUR", "`30`", "rooms one user may create in an hour (`POST /api/rooms`, each attempt, and each DM opened); past it 429 `rate_limited`. Counted in Redis with `REDIS_URL`; `0` turns it off"},
	{"REGISTRATIONS_PER_IP", "`20`", "accounts one client address may register in an hour (`0`: no cap): a family or a classroom fits; past it, 429 `rate_limited` with `Retry-After`. Counted in Redis with `REDIS_URL`. A load test registering many users from one machine sets it to `0`"},
	{"LOGIN_FAILURES", "`5`", "free login attempts for one account from one address (ten times as many for an account from anywhere, twenty times as many from one address; a success clears the account's counts and takes itself back from the address's); past them, each attempt makes the next wait, from `LOGIN_WINDOW`/15 (1 minute) doubling to `LOGIN_WINDOW`, and an attempt that comes sooner gets 429 `rate_limited` with `Retry-After`, the right password too. Counted in Redis with `REDIS_URL`, so on every node; `0` turns it off"},
	{"LOGIN_WINDOW", "`15m`", "how long login attempts are remembered after the first one, and the longest wait past `LOGIN_FAILURES`"},
	{"MAX_CONNS_PER_USER", "`20`", "WebSockets one user may have open, on every node together (`0`: no cap): many tabs and devices, and the sockets of a reload storm not yet closed, fit; past it the upgrade gets 429 `too_many_connections` with `Retry-After`"},
	{"MAX_CONNS_PER_IP", "`1000`", "WebSockets from one client address on a node (`0`: no cap); an office or campus behind one address fits. Set `TRUSTED_PROXIES` behind a proxy, or every client is the proxy's address"},
	{"PING_INTERVAL", "`25s`", "how often the server pings each WebSocket"},
	{"PONG_WAIT", "`60s`", "a WebSocket silent for this long is closed (must be longer than `PING_INTERVAL`)"},
	{"REQUEST_TIMEOUT", "`30s`", "time to read one HTTP request, body included (WebSockets are not affected)"},
	{"SHUTDOWN_TIMEOUT", "`10s`", "upper bound on a graceful shutdown"},
	{"DEBUG_PPROF", "`0`", "`1` serves Go's profiler under `/debug/pprof/`; keep it off where strangers can reach the port"},
	{"METRICS_ADDR", "empty (`/metrics` on the main port)", "a `host:port` of its own for `/metrics` and, with `DEBUG_PPROF=1`, the profiler, such as `127.0.0.1:9181`: they then leave the chat's port. On the main port, anyone who reaches it reads per-route request counts, the node's name and the Go version; set it wherever strangers reach the server"},
	{"LOG_FORMAT", "`text`", "`text` or `json`"},
	{"LOG_LEVEL", "`info`", "`debug`, `info`, `warn` or `error`; `debug` logs each WebSocket message received (who, where, its size; never its text), as the course does"},
}

// WriteHelp writes the settings for a terminal: each name with its default, then its meaning wrapped to
// width columns, without the Markdown.
func WriteHelp(w io.Writer, width int) {
	plain := strings.NewReplacer("`", "").Replace
	for _, s := range Settings {
		fmt.Fprintf(w, "  %s   default: %s\n", s.Name, plain(s.Default))
		line := "     "
		for _, word := range strings.Fields(plain(s.Meaning)) {
			if len(line)+1+len(word) > width && len(line) > 5 {
				fmt.Fprintln(w, line)
				line = "     "
			}
			line += " " + word
		}
		fmt.Fprintln(w, line)
	}
}
