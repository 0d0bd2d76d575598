// Causerie is a real-time chat server: accounts and tokens over REST, messages over WebSocket, stored in
// SQLite. This file only wires the parts together; see README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/joho/godotenv"

	"github.com/causerie/causerie/app/config"
	"github.com/causerie/causerie/app/server"
	"github.com/causerie/causerie/app/store"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout))
}

// run starts the server and blocks until ctx ends or SIGINT/SIGTERM arrives. Variables from the
// environment win over those in an optional .env file in the working directory.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stdout, "causerie: unknown arguments %q; configure with environment variables (see README.md)\n", args)
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

	db, err := store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "causerie.db"))
	if err != nil {
		log.Error("open store", "err", err)
		return 1
	}
	defer db.Close()
	srv, err := server.New(cfg, db, log)
	if err != nil {
		log.Error("build server", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	log.Info("listening", "addr", ln.Addr().String(), "data_dir", cfg.DataDir)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Serve(ctx, ln); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // config.Load accepts only valid levels
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
