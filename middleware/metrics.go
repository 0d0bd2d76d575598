package middleware

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// RequestObserver records one finished request. Its labels come only from known values, so that no
// request can add a series: the method is one of the standard ones or "other", and route is the registered
// pattern ("unmatched" for any path no route takes), never the raw path, so ids and tokens never become
// label values either.
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
			if route == "" || c.Response().Status == http.StatusNotFound && !registered(c, route) {
				route = "unmatched"
			}
			obs.ObserveRequest(MethodLabel(c.Request().Method), route, c.Response().Status, time.Since(start))
			return nil
		}
	}
}

// registered reports whether route is a pattern the router holds: on a path no route takes, Echo may
// leave the raw path in c.Path().
func registered(c echo.Context, route string) bool {
	for _, r := range c.Echo().Routes() {
		if r.Path == route {
			return true
		}
	}
	return false
}

// MethodLabel is method when it is one of HTTP's standard methods, and "other" otherwise.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}
