package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/causerie/causerie/app/servertest"
)

// A private room and a DM answer a non-member, on every route and every frame, exactly as a room that
// does not exist: the same status and body, the same frames, but for the room's name.
func TestNonMembersLearnNothing(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"RATE_LIMIT": "0"})
		ada, bob, eve := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com"), s.Register(t, "eve@example.com")
		if status, body := s.Do(t, http.MethodPost, "/api/rooms", ada.Token, map[string]any{"name": "secret", "private": true}); status != http.StatusCreated || body["kind"] != "private" {
			t.Fatalf("create: %d %v", status, body)
		}
		status, dm := s.Do(t, http.MethodPost, "/api/dms", ada.Token, map[string]any{"user": "bob"})
		if status != http.StatusCreated {
			t.Fatalf("DM: %d %v", status, dm)
		}
		for _, room := range []string{"secret", dm["name"].(string)} {
			s.Do(t, http.MethodPost, "/api/rooms/"+room+"/messages", ada.Token, map[string]string{"text": "for members only"})
		}

		// rest answers a REST call about room, with room's name taken out.
		rest := func(method, path, room string, body any) string {
			t.Helper()
			status, answer := s.Do(t, method, strings.ReplaceAll(path, "{room}", room), eve.Token, body)
			return strings.ReplaceAll(fmt.Sprint(status, answer), room, "ROOM")
		}
		// frames answers frames sent on a fresh connection, and what the upgrade with query gives.
		frames := func(room, query string, sent ...string) string {
			t.Helper()
			c := s.Dial(t, "/ws?token="+eve.Token+strings.ReplaceAll(query, "{room}", room), nil)
			var got []string
			for _, f := range sent {
				c.SendText(strings.ReplaceAll(f, "{room}", room))
			}
			c.SendText(`{"type":"ping"}`)
			for {
				f := c.Read()
				got = append(got, fmt.Sprint(f))
				if f["type"] == "pong" {
					break
				}
			}
			return strings.ReplaceAll(strings.Join(got, "\n"), room, "ROOM")
		}
		probes := []struct {
			name string
			ask  func(room string) string
		}{
			{"history", func(r string) string { return rest("GET", "/api/rooms/{room}/messages", r, nil) }},
			{"history after", func(r string) string { return rest("GET", "/api/rooms/{room}/messages?after=1", r, nil) }},
			{"publish", func(r string) string {
				return rest("POST", "/api/rooms/{room}/messages", r, map[string]string{"text": "let me in"})
			}},
			{"members", func(r string) string { return rest("GET", "/api/rooms/{room}/members", r, nil) }},
			{"edit", func(r string) string {
				return rest("PATCH", "/api/rooms/{room}/messages/1", r, map[string]string{"text": "changed"})
			}},
			{"delete", func(r string) string { return rest("DELETE", "/api/rooms/{room}/messages/1", r, nil) }},
			{"react", func(r string) string {
				return rest("PUT", "/api/rooms/{room}/messages/1/reactions/%F0%9F%91%8D", r, nil)
			}},
			{"unreact", func(r string) string {
				return rest("DELETE", "/api/rooms/{room}/messages/1/reactions/%F0%9F%91%8D", r, nil)
			}},
			{"add self", func(r string) string { return rest("PUT", "/api/rooms/{room}/members/eve", r, nil) }},
			{"remove self", func(r string) string { return rest("DELETE", "/api/rooms/{room}/members/eve", r, nil) }},
			{"remove the owner", func(r string) string { return rest("DELETE", "/api/rooms/{room}/members/ada", r, nil) }},
			{"upgrade with rooms", func(r string) string { return frames(r, "&rooms={room}") }},
			{"upgrade with since", func(r string) string { return frames(r, "&since={room}:0") }},
			{"frames", func(r string) string {
				return frames(r, "",
					`{"type":"join","room":"{room}","id":"j"}`,
					`{"type":"join","room":"{room}","since":0,"id":"js"}`,
					`{"type":"message","room":"{room}","text":"let me in","id":"m"}`,
					`{"type":"typing","room":"{room}"}`,
					`{"type":"read","room":"{room}","upto":1,"id":"r"}`,
					`{"type":"edit","room":"{room}","message":1,"text":"changed","id":"e"}`,
					`{"type":"delete","room":"{room}","message":1,"id":"d"}`,
					`{"type":"react","room":"{room}","message":1,"emoji":"👍","id":"re"}`,
					`{"type":"unreact","room":"{room}","message":1,"emoji":"👍","id":"un"}`,
					`{"type":"leave","room":"{room}","id":"l"}`)
			}},
		}
		for _, p := range probes {
			want := p.ask("nowhere")
			for _, room := range []string{"secret", dm["name"].(string)} {
				if got := p.ask(room); got != want {
					t.Errorf("%s, %s: eve got\n%s\nwant, as for a room that does not exist,\n%s", p.name, room, got, want)
				}
			}
		}
		_, list := s.Do(t, http.MethodGet, "/api/rooms", eve.Token, nil)
		if got := fmt.Sprint(list["rooms"]); strings.Contains(got, "secret") || strings.Contains(got, "dm-") {
			t.Errorf("eve's room list shows %s", got)
		}
		for _, u := range []servertest.User{ada, bob} {
			if status, body := s.Do(t, http.MethodGet, "/api/rooms/"+dm["name"].(string)+"/messages", u.Token, nil); status != http.StatusOK || len(body["messages"].([]any)) != 1 {
				t.Errorf("%s reading the DM: %d %v", u.Name, status, body)
			}
		}
	})
}

// The owner of a private room adds and removes members; a member may read, write and leave, not manage;
// each change is an event in the room's log; a removed member's connections get the event, then nothing
// more of the room.
func TestPrivateRoomMembers(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"RATE_LIMIT": "0"})
		ada, bob, cat := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com"), s.Register(t, "cat@example.com")
		s.Do(t, http.MethodPost, "/api/rooms", ada.Token, map[string]any{"name": "secret", "private": true})
		member := func(method string, u servertest.User, name string) (int, map[string]any) {
			return s.Do(t, method, "/api/rooms/secret/members/"+url.PathEscape(name), u.Token, nil)
		}
		if status, ev := member("PUT", ada, "BOB"); status != http.StatusCreated || ev["kind"] != "member_added" || ev["user"].(map[string]any)["name"] != "bob" || ev["from"].(map[string]any)["name"] != "ada" || ev["id"] != 1.0 {
			t.Fatalf("adding bob: %d %v", status, ev)
		}
		if status, body := member("PUT", ada, "bob"); status != http.StatusNoContent {
			t.Errorf("adding bob again: %d %v, want 204", status, body)
		}
		// A name with a space, a "%" and an accent, percent-encoded in the path.
		if status, body := s.Do(t, http.MethodPost, "/api/register", "", map[string]string{"email": "zoe@example.com", "password": "password123", "name": "Zoé 100%"}); status != http.StatusCreated {
			t.Fatalf("register Zoé: %d %v", status, body)
		}
		if status, ev := member("PUT", ada, "zoé 100%"); status != http.StatusCreated || ev["user"].(map[string]any)["name"] != "Zoé 100%" {
			t.Errorf("adding Zoé 100%%: %d %v", status, ev)
		}
		for _, tc := range []struct {
			name   string
			method string
			who    servertest.User
			target string
			status int
			code   string
		}{
			{"a user that does not exist", "PUT", ada, "nobody", 404, "not_found"},
			{"a member adding", "PUT", bob, "cat", 403, "forbidden"},
			{"a member removing the owner", "DELETE", bob, "ada", 403, "forbidden"},
			{"the owner leaving", "DELETE", ada, "ada", 403, "forbidden"},
			{"removing a non-member", "DELETE", ada, "cat", 404, "not_found"},
		} {
			if status, body := member(tc.method, tc.who, tc.target); status != tc.status {
				t.Errorf("%s: %d %v, want %d", tc.name, status, body, tc.status)
			} else {
				assertError(t, body, tc.code)
			}
		}
		if status, body := s.Do(t, http.MethodGet, "/api/rooms/secret/members", bob.Token, nil); status != http.StatusOK || fmt.Sprint(body["members"]) != fmt.Sprintf("[map[id:%d name:ada] map[id:%d name:bob] map[id:%d name:Zoé 100%%]]", ada.ID, bob.ID, ada.ID+3) || body["next"] != nil {
			t.Errorf("members: %d %v", status, body)
		}
		// In pages: next is the after of the next page, and the last page has none.
		var paged []string
		for after := "0"; ; {
			status, body := s.Do(t, http.MethodGet, "/api/rooms/secret/members?limit=2&after="+after, bob.Token, nil)
			if status != http.StatusOK {
				t.Fatalf("a page of members: %d %v", status, body)
			}
			for _, m := range body["members"].([]any) {
				paged = append(paged, m.(map[string]any)["name"].(string))
			}
			next, ok := body["next"].(float64)
			if !ok {
				break
			}
			after = fmt.Sprint(int64(next))
		}
		if fmt.Sprint(paged) != "[ada bob Zoé 100%]" {
			t.Errorf("members in pages of 2: %v", paged)
		}
		// An after that names no user (beyond 32 bits here) gives an empty page, not an error.
		if status, body := s.Do(t, http.MethodGet, "/api/rooms/secret/members?after=3000000000", bob.Token, nil); status != http.StatusOK || fmt.Sprint(body["members"]) != "[]" || body["next"] != nil {
			t.Errorf("members after a user that does not exist: %d %v, want an empty page", status, body)
		}
		for _, query := range []string{"limit=0", "limit=501", "limit=x", "after=-1", "after=bob"} {
			status, body := s.Do(t, http.MethodGet, "/api/rooms/secret/members?"+query, bob.Token, nil)
			if status != http.StatusBadRequest {
				t.Errorf("members?%s: %d %v, want 400", query, status, body)
				continue
			}
			assertError(t, body, "invalid")
		}
		if status, body := s.Do(t, http.MethodPut, "/api/rooms/general/members/bob", ada.Token, nil); status != http.StatusForbidden {
			t.Errorf("adding to a public room: %d %v, want 403", status, body)
		}

		a := s.Connect(t, ada, "&rooms=secret")
		b := s.Connect(t, bob, "&rooms=secret")
		b.Send(map[string]string{"type": "message", "room": "secret", "text": "merci", "id": "b1"})
		if f := b.Read(); f["type"] != "ack" {
			t.Fatalf("bob's message: %v", f)
		}
		if f := a.Read(); f["text"] != "merci" {
			t.Fatalf("ada got %v", f)
		}

		if status, ev := member("DELETE", ada, "bob"); status != http.StatusOK || ev["kind"] != "member_removed" {
			t.Fatalf("removing bob: %d %v", status, ev)
		}
		for name, c := range map[string]*servertest.Client{"ada": a, "bob": b} {
			if f := c.Read(); f["type"] != "member" || f["kind"] != "member_removed" || f["user"].(map[string]any)["name"] != "bob" {
				t.Errorf("%s got %v, want the member_removed event", name, f)
			}
		}
		a.Send(map[string]string{"type": "message", "room": "secret", "text": "sans bob", "id": "a1"})
		if f := a.Read(); f["type"] != "ack" {
			t.Fatalf("ada's message: %v", f)
		}
		b.Send(map[string]string{"type": "ping"})
		if f := b.Read(); f["type"] != "pong" {
			t.Errorf("bob, removed, got %v, want nothing of the room", f)
		}
		b.Send(map[string]string{"type": "message", "room": "secret", "text": "encore", "id": "b2"})
		if f := b.Read(); f["code"] != "not_joined" {
			t.Errorf("bob writing after his removal: %v, want not_joined", f)
		}
		b.Send(map[string]string{"type": "join", "room": "secret", "id": "j"})
		if f := b.Read(); f["code"] != "not_found" {
			t.Errorf("bob joining after his removal: %v, want not_found", f)
		}

		// A member leaves by removing itself.
		member("PUT", ada, "cat")
		if status, ev := member("DELETE", cat, "cat"); status != http.StatusOK || ev["kind"] != "member_left" {
			t.Errorf("cat leaving: %d %v", status, ev)
		}
		_, body := s.Do(t, http.MethodGet, "/api/rooms/secret/messages", ada.Token, nil)
		var log []string
		for _, m := range body["messages"].([]any) {
			m := m.(map[string]any)
			if m["kind"] != nil {
				log = append(log, fmt.Sprint(m["kind"], ":", m["user"].(map[string]any)["name"]))
			} else {
				log = append(log, fmt.Sprint(m["text"]))
			}
		}
		if want := "[member_added:bob member_added:Zoé 100% merci member_removed:bob sans bob member_added:cat member_left:cat]"; fmt.Sprint(log) != want {
			t.Errorf("the room's log: %v, want %s", log, want)
		}
	})
}

// A DM is one room from either side, seen by its two users only.
func TestDirectMessages(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
	status, first := s.Do(t, http.MethodPost, "/api/dms", ada.Token, map[string]any{"user": "bob"})
	if status != http.StatusCreated || first["kind"] != "dm" || first["with"].(map[string]any)["name"] != "bob" {
		t.Fatalf("ada opens a DM with bob: %d %v", status, first)
	}
	status, again := s.Do(t, http.MethodPost, "/api/dms", bob.Token, map[string]any{"user": "Ada"})
	if status != http.StatusOK || again["name"] != first["name"] || again["with"].(map[string]any)["name"] != "ada" {
		t.Errorf("bob opens it from his side: %d %v, want 200 with %s", status, again, first["name"])
	}
	room := first["name"].(string)
	a := s.Connect(t, ada, "&rooms="+room)
	b := s.Connect(t, bob, "&rooms="+room)
	a.Send(map[string]string{"type": "message", "room": room, "text": "psst", "id": "a1"})
	if f := a.Read(); f["type"] != "ack" {
		t.Fatalf("ada's message: %v", f)
	}
	if f := b.Read(); f["text"] != "psst" || f["room"] != room {
		t.Errorf("bob got %v", f)
	}
	for _, tc := range []struct {
		body   any
		status int
		code   string
	}{
		{map[string]any{"user": "ada"}, 400, "invalid"},
		{map[string]any{"user": "nobody"}, 404, "not_found"},
		{map[string]any{}, 400, "invalid"},
	} {
		status, body := s.Do(t, http.MethodPost, "/api/dms", ada.Token, tc.body)
		if status != tc.status {
			t.Errorf("%v: %d %v, want %d", tc.body, status, body, tc.status)
			continue
		}
		assertError(t, body, tc.code)
	}
	for _, path := range []string{"/api/rooms/" + room + "/members/ada", "/api/rooms/" + room + "/members/bob"} {
		if status, body := s.Do(t, http.MethodDelete, path, ada.Token, nil); status != http.StatusForbidden {
			t.Errorf("DELETE %s: %d %v, want 403: a DM is for two", path, status, body)
		}
	}
}

// The same member added by several requests at once is added once: one 201 and one member_added event in
// the room's log, whatever reached the store first; the others are told, with 204, that bob is a member.
func TestConcurrentAddsLogOneEvent(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"RATE_LIMIT": "0"})
		ada := s.Register(t, "ada@example.com")
		s.Register(t, "bob@example.com")
		s.Do(t, http.MethodPost, "/api/rooms", ada.Token, map[string]any{"name": "secret", "private": true})
		const n = 8
		statuses := make(chan int, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				status, _ := s.Do(t, http.MethodPut, "/api/rooms/secret/members/bob", ada.Token, nil)
				statuses <- status
			})
		}
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for status := range statuses {
			count[status]++
		}
		if count[http.StatusCreated] != 1 || count[http.StatusNoContent] != n-1 {
			t.Errorf("statuses of %d adds at once: %v, want one 201 and the rest 204", n, count)
		}
		_, body := s.Do(t, http.MethodGet, "/api/rooms/secret/messages", ada.Token, nil)
		added := 0
		for _, m := range body["messages"].([]any) {
			if m.(map[string]any)["kind"] == "member_added" {
				added++
			}
		}
		if added != 1 {
			t.Errorf("secret's history holds %d member_added events, want 1", added)
		}
	})
}
