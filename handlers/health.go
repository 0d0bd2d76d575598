package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Pinger reports whether a dependency answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// healthTimeout bounds each check, so that a hung database or Redis makes /healthz answer, not hang.
const healthTimeout = 2 * time.Second

// Health serves GET /healthz.
type Health struct {
	Node  string
	Store Pinger
	Bus   Pinger
	Log   *slog.Logger
}

type healthBody struct {
	Status string `json:"status"`
	Node   string `json:"node"`
	Store  string `json:"store"`
	Bus    string `json:"bus"`
}

// Check answers 200 while the store answers, with status "degraded" when the bus does not (messages are
// still stored and acknowledged, and reach other nodes once the bus is back), and 503 when the store does
// not answer: the node cannot take messages, and a load balancer should send clients elsewhere.
func (h *Health) Check(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), healthTimeout)
	defer cancel()
	body := healthBody{Status: "ok", Node: h.Node, Store: h.check(ctx, "store", h.Store), Bus: h.check(ctx, "bus", h.Bus)}
	status := http.StatusOK
	if body.Store != "ok" {
		status = http.StatusServiceUnavailable
	}
	if body.Store != "ok" || body.Bus != "ok" {
		body.Status = "degraded"
	}
	return c.JSON(status, body)
}

// check answers "ok" or "unavailable"; the error, which may name hosts and users, goes to the log only:
// /healthz answers anyone.
func (h *Health) check(ctx context.Context, name string, p Pinger) string {
	if err := p.Ping(ctx); err != nil {
		h.Log.Warn("health check failed", "dependency", name, "err", err)
		return "unavailable"
	}
	return "ok"
}
