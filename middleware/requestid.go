package middleware

import (
	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
)

// maxRequestID bounds the X-Request-Id a client may choose.
const maxRequestID = 64

// RequestID gives every request an id in X-Request-Id, answered and logged. It keeps a client's own id (a
// proxy's, to follow a request across services) only when it is short and plain: otherwise a client would
// have every request echo and log whatever it sent, half a megabyte at a time.
func RequestID() echo.MiddlewareFunc {
	ids := echomw.RequestID()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		withID := ids(next)
		return func(c echo.Context) error {
			if id := c.Request().Header.Get(echo.HeaderXRequestID); id != "" && !plainID(id) {
				c.Request().Header.Del(echo.HeaderXRequestID)
			}
			return withID(c)
		}
	}
}

// plainID reports whether id is 1 to maxRequestID characters of letters, digits, '.', '_', ':' and '-'.
func plainID(id string) bool {
	if len(id) > maxRequestID {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == ':', r == '-':
		default:
			return false
		}
	}
	return true
}
