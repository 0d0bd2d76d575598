package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app/servertest"
)

// B disconnects; A sends while B is away and keeps sending while B reconnects with since. B must see
// every message exactly once, in order: the replay, then the resumed frame, then the live ones.
func TestResumeHasNoGapAndNoDuplicate(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		const before, away, during = 5, 10, 60
		s := start(map[string]string{"RATE_LIMIT": "0"})
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		a := s.Connect(t, ada)
		b := s.Connect(t, bob)

		send := func(i int) {
			a.Send(map[string]string{"type": "message", "text": fmt.Sprint(i), "id": fmt.Sprint(i)})
		}
		var lastSeen int64
		for i := 0; i < before; i++ {
			send(i)
			lastSeen = int64(b.Read()["id"].(float64))
		}
		b.Close()
		for i := before; i < before+away; i++ {
			send(i)
		}
		// Keep sending while B reconnects; acks are read at the end.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := before + away; i < before+away+during; i++ {
				send(i)
			}
		}()
		b2 := s.Dial(t, fmt.Sprintf("/ws?token=%s&since=general:%d", bob.Token, lastSeen), nil)
		if w := b2.Read(); fmt.Sprint(w["rooms"]) != "[general]" {
			t.Fatalf("welcome = %v", w)
		}
		b2.Expect("presence", "general")

		// The replay may hold every message, when A is done before B's backlog is read: the resumed frame
		// then comes after the last one.
		want := before
		resumed := false
		for want < before+away+during || !resumed {
			f := b2.Read()
			switch f["type"] {
			case "resumed":
				if resumed || f["complete"] != true || f["room"] != "general" {
					t.Fatalf("resumed frame %v (seen before: %v)", f, resumed)
				}
				resumed = true
			case "message":
				if f["text"] != fmt.Sprint(want) {
					t.Fatalf("got message %v, want %d: a gap or a duplicate", f["text"], want)
				}
				if !resumed && want >= before+away+during {
					t.Fatal("more replayed than sent")
				}
				want++
			default:
				t.Fatalf("unexpected frame %v", f)
			}
		}
		if !resumed {
			t.Error("no resumed frame")
		}
		<-done
		for i := 0; i < before+away+during; i++ {
			if f := a.Read(); f["type"] != "ack" {
				t.Fatalf("ada got %v, want acks only", f)
			}
		}
		b2.Send(map[string]string{"type": "ping"})
		if f := b2.Read(); f["type"] != "pong" {
			t.Errorf("after the last message B got %v, want nothing more", f)
		}
	})
}

func TestResumePastTheCapIsIncomplete(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"RESUME_MAX": "3"})
		u := s.Register(t, "ada@example.com")
		for i := 1; i <= 5; i++ {
			s.Do(t, http.MethodPost, "/api/rooms/general/messages", u.Token, map[string]string{"text": fmt.Sprint(i)})
		}
		c := s.Dial(t, "/ws?token="+u.Token+"&since=general:0", nil)
		c.Read()
		c.Expect("presence", "general")
		for _, want := range []string{"3", "4", "5"} {
			if f := c.Read(); f["type"] != "message" || f["text"] != want {
				t.Fatalf("got %v, want message %s (the newest three)", f, want)
			}
		}
		if f := c.Expect("resumed", "general"); f["complete"] != false {
			t.Errorf("resumed = %v, want complete false", f)
		}
		// The rest is a page away.
		status, body := s.Do(t, http.MethodGet, "/api/rooms/general/messages?before=3", u.Token, nil)
		if status != 200 || len(body["messages"].([]any)) != 2 {
			t.Errorf("older page = %d %v, want messages 1 and 2", status, body)
		}
	})
}

func TestJoinFrameWithSince(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		u := s.Register(t, "ada@example.com")
		s.CreateRoom(t, u, "jeux")
		for i := 1; i <= 3; i++ {
			s.Do(t, http.MethodPost, "/api/rooms/jeux/messages", u.Token, map[string]string{"text": fmt.Sprint(i)})
		}
		c := s.Connect(t, u)
		c.SendText(`{"type":"join","room":"jeux","since":2}`)
		c.Expect("ack", "jeux")
		c.Expect("presence", "jeux")
		if f := c.Expect("message", "jeux"); f["text"] != "3" {
			t.Errorf("got %v, want message 3 only", f)
		}
		if f := c.Expect("resumed", "jeux"); f["complete"] != true {
			t.Errorf("resumed = %v", f)
		}
	})
}

// With batch=1 a replay arrives in a few frames of newline-separated JSON objects.
func TestBatchedFrames(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"RATE_LIMIT": "0"})
	u := s.Register(t, "ada@example.com")
	const n = 50
	for i := 1; i <= n; i++ {
		s.Do(t, http.MethodPost, "/api/rooms/general/messages", u.Token, map[string]string{"text": fmt.Sprint(i)})
	}
	c := s.Dial(t, "/ws?batch=1&since=general:0&token="+u.Token, nil)
	var types []string
	frames := 0
	for len(types) == 0 || types[len(types)-1] != "resumed" {
		c.SetReadDeadline(time.Now().Add(servertest.Timeout))
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		frames++
		for _, line := range strings.Split(string(data), "\n") {
			var f map[string]any
			if err := json.Unmarshal([]byte(line), &f); err != nil {
				t.Fatalf("line %q of a batched frame: %v", line, err)
			}
			if f["type"] == "message" && f["text"] != fmt.Sprint(len(types)-1) {
				t.Errorf("message %v at position %d", f["text"], len(types))
			}
			types = append(types, f["type"].(string))
		}
	}
	if len(types) != n+3 { // welcome, presence, the messages, resumed
		t.Errorf("got %d frames' worth: %v", len(types), types)
	}
	if frames > 3 {
		t.Errorf("%d WebSocket frames for %d objects: the replay was not batched", frames, len(types))
	}
}

// A since ahead of the room (a database reset, a stale id) replays nothing and silences nothing.
func TestResumeFromAheadOfTheRoom(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
	b := s.Dial(t, "/ws?since=general:100&token="+bob.Token, nil)
	b.Read()
	b.Expect("presence", "general")
	if f := b.Expect("resumed", "general"); f["complete"] != true {
		t.Errorf("resumed = %v", f)
	}
	a := s.Connect(t, ada)
	a.SendText("first message of the room")
	if f := b.Read(); f["type"] != "message" || f["id"] != float64(1) {
		t.Errorf("got %v, want message 1", f)
	}
}

// A history frame over 64 KiB takes the 8-byte length form of a WebSocket frame header.
func TestLargeHistoryFrame(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"RATE_LIMIT": "0"})
	u := s.Register(t, "ada@example.com")
	text := strings.Repeat("é", 2000) // 4000 bytes
	for i := 0; i < 20; i++ {
		s.Do(t, http.MethodPost, "/api/rooms/general/messages", u.Token, map[string]string{"text": text})
	}
	c := s.Dial(t, "/ws?token="+u.Token, nil)
	c.Read()
	c.Expect("presence", "general")
	h := c.Expect("history", "general")
	msgs := h["messages"].([]any)
	if len(msgs) != 20 || msgs[19].(map[string]any)["text"] != text {
		t.Errorf("history has %d messages, want 20 intact", len(msgs))
	}
}

// The rooms named in since are joined besides those of rooms, the default room when rooms names none;
// a bare id in since is the default room's.
func TestSinceJoinsToo(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	u := s.Register(t, "ada@example.com")
	s.CreateRoom(t, u, "jeux")
	for _, room := range []string{"general", "jeux"} {
		for i := 1; i <= 2; i++ {
			s.Do(t, http.MethodPost, "/api/rooms/"+room+"/messages", u.Token, map[string]string{"text": fmt.Sprint(room, i)})
		}
	}
	cases := []struct{ query, rooms string }{
		{"&since=jeux:1", "[general jeux]"},
		{"&rooms=jeux&since=general:1", "[jeux general]"},
		{"&since=1", "[general]"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			c := s.Dial(t, "/ws?token="+u.Token+tc.query, nil)
			if w := c.Read(); fmt.Sprint(w["rooms"]) != tc.rooms {
				t.Fatalf("welcome %v, want the rooms %s", w, tc.rooms)
			}
			for f := c.Read(); f["type"] != "resumed"; f = c.Read() {
				if f["type"] == "message" && f["text"] != fmt.Sprint(f["room"], 2) {
					t.Errorf("replayed %v, want only the message after id 1", f)
				}
			}
		})
	}
}
