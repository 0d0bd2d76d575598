package middleware_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/auth"
	"github.com/causerie/causerie/app/store"
	"github.com/causerie/causerie/middleware"
)

var secret = []byte("middleware-test-secret-of-32-bytes!!")

// newSessions returns sessions over a real SQLite store, and a token of a session of a user ada.
func newSessions(t *testing.T, now func() time.Time) (*auth.Sessions, string) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "causerie.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u, err := db.CreateUser(context.Background(), app.User{Email: "ada@example.com", Name: "ada", PasswordHash: "h", CreatedAt: now()})
	if err != nil {
		t.Fatal(err)
	}
	s := &auth.Sessions{Tokens: auth.NewTokens(secret, now), Store: db, TTL: time.Hour, Max: 24 * time.Hour, Now: now}
	token, err := s.Start(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return s, token
}

// newApp is a real Echo app with the real JWT middleware in front of a route that echoes the identity.
func newApp(sessions *auth.Sessions) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		status := http.StatusInternalServerError
		if app.ErrorCode(err) == app.CodeUnauthorized {
			status = http.StatusUnauthorized
		}
		c.JSON(status, map[string]string{"code": app.ErrorCode(err), "message": err.Error()})
	}
	e.GET("/who", func(c echo.Context) error {
		return c.JSON(http.StatusOK, middleware.Identity(c))
	}, middleware.JWT(sessions))
	return e
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	sessions, good := newSessions(t, func() time.Time { return now })
	session, err := sessions.Verify(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	valid := jwt.MapClaims{"sub": "1", "name": "ada", "jti": session.Session, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	claims := func(change map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range valid {
			c[k] = v
		}
		for k, v := range change {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	b64 := base64.RawURLEncoding.EncodeToString
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	body, _ := json.Marshal(valid)
	algNone := b64(header) + "." + b64(body) + "."

	cases := []struct {
		name   string
		header string
		query  string
		status int
	}{
		{"bearer header", "Bearer " + good, "", 200},
		{"query parameter", "", good, 200},
		{"missing", "", "", 401},
		{"malformed", "Bearer not.a.jwt", "", 401},
		{"wrong scheme", "Basic " + good, "", 401},
		{"signed here with a live session", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, valid), "", 200},
		{"expired", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})), "", 401},
		{"no expiry", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"exp": nil})), "", 401},
		{"issued in the future", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})), "", 401},
		{"alg none", "Bearer " + algNone, "", 401},
		{"HS512", "Bearer " + sign(t, jwt.SigningMethodHS512, secret, valid), "", 401},
		{"wrong secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-32-bytes-long"), valid), "", 401},
		{"subject not a number", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"sub": "ada"})), "", 401},
		{"no session", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"jti": nil})), "", 401},
		{"a session that never was", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"jti": "made-up"})), "", 401},
		{"another user's session", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"sub": "2"})), "", 401},
		{"a generation to come", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"gen": 1})), "", 401},
	}
	e := newApp(sessions)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := "/who"
			if tc.query != "" {
				target += "?token=" + tc.query
			}
			req := httptest.NewRequest(http.MethodGet, target, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == 200 {
				var id app.Identity
				json.Unmarshal(rec.Body.Bytes(), &id)
				if id.UserID != 1 || id.Name != "ada" || id.Session != session.Session || !id.ExpiresAt.Equal(now.Add(time.Hour)) {
					t.Errorf("identity = %+v", id)
				}
				return
			}
			if !strings.Contains(rec.Body.String(), `"code":"unauthorized"`) {
				t.Errorf("body = %s, want code unauthorized", rec.Body)
			}
		})
	}
}

func TestRedactURI(t *testing.T) {
	cases := map[string]string{
		"/ws?token=abc.def":           "/ws?token=REDACTED",
		"/?rooms=a&token=abc&since=1": "/?rooms=a&token=REDACTED&since=1",
		"/ws?TOKEN=abc":               "/ws?TOKEN=REDACTED",
		"/ws?mytoken=abc":             "/ws?mytoken=abc",
		"/api/me":                     "/api/me",
		"/ws?token=abc#frag":          "/ws?token=REDACTED#frag",
		"/ws?token=a&token=b":         "/ws?token=REDACTED&token=REDACTED",
	}
	for in, want := range cases {
		if got := middleware.RedactURI(in); got != want {
			t.Errorf("RedactURI(%q) = %q, want %q", in, got, want)
		}
	}
}
