package handlers_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/auth"
	"github.com/causerie/causerie/app/servertest"
)

// A client's X-Request-Id is kept, answered and logged only when it is short and plain.
func TestRequestIDFromClientsIsBounded(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	cases := []struct {
		name, sent string
		kept       bool
	}{
		{"a proxy's id", "7f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b", true},
		{"half a megabyte", strings.Repeat("x", 500<<10), false},
		{"65 characters", strings.Repeat("a", 65), false},
		{"spaces and quotes", `id "with" spaces`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/healthz", nil)
			req.Header.Set("X-Request-Id", tc.sent)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("X-Request-Id")
			if kept := got == tc.sent; kept != tc.kept || got == "" || len(got) > 64 {
				t.Errorf("answered X-Request-Id of %d bytes (kept: %v), want kept %v and at most 64 bytes", len(got), kept, tc.kept)
			}
			if !tc.kept && strings.Contains(s.Logs(), tc.sent) {
				t.Error("the refused id reached the log")
			}
		})
	}
}

// Monitors and proxies probe with HEAD.
func TestHeadRequests(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	for _, path := range []string{"/", "/healthz", "/app.js", "/app.css"} {
		resp, err := http.Head(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") == "" {
			t.Errorf("HEAD %s = %d (%s), want 200 with the GET's content type", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// With METRICS_ADDR, /metrics and the profiler leave the chat's port for their own address.
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0", "DEBUG_PPROF": "1"})
	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		if got := status(s.URL + path); got != http.StatusNotFound {
			t.Errorf("GET %s on the chat's port = %d, want 404", path, got)
		}
		if got := status(s.MetricsURL + path); got != http.StatusOK {
			t.Errorf("GET %s on METRICS_ADDR = %d, want 200", path, got)
		}
	}
	resp, err := http.Get(s.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "causerie_connections") {
		t.Error("METRICS_ADDR serves no causerie metrics")
	}
}

// A client's address is the socket's, unless the socket is a trusted proxy: X-Forwarded-For is believed
// only from TRUSTED_PROXIES.
func TestClientAddress(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, trusted, want string
	}{
		{"no proxy trusted", "", "remote_ip=127.0.0.1"},
		{"the proxy trusted", "10.0.0.0/8, 127.0.0.1", "remote_ip=203.0.113.7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := servertest.Start(t, map[string]string{"TRUSTED_PROXIES": tc.trusted})
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/healthz?case=xff", nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			req.Header.Set("X-Real-Ip", "198.51.100.1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			seen := false
			for line := range strings.SplitSeq(s.Logs(), "\n") {
				if strings.Contains(line, "case=xff") {
					seen = true
					if !strings.Contains(line, tc.want) {
						t.Errorf("log line %q, want %s", line, tc.want)
					}
				}
			}
			if !seen {
				t.Error("no log line for the request")
			}
		})
	}
}

// A token whose account does not exist (deleted, or a secret shared with another deployment) opens
// nothing: not a WebSocket, which would put it in presence, nor a route.
func TestTokenOfNoAccount(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	s.Register(t, "ada@example.com")
	ghost, err := auth.NewTokens([]byte(s.Config.JWTSecret), time.Now).Issue(app.Identity{UserID: 999, Name: "ghost", Session: "ghost", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, resp, err := s.TryDial("/ws?token="+ghost, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("WebSocket upgrade: %v, want 401", resp)
	}
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/api/rooms"},
		{http.MethodGet, "/api/rooms/general/messages"},
		{http.MethodPost, "/api/rooms/general/messages"},
		{http.MethodGet, "/api/me"},
	} {
		var body any
		if r.method == http.MethodPost {
			body = map[string]string{"text": "boo"}
		}
		if status, _ := s.Do(t, r.method, r.path, ghost, body); status != http.StatusUnauthorized {
			t.Errorf("%s %s: %d, want 401", r.method, r.path, status)
		}
	}
}
