package handlers_test

import (
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app/servertest"
)

// echoParam is a path parameter as Echo writes it (":room"); OpenAPI writes "{room}".
var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// The routes the server registers are exactly the operations of docs/openapi.yaml.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	e, ok := s.App.Handler().(*echo.Echo)
	if !ok {
		t.Fatalf("the app's handler is a %T, want *echo.Echo", s.App.Handler())
	}
	served := map[string]bool{}
	for _, r := range e.Routes() {
		served[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	doc := servertest.OpenAPI(t)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	if missing := minus(served, documented); len(missing) > 0 {
		t.Errorf("routes the server registers but docs/openapi.yaml lacks:\n  %s", strings.Join(missing, "\n  "))
	}
	if extra := minus(documented, served); len(extra) > 0 {
		t.Errorf("operations of docs/openapi.yaml the server does not register:\n  %s", strings.Join(extra, "\n  "))
	}
	if len(served) == 0 {
		t.Error("the server registers no route")
	}
}

// The responses that servertest.Server.Do cannot read (it wants JSON) match docs/openapi.yaml too: the
// page and its files, the metrics, and the WebSocket handshake, accepted and refused.
func TestOpenAPINonJSONResponses(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	u := s.Register(t, "ada@example.com")
	for _, path := range []string{"/", "/app.js", "/app.css", "/metrics"} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		s.ValidateResponse(t, resp.Request, resp.StatusCode, resp.Header, body)
	}

	cases := []struct {
		name, path, origin string
		status             int
	}{
		{"upgrade on /ws", "/ws?token=" + u.Token, "", http.StatusSwitchingProtocols},
		{"upgrade on /", "/?token=" + u.Token + "&rooms=general,jeux", "", http.StatusSwitchingProtocols},
		{"no token", "/ws", "", http.StatusUnauthorized},
		{"bad token", "/?token=abc.def.ghi", "", http.StatusUnauthorized},
		{"foreign origin", "/ws?token=" + u.Token, "https://evil.example", http.StatusForbidden},
		{"bad rooms", "/ws?token=" + u.Token + "&rooms=Bad", "", http.StatusBadRequest},
		{"bad since", "/?token=" + u.Token + "&since=general:x", "", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := http.Header{}
			if tc.origin != "" {
				header.Set("Origin", tc.origin)
			}
			conn, resp, _ := s.TryDial(tc.path, header)
			if conn != nil {
				defer conn.Close()
			}
			if resp == nil {
				t.Fatalf("no handshake response")
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			var body []byte
			if tc.status != http.StatusSwitchingProtocols {
				body, _ = io.ReadAll(resp.Body)
			}
			// The request as the dialer sent it, for the validator.
			req, err := http.NewRequest(http.MethodGet, s.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = header.Clone()
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Sec-WebSocket-Version", "13")
			s.ValidateResponse(t, req, resp.StatusCode, resp.Header, body)
		})
	}

	// An upgrade without Sec-WebSocket-Key passes the server's checks and is refused by the WebSocket
	// library itself.
	req, err := http.NewRequest(http.MethodGet, s.URL+"/ws?token="+u.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("upgrade without a key: %d %q, want 400", resp.StatusCode, body)
	}
	s.ValidateResponse(t, req, resp.StatusCode, resp.Header, body)

	// A GET on /ws that asks for no upgrade is refused.
	status, errBody := s.Do(t, http.MethodGet, "/ws", u.Token, nil)
	if status != http.StatusBadRequest {
		t.Errorf("GET /ws without an upgrade: %d %v", status, errBody)
	}
}

// minus returns the keys of a that b lacks, sorted.
func minus(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
