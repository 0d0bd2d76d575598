// Package handlers holds the Echo handlers: accounts and tokens (auth.go), the WebSocket endpoint
// (ws.go, where every golang.org/x/net/websocket detail lives) and the health check (health.go). Each
// declares the small interfaces it consumes.
package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
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

// SessionManager begins, refreshes and ends sessions (auth.Sessions): every token belongs to one.
type SessionManager interface {
	Start(ctx context.Context, u app.User) (string, error)
	Refresh(ctx context.Context, id app.Identity) (string, error)
	End(ctx context.Context, session string) error
	EndAll(ctx context.Context, userID int64) ([]string, error)
}

// SocketCloser closes the connections of ended sessions, on every node (the hub).
type SocketCloser interface {
	EndSessions(ids ...string)
}

// PasswordHasher hashes and checks passwords.
type PasswordHasher interface {
	Hash(ctx context.Context, password string) (string, error)
	Check(ctx context.Context, hash, password string) (bool, error)
}

// Limits on account fields.
//
// bcrypt reads at most 72 bytes of a password: a longer one would be checked by its first 72 bytes, so
// that anything after them is no secret. Passwords over 72 bytes are refused, at registration and at
// login alike, rather than hashed first (with SHA-256, say) into something bcrypt reads whole: every
// stored hash keeps working as it is, with no second kind of hash to tell apart and migrate; 72 bytes
// hold a passphrase of a dozen words; and a pre-hash brings pitfalls of its own (a raw digest may hold
// NUL bytes, and an unsalted digest of a password leaked elsewhere can be tried against our hashes).
const (
	minPasswordChars = 8
	maxPasswordBytes = 72
	maxEmailBytes    = 254
)

// Throttle counts events per key over a fixed window (app/throttle): registrations, here.
type Throttle interface {
	Add(ctx context.Context, key string) (n int64, left time.Duration, err error)
}

// Attempts counts attempts per key, which past a number of free ones wait growing delays
// (app/throttle): logins, here.
type Attempts interface {
	Try(ctx context.Context, key string, free int) (wait time.Duration, err error)
	Reset(ctx context.Context, key string) error
	Undo(ctx context.Context, key string) error
}

// Auth serves registration, login, log out and the current user.
type Auth struct {
	Users     UserStore
	Sessions  SessionManager
	Sockets   SocketCloser
	Passwords PasswordHasher
	Now       func() time.Time
	// Failures counts login attempts: MaxFailures per account from one address, ten times as many per
	// account from anywhere, twenty times as many per address (for the people behind one), free; past
	// them, each attempt sets a wait for the next, growing from a minute to the window (the right password
	// waits too). A success clears the account's counts. 0 turns the limits off.
	Failures    Attempts
	MaxFailures int
	// Registrations counts accounts created per client address over an hour; MaxRegistrations is how
	// many an address may create (0: no limit): each account brings limits of its own, so accounts made
	// by the hundred would add up to none.
	Registrations    Throttle
	MaxRegistrations int
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

// Register creates an account and returns a token for it: POST /api/register. The display name is the
// given one, or else what comes before the @ of the e-mail, normalized by app.NormalizeName; a name that
// another user's equals once both are normalized is refused with app.CodeNameTaken.
func (a *Auth) Register(c echo.Context) error {
	if err := requireJSON(c); err != nil {
		return err
	}
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
	case strings.TrimSpace(in.Password) == "":
		return app.Errorf(app.CodeInvalid, "password must not be only spaces")
	}
	given, fromEmail := in.Name, false
	if strings.TrimSpace(given) == "" {
		// The course: users only have an e-mail, so they are known by what comes before the @.
		given, fromEmail = email[:strings.LastIndexByte(email, '@')], true
	}
	name, err := app.NormalizeName(given)
	var bad *app.Error
	if fromEmail && errors.As(err, &bad) {
		return app.Errorf(app.CodeInvalid, "no name given, and the e-mail's %q cannot be one: choose a \"name\" (%s)", given, bad.Message)
	}
	if err != nil {
		return err
	}
	if a.MaxRegistrations > 0 {
		n, left, err := a.Registrations.Add(c.Request().Context(), "register:addr:"+addrKey(c.RealIP()))
		if err == nil && n > int64(a.MaxRegistrations) { // a counter that does not answer refuses nothing
			left = max(left, time.Second)
			return app.Limited(app.CodeRateLimited, left, "%d accounts were created from your address in the last hour, the most one may (REGISTRATIONS_PER_IP): try again in %s",
				a.MaxRegistrations, ceilSecond(left))
		}
	}
	hash, err := a.Passwords.Hash(c.Request().Context(), in.Password)
	if err != nil {
		return err
	}
	u, err := a.Users.CreateUser(c.Request().Context(), app.User{
		Email: email, Name: name, PasswordHash: hash, CreatedAt: a.Now().UTC(),
	})
	if app.ErrorCode(err) == app.CodeNameTaken && fromEmail {
		return app.Errorf(app.CodeNameTaken, "the name %q, taken from the e-mail, is already used: choose another with \"name\"", name)
	}
	if err != nil {
		return err
	}
	return a.startSession(c, http.StatusCreated, u)
}

// Login checks an e-mail and password and returns a token: POST /api/login. An unknown e-mail and a
// wrong password get the same answer, after the same work.
func (a *Auth) Login(c echo.Context) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var in credentials
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Email == "" || in.Password == "" {
		return app.Errorf(app.CodeInvalid, "email and password are required")
	}
	// bcrypt would match its first 72 bytes, and registration never took a longer one (see
	// maxPasswordBytes). The answer says nothing of the account, so it needs no bcrypt to hide behind.
	if len(in.Password) > maxPasswordBytes {
		return app.Errorf(app.CodeInvalid, "password must be at most %d bytes", maxPasswordBytes)
	}
	if len(in.Email) > maxEmailBytes { // no account has one, and it would be a key of the counts below
		return app.Errorf(app.CodeInvalid, "email must be at most %d bytes", maxEmailBytes)
	}
	ctx := c.Request().Context()
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if err := a.countAttempt(ctx, email, addrKey(c.RealIP())); err != nil {
		return err
	}
	u, err := a.Users.UserByEmail(ctx, strings.TrimSpace(in.Email))
	if err != nil && app.ErrorCode(err) != app.CodeNotFound {
		return err
	}
	ok, err := a.Passwords.Check(ctx, u.PasswordHash, in.Password)
	if err != nil {
		return err
	}
	if !ok {
		return app.Errorf(app.CodeUnauthorized, "wrong e-mail or password")
	}
	if a.MaxFailures > 0 { // at worst the counts stay until the window ends
		_ = a.Failures.Reset(ctx, pairKey(email, addrKey(c.RealIP())))
		_ = a.Failures.Reset(ctx, "login:account:"+email)
		// The address's count takes back this attempt only, so that an office's logins do not add up to a
		// lockout: resetting it would let a guesser clear it by logging into an account of its own.
		_ = a.Failures.Undo(ctx, "login:addr:"+addrKey(c.RealIP()))
	}
	return a.startSession(c, http.StatusOK, u)
}

func pairKey(email, addr string) string { return "login:pair:" + email + "|" + addr }

// ceilSecond rounds d up to a whole second, as Retry-After is, so that the message says the same.
func ceilSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}

// countAttempt counts a login attempt before its password is checked, so that attempts sent at once are
// counted at once, and refuses it while an earlier attempt's delay runs, with the time left. Keyed by the
// e-mail as typed, account or not, so that the answer tells nothing of which exist. The pair of account
// and address is refused first: one address cannot lock an account out for everyone, only itself, until
// ten have tried. A throttle that does not answer (Redis down) refuses nothing: an outage must not lock
// every user out, and the bcrypt slots still bound the work.
func (a *Auth) countAttempt(ctx context.Context, email, addr string) error {
	if a.MaxFailures <= 0 {
		return nil
	}
	limits := []struct {
		key, what string
		free      int
	}{
		{pairKey(email, addr), "this account from your address", a.MaxFailures},
		{"login:account:" + email, "this account", 10 * a.MaxFailures},
		{"login:addr:" + addr, "your address", 20 * a.MaxFailures},
	}
	for _, l := range limits {
		wait, err := a.Failures.Try(ctx, l.key, l.free)
		if err == nil && wait > 0 {
			wait = max(wait, time.Second)
			return app.Limited(app.CodeRateLimited, wait, "too many login attempts for %s: try again in %s",
				l.what, ceilSecond(wait))
		}
	}
	return nil
}

// Me returns the user the token speaks for: GET /api/me.
func (a *Auth) Me(c echo.Context) error {
	u, err := a.tokenUser(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

// Refresh returns a fresh token of the same session: POST /api/token/refresh. The token it replaces keeps
// working for auth.RefreshGrace, then no longer.
func (a *Auth) Refresh(c echo.Context) error {
	u, err := a.tokenUser(c)
	if err != nil {
		return err
	}
	token, err := a.Sessions.Refresh(c.Request().Context(), middleware.Identity(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, session{Token: token, User: u})
}

// Logout ends the token's session, and closes its connections on every node: POST /api/logout.
func (a *Auth) Logout(c echo.Context) error {
	id := middleware.Identity(c).Session
	if err := a.Sessions.End(c.Request().Context(), id); err != nil {
		return err
	}
	a.Sockets.EndSessions(id)
	return c.NoContent(http.StatusNoContent)
}

// LogoutAll ends every session of the token's user, this one too, and closes their connections on every
// node: POST /api/logout/all, for a lost device or a leaked token.
func (a *Auth) LogoutAll(c echo.Context) error {
	ids, err := a.Sessions.EndAll(c.Request().Context(), middleware.Identity(c).UserID)
	if err != nil {
		return err
	}
	a.Sockets.EndSessions(ids...)
	return c.NoContent(http.StatusNoContent)
}

// tokenUser loads the user the request's token speaks for; a deleted user is unauthorized.
func (a *Auth) tokenUser(c echo.Context) (app.User, error) {
	u, err := a.Users.UserByID(c.Request().Context(), middleware.Identity(c).UserID)
	if app.ErrorCode(err) == app.CodeNotFound {
		return app.User{}, app.Errorf(app.CodeUnauthorized, "the token's user no longer exists")
	}
	return u, err
}

// startSession begins a session for u and answers with its first token.
func (a *Auth) startSession(c echo.Context, status int, u app.User) error {
	token, err := a.Sessions.Start(c.Request().Context(), u)
	if err != nil {
		return err
	}
	return c.JSON(status, session{Token: token, User: u})
}

// validEmail returns s trimmed and in lower case if it is a bare address (net/mail's addr-spec, without
// a display name) whose domain is a name with a dot in it: "a@localhost" and "a@[127.0.0.1]" are refused,
// as no mail reaches them from elsewhere.
func validEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", app.Errorf(app.CodeInvalid, "email is required")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || len(s) > maxEmailBytes || strings.HasPrefix(s, "@") {
		return "", app.Errorf(app.CodeInvalid, "email %q is not a valid address", s)
	}
	// net/mail has checked the domain's syntax: no empty label, no dot at either end.
	if domain := s[strings.LastIndexByte(s, '@')+1:]; !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") {
		return "", app.Errorf(app.CodeInvalid, "email %q: the domain must be a name with a dot, such as example.com", s)
	}
	return s, nil
}

// requireJSON refuses, with app.CodeUnsupportedMediaType, a request whose Content-Type is not
// application/json (parameters aside; a charset must be UTF-8). Browsers send text/plain, form and
// multipart bodies to another site without asking it first (no CORS preflight): a route that took them
// would let any page make its visitors register or log in. application/json needs the preflight, which
// this server never grants (it sends no CORS headers).
func requireJSON(c echo.Context) error {
	mt, params, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON || (params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
		return app.Errorf(app.CodeUnsupportedMediaType, "send the body with Content-Type: application/json")
	}
	return nil
}

// decodeJSON reads the body as one JSON object, whatever its Content-Type (routes that care call
// requireJSON first), and refuses anything after it but spaces.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	err := dec.Decode(v)
	trailing := false
	if err == nil {
		// Token reads past the spaces; at the end of the body it returns io.EOF.
		if _, err = dec.Token(); errors.Is(err, io.EOF) {
			return nil
		}
		trailing = true
	}
	var tooLarge *echo.HTTPError
	switch {
	case errors.As(err, &tooLarge):
		return tooLarge // the body limit's 413
	case trailing:
		return app.Errorf(app.CodeInvalid, "request body has data after the JSON object: send the object alone")
	case errors.Is(err, io.EOF):
		return app.Errorf(app.CodeInvalid, "request body is empty; send a JSON object")
	default:
		return app.Errorf(app.CodeInvalid, "request body is not a valid JSON object: %v", err)
	}
}
