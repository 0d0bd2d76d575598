package middleware

import (
	"context"
	"log/slog"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
)

// RedactURI replaces the value of every token query parameter, so that a logged URI never carries a
// credential. It reads the query as the server does, so an encoded name (%74oken) is caught too.
//
// A parameter starts after the '?' and after every '&', ';' and '#'. A request line has no fragment: the
// server reads "?x=1#&token=..." as a token, so the query does not end at a '#'; ';' separates
// parameters for some proxies; and a fragment's token parameters are redacted as well.
func RedactURI(uri string) string {
	path, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	var b strings.Builder
	b.Grow(len(uri))
	b.WriteString(path)
	sep := byte('?')
	for {
		b.WriteByte(sep)
		part := query
		end := strings.IndexAny(query, "&;#")
		if end >= 0 {
			part, sep, query = query[:end], query[end], query[end+1:]
		}
		name, _, _ := strings.Cut(part, "=")
		if decoded, err := url.QueryUnescape(name); err != nil || strings.EqualFold(decoded, "token") {
			part = name + "=REDACTED"
		}
		b.WriteString(part)
		if end < 0 {
			return b.String()
		}
	}
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
