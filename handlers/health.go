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

// healthTimeout bounds the store check, so that a hung database makes /healthz answer 503, not hang.
const healthTimeout = 2 * time.Second

// Health serves GET /healthz.
type Health struct {
	Store Pinger
}

type healthBody struct {
	Status string `json:"status"`
	Store  string `json:"store"`
}

// Check answers 200 when the store answers and 503 with the store's error when it does not.
func (h *Health) Check(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), healthTimeout)
	defer cancel()
	if err := h.Store.Ping(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, healthBody{Status: "degraded", Store: err.Error()})
	}
	return c.JSON(http.StatusOK, healthBody{Status: "ok", Store: "ok"})
}
