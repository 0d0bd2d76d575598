package middleware_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/auth"
	"github.com/causerie/causerie/middleware"
)

var secret = []byte("middleware-test-secret-of-32-bytes!!")

// newApp is a real Echo app with the real JWT middleware in front of a route that echoes the identity.
func newApp(now func() time.Time) *echo.Echo {
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
	}, middleware.JWT(auth.NewTokens(secret, time.Hour, now)))
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
	tokens := auth.NewTokens(secret, time.Hour, func() time.Time { return now })
	good, err := tokens.Issue(app.User{ID: 7, Name: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	valid := jwt.MapClaims{"sub": "7", "name": "ada", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
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
		{"expired", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "7", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}), "", 401},
		{"no expiry", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "7", "iat": now.Unix()}), "", 401},
		{"issued in the future", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "7", "iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), "", 401},
		{"alg none", "Bearer " + algNone, "", 401},
		{"HS512", "Bearer " + sign(t, jwt.SigningMethodHS512, secret, valid), "", 401},
		{"wrong secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-32-bytes-long"), valid), "", 401},
		{"subject not a number", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ada", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}), "", 401},
	}
	e := newApp(func() time.Time { return now })
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
				if id.UserID != 7 || id.Name != "ada" || !id.ExpiresAt.Equal(now.Add(time.Hour)) {
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
