// Package handlers holds the Echo handlers: accounts and tokens (auth.go), the WebSocket endpoint
// (ws.go, where every golang.org/x/net/websocket detail lives) and the health check (health.go). Each
// declares the small interfaces it consumes.
package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/middleware"
)

// UserStore is the storage the account routes need.
type UserStore interface {
	CreateUser(ctx context.Context, u app.User) (app.User, error)
	UserByEmail(ctx context.Context, email string) (app.User, error)
	UserByID(ctx context.Context, id int64) (app.User, error)
}

// TokenIssuer signs tokens for users.
type TokenIssuer interface {
	Issue(u app.User) (string, error)
}

// PasswordHasher hashes and checks passwords.
type PasswordHasher interface {
	Hash(password string) (string, error)
	Check(hash, password string) bool
}

// Limits on account fields. bcrypt reads at most 72 bytes: a longer password would be silently cut.
const (
	minPasswordChars = 8
	maxPasswordBytes = 72
	maxEmailBytes    = 254
	maxNameChars     = 64
)

// Auth serves registration, login and the current user.
type Auth struct {
	Users     UserStore
	Tokens    TokenIssuer
	Passwords PasswordHasher
	Now       func() time.Time
}

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

type session struct {
	Token string   `json:"token"`
	User  app.User `json:"user"`
}

// Register creates an account and returns a token for it: POST /api/register.
func (a *Auth) Register(c echo.Context) error {
	var in credentials
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	email, err := validEmail(in.Email)
	if err != nil {
		return err
	}
	switch n := utf8.RuneCountInString(in.Password); {
	case n < minPasswordChars:
		return app.Errorf(app.CodeInvalid, "password must be at least %d characters", minPasswordChars)
	case len(in.Password) > maxPasswordBytes:
		return app.Errorf(app.CodeInvalid, "password must be at most %d bytes", maxPasswordBytes)
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		// The course: users only have an e-mail, so they are known by what comes before the @.
		name = email[:strings.IndexByte(email, '@')]
	}
	if utf8.RuneCountInString(name) > maxNameChars || !utf8.ValidString(name) {
		return app.Errorf(app.CodeInvalid, "name must be at most %d characters", maxNameChars)
	}
	hash, err := a.Passwords.Hash(in.Password)
	if err != nil {
		return err
	}
	u, err := a.Users.CreateUser(c.Request().Context(), app.User{
		Email: email, Name: name, PasswordHash: hash, CreatedAt: a.Now().UTC(),
	})
	if err != nil {
		return err
	}
	return a.respondWithToken(c, http.StatusCreated, u)
}

// Login checks an e-mail and password and returns a token: POST /api/login. An unknown e-mail and a
// wrong password get the same answer, after the same work.
func (a *Auth) Login(c echo.Context) error {
	var in credentials
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Email == "" || in.Password == "" {
		return app.Errorf(app.CodeInvalid, "email and password are required")
	}
	u, err := a.Users.UserByEmail(c.Request().Context(), strings.TrimSpace(in.Email))
	if err != nil && app.ErrorCode(err) != app.CodeNotFound {
		return err
	}
	if !a.Passwords.Check(u.PasswordHash, in.Password) {
		return app.Errorf(app.CodeUnauthorized, "wrong e-mail or password")
	}
	return a.respondWithToken(c, http.StatusOK, u)
}

// Me returns the user the token speaks for: GET /api/me.
func (a *Auth) Me(c echo.Context) error {
	u, err := a.tokenUser(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

// Refresh returns a fresh token for the token's user: POST /api/token/refresh.
func (a *Auth) Refresh(c echo.Context) error {
	u, err := a.tokenUser(c)
	if err != nil {
		return err
	}
	return a.respondWithToken(c, http.StatusOK, u)
}

// tokenUser loads the user the request's token speaks for; a deleted user is unauthorized.
func (a *Auth) tokenUser(c echo.Context) (app.User, error) {
	u, err := a.Users.UserByID(c.Request().Context(), middleware.Identity(c).UserID)
	if app.ErrorCode(err) == app.CodeNotFound {
		return app.User{}, app.Errorf(app.CodeUnauthorized, "the token's user no longer exists")
	}
	return u, err
}

func (a *Auth) respondWithToken(c echo.Context, status int, u app.User) error {
	token, err := a.Tokens.Issue(u)
	if err != nil {
		return err
	}
	return c.JSON(status, session{Token: token, User: u})
}

func validEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", app.Errorf(app.CodeInvalid, "email is required")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || len(s) > maxEmailBytes || strings.HasPrefix(s, "@") {
		return "", app.Errorf(app.CodeInvalid, "email %q is not a valid address", s)
	}
	return s, nil
}

// decodeJSON reads the body as one JSON object whatever its Content-Type, so that Postman's raw text
// bodies work too.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	err := dec.Decode(v)
	var tooLarge *echo.HTTPError
	switch {
	case errors.As(err, &tooLarge):
		return tooLarge // the body limit's 413
	case errors.Is(err, io.EOF):
		return app.Errorf(app.CodeInvalid, "request body is empty; send a JSON object")
	case err != nil:
		return app.Errorf(app.CodeInvalid, "request body is not a valid JSON object: %v", err)
	}
	return nil
}
