// Causerie is a real-time chat server: accounts and tokens over REST, messages over WebSocket, stored in
// SQLite on one node, or in PostgreSQL with Redis between several. This file only wires the parts
// together; see README.md.
package main

import (
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
	"strings"
	"syscall"
	"time"

	"github.com/joho/godotenv"

	"github.com/causerie/causerie/app/bench"
	"github.com/causerie/causerie/app/config"
	"github.com/causerie/causerie/app/server"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout))
}

// run starts the server and blocks until ctx ends or SIGINT/SIGTERM arrives. Variables from the
// environment win over those in an optional .env file in the working directory.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) int {
	if len(args) > 0 && args[0] == "bench" {
		return runBench(ctx, args[1:], stdout)
	}
	if len(args) > 0 {
		fmt.Fprintf(stdout, "causerie: unknown arguments %q; the server is configured with environment variables (see README.md), and \"bench\" runs the load tool\n", args)
		return 2
	}
	dotenv, err := godotenv.Read(".env")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "causerie: read .env: %v\n", err)
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
		fmt.Fprintf(stdout, "causerie: %v\n", err)
		return 1
	}
	log := newLogger(cfg, stdout)

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
func runBench(ctx context.Context, args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stdout)
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
		fmt.Fprintln(stdout, err)
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
