package auth

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/causerie/causerie/app"
)

// Tokens issues and verifies HS256 JWTs. It is safe for concurrent use.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
}

// claims is the token body: sub is the user id as a decimal string.
type claims struct {
	Name string `json:"name"`
	jwt.RegisteredClaims
}

// NewTokens returns Tokens signing with secret; tokens expire ttl after issue. now is the clock (time.Now
// in production), injected so tests can move time.
func NewTokens(secret []byte, ttl time.Duration, now func() time.Time) *Tokens {
	return &Tokens{
		secret: secret,
		ttl:    ttl,
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

// Issue returns a signed token for u.
func (t *Tokens) Issue(u app.User) (string, error) {
	now := t.now()
	c := claims{
		Name: u.Name,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   strconv.FormatInt(u.ID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
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
	return app.Identity{UserID: id, Name: c.Name, ExpiresAt: c.ExpiresAt.Time}, nil
}
