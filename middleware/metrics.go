package middleware

import (
	"time"

	"github.com/labstack/echo/v4"
)

// RequestObserver records one finished request; route is the registered pattern, not the raw path, so
// that ids and tokens never become label values.
type RequestObserver interface {
	ObserveRequest(method, route string, status int, took time.Duration)
}

// Metrics reports every request's duration to obs.
func Metrics(obs RequestObserver) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // so that the status observed is the one sent
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			obs.ObserveRequest(c.Request().Method, route, c.Response().Status, time.Since(start))
			return nil
		}
	}
}
