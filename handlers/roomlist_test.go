package handlers_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/causerie/causerie/app/servertest"
)

// roomList reads frames until a rooms frame, and returns its list as "name:kind:unread", with a DM's
// other user.
func roomList(t *testing.T, c *servertest.Client) string {
	t.Helper()
	for {
		f := c.ReadRaw()
		if f["type"] == "rooms" {
			return listOf(f["rooms"])
		}
	}
}

func listOf(rooms any) string {
	var out []string
	for _, r := range rooms.([]any) {
		r := r.(map[string]any)
		s := fmt.Sprint(r["name"], ":", r["kind"], ":", r["unread"])
		if with, ok := r["with"].(map[string]any); ok {
			s += ":" + with["name"].(string)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// The room list belongs to the account: the welcome carries it, GET /api/me/rooms gives it, and every
// change (a room made, joined, left, a DM, a membership) reaches each of the user's connections at once.
func TestRoomListFollowsTheUser(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"RATE_LIMIT": "0"})
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		s.CreateRoom(t, bob, "passage")

		tab1 := s.Dial(t, "/ws?token="+ada.Token, nil)
		if w := tab1.ReadRaw(); w["type"] != "welcome" || listOf(w["room_list"]) != "general:public:0" {
			t.Fatalf("welcome: %v, want general in its room_list", w)
		}
		tab2 := s.Connect(t, ada)
		version := -1.0
		mine := func() string {
			t.Helper()
			status, body := s.Do(t, http.MethodGet, "/api/me/rooms", ada.Token, nil)
			if status != http.StatusOK {
				t.Fatalf("GET /api/me/rooms: %d %v", status, body)
			}
			// Every change moves the list's version on.
			if v := body["version"].(float64); v <= version {
				t.Errorf("version %v after %v, want it to move on", v, version)
			} else {
				version = v
			}
			return listOf(body["rooms"])
		}
		step := func(what, want string) {
			t.Helper()
			for name, c := range map[string]*servertest.Client{"tab 1": tab1, "tab 2": tab2} {
				// A list sent for an earlier change may come first (tab 2 may have connected before tab 1's
				// first list went out): a client takes the newest, as these do.
				got := roomList(t, c)
				for got != want {
					f, err := c.TryReadRaw(servertest.Timeout)
					if err != nil {
						t.Errorf("%s, %s got %s, want %s", what, name, got, want)
						break
					}
					if f["type"] == "rooms" {
						got = listOf(f["rooms"])
					}
				}
			}
			if got := mine(); got != want {
				t.Errorf("%s, GET /api/me/rooms: %s, want %s", what, got, want)
			}
		}

		s.Do(t, http.MethodPost, "/api/rooms", ada.Token, map[string]any{"name": "jeux"})
		step("a room made", "general:public:0 jeux:public:0")

		tab1.Send(map[string]string{"type": "join", "room": "passage"})
		step("a room joined on tab 1", "general:public:0 jeux:public:0 passage:public:0")

		tab1.Send(map[string]string{"type": "leave", "room": "passage"})
		step("a room left on tab 1", "general:public:0 jeux:public:0")

		s.Do(t, http.MethodPost, "/api/dms", bob.Token, map[string]any{"user": "ada"})
		dm := fmt.Sprintf("dm-%d-%d", ada.ID, bob.ID)
		step("a DM bob opened", dm+":dm:0:bob general:public:0 jeux:public:0")

		s.Do(t, http.MethodPost, "/api/rooms", bob.Token, map[string]any{"name": "projet", "private": true})
		s.Do(t, http.MethodPut, "/api/rooms/projet/members/ada", bob.Token, nil)
		step("added to a private room", dm+":dm:0:bob general:public:0 jeux:public:0 projet:private:0")

		s.Do(t, http.MethodDelete, "/api/rooms/projet/members/ada", bob.Token, nil)
		step("removed from it", dm+":dm:0:bob general:public:0 jeux:public:0")
	})
}

// readState checks that c gets the read frame of room, up to upto with unread left.
func readState(t *testing.T, name string, c *servertest.Client, room string, upto, unread int) {
	t.Helper()
	for {
		f := c.ReadRaw()
		if f["type"] != "read" {
			continue
		}
		if f["room"] != room || f["upto"] != float64(upto) || f["unread"] != float64(unread) {
			t.Errorf("%s got %v, want %s read up to %d, %d unread", name, f, room, upto, unread)
		}
		return
	}
}

// Reading on one connection sets the read state of every other connection of the user, on any node, and
// it never moves back.
func TestReadStateOnEveryDevice(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"RATE_LIMIT": "0"})
		checkReadState(t, s, s)
	})
}

func checkReadState(t *testing.T, one, two *servertest.Server) {
	ada, bob := one.Register(t, "ada@example.com"), two.Register(t, "bob@example.com")
	phone := one.Connect(t, ada)
	laptop := two.Connect(t, ada)
	for i := 1; i <= 3; i++ {
		two.Do(t, http.MethodPost, "/api/rooms/general/messages", bob.Token, map[string]string{"text": fmt.Sprint("m", i)})
	}
	unread := func() string {
		t.Helper()
		_, body := two.Do(t, http.MethodGet, "/api/me/rooms", ada.Token, nil)
		return listOf(body["rooms"])
	}
	if got := unread(); got != "general:public:3" {
		t.Errorf("before reading: %s, want 3 unread", got)
	}
	phone.Send(map[string]any{"type": "read", "room": "general", "upto": 2, "id": "r1"})
	readState(t, "the phone", phone, "general", 2, 1)
	readState(t, "the laptop", laptop, "general", 2, 1)
	if got := unread(); got != "general:public:1" {
		t.Errorf("after reading: %s, want 1 unread", got)
	}
	laptop.Send(map[string]any{"type": "read", "room": "general", "upto": 1})
	readState(t, "the laptop, reading less", laptop, "general", 2, 1)
	readState(t, "the phone, after the laptop read less", phone, "general", 2, 1)

	for _, tc := range []struct{ frame, code string }{
		{`{"type":"read","room":"general"}`, "invalid"},
		{`{"type":"read","room":"general","upto":-1}`, "invalid"},
		{`{"type":"read","room":"nowhere","upto":1}`, "not_found"},
		{`{"type":"read","room":"Bad","upto":1}`, "invalid_room"},
	} {
		phone.SendText(tc.frame)
		for {
			f := phone.Read()
			if f["type"] == "ack" {
				continue
			}
			if f["type"] != "error" || f["code"] != tc.code {
				t.Errorf("%s: got %v, want %s", tc.frame, f, tc.code)
			}
			break
		}
	}

	// What ada writes herself, here over REST, is no news to her other devices; nor is a member event.
	one.Do(t, http.MethodPost, "/api/rooms/general/messages", ada.Token, map[string]string{"text": "mine"})
	if got := unread(); got != "general:public:1" {
		t.Errorf("after ada's own message: %s, want still 1 unread", got)
	}
	if status, body := one.Do(t, http.MethodPost, "/api/rooms", ada.Token, map[string]any{"name": "atelier", "private": true}); status != http.StatusCreated {
		t.Fatalf("create atelier: %d %v", status, body)
	}
	if status, body := one.Do(t, http.MethodPut, "/api/rooms/atelier/members/bob", ada.Token, nil); status >= 300 {
		t.Fatalf("add bob to atelier: %d %v", status, body)
	}
	two.Do(t, http.MethodPost, "/api/rooms/atelier/messages", bob.Token, map[string]string{"text": "merci"})
	if status, body := two.Do(t, http.MethodDelete, "/api/rooms/atelier/members/bob", bob.Token, nil); status >= 300 {
		t.Fatalf("bob leaves atelier: %d %v", status, body)
	}
	_, body := two.Do(t, http.MethodGet, "/api/me/rooms", ada.Token, nil)
	if got := listOf(body["rooms"]); got != "atelier:private:1 general:public:1" {
		t.Errorf("ada's rooms after bob wrote in atelier and left: %s, want bob's message alone unread there", got)
	}
}
