// Package middleware holds Causerie's Echo middleware: the JWT gate, the Origin check for WebSocket
// upgrades, the request log and request metrics.
package middleware

import (
	"context"
	"errors"
	"fmt"

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

// UserLookup finds a user by id.
type UserLookup interface {
	UserByID(ctx context.Context, id int64) (app.User, error)
}

// KnownUser refuses, with 401, a token whose user no longer exists: a token outlives its account until it
// expires, and a connection in a deleted user's name would appear in presence and fail to store. Run it
// after JWT.
func KnownUser(users UserLookup) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			_, err := users.UserByID(c.Request().Context(), Identity(c).UserID)
			switch {
			case app.ErrorCode(err) == app.CodeNotFound:
				return app.Errorf(app.CodeUnauthorized, "this token's account no longer exists")
			case err != nil:
				return fmt.Errorf("look up the token's user: %w", err)
			}
			return next(c)
		}
	}
}
