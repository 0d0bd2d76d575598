// Package server builds Causerie's Echo application from its parts and runs it: the error handler, the
// middleware in order, the route table, the embedded page, and the graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux, served only with DEBUG_PPROF=1
	"os"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/auth"
	"github.com/causerie/causerie/app/budget"
	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/bus/redisbus"
	"github.com/causerie/causerie/app/chat"
	"github.com/causerie/causerie/app/config"
	"github.com/causerie/causerie/app/metrics"
	"github.com/causerie/causerie/app/netconn"
	"github.com/causerie/causerie/app/presence"
	"github.com/causerie/causerie/app/presence/redispresence"
	"github.com/causerie/causerie/app/store"
	"github.com/causerie/causerie/app/throttle"
	"github.com/causerie/causerie/app/usage"
	"github.com/causerie/causerie/app/wsframe"
	"github.com/causerie/causerie/handlers"
	"github.com/causerie/causerie/middleware"
	"github.com/causerie/causerie/public"
)

// bodyLimit caps request bodies; the account routes take a few hundred bytes at most.
const bodyLimit = "64K"

// contentSecurityPolicy allows only the page's own script, style and connections: no inline script can
// run even if some text were ever rendered as HTML.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Server is the whole application for one node.
type Server struct {
	cfg  config.Config
	log  *slog.Logger
	db   *store.DB
	bus  Bus
	hub  *chat.Hub
	echo *echo.Echo
	ops  http.Handler // what METRICS_ADDR serves

	failures handlers.Attempts
	hourly   handlers.Throttle
}

// Bus is the bus as the server uses it: the hub's, and /healthz's.
type Bus interface {
	bus.Bus
	Ping(ctx context.Context) error
}

// Deps are the adapters a node runs over, chosen by the configuration.
type Deps struct {
	Store *store.DB
	Bus   Bus
	// Presence and Usage are nil on a single node.
	Presence presence.Directory
	Usage    budget.Usage
	// Failures counts login attempts over LOGIN_WINDOW, and Hourly the rooms users create and the
	// accounts registered per address over an hour: in this process, or in Redis for every node.
	Failures handlers.Attempts
	Hourly   handlers.Throttle
}

// usageStale is how long a process's figures of what its users spend count for the others after its last
// exchange: three of its exchanges, so that one late exchange does not drop them.
const usageStale = 3 * time.Second

// Open opens the store (PostgreSQL with DATABASE_URL, else SQLite in DATA_DIR), and the bus and the
// presence directory (Redis with REDIS_URL, else in-process and none). The caller closes them with
// Close, after Serve has returned.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (Deps, error) {
	var d Deps
	var err error
	if cfg.DatabaseURL != "" {
		d.Store, err = store.OpenPostgres(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	} else {
		path := filepath.Join(cfg.DataDir, "causerie.db")
		_, statErr := os.Stat(path)
		if d.Store, err = store.OpenSQLite(ctx, path); err == nil && errors.Is(statErr, fs.ErrNotExist) {
			// Said out loud: run from another directory, a relative DATA_DIR makes a new, empty database.
			abs, _ := filepath.Abs(path)
			log.Info("created a new database (DATA_DIR)", "path", abs)
		}
	}
	if err != nil {
		if cfg.DatabaseURL != "" {
			return Deps{}, fmt.Errorf("DATABASE_URL: %w (does the database, and the schema of any search_path, exist?)", err)
		}
		return Deps{}, fmt.Errorf("DATA_DIR: %w", err)
	}
	if cfg.RedisURL == "" {
		d.Bus, d.Failures = bus.NewMemory(), throttle.NewMemory(cfg.LoginWindow, time.Now)
		d.Hourly = throttle.NewMemory(time.Hour, time.Now)
		return d, nil
	}
	rb, err := redisbus.New(ctx, redisbus.Config{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix, Node: cfg.NodeID}, log)
	if err != nil {
		d.Store.Close()
		return Deps{}, fmt.Errorf("REDIS_URL: %w", err)
	}
	d.Bus, d.Presence = rb, redispresence.New(rb.Client(), cfg.RedisPrefix, cfg.NodeID, cfg.PresenceTTL)
	d.Usage = usage.NewRedis(rb.Client(), cfg.RedisPrefix, cfg.NodeID, usageStale)
	d.Failures = throttle.NewRedis(rb.Client(), cfg.RedisPrefix, cfg.LoginWindow)
	d.Hourly = throttle.NewRedis(rb.Client(), cfg.RedisPrefix, time.Hour)
	return d, nil
}

// Close closes the store and the bus.
func (d Deps) Close() error {
	return errors.Join(d.Bus.Close(), d.Store.Close())
}

// New builds the application over deps. It reads or creates the token secret in cfg.DataDir when
// cfg.JWTSecret is empty.
func New(cfg config.Config, deps Deps, log *slog.Logger) (*Server, error) {
	secret := []byte(cfg.JWTSecret)
	if len(secret) == 0 {
		var created bool
		var err error
		secret, created, err = auth.LoadOrCreateSecret(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(cfg.DataDir, auth.SecretFile)
		if created {
			log.Warn("JWT_SECRET is not set: generated a secret and saved it; set JWT_SECRET to share one between nodes", "path", path)
		} else {
			log.Info("JWT_SECRET is not set: using the secret generated earlier", "path", path)
		}
	}
	passwords, err := auth.NewPasswords(cfg.BcryptCost)
	if err != nil {
		return nil, err
	}
	sessions := &auth.Sessions{Tokens: auth.NewTokens(secret, time.Now), Store: deps.Store,
		TTL: cfg.TokenTTL, Max: cfg.SessionMax, Now: time.Now}
	m := metrics.New(cfg.NodeID)
	hub, err := chat.New(chat.Options{
		Store:           deps.Store,
		Bus:             deps.Bus,
		Tokens:          sessions,
		Sessions:        deps.Store,
		Log:             log,
		Timings:         m,
		NodeID:          cfg.NodeID,
		Now:             time.Now,
		MaxMessageBytes: cfg.MaxMessageBytes,
		QueueBytes:      cfg.QueueBytes,
		WriteDelay:      cfg.WriteDelay,
		PingInterval:    cfg.PingInterval,
		PongWait:        cfg.PongWait,
		HistoryLimit:    cfg.HistoryLimit,
		ResumeMax:       cfg.ResumeMax,
		RateLimit:       cfg.RateLimit,
		RateBurst:       cfg.RateBurst,
		MaxRooms:        cfg.MaxRooms,
		MaxConnsPerUser: cfg.MaxConnsPerUser,
		Usage:           deps.Usage,
		RoomsPerHour:    cfg.RoomsPerHour,
		Creations:       deps.Hourly,
		Presence:        deps.Presence,
		PresenceTTL:     cfg.PresenceTTL,
	})
	if err != nil {
		return nil, err
	}
	m.Watch(hub.Stats())
	s := &Server{cfg: cfg, log: log, db: deps.Store, bus: deps.Bus, hub: hub, echo: echo.New(), failures: deps.Failures, hourly: deps.Hourly}
	s.routes(sessions, passwords, m)
	return s, nil
}

func (s *Server) routes(sessions *auth.Sessions, passwords *auth.Passwords, m *metrics.Metrics) {
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(s.log)
	e.JSONSerializer = plainJSON{}
	e.IPExtractor, e.SchemeExtractor = clientIP(s.cfg.TrustedProxies)

	e.Use(middleware.RequestID())
	e.Use(middleware.RequestLog(s.log))
	e.Use(middleware.Metrics(m))
	e.Use(echomw.RecoverWithConfig(echomw.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("panic", "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(echomw.SecureWithConfig(echomw.SecureConfig{
		ContentTypeNosniff:    "nosniff",
		XFrameOptions:         "DENY",
		ReferrerPolicy:        "no-referrer",
		ContentSecurityPolicy: contentSecurityPolicy,
	}))
	e.Use(echomw.BodyLimit(bodyLimit))

	jwt := middleware.JWT(sessions)
	origin := middleware.CheckOrigin(s.cfg.AllowedOrigins)
	accounts := &handlers.Auth{Users: s.db, Sessions: sessions, Sockets: s.hub, Passwords: passwords, Now: time.Now,
		Failures: s.failures, MaxFailures: s.cfg.LoginFailures,
		Registrations: s.hourly, MaxRegistrations: s.cfg.RegistrationsPerIP}
	ws := &handlers.WS{Hub: s.hub, MaxRooms: s.cfg.MaxRooms, WriteWait: s.cfg.WriteTimeout, MaxConnsPerIP: s.cfg.MaxConnsPerIP}
	if s.cfg.Compression {
		ws.Compressor = wsframe.NewCompressor()
	}
	rooms := &handlers.Rooms{Hub: s.hub, Messages: s.db}
	upgrade := jwt(origin(ws.Serve))
	health := &handlers.Health{Node: s.cfg.NodeID, Store: s.db, Bus: s.bus, Log: s.log}

	e.POST("/api/register", accounts.Register)
	e.POST("/api/login", accounts.Login)
	e.GET("/api/me", accounts.Me, jwt)
	e.GET("/api/me/rooms", rooms.Mine, jwt)
	e.POST("/api/token/refresh", accounts.Refresh, jwt)
	e.POST("/api/logout", accounts.Logout, jwt)
	e.POST("/api/logout/all", accounts.LogoutAll, jwt)
	e.GET("/api/rooms", rooms.List, jwt)
	e.POST("/api/rooms", rooms.Create, jwt)
	e.GET("/api/rooms/:room/messages", rooms.History, jwt)
	e.POST("/api/rooms/:room/messages", rooms.Publish, jwt)
	e.PATCH("/api/rooms/:room/messages/:id", rooms.Edit, jwt)
	e.DELETE("/api/rooms/:room/messages/:id", rooms.Delete, jwt)
	e.PUT("/api/rooms/:room/messages/:id/reactions/:emoji", rooms.React, jwt)
	e.DELETE("/api/rooms/:room/messages/:id/reactions/:emoji", rooms.Unreact, jwt)
	e.GET("/api/rooms/:room/members", rooms.Members, jwt)
	e.PUT("/api/rooms/:room/members/:name", rooms.AddMember, jwt)
	e.DELETE("/api/rooms/:room/members/:name", rooms.RemoveMember, jwt)
	e.POST("/api/dms", rooms.OpenDM, jwt)
	e.GET("/ws", upgrade)
	e.GET("/healthz", health.Check)
	e.HEAD("/healthz", health.Check)
	if s.cfg.MetricsAddr == "" {
		e.GET("/metrics", echo.WrapHandler(m.Handler()))
	}
	s.ops = opsHandler(m, s.cfg.Pprof)

	// "/" is the page, or a WebSocket when the request asks for one: the course connects to
	// ws://localhost:8181?token=... with no path.
	page := echo.StaticFileHandler("index.html", public.Files)
	e.GET("/", func(c echo.Context) error {
		if handlers.IsUpgrade(c.Request()) {
			return upgrade(c)
		}
		return page(c)
	})
	e.HEAD("/", page)
	for _, name := range []string{"app.js", "api.js", "view.js", "token.js", "socket.js", "rooms.js", "app.css"} {
		e.Match([]string{http.MethodGet, http.MethodHead}, "/"+name, echo.StaticFileHandler(name, public.Files))
	}
	if s.cfg.Pprof && s.cfg.MetricsAddr == "" {
		e.GET("/debug/pprof/*", echo.WrapHandler(http.DefaultServeMux))
	}
}

// clientIP reads a client's address from the socket, or, when the socket is one of trusted proxies, from
// the X-Forwarded-For they add: anyone can send that header, so it is believed only from them. The scheme
// (for the Origin check) comes from their X-Forwarded-Proto; with none listed, from that of a loopback or
// private peer, Echo's default, as a page cannot set the header anyway.
func clientIP(trusted []*net.IPNet) (echo.IPExtractor, echo.SchemeExtractor) {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect(), nil
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...), echo.ExtractSchemeFromHeaders(opts...)
}

// opsHandler serves /metrics, and Go's profiler with pprof, on the operations port (METRICS_ADDR).
func opsHandler(m *metrics.Metrics, pprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if pprof {
		mux.Handle("/debug/pprof/", http.DefaultServeMux)
	}
	return mux
}

// Handler returns the Echo application, for tests that only need plain HTTP.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves on ln until ctx ends, then shuts down: it stops accepting, lets requests in flight finish,
// closes every WebSocket after what is queued for it, publishes what is left for other nodes, and
// returns. WebSockets are closed with 1012 (service restart) when other nodes can take the clients at
// once, 1001 (going away) on a single node. ops, when not nil, is the METRICS_ADDR listener, served
// until the end too. The store and the bus are the caller's to close.
func (s *Server) Serve(ctx context.Context, ln, ops net.Listener) error {
	hs := &http.Server{
		Handler:           s.echo,
		ConnContext:       netconn.ConnContext,
		ReadHeaderTimeout: s.cfg.RequestTimeout,
		ReadTimeout:       s.cfg.RequestTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if err := s.hub.Start(ctx); err != nil {
		return fmt.Errorf("server: start: %w", err)
	}
	pingCtx, stopPings := context.WithCancel(context.Background())
	defer stopPings()
	go s.hub.Run(pingCtx)

	served := make(chan error, 1)
	go func() { served <- hs.Serve(netconn.Listen(ln)) }()
	var opsServer *http.Server
	if ops != nil {
		opsServer = &http.Server{Handler: s.ops, ReadHeaderTimeout: s.cfg.RequestTimeout, ReadTimeout: s.cfg.RequestTimeout,
			IdleTimeout: 2 * time.Minute, ErrorLog: hs.ErrorLog}
		go func() {
			if err := opsServer.Serve(ops); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("serve METRICS_ADDR", "err", err)
			}
		}()
	}
	select {
	case err := <-served:
		if opsServer != nil {
			_ = opsServer.Close()
		}
		return fmt.Errorf("server: serve: %w", err)
	case <-ctx.Done():
	}

	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// http.Server.Shutdown neither sees nor waits for hijacked connections: the hub closes those.
	errHTTP := hs.Shutdown(sctx)
	code, reason := app.CloseGoingAway, "server shutting down"
	if s.cfg.Clustered() {
		code, reason = app.CloseServiceRestart, "node restarting: reconnect to another node"
	}
	errHub := s.hub.Shutdown(sctx, code, reason)
	if opsServer != nil { // last: the shutdown's metrics can still be read
		errHTTP = errors.Join(errHTTP, opsServer.Shutdown(sctx))
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errHTTP = errors.Join(errHTTP, err)
	}
	return errors.Join(errHTTP, errHub)
}
