package handlers_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app/servertest"
)

func TestRoomsScopeDelivery(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		s.CreateRoom(t, bob, "jeux")
		a := s.Connect(t, ada)
		b := s.Connect(t, bob, "&rooms=general,jeux")

		a.Send(map[string]string{"type": "message", "room": "jeux", "text": "hi", "id": "m0"})
		if f := a.Read(); f["type"] != "error" || f["code"] != "not_joined" || f["id"] != "m0" {
			t.Fatalf("message to a room not joined: got %v, want not_joined", f)
		}

		a.Send(map[string]string{"type": "join", "room": "jeux", "id": "j1"})
		if f := a.Read(); f["type"] != "ack" || f["for"] != "join" || f["id"] != "j1" || f["room"] != "jeux" {
			t.Fatalf("join: got %v, want its ack", f)
		}
		if p := a.Expect("presence", "jeux"); len(p["users"].([]any)) != 2 {
			t.Errorf("presence = %v, want ada and bob", p)
		}
		a.Expect("history", "jeux")
		if f := b.ReadRaw(); f["type"] != "joined" || f["room"] != "jeux" || f["user"].(map[string]any)["name"] != "ada" {
			t.Errorf("bob got %v, want ada joined jeux", f)
		}

		b.Send(map[string]string{"type": "message", "room": "jeux", "text": "dans jeux"})
		b.Send(map[string]string{"type": "message", "text": "dans general"})
		for _, want := range []string{"jeux", "general"} {
			if f := a.Read(); f["type"] != "message" || f["room"] != want || f["text"] != "dans "+want {
				t.Errorf("ada got %v, want the message in %s", f, want)
			}
		}

		a.Send(map[string]string{"type": "leave", "room": "jeux", "id": "l1"})
		if f := a.Read(); f["type"] != "ack" || f["for"] != "leave" || f["room"] != "jeux" {
			t.Fatalf("leave: got %v", f)
		}
		for {
			f := b.ReadRaw()
			if f["type"] == "left" {
				if f["room"] != "jeux" || f["user"].(map[string]any)["name"] != "ada" {
					t.Errorf("left = %v", f)
				}
				break
			}
		}
		b.Send(map[string]string{"type": "message", "room": "jeux", "text": "après"})
		a.Send(map[string]string{"type": "ping"})
		if f := a.Read(); f["type"] != "pong" {
			t.Errorf("ada got %v after leaving jeux, want nothing from it", f)
		}
		a.Send(map[string]string{"type": "leave", "room": "jeux", "id": "l2"})
		if f := a.Read(); f["code"] != "not_joined" || f["id"] != "l2" {
			t.Errorf("leaving again: got %v, want not_joined", f)
		}
	})
}

func TestRoomFrameErrors(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"MAX_ROOMS": "2"})
	u := s.Register(t, "ada@example.com")
	s.CreateRoom(t, u, "second", "third")
	c := s.Connect(t, u)
	cases := []struct {
		name, frame, code string
	}{
		{"join a room that does not exist", `{"type":"join","room":"nowhere"}`, "not_found"},
		{"join without room", `{"type":"join"}`, "invalid_room"},
		{"join upper case", `{"type":"join","room":"Jeux"}`, "invalid_room"},
		{"join with space", `{"type":"join","room":"a b"}`, "invalid_room"},
		{"join name too long", `{"type":"join","room":"` + strings.Repeat("a", 65) + `"}`, "invalid_room"},
		{"join negative since", `{"type":"join","room":"x","since":-1}`, "invalid"},
		{"join since not a number", `{"type":"join","room":"x","since":"12"}`, "invalid"},
		{"leave bad name", `{"type":"leave","room":"../x"}`, "invalid_room"},
		{"message to bad room", `{"type":"message","room":"A","text":"hi"}`, "invalid_room"},
		{"typing not joined", `{"type":"typing","room":"other"}`, "not_joined"},
		{"typing bad room", `{"type":"typing","room":""}`, "invalid_room"},
		{"auth without token", `{"type":"auth"}`, "unauthorized"},
		{"auth garbage", `{"type":"auth","token":"x.y.z"}`, "unauthorized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.SendText(tc.frame)
			if f := c.Read(); f["type"] != "error" || f["code"] != tc.code {
				t.Fatalf("got %v, want error %s", f, tc.code)
			}
		})
	}
	t.Run("too many rooms", func(t *testing.T) {
		c.Send(map[string]string{"type": "join", "room": "second"})
		c.Expect("ack", "second")
		c.Expect("presence", "second")
		c.Expect("history", "second")
		c.Send(map[string]string{"type": "join", "room": "third"})
		if f := c.Read(); f["code"] != "too_many_rooms" {
			t.Errorf("got %v, want too_many_rooms", f)
		}
	})
	t.Run("joining twice is acked", func(t *testing.T) {
		c.Send(map[string]string{"type": "join", "room": "general", "id": "again"})
		if f := c.Read(); f["type"] != "ack" || f["id"] != "again" {
			t.Errorf("got %v", f)
		}
	})
	t.Run("bad query at connect", func(t *testing.T) {
		for _, q := range []string{"&rooms=Bad", "&since=general", "&since=general:x", "&since=general:-3", "&rooms=a,b,c"} {
			_, resp, err := s.TryDial("/ws?token="+u.Token+q, nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: want HTTP 400, got %v", q, resp)
			}
		}
	})
}

func TestHistoryOnJoin(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"HISTORY_LIMIT": "2"})
		u := s.Register(t, "ada@example.com")
		for i := 1; i <= 3; i++ {
			if status, body := s.Do(t, http.MethodPost, "/api/rooms/general/messages", u.Token, map[string]string{"text": fmt.Sprint("m", i)}); status != 201 {
				t.Fatalf("publish: %d %v", status, body)
			}
		}
		c := s.Dial(t, "/ws?token="+u.Token, nil)
		c.Read()
		c.Expect("presence", "general")
		h := c.Expect("history", "general")
		var texts []string
		for _, m := range h["messages"].([]any) {
			texts = append(texts, m.(map[string]any)["text"].(string))
		}
		if strings.Join(texts, ",") != "m2,m3" {
			t.Errorf("history = %v, want the last two, oldest first", texts)
		}
	})
}

func TestPresenceCountsAUserOnce(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		watcher := s.Connect(t, bob)

		tab1 := s.Connect(t, ada)
		if f := watcher.ReadRaw(); f["type"] != "joined" || f["user"].(map[string]any)["name"] != "ada" {
			t.Fatalf("got %v, want ada joined", f)
		}
		tab2 := s.Dial(t, "/ws?token="+ada.Token, nil)
		tab2.Read()
		if p := tab2.Expect("presence", "general"); len(p["users"].([]any)) != 2 {
			t.Errorf("presence = %v, want ada and bob once each", p)
		}
		tab2.Expect("history", "general")

		status, body := s.Do(t, http.MethodGet, "/api/rooms", bob.Token, nil)
		if status != 200 || fmt.Sprint(body["rooms"]) != "[map[kind:public name:general online:2]]" {
			t.Errorf("GET /api/rooms = %d %v, want general with 2 online", status, body)
		}

		tab1.Close()
		// The second tab is still there: no left. The watcher's next frame is its pong, not a left.
		time.Sleep(50 * time.Millisecond) // let the server notice tab1's close; a left would come first
		watcher.Send(map[string]string{"type": "ping"})
		if f := watcher.ReadRaw(); f["type"] != "pong" {
			t.Errorf("got %v, want no left while ada has a tab open", f)
		}
		tab2.Close()
		if f := watcher.ReadRaw(); f["type"] != "left" || f["user"].(map[string]any)["name"] != "ada" {
			t.Errorf("got %v, want ada left", f)
		}
	})
}

func TestTypingIsRelayedToOthersAndThrottled(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		a1 := s.Connect(t, ada)
		a2 := s.Connect(t, ada)
		b := s.Connect(t, bob)
		for i := 0; i < 5; i++ {
			a1.Send(map[string]string{"type": "typing", "room": "general"})
		}
		if f := b.Read(); f["type"] != "typing" || f["room"] != "general" || f["user"].(map[string]any)["name"] != "ada" {
			t.Fatalf("bob got %v, want ada typing", f)
		}
		a1.SendText("done typing")
		if f := b.Read(); f["type"] != "message" {
			t.Errorf("bob got %v, want the message: one typing event for five", f)
		}
		if f := a2.Read(); f["type"] != "message" {
			t.Errorf("ada's other tab got %v, want no typing of her own", f)
		}
	})
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"RATE_LIMIT": "0.5", "RATE_BURST": "2"})
	u := s.Register(t, "ada@example.com")
	c := s.Connect(t, u)
	for i := 0; i < 4; i++ {
		c.Send(map[string]string{"type": "message", "text": "hi", "id": fmt.Sprint(i)})
	}
	c.Send(map[string]string{"type": "ping"})
	// Refusals come at once, acks once the messages are stored: compare without order. The first refusal
	// says when to try again; the frame after it, in the same wait, is dropped without a word.
	var got []string
	for range 4 {
		f := c.Read()
		switch f["type"] {
		case "ack":
			got = append(got, fmt.Sprint("ack ", f["id"]))
		case "error":
			got = append(got, fmt.Sprint(f["code"], " ", f["id"]))
		default:
			got = append(got, fmt.Sprint(f["type"]))
		}
	}
	slices.Sort(got)
	if want := "[ack 0 ack 1 pong rate_limited 2]"; fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
	var stored int
	servertest.QueryRow(t, s, `SELECT COUNT(*) FROM messages`).Scan(&stored)
	if stored != 2 {
		t.Errorf("stored %d messages, want 2", stored)
	}
}

func TestResendWithSameIDIsStoredOnce(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		a, b := s.Connect(t, ada), s.Connect(t, bob)
		a.Send(map[string]string{"type": "message", "text": "once", "id": "dup"})
		first := a.Read()
		// A reconnecting client resends on another connection.
		a2 := s.Connect(t, ada)
		a2.Send(map[string]string{"type": "message", "text": "once", "id": "dup"})
		second := a2.Read()
		if second["type"] != "ack" || fmt.Sprint(second["message"]) != fmt.Sprint(first["message"]) {
			t.Errorf("second ack %v, want the first message %v", second, first["message"])
		}
		a.SendText("marker")
		if f := b.Read(); f["text"] != "once" {
			t.Errorf("bob got %v", f)
		}
		if f := b.Read(); f["text"] != "marker" {
			t.Errorf("bob got %v, want the marker: the resend must not be delivered", f)
		}
	})
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	t.Parallel() // it waits on the clock; its server is its own
	// A token's expiry is in whole seconds: one of TOKEN_TTL 4s lives 3 to 4 s, counted from before it
	// was issued, however slow the machine.
	s := servertest.Start(t, map[string]string{"TOKEN_TTL": "4s"})
	start := time.Now()
	ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
	stays := s.Connect(t, ada)
	expires := s.Connect(t, ada)

	stays.Send(map[string]string{"type": "auth", "token": bob.Token, "id": "wrong"})
	if f := stays.Read(); f["code"] != "unauthorized" || f["id"] != "wrong" {
		t.Errorf("another user's token: got %v, want unauthorized", f)
	}

	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
	status, body := s.Do(t, http.MethodPost, "/api/token/refresh", ada.Token, nil)
	if status != 200 || body["token"] == "" {
		t.Fatalf("refresh = %d %v", status, body)
	}
	stays.Send(map[string]string{"type": "auth", "token": body["token"].(string), "id": "a1"})
	if f := stays.Read(); f["type"] != "ack" || f["for"] != "auth" || f["id"] != "a1" || f["expires_at"] == nil {
		t.Fatalf("auth: got %v, want its ack", f)
	}

	if f := expires.Read(); f["type"] != "error" || f["code"] != "token_expired" {
		t.Errorf("got %v, want token_expired", f)
	}
	if code := expires.CloseCode(); code != 4001 {
		t.Errorf("close code %d, want 4001", code)
	}
	// The first token has expired by now; the refreshed one has not.
	if f, err := stays.TryRead(time.Until(start.Add(4300 * time.Millisecond))); err == nil {
		t.Fatalf("refreshed connection got %v, want nothing", f)
	}
}

func TestRoomRoutes(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"MAX_MESSAGE_BYTES": "20"})
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		s.CreateRoom(t, ada, "jeux")
		adaConn, bobConn := s.Connect(t, ada), s.Connect(t, bob)

		status, body := s.Do(t, http.MethodPost, "/api/rooms/general/messages", ada.Token, map[string]string{"text": "from a script", "id": "s-1"})
		if status != http.StatusCreated || body["text"] != "from a script" || body["room"] != "general" || body["from"].(map[string]any)["name"] != "ada" {
			t.Fatalf("publish = %d %v", status, body)
		}
		for name, c := range map[string]*servertest.Client{"ada's own socket": adaConn, "bob": bobConn} {
			if f := c.Read(); f["type"] != "message" || f["text"] != "from a script" {
				t.Errorf("%s got %v", name, f)
			}
		}
		status, again := s.Do(t, http.MethodPost, "/api/rooms/general/messages", ada.Token, map[string]string{"text": "from a script", "id": "s-1"})
		if status != http.StatusOK || again["id"] != body["id"] {
			t.Errorf("repeated id: %d %v, want 200 with the first message", status, again)
		}
		for i := 2; i <= 4; i++ {
			s.Do(t, http.MethodPost, "/api/rooms/general/messages", bob.Token, map[string]string{"text": fmt.Sprint("m", i)})
		}
		s.Do(t, http.MethodPost, "/api/rooms/jeux/messages", bob.Token, map[string]string{"text": "ailleurs"})

		page := func(query string) []string {
			t.Helper()
			status, body := s.Do(t, http.MethodGet, "/api/rooms/general/messages"+query, ada.Token, nil)
			if status != 200 {
				t.Fatalf("%s: %d %v", query, status, body)
			}
			var ids []string
			for _, m := range body["messages"].([]any) {
				ids = append(ids, fmt.Sprint(m.(map[string]any)["id"]))
			}
			return ids
		}
		for query, want := range map[string]string{
			"":                  "[1 2 3 4]",
			"?limit=2":          "[3 4]",
			"?before=3":         "[1 2]",
			"?after=1&limit=2":  "[2 3]",
			"?after=1&before=4": "[2 3]",
			"?after=4":          "[]",
		} {
			if got := fmt.Sprint(page(query)); got != want {
				t.Errorf("messages%s = %s, want %s", query, got, want)
			}
		}

		status, body = s.Do(t, http.MethodGet, "/api/rooms", ada.Token, nil)
		if status != 200 || fmt.Sprint(body["rooms"]) != "[map[kind:public name:general online:2] map[kind:public name:jeux online:0]]" {
			t.Errorf("rooms = %d %v", status, body)
		}

		cases := []struct {
			name, method, path, token string
			body                      any
			status                    int
			code                      string
		}{
			{"list without token", "GET", "/api/rooms", "", nil, 401, "unauthorized"},
			{"history without token", "GET", "/api/rooms/general/messages", "", nil, 401, "unauthorized"},
			{"publish without token", "POST", "/api/rooms/general/messages", "", map[string]string{"text": "x"}, 401, "unauthorized"},
			{"history bad room", "GET", "/api/rooms/Gen%20eral/messages", ada.Token, nil, 400, "invalid"},
			{"limit 0", "GET", "/api/rooms/general/messages?limit=0", ada.Token, nil, 400, "invalid"},
			{"limit 201", "GET", "/api/rooms/general/messages?limit=201", ada.Token, nil, 400, "invalid"},
			{"limit not a number", "GET", "/api/rooms/general/messages?limit=ten", ada.Token, nil, 400, "invalid"},
			{"before 0", "GET", "/api/rooms/general/messages?before=0", ada.Token, nil, 400, "invalid"},
			{"after negative", "GET", "/api/rooms/general/messages?after=-1", ada.Token, nil, 400, "invalid"},
			{"publish bad room", "POST", "/api/rooms/UPPER/messages", ada.Token, map[string]string{"text": "x"}, 400, "invalid"},
			{"publish empty text", "POST", "/api/rooms/general/messages", ada.Token, map[string]string{"text": " "}, 400, "empty_text"},
			{"publish text too long", "POST", "/api/rooms/general/messages", ada.Token, map[string]string{"text": "123456789012345678901"}, 400, "too_long"},
			{"publish not JSON", "POST", "/api/rooms/general/messages", ada.Token, "text", 400, "invalid"},
			{"publish id too long", "POST", "/api/rooms/general/messages", ada.Token, map[string]string{"text": "x", "id": strings.Repeat("i", 65)}, 400, "invalid"},
			{"refresh without token", "POST", "/api/token/refresh", "", nil, 401, "unauthorized"},
			{"history of a room that does not exist", "GET", "/api/rooms/nowhere/messages", ada.Token, nil, 404, "not_found"},
			{"publish to a room that does not exist", "POST", "/api/rooms/nowhere/messages", ada.Token, map[string]string{"text": "x"}, 404, "not_found"},
			{"create without token", "POST", "/api/rooms", "", map[string]any{"name": "x"}, 401, "unauthorized"},
			{"create a room that exists", "POST", "/api/rooms", bob.Token, map[string]any{"name": "jeux", "private": true}, 409, "conflict"},
			{"create general", "POST", "/api/rooms", bob.Token, map[string]any{"name": "general"}, 409, "conflict"},
			{"create a bad name", "POST", "/api/rooms", bob.Token, map[string]any{"name": "Jeux"}, 400, "invalid"},
			{"create without a name", "POST", "/api/rooms", bob.Token, map[string]any{"private": true}, 400, "invalid"},
			{"create a DM's name", "POST", "/api/rooms", bob.Token, map[string]any{"name": "dm-1-2"}, 400, "invalid"},
			{"create from a string", "POST", "/api/rooms", bob.Token, "jeux", 400, "invalid"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				status, body := s.Do(t, tc.method, tc.path, tc.token, tc.body)
				if status != tc.status {
					t.Fatalf("status = %d, want %d (%v)", status, tc.status, body)
				}
				assertError(t, body, tc.code)
			})
		}
	})
}

// A room made with POST /api/rooms exists with no message and no connection: it is listed, and joined
// again after its last connection left it (the node forgot it meanwhile, and reads it back).
func TestRoomsOutliveTheirConnections(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		u := s.Register(t, "ada@example.com")
		status, body := s.Do(t, http.MethodPost, "/api/rooms", u.Token, map[string]any{"name": "passage"})
		if status != http.StatusCreated || body["name"] != "passage" || body["kind"] != "public" || body["unread"] != 0.0 {
			t.Fatalf("create: %d %v", status, body)
		}
		_, body = s.Do(t, http.MethodGet, "/api/rooms", u.Token, nil)
		if !strings.Contains(fmt.Sprint(body["rooms"]), "passage") {
			t.Fatalf("rooms = %v, want passage before anyone joined", body["rooms"])
		}
		c := s.Connect(t, u)
		for range 2 {
			c.Send(map[string]string{"type": "join", "room": "passage"})
			c.Expect("ack", "passage")
			c.Expect("presence", "passage")
			c.Expect("history", "passage")
			c.Send(map[string]string{"type": "leave", "room": "passage"})
			c.Expect("ack", "passage")
		}
		_, body = s.Do(t, http.MethodGet, "/api/rooms", u.Token, nil)
		if !strings.Contains(fmt.Sprint(body["rooms"]), "passage") {
			t.Errorf("rooms = %v, want passage after its connections left", body["rooms"])
		}
	})
}

// GET /api/rooms comes in pages: a user who made thousands of rooms cannot make every list that long.
func TestRoomListPages(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"RATE_LIMIT": "0"})
	ada := s.Register(t, "ada@example.com")
	want := []string{"general"}
	for i := range 7 {
		name := fmt.Sprintf("room-%d", i)
		s.CreateRoom(t, ada, name)
		want = append(want, name)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		status, body := s.Do(t, http.MethodGet, "/api/rooms?limit=3&after="+after, ada.Token, nil)
		if status != http.StatusOK || body["total"].(float64) != 8 || len(body["rooms"].([]any)) > 3 || pages > 3 {
			t.Fatalf("page %d: %d %v", pages, status, body)
		}
		for _, r := range body["rooms"].([]any) {
			got = append(got, r.(map[string]any)["name"].(string))
		}
		next, ok := body["next"].(string)
		if !ok {
			break
		}
		after = next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pages held %v, want %v", got, want)
	}
	if status, _ := s.Do(t, http.MethodGet, "/api/rooms?limit=501", ada.Token, nil); status != http.StatusBadRequest {
		t.Errorf("limit=501: %d, want 400", status)
	}
}
