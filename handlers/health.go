package handlers

import (
	"context"
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
	body := healthBody{Status: "ok", Node: h.Node, Store: check(ctx, h.Store), Bus: check(ctx, h.Bus)}
	status := http.StatusOK
	if body.Store != "ok" {
		status = http.StatusServiceUnavailable
	}
	if body.Store != "ok" || body.Bus != "ok" {
		body.Status = "degraded"
	}
	return c.JSON(status, body)
}

func check(ctx context.Context, p Pinger) string {
	if err := p.Ping(ctx); err != nil {
		return err.Error()
	}
	return "ok"
}
