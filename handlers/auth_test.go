package handlers_test

import (
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app/servertest"
)

func TestRegister(t *testing.T) {
	t.Parallel()
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
			{"first and last name", map[string]string{"email": "lovelace@example.com", "password": "password123", "name": "Ada  Lovelace"}, 201, "", "Ada Lovelace"},
			{"accented name", map[string]string{"email": "elodie@example.fr", "password": "password123", "name": "E\u0301lodie"}, 201, "", "Élodie"},
			{"Cyrillic name", map[string]string{"email": "dmitri@example.ru", "password": "password123", "name": "Дмитрий"}, 201, "", "Дмитрий"},
			{"Japanese name", map[string]string{"email": "taro@example.jp", "password": "password123", "name": "山田太郎"}, 201, "", "山田太郎"},
			{"accented e-mail", map[string]string{"email": "zoé@exemple.fr", "password": "password123"}, 201, "", "zoé"},
			{"passphrase with spaces", map[string]string{"email": "phrase@example.com", "password": " correct horse battery staple "}, 201, "", "phrase"},
			{"name with NUL", map[string]string{"email": "x@example.com", "password": "password123", "name": "ali\x00ce"}, 400, "invalid", ""},
			{"name with a bidi override", map[string]string{"email": "x@example.com", "password": "password123", "name": "alice\u202eecila"}, 400, "invalid", ""},
			{"name with a zero-width space", map[string]string{"email": "x@example.com", "password": "password123", "name": "al\u200bice"}, 400, "invalid", ""},
			{"name mixing Cyrillic and Latin", map[string]string{"email": "x@example.com", "password": "password123", "name": "\u0430lice"}, 400, "invalid", ""},
			{"e-mail mixing Cyrillic and Latin, no name", map[string]string{"email": "\u0430lice@example.com", "password": "password123"}, 400, "invalid", ""},
			{"password of spaces", map[string]string{"email": "x@example.com", "password": "        "}, 400, "invalid", ""},
			{"password of other spaces", map[string]string{"email": "x@example.com", "password": "\t\u00a0\u3000\u2003\n\u00a0\u3000 "}, 400, "invalid", ""},
			{"e-mail without a dotted domain", map[string]string{"email": "a@localhost", "password": "password123"}, 400, "invalid", ""},
			{"e-mail to an address literal", map[string]string{"email": "a@[127.0.0.1]", "password": "password123"}, 400, "invalid", ""},
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
		// The fan-out counts its deliveries once it has queued them all: b may read first.
		metrics := s.Get(t, "/metrics")
		for deadline := time.Now().Add(servertest.Timeout); !strings.Contains(metrics, "causerie_deliveries_total 1") && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
			metrics = s.Get(t, "/metrics")
		}
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
	t.Parallel()
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

// A display name is taken when another user's equals it under the PRECIS UsernameCaseMapped profile:
// case, width and Unicode normalization aside. A look-alike from another script passes PRECIS but mixes
// scripts, which is refused on its own.
func TestNamesAreUnique(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		register := func(email, name string) (int, map[string]any) {
			t.Helper()
			body := map[string]string{"email": email, "password": "password123"}
			if name != "" {
				body["name"] = name
			}
			return s.Do(t, http.MethodPost, "/api/register", "", body)
		}
		for _, first := range []struct{ email, name string }{
			{"alice@example.com", "Alice"}, {"elodie@example.fr", "Élodie"}, {"lovelace@example.com", "Ada Lovelace"},
		} {
			if status, body := register(first.email, first.name); status != http.StatusCreated {
				t.Fatalf("register %s: %d %v", first.name, status, body)
			}
		}
		cases := []struct {
			name, email, userName string
			status                int
			code                  string
		}{
			{"same name", "a1@example.com", "Alice", 409, "name_taken"},
			{"lower case", "a2@example.com", "alice", 409, "name_taken"},
			{"upper case", "a3@example.com", "ALICE", 409, "name_taken"},
			{"full width", "a4@example.com", "ａｌｉｃｅ", 409, "name_taken"},
			{"decomposed accent", "a5@example.com", "E\u0301LODIE", 409, "name_taken"},
			{"more spaces", "a6@example.com", " ada   LOVELACE ", 409, "name_taken"},
			{"from the e-mail", "alice@example.org", "", 409, "name_taken"},
			{"e-mail and name taken", "ALICE@example.com", "", 409, "conflict"},
			{"Cyrillic look-alike", "a7@example.com", "\u0430lice", 400, "invalid"},
			{"another Alice", "a8@example.com", "Alice B.", 201, ""},
			{"the same name in Cyrillic", "a9@example.com", "Алиса", 201, ""},
			{"from another e-mail", "alice.b@example.org", "", 201, ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				status, body := register(tc.email, tc.userName)
				if status != tc.status {
					t.Fatalf("status = %d, want %d (body %v)", status, tc.status, body)
				}
				if tc.code != "" {
					assertError(t, body, tc.code)
				}
			})
		}
		// A name taken from the e-mail says how to choose another one.
		_, body := register("alice@example.net", "")
		if msg, _ := body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, `"name"`) {
			t.Errorf("message %q does not say to choose a \"name\"", msg)
		}
		if status, body := register("alice@example.net", "Alice from .net"); status != http.StatusCreated {
			t.Errorf("with a name of their own: %d %v", status, body)
		}
	})
}

// bcrypt reads 72 bytes: a password that only begins with the right 72 bytes must not log in.
func TestPasswordOver72BytesDoesNotLogIn(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		password := strings.Repeat("A", 72)
		status, body := s.Do(t, http.MethodPost, "/api/register", "", map[string]string{"email": "ada@example.com", "password": password})
		if status != http.StatusCreated {
			t.Fatalf("register with 72 bytes: %d %v", status, body)
		}
		cases := []struct {
			name, password string
			status         int
			code           string
		}{
			{"the 72 bytes", password, 200, ""},
			{"with a suffix", password + "suffix", 400, "invalid"},
			{"with one more byte", password + "A", 400, "invalid"},
			{"one byte short", password[1:], 401, "unauthorized"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				status, body := s.Do(t, http.MethodPost, "/api/login", "", map[string]string{"email": "ada@example.com", "password": tc.password})
				if status != tc.status {
					t.Fatalf("status = %d, want %d (body %v)", status, tc.status, body)
				}
				if tc.code != "" {
					assertError(t, body, tc.code)
				}
			})
		}
	})
}

// The account routes take only application/json, which a browser does not send to another site without
// asking it first, and refuse anything after the JSON object.
func TestAuthRoutesTakeOnlyJSON(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	s.Register(t, "ada@example.com")
	credentials := func(email string) string {
		return `{"email":"` + email + `","password":"password123"}`
	}
	var multipartBody strings.Builder
	mw := multipart.NewWriter(&multipartBody)
	mw.WriteField("email", "x@example.com")
	mw.WriteField("password", "password123")
	mw.Close()

	cases := []struct {
		name, path, contentType, body string
		status                        int
		code                          string
	}{
		{"register, text/plain", "/api/register", "text/plain", credentials("x1@example.com"), 415, "unsupported_media_type"},
		{"register, text/plain with a charset", "/api/register", "text/plain;charset=UTF-8", credentials("x1@example.com"), 415, "unsupported_media_type"},
		{"register, form", "/api/register", "application/x-www-form-urlencoded", "email=x1%40example.com&password=password123", 415, "unsupported_media_type"},
		{"register, multipart", "/api/register", mw.FormDataContentType(), multipartBody.String(), 415, "unsupported_media_type"},
		{"register, no Content-Type", "/api/register", "", credentials("x1@example.com"), 415, "unsupported_media_type"},
		{"register, another JSON type", "/api/register", "application/vnd.api+json", credentials("x1@example.com"), 415, "unsupported_media_type"},
		{"register, JSON in Latin-1", "/api/register", "application/json; charset=iso-8859-1", credentials("x1@example.com"), 415, "unsupported_media_type"},
		{"register, garbage after the object", "/api/register", "application/json", credentials("x2@example.com") + "garbage", 400, "invalid"},
		{"register, a second object", "/api/register", "application/json", credentials("x3@example.com") + credentials("x4@example.com"), 400, "invalid"},
		{"login, text/plain", "/api/login", "text/plain", credentials("ada@example.com"), 415, "unsupported_media_type"},
		{"login, form", "/api/login", "application/x-www-form-urlencoded", "email=ada%40example.com&password=password123", 415, "unsupported_media_type"},
		{"login, multipart", "/api/login", mw.FormDataContentType(), multipartBody.String(), 415, "unsupported_media_type"},
		{"login, garbage after the object", "/api/login", "application/json", credentials("ada@example.com") + "garbage", 400, "invalid"},

		{"register, JSON", "/api/register", "application/json", credentials("y1@example.com"), 201, ""},
		{"register, JSON with a charset", "/api/register", "application/json; charset=UTF-8", credentials("y2@example.com"), 201, ""},
		{"register, JSON in capitals", "/api/register", "Application/JSON", credentials("y3@example.com"), 201, ""},
		{"register, spaces after the object", "/api/register", "application/json", credentials("y4@example.com") + " \r\n\t", 201, ""},
		{"login, JSON", "/api/login", "application/json", credentials("ada@example.com"), 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := http.Header{}
			if tc.contentType != "" {
				header.Set("Content-Type", tc.contentType)
			}
			status, body := s.DoWith(t, http.MethodPost, tc.path, header, tc.body)
			if status != tc.status {
				t.Fatalf("status = %d, want %d (body %v)", status, tc.status, body)
			}
			if tc.code != "" {
				assertError(t, body, tc.code)
			}
		})
	}
	// Nothing was registered by the refused requests.
	for _, email := range []string{"x1@example.com", "x2@example.com", "x3@example.com", "x4@example.com"} {
		status, _ := s.Do(t, http.MethodPost, "/api/login", "", map[string]string{"email": email, "password": "password123"})
		if status != http.StatusUnauthorized {
			t.Errorf("%s can log in: %d", email, status)
		}
	}
}

// Only the account routes want application/json: a token, which no other site can send, guards the
// others, and scripts that publish without a Content-Type keep working.
func TestPublishNeedsNoContentType(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	u := s.Register(t, "ada@example.com")
	header := http.Header{"Authorization": {"Bearer " + u.Token}}
	status, body := s.DoWith(t, http.MethodPost, "/api/rooms/general/messages", header, `{"text":"deploy finished"}`)
	if status != http.StatusCreated {
		t.Errorf("publish without a Content-Type: %d %v", status, body)
	}
	status, body = s.DoWith(t, http.MethodPost, "/api/rooms/general/messages", header, `{"text":"deploy finished"} trailing`)
	if status != http.StatusBadRequest {
		t.Errorf("publish with data after the object: %d %v", status, body)
	}
}
