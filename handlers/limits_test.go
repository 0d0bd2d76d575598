package handlers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/causerie/causerie/app/servertest"
)

// refusedUpgrade checks that dialing path is refused with 429, Retry-After and the JSON error code.
func refusedUpgrade(t *testing.T, s *servertest.Server, path, code string) {
	t.Helper()
	c, resp, err := s.TryDial(path, nil)
	if err == nil {
		c.Close()
		t.Fatal("the upgrade was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("response %v, want 429 with Retry-After", resp)
	}
	body, _ := io.ReadAll(resp.Body)
	var e struct{ Error struct{ Code string } }
	if json.Unmarshal(body, &e) != nil || e.Error.Code != code {
		t.Errorf("body %s, want the code %s", body, code)
	}
}

func TestConnectionCaps(t *testing.T) {
	t.Run("per user", func(t *testing.T) {
		s := servertest.Start(t, map[string]string{"MAX_CONNS_PER_USER": "3"})
		ada := s.Register(t, "ada@example.com")
		first := s.Connect(t, ada)
		s.Connect(t, ada)
		s.Connect(t, ada)
		refusedUpgrade(t, s, "/ws?token="+ada.Token, "too_many_connections")
		// Another user is not affected, and a closed connection frees its place.
		s.Connect(t, s.Register(t, "bob@example.com"))
		first.Close()
		deadline := time.Now().Add(servertest.Timeout)
		for {
			c, _, err := s.TryDial("/ws?token="+ada.Token, nil)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a closed connection never freed its place")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("per address", func(t *testing.T) {
		s := servertest.Start(t, map[string]string{"MAX_CONNS_PER_IP": "3"})
		for i := range 3 {
			s.Connect(t, s.Register(t, fmt.Sprintf("user%d@example.com", i)))
		}
		refusedUpgrade(t, s, "/ws?token="+s.Register(t, "late@example.com").Token, "too_many_connections")
	})
}

// A user with three tabs open, who reloads one of them ten times in a row without waiting for the old
// socket to go, never meets the default caps.
func TestOrdinaryUseNeverMeetsConnectionCaps(t *testing.T) {
	s := servertest.Start(t, nil)
	ada := s.Register(t, "ada@example.com")
	for range 3 {
		s.Connect(t, ada)
	}
	for i := range 10 {
		c, resp, err := s.TryDial("/ws?token="+ada.Token, nil)
		if err != nil {
			t.Fatalf("reload %d: %v (%v)", i, err, resp)
		}
		c.Close() // the page goes away; the next one does not wait for the server to notice
	}
}
