// Package middleware holds Causerie's Echo middleware: the JWT gate, the Origin check for WebSocket
// upgrades, the request log and request metrics.
package middleware

import (
	"context"
	"errors"

	echojwt "github.com/labstack/echo-jwt/v4"
	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app"
)

// TokenVerifier verifies a token, and that its session still exists, and says whom it speaks for.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (app.Identity, error)
}

const identityKey = "causerie.identity"

// JWT gates a route behind a token, read from "Authorization: Bearer <token>" or from the "token" query
// parameter (what browsers and Postman can send on a WebSocket upgrade). Verification is tokens': the
// signature, the expiry, and the session in the store, so that a token of a user who logged out, or who
// no longer exists, is refused. A refused token is a 401 in the usual error body; a store that fails to
// answer, a 500.
func JWT(tokens TokenVerifier) echo.MiddlewareFunc {
	return echojwt.WithConfig(echojwt.Config{
		ContextKey:  identityKey,
		TokenLookup: "header:Authorization:Bearer ,query:token",
		ParseTokenFunc: func(c echo.Context, token string) (any, error) {
			return tokens.Verify(c.Request().Context(), token)
		},
		ErrorHandler: func(_ echo.Context, err error) error {
			var e *app.Error
			var failed *echojwt.TokenParsingError
			switch {
			case errors.As(err, &e):
				return e
			case errors.As(err, &failed):
				return failed.Err
			}
			return app.Errorf(app.CodeUnauthorized, "missing token: send Authorization: Bearer <token> or ?token=<token>")
		},
	})
}

// Identity returns whom the request's token speaks for. It is only valid behind JWT.
func Identity(c echo.Context) app.Identity {
	id, _ := c.Get(identityKey).(app.Identity)
	return id
}
