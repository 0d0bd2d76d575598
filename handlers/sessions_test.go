package handlers_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/causerie/causerie/app/servertest"
)

// startSession starts another session of an account registered by servertest.Register.
func startSession(t *testing.T, s *servertest.Server, u servertest.User) servertest.User {
	t.Helper()
	status, body := s.Do(t, http.MethodPost, "/api/login", "", map[string]string{"email": u.Email, "password": "password123"})
	if status != http.StatusOK {
		t.Fatalf("login: %d %v", status, body)
	}
	u.Token = body["token"].(string)
	return u
}

// expectSessionEnded reads c until the server closes it, and fails unless it said session_ended and
// closed with 4001; it logs how long that took from since, the log out.
func expectSessionEnded(t *testing.T, name string, c *servertest.Client, since time.Time) {
	t.Helper()
	for {
		f, err := c.TryRead(servertest.Timeout)
		if err != nil {
			t.Fatalf("%s: the connection ended without a session_ended frame: %v", name, err)
		}
		if f["type"] == "error" {
			if code := f["code"]; code != "session_ended" {
				t.Fatalf("%s: error frame %v, want session_ended", name, f)
			}
			break
		}
	}
	if code := c.CloseCode(); code != 4001 {
		t.Errorf("%s: close code %d, want 4001", name, code)
	}
	t.Logf("%s: closed %s after the log out was sent", name, time.Since(since))
}

// stillOpen fails unless c answers a ping: its session goes on.
func stillOpen(t *testing.T, name string, c *servertest.Client) {
	t.Helper()
	c.Send(map[string]string{"type": "ping"})
	for {
		f, err := c.TryRead(servertest.Timeout)
		if err != nil {
			t.Fatalf("%s: %v, want the connection open", name, err)
		}
		if f["type"] == "pong" {
			return
		}
	}
}

func refused(t *testing.T, s *servertest.Server, name, token string) {
	t.Helper()
	if status, body := s.Do(t, http.MethodGet, "/api/me", token, nil); status != http.StatusUnauthorized {
		t.Errorf("%s: GET /api/me = %d %v, want 401", name, status, body)
	}
	if _, resp, err := s.TryDial("/ws?token="+token, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("%s: the WebSocket upgrade was not refused with 401 (%v)", name, err)
	}
}

// POST /api/logout ends the token's session: its sockets get session_ended and 4001, its token 401 on
// every route and on the upgrade; the user's other session goes on.
func TestLogout(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		phone := s.Register(t, "ada@example.com")
		laptop := startSession(t, s, phone)
		onPhone, onPhoneToo, onLaptop := s.Connect(t, phone), s.Connect(t, phone), s.Connect(t, laptop)

		sent := time.Now()
		if status, body := s.Do(t, http.MethodPost, "/api/logout", phone.Token, nil); status != http.StatusNoContent {
			t.Fatalf("POST /api/logout = %d %v, want 204", status, body)
		}
		expectSessionEnded(t, "the phone's first tab", onPhone, sent)
		expectSessionEnded(t, "the phone's second tab", onPhoneToo, sent)
		refused(t, s, "the phone's token", phone.Token)
		if status, _ := s.Do(t, http.MethodPost, "/api/token/refresh", phone.Token, nil); status != http.StatusUnauthorized {
			t.Errorf("refresh with the ended session's token = %d, want 401", status)
		}
		if status, _ := s.Do(t, http.MethodPost, "/api/logout", phone.Token, nil); status != http.StatusUnauthorized {
			t.Errorf("a second log out = %d, want 401", status)
		}
		stillOpen(t, "the laptop", onLaptop)
		if status, _ := s.Do(t, http.MethodGet, "/api/me", laptop.Token, nil); status != http.StatusOK {
			t.Errorf("the laptop's token after the phone logged out: %d, want 200", status)
		}
	})
}

// POST /api/logout/all ends every session of the user, and none of another user's.
func TestLogoutEverywhere(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		phone := s.Register(t, "ada@example.com")
		laptop := startSession(t, s, phone)
		bob := s.Register(t, "bob@example.com")
		onPhone, onLaptop, onBob := s.Connect(t, phone), s.Connect(t, laptop), s.Connect(t, bob)

		sent := time.Now()
		if status, body := s.Do(t, http.MethodPost, "/api/logout/all", laptop.Token, nil); status != http.StatusNoContent {
			t.Fatalf("POST /api/logout/all = %d %v, want 204", status, body)
		}
		expectSessionEnded(t, "the phone", onPhone, sent)
		expectSessionEnded(t, "the laptop", onLaptop, sent)
		refused(t, s, "the phone's token", phone.Token)
		refused(t, s, "the laptop's token", laptop.Token)
		stillOpen(t, "bob", onBob)
		if again := startSession(t, s, phone); again.Token == "" {
			t.Error("no token from a login after logging out everywhere")
		}
	})
}

// A refresh gives a token of the same session: the connection takes it in an auth frame, and a log out
// still ends it. The replaced token keeps working for a grace (auth.RefreshGrace; its end is tested in
// app/auth). A token of another session is refused on the connection.
func TestRefreshKeepsTheSession(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	ada := s.Register(t, "ada@example.com")
	other := startSession(t, s, ada)
	c := s.Connect(t, ada)
	status, body := s.Do(t, http.MethodPost, "/api/token/refresh", ada.Token, nil)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, body)
	}
	fresh := body["token"].(string)
	for name, token := range map[string]string{"the fresh token": fresh, "the replaced token, within the grace": ada.Token} {
		if status, _ := s.Do(t, http.MethodGet, "/api/me", token, nil); status != http.StatusOK {
			t.Errorf("%s: GET /api/me = %d, want 200", name, status)
		}
	}
	c.Send(map[string]string{"type": "auth", "token": fresh, "id": "a1"})
	if f := c.Read(); f["type"] != "ack" || f["for"] != "auth" {
		t.Errorf("auth with the fresh token: %v, want an ack", f)
	}
	c.Send(map[string]string{"type": "auth", "token": other.Token, "id": "a2"})
	if f := c.Read(); f["type"] != "error" || f["code"] != "unauthorized" {
		t.Errorf("auth with another session's token: %v, want unauthorized", f)
	}
	sent := time.Now()
	if status, _ := s.Do(t, http.MethodPost, "/api/logout", fresh, nil); status != http.StatusNoContent {
		t.Fatalf("log out with the fresh token: %d", status)
	}
	expectSessionEnded(t, "the connection", c, sent)
	refused(t, s, "the replaced token", ada.Token)
}

// A log out on one node closes the session's sockets on the others.
func TestLogoutAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	one, two := nodes[0], nodes[1]
	ada := one.Register(t, "ada@example.com")
	onTwo := two.Connect(t, ada)
	onOne := one.Connect(t, ada)
	sent := time.Now()
	if status, _ := one.Do(t, http.MethodPost, "/api/logout", ada.Token, nil); status != http.StatusNoContent {
		t.Fatalf("log out on node 1: %d", status)
	}
	expectSessionEnded(t, "the socket on node 1", onOne, sent)
	expectSessionEnded(t, "the socket on node 2", onTwo, sent)
	refused(t, two, "the token on node 2", ada.Token)
}

// A node that may have missed a log out (its bus subscription was cut) asks the store, once it has
// subscribed again, which of its connections' sessions still exist, and closes the others.
func TestEndedSessionsFoundAfterLosingTheBus(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	one, two := nodes[0], nodes[1]
	ada, bob := one.Register(t, "ada@example.com"), one.Register(t, "bob@example.com")
	gone, stays := two.Connect(t, ada), two.Connect(t, bob)
	// The session ends behind the nodes' backs: no event tells node 2.
	sent := time.Now()
	servertest.Exec(t, one, "DELETE FROM sessions WHERE user_id = $1", ada.ID)
	killSubscriber(t, two)
	expectSessionEnded(t, "ada's socket on node 2", gone, sent)
	stillOpen(t, "bob's socket on node 2", stays)
}
