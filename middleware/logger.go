package middleware

import (
	"context"
	"log/slog"
	"regexp"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
)

var tokenParam = regexp.MustCompile(`(?i)([?&]token=)[^&#]*`)

// RedactURI replaces the value of every token query parameter, so that a logged URI never carries a
// credential.
func RedactURI(uri string) string {
	return tokenParam.ReplaceAllString(uri, "${1}REDACTED")
}

// RequestLog logs one line per request with log, after it ends: method, redacted URI, status, latency
// and request id. Run it after the request-id middleware.
func RequestLog(log *slog.Logger) echo.MiddlewareFunc {
	return echomw.RequestLoggerWithConfig(echomw.RequestLoggerConfig{
		LogMethod:    true,
		LogURI:       true,
		LogStatus:    true,
		LogLatency:   true,
		LogRequestID: true,
		LogRemoteIP:  true,
		HandleError:  true,
		LogValuesFunc: func(c echo.Context, v echomw.RequestLoggerValues) error {
			level := slog.LevelInfo
			if v.Status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", v.Method),
				slog.String("uri", RedactURI(v.URI)),
				slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency),
				slog.String("request_id", v.RequestID),
				slog.String("remote_ip", v.RemoteIP),
			}
			log.LogAttrs(context.Background(), level, "request", attrs...)
			return nil
		},
	})
}
