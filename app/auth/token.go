package auth

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/causerie/causerie/app"
)

// Tokens signs and verifies HS256 JWTs; whether the session a token names still exists is Sessions'
// affair. It is safe for concurrent use.
type Tokens struct {
	secret []byte
	now    func() time.Time
	parser *jwt.Parser
}

// claims is the token body: sub is the user id as a decimal string, jti the session, gen its generation.
type claims struct {
	Name       string `json:"name"`
	Generation int64  `json:"gen"`
	jwt.RegisteredClaims
}

// NewTokens returns Tokens signing with secret. now is the clock (time.Now in production), injected so
// tests can move time.
func NewTokens(secret []byte, now func() time.Time) *Tokens {
	return &Tokens{
		secret: secret,
		now:    now,
		// Pinning the method stops both "alg":"none" and the RS256/HS256 key-confusion attack;
		// requiring exp stops tokens that never expire.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(now),
		),
	}
}

// Issue returns a signed token for id, valid until id.ExpiresAt.
func (t *Tokens) Issue(id app.Identity) (string, error) {
	c := claims{
		Name:       id.Name,
		Generation: id.Generation,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   strconv.FormatInt(id.UserID, 10),
			ID:        id.Session,
			IssuedAt:  jwt.NewNumericDate(t.now()),
			ExpiresAt: jwt.NewNumericDate(id.ExpiresAt),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

// Parse verifies token and returns whom it speaks for. Every failure is an *app.Error with
// app.CodeUnauthorized whose message says what was wrong, never echoing the token.
func (t *Tokens) Parse(token string) (app.Identity, error) {
	var c claims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return app.Identity{}, app.Errorf(app.CodeUnauthorized, "token expired")
	case err != nil:
		return app.Identity{}, app.Errorf(app.CodeUnauthorized, "invalid token")
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || id <= 0 {
		return app.Identity{}, app.Errorf(app.CodeUnauthorized, "invalid token subject")
	}
	if c.ID == "" { // a token of a version without sessions, which no log out could end
		return app.Identity{}, app.Errorf(app.CodeUnauthorized, "the token names no session: log in again")
	}
	return app.Identity{UserID: id, Name: c.Name, Session: c.ID, Generation: c.Generation, ExpiresAt: c.ExpiresAt.Time}, nil
}
