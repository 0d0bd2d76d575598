package middleware

import (
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app"
)

// CheckOrigin refuses, with 403, a request whose Origin header is neither the server's own origin (its
// scheme and host) nor one of allowed (scheme://host[:port]). A request without Origin passes: only
// browsers send it, and the check exists to stop other sites' pages from using a visitor's token
// (cross-site WebSocket hijacking). The scheme counts: a page on http://host is not the https://host one.
// Behind a proxy that ends TLS, the scheme is the one the proxy's X-Forwarded-Proto gives, which a page
// cannot set. It must run before the WebSocket upgrade, while an HTTP status can still be sent.
func CheckOrigin(allowed []string) echo.MiddlewareFunc {
	set := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		set[strings.ToLower(a)] = true
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			origin := c.Request().Header.Get(echo.HeaderOrigin)
			if origin == "" || set[strings.ToLower(origin)] || sameOrigin(origin, c.Scheme(), c.Request().Host) {
				return next(c)
			}
			return app.Errorf(app.CodeForbidden, "origin %q is not allowed", origin)
		}
	}
}

func sameOrigin(origin, scheme, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, host)
}
