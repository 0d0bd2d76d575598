package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/causerie/causerie/app"
)

// SessionStore keeps sessions (app/store).
type SessionStore interface {
	CreateSession(ctx context.Context, s app.Session) error
	// Session returns a session with its user's name, or an app.CodeNotFound error.
	Session(ctx context.Context, id string) (app.Session, error)
	// RotateSession moves a session from generation from to the next; false when it was not at from.
	RotateSession(ctx context.Context, id string, from int64, previousUntil time.Time) (bool, error)
	DeleteSession(ctx context.Context, id string) error
	DeleteSessions(ctx context.Context, userID int64) ([]string, error)
}

// RefreshGrace is how long the token a refresh replaced keeps working: requests sent with it just
// before, and the other tabs of a browser that have not read the new one yet (a browser may hold a
// background tab's timers back by a minute), are not refused.
const RefreshGrace = 2 * time.Minute

// Sessions issues tokens for logins, and verifies them against the store, so that a log out ends every
// token of a session at once. It is safe for concurrent use.
type Sessions struct {
	Tokens *Tokens
	Store  SessionStore
	// TTL is how long a token is valid (TOKEN_TTL), Max how long a session is, refreshes included
	// (SESSION_MAX): no token outlives its session.
	TTL time.Duration
	Max time.Duration
	Now func() time.Time
}

// Start begins a session for u, who has just proved who they are, and returns its first token.
func (s *Sessions) Start(ctx context.Context, u app.User) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	now := s.Now()
	sess := app.Session{
		ID: base64.RawURLEncoding.EncodeToString(b[:]), UserID: u.ID, UserName: u.Name,
		PreviousUntil: now, CreatedAt: now, ExpiresAt: now.Add(s.Max),
	}
	if err := s.Store.CreateSession(ctx, sess); err != nil {
		return "", err
	}
	return s.issue(sess, sess.Generation)
}

// Verify checks token's signature and expiry, then that its session still exists and that no refresh
// has replaced it for longer than RefreshGrace. The identity carries the user's name as stored.
// Every refusal is an app.CodeUnauthorized error that says why.
func (s *Sessions) Verify(ctx context.Context, token string) (app.Identity, error) {
	id, err := s.Tokens.Parse(token)
	if err != nil {
		return app.Identity{}, err
	}
	sess, err := s.Store.Session(ctx, id.Session)
	switch {
	case app.ErrorCode(err) == app.CodeNotFound:
		return app.Identity{}, app.Errorf(app.CodeUnauthorized, "this session has ended (logged out): log in again")
	case err != nil:
		return app.Identity{}, fmt.Errorf("verify the token's session: %w", err)
	case sess.UserID != id.UserID:
		return app.Identity{}, app.Errorf(app.CodeUnauthorized, "invalid token")
	case !s.Now().Before(sess.ExpiresAt):
		return app.Identity{}, app.Errorf(app.CodeUnauthorized, "this session is over (SESSION_MAX): log in again")
	case id.Generation == sess.Generation,
		id.Generation == sess.Generation-1 && s.Now().Before(sess.PreviousUntil):
	default:
		return app.Identity{}, app.Errorf(app.CodeUnauthorized, "this token was replaced by a refresh: use the new one")
	}
	id.Name = sess.UserName
	return id, nil
}

// Refresh returns a token of the next generation of id's session (id has passed Verify); the token it
// replaces keeps working for RefreshGrace. Refreshes of one generation at once, from several tabs,
// move it on once and all get a token of the new one. The session's end does not move.
func (s *Sessions) Refresh(ctx context.Context, id app.Identity) (string, error) {
	for range 3 {
		sess, err := s.Store.Session(ctx, id.Session)
		if app.ErrorCode(err) == app.CodeNotFound {
			return "", app.Errorf(app.CodeUnauthorized, "this session has ended (logged out): log in again")
		}
		if err != nil {
			return "", fmt.Errorf("refresh the token's session: %w", err)
		}
		if id.Generation < sess.Generation { // another refresh came first: its generation is this one's too
			return s.issue(sess, sess.Generation)
		}
		moved, err := s.Store.RotateSession(ctx, sess.ID, sess.Generation, s.Now().Add(RefreshGrace))
		if err != nil {
			return "", err
		}
		if moved {
			return s.issue(sess, sess.Generation+1)
		}
	}
	return "", fmt.Errorf("refresh session: it kept moving")
}

// End ends one session. Every token of it then fails Verify.
func (s *Sessions) End(ctx context.Context, session string) error {
	return s.Store.DeleteSession(ctx, session)
}

// EndAll ends every session of a user, and returns their ids.
func (s *Sessions) EndAll(ctx context.Context, userID int64) ([]string, error) {
	return s.Store.DeleteSessions(ctx, userID)
}

// issue signs a token of generation gen of sess, valid for TTL but never past the session's end.
func (s *Sessions) issue(sess app.Session, gen int64) (string, error) {
	expires := s.Now().Add(s.TTL)
	if sess.ExpiresAt.Before(expires) {
		expires = sess.ExpiresAt
	}
	return s.Tokens.Issue(app.Identity{
		UserID: sess.UserID, Name: sess.UserName, Session: sess.ID, Generation: gen, ExpiresAt: expires,
	})
}
