package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app/servertest"
)

// view is what a client knows of a room: each message by id, as it was last told of it, with the
// viewer-only "me" of reactions left out, so that views compare as data.
type view map[int64]map[string]any

// take records a message object (a message frame, an entry of a history, the message a change carries,
// the object of an ack).
func (v view) take(m any) {
	obj, ok := m.(map[string]any)
	if !ok || obj["id"] == nil {
		return
	}
	copied := map[string]any{}
	for k, val := range obj {
		if k != "type" {
			copied[k] = val
		}
	}
	if rs, ok := copied["reactions"].([]any); ok {
		for _, r := range rs {
			delete(r.(map[string]any), "me")
		}
		if len(rs) == 0 {
			delete(copied, "reactions")
		}
	}
	v[int64(obj["id"].(float64))] = copied
}

// apply takes what a frame says about the room's messages; it returns the log id the frame carries, 0 for
// none.
func (v view) apply(f map[string]any) int64 {
	switch f["type"] {
	case "message":
		v.take(f)
	case "change":
		v.take(f["message"])
	case "history":
		for _, m := range f["messages"].([]any) {
			v.take(m)
		}
	case "ack":
		if m, ok := f["message"]; ok {
			v.take(m)
			return int64(m.(map[string]any)["id"].(float64))
		}
		if ch, ok := f["change"].(map[string]any); ok {
			v.take(ch["message"])
			return int64(ch["id"].(float64))
		}
		return 0
	default:
		return 0
	}
	if id, ok := f["id"].(float64); ok {
		return int64(id)
	}
	return 0
}

func (v view) String() string {
	ids := make([]int64, 0, len(v))
	for id := range v {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []byte
	for _, id := range ids {
		b, _ := json.Marshal(v[id])
		out = append(out, b...)
		out = append(out, '\n')
	}
	return string(out)
}

// follow reads c's frames into v until wait passes without one, and returns the largest log id seen.
func follow(c *servertest.Client, v view, wait time.Duration) int64 {
	var last int64
	for {
		f, err := c.TryReadRaw(wait)
		if err != nil {
			return last
		}
		last = max(last, v.apply(f))
	}
}

// checkConvergence runs the scenario of issue 16: ada is online throughout (on one), bob is offline during a
// burst of messages, edits, deletions and reactions, some to messages from before he left, and resumes
// with since (on two), and cat joins afterwards and reads the history (on two, and over REST); all end with
// the same messages in the same state.
func checkConvergence(t *testing.T, one, two *servertest.Server) {
	ada, bob, cat := one.Register(t, "ada@example.com"), one.Register(t, "bob@example.com"), one.Register(t, "cat@example.com")
	quiet := 300 * time.Millisecond
	a, b := one.Connect(t, ada), two.Connect(t, bob)
	va, vb := view{}, view{}
	// send sends a frame as ada and returns the log id of its ack.
	send := func(frame map[string]any) int64 {
		t.Helper()
		a.Send(frame)
		for {
			f := a.ReadRaw()
			id := va.apply(f)
			if f["type"] == "error" {
				t.Fatalf("%v: %v", frame, f)
			}
			if f["type"] == "ack" {
				return id
			}
		}
	}
	rest := func(method, path string, body any) {
		t.Helper()
		if status, answer := one.Do(t, method, path, cat.Token, body); status != http.StatusOK && status != http.StatusCreated {
			t.Fatalf("%s %s: %d %v", method, path, status, answer)
		}
	}
	msg := "/api/rooms/general/messages"

	for i := 1; i <= 3; i++ {
		send(map[string]any{"type": "message", "text": fmt.Sprint("m", i), "id": fmt.Sprint("m", i)})
	}
	rest("POST", msg, map[string]string{"text": "m4"})
	rest("PUT", msg+"/1/reactions/%F0%9F%91%8D", nil) // 👍
	send(map[string]any{"type": "react", "message": 2, "emoji": "🎉", "id": "r1"})
	since := follow(b, vb, quiet)
	b.Close()

	send(map[string]any{"type": "edit", "message": 1, "text": "m1, corrigé", "id": "e1"})
	rest("DELETE", msg+"/4", nil)
	send(map[string]any{"type": "react", "message": 1, "emoji": "👍", "id": "r2"})
	rest("DELETE", msg+"/1/reactions/%F0%9F%91%8D", nil)
	m5 := send(map[string]any{"type": "message", "text": "m5", "id": "m5"})
	rest("PUT", fmt.Sprintf("%s/%d/reactions/%%E2%%9D%%A4%%EF%%B8%%8F", msg, m5), nil) // ❤️
	send(map[string]any{"type": "delete", "message": 2, "id": "d1"})
	if status, m := one.Do(t, http.MethodPatch, msg+"/3", ada.Token, map[string]string{"text": "m3, corrigé"}); status != http.StatusOK || m["text"] != "m3, corrigé" || m["edited_at"] == nil {
		t.Fatalf("PATCH: %d %v", status, m)
	}

	b2 := two.Dial(t, fmt.Sprintf("/ws?token=%s&since=general:%d", bob.Token, since), nil)
	for {
		f := b2.ReadRaw()
		vb.apply(f)
		if f["type"] == "resumed" {
			break
		}
	}
	// cat joins afterwards: the history of the join, and the one of REST, from either node.
	vc := view{}
	c := two.Dial(t, "/ws?token="+cat.Token, nil)
	for {
		f := c.ReadRaw()
		vc.apply(f)
		if f["type"] == "history" {
			break
		}
	}
	rest2 := func(s *servertest.Server, u servertest.User) view {
		t.Helper()
		v := view{}
		_, body := s.Do(t, http.MethodGet, msg, u.Token, nil)
		v.apply(map[string]any{"type": "history", "messages": body["messages"]})
		return v
	}
	vrest, vrestOne := rest2(two, cat), rest2(one, ada)

	want := vrest.String()
	if n := len(vrest); n != 5 {
		t.Errorf("the history holds %d messages, want 5:\n%s", n, want)
	}
	deadline := time.Now().Add(servertest.Timeout)
	for va.String() != want && time.Now().Before(deadline) {
		follow(a, va, quiet)
	}
	for name, got := range map[string]view{"ada, online throughout": va, "bob, resumed": vb, "cat, joining": vc, "the history, as ada reads it": vrestOne} {
		if got.String() != want {
			t.Errorf("%s sees\n%s\nwant, as the history cat reads,\n%s", name, got, want)
		}
	}
	for _, check := range []struct {
		id   int64
		want string
	}{
		{1, `"edited_at":`},
		{1, `"text":"m1, corrigé"`},
		{1, fmt.Sprintf(`"reactions":[{"count":1,"emoji":"👍","users":[%d]}]`, ada.ID)},
		{2, `"deleted":true`},
		{4, `"deleted":true`},
		{m5, fmt.Sprintf(`"reactions":[{"count":1,"emoji":"❤️","users":[%d]}]`, cat.ID)},
	} {
		b, _ := json.Marshal(vrest[check.id])
		if !strings.Contains(string(b), check.want) {
			t.Errorf("message %d is %s, want %s in it", check.id, b, check.want)
		}
	}
}

func TestEditsDeletesAndReactionsConverge(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"RATE_LIMIT": "0"})
		checkConvergence(t, s, s)
	})
}

// Who may change what: the author edits, the author or the room's owner deletes, anyone in the room reacts
// with one of the emoji; a tombstone takes no change; each refusal is an error with a code, on REST and on
// the WebSocket, and changes nothing.
func TestChangesAreChecked(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"RATE_LIMIT": "0", "MAX_MESSAGE_BYTES": "20"})
	ada, bob, cat := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com"), s.Register(t, "cat@example.com")
	s.CreateRoom(t, ada, "atelier")
	post := func(u servertest.User, text string) string {
		t.Helper()
		_, m := s.Do(t, http.MethodPost, "/api/rooms/atelier/messages", u.Token, map[string]string{"text": text})
		return fmt.Sprintf("/api/rooms/atelier/messages/%.0f", m["id"])
	}
	byBob, byCat := post(bob, "de bob"), post(cat, "de cat")
	for _, tc := range []struct {
		name, method, path string
		who                servertest.User
		body               any
		status             int
		code               string
	}{
		{"edit another's message", "PATCH", byBob, cat, map[string]string{"text": "x"}, 403, "forbidden"},
		{"the owner edits another's message", "PATCH", byBob, ada, map[string]string{"text": "x"}, 403, "forbidden"},
		{"edit to empty", "PATCH", byBob, bob, map[string]string{"text": " "}, 400, "empty_text"},
		{"edit too long", "PATCH", byBob, bob, map[string]string{"text": strings.Repeat("x", 21)}, 400, "too_long"},
		{"delete another's message", "DELETE", byBob, cat, nil, 403, "forbidden"},
		{"an emoji not in the list", "PUT", byBob + "/reactions/x", cat, nil, 400, "invalid"},
		{"a message that does not exist", "PATCH", "/api/rooms/atelier/messages/99", bob, map[string]string{"text": "x"}, 404, "not_found"},
		{"a bad id", "DELETE", "/api/rooms/atelier/messages/zero", bob, nil, 400, "invalid"},
		{"the owner deletes another's message", "DELETE", byCat, ada, nil, 200, ""},
		{"edit a tombstone", "PATCH", byCat, cat, map[string]string{"text": "x"}, 404, "not_found"},
		{"react to a tombstone", "PUT", byCat + "/reactions/%F0%9F%91%8D", bob, nil, 404, "not_found"},
	} {
		status, body := s.Do(t, tc.method, tc.path, tc.who.Token, tc.body)
		if status != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, status, body, tc.status)
			continue
		}
		if tc.code != "" {
			assertError(t, body, tc.code)
		}
	}
	_, body := s.Do(t, http.MethodGet, "/api/rooms/atelier/messages", ada.Token, nil)
	if got := fmt.Sprint(body["messages"]); !strings.Contains(got, "text:de bob") || strings.Contains(got, "edited_at") {
		t.Errorf("after the refusals: %s, want bob's message as it was", got)
	}

	// A client id names one entry: reused for something else, it is refused, and nothing changes.
	if status, body := s.Do(t, http.MethodPost, "/api/rooms/atelier/messages", bob.Token, map[string]string{"text": "avec un id", "id": "x1"}); status != http.StatusCreated {
		t.Fatalf("post with an id: %d %v", status, body)
	}
	if status, body := s.Do(t, http.MethodPatch, byBob, bob.Token, map[string]string{"text": "autre", "id": "x1"}); status != http.StatusConflict {
		t.Errorf("an edit with a message's id: %d %v, want 409", status, body)
	}
	if _, body := s.Do(t, http.MethodGet, "/api/rooms/atelier/messages", ada.Token, nil); strings.Contains(fmt.Sprint(body["messages"]), "autre") {
		t.Errorf("the refused edit changed something: %v", body["messages"])
	}

	c := s.Connect(t, cat, "&rooms=atelier")
	for _, tc := range []struct{ frame, code string }{
		{`{"type":"edit","room":"atelier","message":1,"text":"x","id":"e1"}`, "forbidden"},
		{`{"type":"edit","room":"atelier","text":"x","id":"e2"}`, "invalid"},
		{`{"type":"react","room":"atelier","message":1,"emoji":"🦄","id":"r1"}`, "invalid"},
		{`{"type":"react","room":"general","message":1,"emoji":"👍","id":"r2"}`, "not_joined"},
		{`{"type":"delete","room":"atelier","message":2,"id":"d1"}`, "not_found"},
		{`{"type":"edit","room":"atelier","message":0,"text":"x","id":"e3"}`, "invalid"},
		{`{"type":"edit","room":"atelier","message":9223372036854775807,"text":"x","id":"e4"}`, "not_found"},
	} {
		c.SendText(tc.frame)
		if f := c.Read(); f["type"] != "error" || f["code"] != tc.code || f["id"] == nil {
			t.Errorf("%s: got %v, want an error %s naming the frame", tc.frame, f, tc.code)
		}
	}
}
