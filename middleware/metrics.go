package middleware

import (
	"net/http"
	"sync"
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
	var routes routeSet
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // so that the status observed is the one sent
			}
			route := c.Path()
			if route == "" || c.Response().Status == http.StatusNotFound && !routes.has(c.Echo(), route) {
				route = "unmatched"
			}
			obs.ObserveRequest(MethodLabel(c.Request().Method), route, c.Response().Status, time.Since(start))
			return nil
		}
	}
}

// routeSet holds the patterns the router has, read at the first request that needs them: on a path no route
// takes, Echo may leave the raw path in c.Path(). Routes are all added before the server serves.
type routeSet struct {
	once  sync.Once
	paths map[string]bool
}

func (s *routeSet) has(e *echo.Echo, route string) bool {
	s.once.Do(func() {
		s.paths = map[string]bool{}
		for _, r := range e.Routes() {
			s.paths[r.Path] = true
		}
	})
	return s.paths[route]
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
