// Causerie is a real-time chat server: accounts and tokens over REST, messages over WebSocket, stored in
// SQLite on one node, or in PostgreSQL with Redis between several. This file only wires the parts
// together; see README.md.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/joho/godotenv"

	"github.com/causerie/causerie/app/bench"
	"github.com/causerie/causerie/app/config"
	"github.com/causerie/causerie/app/server"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run starts the server and blocks until ctx ends or SIGINT/SIGTERM arrives, or runs the subcommand
// args name. Variables from the environment win over those in an optional .env file in the working
// directory. What the user asked for (help, the version, the address served) goes to stdout; logs and
// errors go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "bench":
			return runBench(ctx, args[1:], stdout, stderr)
		case "help", "-h", "-help", "--help":
			if len(args) == 1 {
				writeHelp(stdout)
				return 0
			}
		case "version", "-version", "--version":
			if len(args) == 1 {
				fmt.Fprintln(stdout, version())
				return 0
			}
		}
		fmt.Fprintf(stderr, "causerie: unknown arguments %q: the server takes its settings from environment variables; \"causerie help\" lists them, and the subcommands\n", args)
		return 2
	}
	dotenv, err := godotenv.Read(".env")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "causerie: read .env: %v\n", err)
		return 1
	}
	env := func(key string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return dotenv[key]
	}
	cfg, err := config.Load(env)
	if err != nil {
		fmt.Fprintf(stderr, "causerie: %v\n(\"causerie help\" lists every setting)\n", err)
		return 1
	}
	log := newLogger(cfg, stderr)

	deps, err := server.Open(ctx, cfg, log)
	if err != nil {
		log.Error("open store and bus", "err", err)
		return 1
	}
	defer deps.Close()
	srv, err := server.New(cfg, deps, log)
	if err != nil {
		log.Error("build server", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	var ops net.Listener
	if cfg.MetricsAddr != "" {
		if ops, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			log.Error("listen on METRICS_ADDR", "err", err)
			return 1
		}
		log.Info("metrics on their own address", "addr", ops.Addr().String())
	}
	fmt.Fprintf(stdout, "Causerie is serving on %s (Ctrl-C stops it)\n", pageURL(cfg, ln.Addr()))
	log.Info("listening", "addr", ln.Addr().String(), "node", cfg.NodeID, "store", storeName(cfg), "bus", busName(cfg))

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Serve(ctx, ln, ops); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// runBench runs the load tool (app/bench) against running servers. It exits 1 when a delivery was lost or
// duplicated, so scripts and CI can assert on it.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var urls urlList
	fs.Var(&urls, "url", "server base URL, repeat to spread connections over nodes (default http://127.0.0.1:8181)")
	cfg := bench.Config{}
	fs.StringVar(&cfg.Token, "token", "", "token for every connection (default: register -users accounts)")
	fs.IntVar(&cfg.Users, "users", 10, "accounts to register and share among the connections")
	fs.IntVar(&cfg.Conns, "conns", 100, "WebSocket connections")
	fs.IntVar(&cfg.Senders, "senders", 1, "connections that send (the first ones)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages per second per sender; 0 sends as fast as deliveries free -inflight slots")
	fs.IntVar(&cfg.Inflight, "inflight", 3, "closed loop: messages per sender not yet delivered to every receiver")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long the senders send")
	fs.DurationVar(&cfg.Ramp, "ramp", 0, "spread the connection opening over this time")
	fs.IntVar(&cfg.Dialers, "dialers", 100, "connections being opened at once at most")
	fs.IntVar(&cfg.Rooms, "rooms", 1, "rooms to spread the connections over")
	fs.StringVar(&cfg.Proto, "proto", bench.ProtoCauserie, "causerie, or gorilla for the gorilla/websocket chat example")
	fs.BoolVar(&cfg.Batch, "batch", true, "ask for several messages per frame (?batch=1)")
	fs.IntVar(&cfg.LoginStorm, "login-storm", 0, "goroutines posting wrong logins while sending; GET /api/me is timed meanwhile")
	fs.BoolVar(&cfg.Compress, "compress", false, "offer permessage-deflate (the server takes it with WS_COMPRESSION=1)")
	fs.IntVar(&cfg.Size, "size", 100, "bytes of text per message")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "how long to wait for deliveries after the last send")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "leave messages sent in the first part of the run out of the latency figures")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "report the CPU time and memory of this server process (same machine)")
	asJSON := fs.Bool("json", false, "print the report as one JSON line")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "causerie bench: unknown arguments %q (causerie bench -h lists the flags)\n", fs.Args())
		return 2
	}
	cfg.URLs = urls
	if len(cfg.URLs) == 0 {
		cfg.URLs = []string{"http://127.0.0.1:8181"}
	}
	if f, ok := stdout.(*os.File); ok && !*asJSON {
		if info, err := f.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
			cfg.Progress = stdout
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "causerie bench: %v\n", err)
		return 1
	}
	if *asJSON {
		_ = json.NewEncoder(stdout).Encode(rep)
	} else {
		fmt.Fprint(stdout, rep)
	}
	if rep.Lost > 0 || rep.Duplicated > 0 {
		return 1
	}
	return 0
}

// writeHelp says what the program is, its subcommands and every setting (config.Settings, the README's
// table).
func writeHelp(w io.Writer) {
	fmt.Fprint(w, `Causerie is a real-time chat server: accounts and tokens over REST, rooms, history and resume over
WebSocket, the chat page at /. One process keeps its data in SQLite; several share PostgreSQL and Redis.

Usage:
  causerie              serve, with the settings below (go run main.go, from a checkout)
  causerie bench ...    the load tool: WebSockets against running servers (causerie bench -h)
  causerie version      the module version and the revision it was built from
  causerie help         this text

Settings, from environment variables, or from a .env file in the working directory (copy .env.example);
a variable set in the environment wins, unless it is empty:

`)
	config.WriteHelp(w, 100)
	fmt.Fprint(w, "\nREADME.md has the protocol and a walkthrough; docs/ has the rest.\n")
}

// version describes the build: the module's version (a tag, or "(devel)" from a checkout) and, when
// built with go build in a git checkout, the revision and its time.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "causerie (no build information)"
	}
	v := "causerie " + cmp.Or(info.Main.Version, "(devel)")
	var rev, at, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " with uncommitted changes"
			}
		}
	}
	if rev == "" {
		return v + ", no revision recorded (go run records none; go build does, in a git checkout with git on PATH), " + info.GoVersion
	}
	return fmt.Sprintf("%s, revision %s of %s%s, %s", v, rev, at, dirty, info.GoVersion)
}

// pageURL is the address of the page, as a browser on this machine reaches it.
func pageURL(cfg config.Config, addr net.Addr) string {
	host := cfg.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	port := "8181"
	if tcp, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
	}
	return "http://" + net.JoinHostPort(host, port)
}

func storeName(cfg config.Config) string {
	if cfg.DatabaseURL != "" {
		return "postgres"
	}
	return "sqlite in " + cfg.DataDir
}

func busName(cfg config.Config) string {
	if cfg.RedisURL != "" {
		return "redis"
	}
	return "in-process"
}

type urlList []string

func (u *urlList) String() string     { return strings.Join(*u, ",") }
func (u *urlList) Set(v string) error { *u = append(*u, strings.TrimSuffix(v, "/")); return nil }

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // config.Load accepts only valid levels
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
