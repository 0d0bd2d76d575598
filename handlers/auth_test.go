package handlers_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app/servertest"
)

func TestRegister(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		s.Register(t, "taken@example.com")
		cases := []struct {
			name     string
			body     any
			status   int
			code     string
			wantName string
		}{
			{"name from e-mail", map[string]string{"email": "Jean.Dupont@Example.com", "password": "password123"}, 201, "", "jean.dupont"},
			{"given name", map[string]string{"email": "ada@example.com", "password": "password123", "name": " Ada L. "}, 201, "", "Ada L."},
			{"e-mail taken", map[string]string{"email": "taken@example.com", "password": "password123"}, 409, "conflict", ""},
			{"e-mail taken, other case", map[string]string{"email": "TAKEN@example.COM", "password": "password123"}, 409, "conflict", ""},
			{"bad e-mail", map[string]string{"email": "not-an-email", "password": "password123"}, 400, "invalid", ""},
			{"e-mail with display name", map[string]string{"email": "Ada <ada2@example.com>", "password": "password123"}, 400, "invalid", ""},
			{"missing e-mail", map[string]string{"password": "password123"}, 400, "invalid", ""},
			{"missing password", map[string]string{"email": "x@example.com"}, 400, "invalid", ""},
			{"short password", map[string]string{"email": "x@example.com", "password": "1234567"}, 400, "invalid", ""},
			{"password over 72 bytes", map[string]string{"email": "x@example.com", "password": strings.Repeat("p", 73)}, 400, "invalid", ""},
			{"name too long", map[string]string{"email": "x@example.com", "password": "password123", "name": strings.Repeat("n", 65)}, 400, "invalid", ""},
			{"not JSON", "email=x@example.com", 400, "invalid", ""},
			{"empty body", "", 400, "invalid", ""},
			{"JSON array", `[]`, 400, "invalid", ""},
			{"over 64 KiB", `{"email":"` + strings.Repeat("a", 65<<10) + `"}`, 413, "too_large", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				status, body := s.Do(t, http.MethodPost, "/api/register", "", tc.body)
				if status != tc.status {
					t.Fatalf("status = %d, want %d (body %v)", status, tc.status, body)
				}
				if tc.code != "" {
					assertError(t, body, tc.code)
					return
				}
				user := body["user"].(map[string]any)
				if user["name"] != tc.wantName || body["token"] == "" || user["password_hash"] != nil {
					t.Errorf("body = %v, want name %q and a token", body, tc.wantName)
				}
				if email := user["email"].(string); email != strings.ToLower(email) {
					t.Errorf("e-mail %q not stored in lower case", email)
				}
			})
		}
	})
}

func TestLogin(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		u := s.Register(t, "ada@example.com")
		cases := []struct {
			name   string
			body   any
			status int
			code   string
		}{
			{"right password", map[string]string{"email": "ada@example.com", "password": "password123"}, 200, ""},
			{"e-mail in another case", map[string]string{"email": "ADA@example.com", "password": "password123"}, 200, ""},
			{"wrong password", map[string]string{"email": "ada@example.com", "password": "password124"}, 401, "unauthorized"},
			{"unknown e-mail", map[string]string{"email": "nobody@example.com", "password": "password123"}, 401, "unauthorized"},
			{"missing password", map[string]string{"email": "ada@example.com"}, 400, "invalid"},
			{"not JSON", "{", 400, "invalid"},
		}
		var unknownMsg, wrongMsg any
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				status, body := s.Do(t, http.MethodPost, "/api/login", "", tc.body)
				if status != tc.status {
					t.Fatalf("status = %d, want %d (body %v)", status, tc.status, body)
				}
				if tc.code != "" {
					assertError(t, body, tc.code)
					switch tc.name {
					case "wrong password":
						wrongMsg = body["error"]
					case "unknown e-mail":
						unknownMsg = body["error"]
					}
					return
				}
				if user := body["user"].(map[string]any); user["id"].(float64) != float64(u.ID) || body["token"] == "" {
					t.Errorf("body = %v", body)
				}
			})
		}
		if unknownMsg == nil || unknownMsg.(map[string]any)["message"] != wrongMsg.(map[string]any)["message"] {
			t.Errorf("unknown e-mail and wrong password answer differently: %v vs %v", unknownMsg, wrongMsg)
		}
	})
}

func TestMe(t *testing.T) {
	s := servertest.Start(t, nil)
	u := s.Register(t, "ada@example.com")
	status, body := s.Do(t, http.MethodGet, "/api/me", u.Token, nil)
	if status != 200 || body["email"] != "ada@example.com" || body["name"] != "ada" || body["id"].(float64) != float64(u.ID) {
		t.Errorf("GET /api/me = %d %v", status, body)
	}
	status, body = s.Do(t, http.MethodGet, "/api/me?token="+u.Token, "", nil)
	if status != 200 {
		t.Errorf("token in query: %d %v", status, body)
	}
	for name, token := range map[string]string{"no token": "", "bad token": "abc.def.ghi"} {
		status, body := s.Do(t, http.MethodGet, "/api/me", token, nil)
		if status != 401 {
			t.Errorf("%s: status %d", name, status)
		}
		assertError(t, body, "unauthorized")
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	s := servertest.Start(t, nil)
	status, body := s.Do(t, http.MethodGet, "/api/nothing", "", nil)
	if status != 404 {
		t.Errorf("status = %d, want 404", status)
	}
	assertError(t, body, "not_found")
	status, body = s.Do(t, http.MethodGet, "/api/login", "", nil)
	if status != 405 {
		t.Errorf("status = %d, want 405", status)
	}
	assertError(t, body, "method_not_allowed")
}

// A client that stops sending in the middle of a body is cut off after REQUEST_TIMEOUT.
func TestStalledBodyTimesOut(t *testing.T) {
	s := servertest.Start(t, map[string]string{"REQUEST_TIMEOUT": "300ms"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"em")
	conn.SetReadDeadline(time.Now().Add(servertest.Timeout))
	reply, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server still holds the connection")
	}
	if len(reply) > 0 && !strings.Contains(string(reply), " 400 ") {
		t.Errorf("reply %q, want a 400 or a closed connection", reply)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"NODE_ID": "node-7"})
		status, body := s.Do(t, http.MethodGet, "/healthz", "", nil)
		if status != 200 || body["status"] != "ok" || body["store"] != "ok" || body["bus"] != "ok" || body["node"] != "node-7" {
			t.Errorf("healthz = %d %v", status, body)
		}
		u := s.Register(t, "ada@example.com")
		a, b := s.Connect(t, u), s.Connect(t, u)
		a.SendText("hi")
		b.Read()
		metrics := s.Get(t, "/metrics")
		for _, want := range []string{
			"causerie_connections 2",
			"causerie_messages_received_total 1",
			"causerie_deliveries_total 1",
			"causerie_slow_clients_dropped_total 0",
			`causerie_node_info{node="node-7"} 1`,
			"causerie_store_commit_messages_sum 1",
			"causerie_store_commit_seconds_count 1",
			"causerie_caught_up_messages_total 0",
			`causerie_http_request_duration_seconds_count{method="POST",route="/api/register",status="201"} 1`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
		s.DB.Close()
		status, body = s.Do(t, http.MethodGet, "/healthz", "", nil)
		if status != 503 || body["status"] != "degraded" || body["store"] != "unavailable" {
			t.Errorf("healthz with the store closed = %d %v", status, body)
		}
		if !strings.Contains(s.Logs(), "health check failed") {
			t.Error("the store's error was not logged")
		}
	})
}

func TestSecurityHeaders(t *testing.T) {
	s := servertest.Start(t, nil)
	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for header, want := range map[string]string{
		"Content-Security-Policy": "script-src 'self'",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := resp.Header.Get(header); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to contain %q", header, got, want)
		}
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no request id")
	}
}

func assertError(t *testing.T, body map[string]any, code string) {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok || e["code"] != code || e["message"] == "" {
		t.Errorf("body = %v, want {\"error\":{\"code\":%q,...}}", body, code)
	}
}
