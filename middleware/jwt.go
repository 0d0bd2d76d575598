// Package middleware holds Causerie's Echo middleware: the JWT gate, the Origin check for WebSocket
// upgrades, the request log and request metrics.
package middleware

import (
	"errors"

	echojwt "github.com/labstack/echo-jwt/v4"
	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app"
)

// TokenParser verifies a token and says whom it speaks for.
type TokenParser interface {
	Parse(token string) (app.Identity, error)
}

const identityKey = "causerie.identity"

// JWT gates a route behind a token, read from "Authorization: Bearer <token>" or from the "token" query
// parameter (what browsers and Postman can send on a WebSocket upgrade). Verification is tokens'; every
// failure is a 401 in the usual error body.
func JWT(tokens TokenParser) echo.MiddlewareFunc {
	return echojwt.WithConfig(echojwt.Config{
		ContextKey:  identityKey,
		TokenLookup: "header:Authorization:Bearer ,query:token",
		ParseTokenFunc: func(_ echo.Context, token string) (any, error) {
			return tokens.Parse(token)
		},
		ErrorHandler: func(_ echo.Context, err error) error {
			var e *app.Error
			if errors.As(err, &e) {
				return e
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
