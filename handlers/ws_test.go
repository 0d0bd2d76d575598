package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/causerie/causerie/app/servertest"
)

func TestBroadcastReachesEveryoneButTheSender(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(nil)
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		adaConn := s.Connect(t, ada)
		adaTab := s.Connect(t, ada)
		bobConn := s.Connect(t, bob)

		adaConn.Send(map[string]string{"type": "message", "text": "bonjour", "id": "c-1"})

		ack := adaConn.Read()
		if ack["type"] != "ack" || ack["id"] != "c-1" {
			t.Fatalf("sender got %v, want an ack for c-1", ack)
		}
		msg := ack["message"].(map[string]any)
		if msg["text"] != "bonjour" || msg["room"] != "general" || msg["id"].(float64) < 1 {
			t.Errorf("ack message = %v", msg)
		}
		if from := msg["from"].(map[string]any); from["name"] != "ada" || from["id"].(float64) != float64(ada.ID) {
			t.Errorf("ack from = %v, want ada (%d)", from, ada.ID)
		}
		if _, err := time.Parse(time.RFC3339, msg["at"].(string)); err != nil {
			t.Errorf("at: %v", err)
		}
		for name, c := range map[string]*servertest.Client{"bob": bobConn, "ada's other tab": adaTab} {
			got := c.Read()
			if got["type"] != "message" || got["text"] != "bonjour" || got["id"] != msg["id"] {
				t.Errorf("%s got %v, want the message %v", name, got, msg["id"])
			}
			if from := got["from"].(map[string]any); from["name"] != "ada" {
				t.Errorf("%s: from = %v, want ada", name, from)
			}
		}
		// The sender's connection gets the ack only: the next frame it reads is the answer to its ping.
		adaConn.Send(map[string]string{"type": "ping"})
		if got := adaConn.Read(); got["type"] != "pong" {
			t.Errorf("sender got %v after its ack, want only the pong", got)
		}
	})
}

func TestWelcomeFrame(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	u := s.Register(t, "claire.dupont@example.com")
	c := s.Dial(t, "/ws?token="+u.Token, nil)
	w := c.Read()
	user := w["user"].(map[string]any)
	if w["type"] != "welcome" || user["name"] != "claire.dupont" || user["id"].(float64) != float64(u.ID) {
		t.Errorf("welcome = %v", w)
	}
	if rooms := fmt.Sprint(w["rooms"]); rooms != "[general]" {
		t.Errorf("rooms = %s, want [general]", rooms)
	}
	if p := c.Expect("presence", "general"); fmt.Sprint(p["users"]) != fmt.Sprintf("[map[id:%d name:claire.dupont]]", u.ID) {
		t.Errorf("presence = %v", p)
	}
	if h := c.Expect("history", "general"); fmt.Sprint(h["messages"]) != "[]" {
		t.Errorf("history = %v, want none", h)
	}
}

func TestCourseURLAndPlainTextFrames(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
	// The course connects to ws://localhost:8181?token=... with no path.
	adaConn := s.Dial(t, "?token="+ada.Token, nil)
	adaConn.Read()
	adaConn.Expect("presence", "general")
	adaConn.Expect("history", "general")
	bobConn := s.Connect(t, bob)

	adaConn.SendText("hello from Postman")
	if ack := adaConn.Read(); ack["type"] != "ack" || ack["for"] != "message" || ack["id"] != nil {
		t.Errorf("ack = %v, want an ack without id", ack)
	}
	if got := bobConn.Read(); got["text"] != "hello from Postman" {
		t.Errorf("bob got %v", got)
	}
}

func TestPageStillServedAtRoot(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET / = %d %s, want the HTML page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestBadFramesGetErrorFramesAndKeepTheConnection(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"MAX_MESSAGE_BYTES": "10"})
	u := s.Register(t, "ada@example.com")
	c := s.Connect(t, u)
	cases := []struct {
		name, frame, code, id string
	}{
		{"malformed JSON", `{"type":"message","text":`, "bad_json", ""},
		{"unknown type", `{"type":"dance","id":"x1"}`, "unknown_type", "x1"},
		{"missing type", `{"text":"hi"}`, "unknown_type", ""},
		{"empty text", `{"type":"message","text":"","id":"x2"}`, "empty_text", "x2"},
		{"blank text", `{"type":"message","text":"   \n"}`, "empty_text", ""},
		{"blank plain text", "   ", "empty_text", ""},
		{"text over the limit", `{"type":"message","text":"12345678901"}`, "too_long", ""},
		{"id too long", `{"type":"message","text":"hi","id":"` + strings.Repeat("i", 65) + `"}`, "invalid", ""},
		{"room not joined", `{"type":"message","text":"hi","room":"elsewhere"}`, "not_joined", ""},
		{"wrong field type", `{"type":"message","text":42,"id":"x3"}`, "invalid", "x3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.SendText(tc.frame)
			f := c.Read()
			if f["type"] != "error" || f["code"] != tc.code || f["message"] == "" {
				t.Fatalf("got %v, want an error frame with code %s", f, tc.code)
			}
			if tc.id != "" && f["id"] != tc.id {
				t.Errorf("id = %v, want %s", f["id"], tc.id)
			}
		})
	}
	// Still open and still working.
	c.Send(map[string]string{"type": "message", "text": "ok", "id": "after"})
	if f := c.Read(); f["type"] != "ack" || f["id"] != "after" {
		t.Errorf("after the bad frames: got %v, want an ack", f)
	}
	metrics := s.Get(t, "/metrics")
	for _, want := range []string{`causerie_bad_frames_total{code="bad_json"} 1`, `causerie_bad_frames_total{code="empty_text"} 3`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestFramesThatCloseTheConnection(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	u := s.Register(t, "ada@example.com")
	cases := []struct {
		name string
		send func(c *servertest.Client) error
		code int
	}{
		{"binary frame", func(c *servertest.Client) error {
			return c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
		}, 1003},
		{"frame over 64 KiB", func(c *servertest.Client) error {
			return c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("a", 64<<10+1)))
		}, 1009},
		{"invalid UTF-8", func(c *servertest.Client) error {
			return c.WriteMessage(websocket.TextMessage, []byte{'h', 0xff, 'i'})
		}, 1007},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := s.Connect(t, u)
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			if got := c.CloseCode(); got != tc.code {
				t.Errorf("close code = %d, want %d", got, tc.code)
			}
		})
	}
	// Others are not disturbed.
	a, b := s.Connect(t, u), s.Connect(t, u)
	a.SendText("still here")
	if got := b.Read(); got["text"] != "still here" {
		t.Errorf("got %v", got)
	}
}

func TestUpgradeRefusedWithoutValidToken(t *testing.T) {
	t.Parallel() // it waits on the clock; its server is its own
	s := servertest.Start(t, map[string]string{"TOKEN_TTL": "1s"})
	u := s.Register(t, "ada@example.com")
	cases := []struct {
		name, path string
	}{
		{"no token", "/ws"},
		{"garbage token", "/ws?token=not-a-jwt"},
		{"tampered token", "/ws?token=" + u.Token[:len(u.Token)-2] + "xx"},
		{"no token at root", "/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := s.TryDial(tc.path, nil)
			if err == nil {
				t.Fatal("upgrade succeeded")
			}
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("response = %v, want 401", resp)
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		time.Sleep(2100 * time.Millisecond) // JWT times have one-second resolution
		_, resp, err := s.TryDial("/ws?token="+u.Token, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("err %v, response %v: want 401", err, resp)
		}
	})
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"ALLOWED_ORIGINS": "https://chat.example.com"})
	u := s.Register(t, "ada@example.com")
	host := strings.TrimPrefix(s.URL, "http://")
	cases := []struct {
		origin, proto string // proto: the X-Forwarded-Proto of a proxy that ends TLS
		want          int
	}{
		{"", "", http.StatusSwitchingProtocols},
		{"http://" + host, "", http.StatusSwitchingProtocols},
		{"https://chat.example.com", "", http.StatusSwitchingProtocols},
		{"https://evil.example.com", "", http.StatusForbidden},
		{"null", "", http.StatusForbidden},
		{"https://" + host, "", http.StatusForbidden}, // same host, another scheme
		{"https://" + host, "https", http.StatusSwitchingProtocols},
		{"http://" + host, "https", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run("origin "+tc.origin+" "+tc.proto, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			if tc.proto != "" {
				h.Set("X-Forwarded-Proto", tc.proto)
			}
			c, resp, err := s.TryDial("/ws?token="+u.Token, h)
			if c != nil {
				c.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// A client that never reads must not slow down the others: it is dropped when its queue fills, and the
// rest keep getting every message.
func TestStuckClientDoesNotDelayOthers(t *testing.T) {
	t.Parallel() // it waits on the clock; its server is its own
	s := servertest.Start(t, map[string]string{"MAX_MESSAGE_BYTES": "60000", "RATE_LIMIT": "0"})
	u := s.Register(t, "ada@example.com")

	// The stuck client: a raw TCP socket that upgrades and then never reads, so the kernel buffers fill.
	stuck, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	if tcp, ok := stuck.(*net.TCPConn); ok {
		tcp.SetReadBuffer(4096)
	}
	fmt.Fprintf(stuck, "GET /ws?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", u.Token)

	sender, reader := s.Connect(t, u), s.Connect(t, u)
	text := strings.Repeat("x", 60000)
	const n = 400 // 24 MB: far more than the stuck socket's queue and kernel buffers hold
	done := make(chan error, 1)
	go func() { // a sender that waits for each ack, as a client with a window of one would
		for i := 0; i < n; i++ {
			if err := sender.WriteJSON(map[string]string{"type": "message", "text": text}); err != nil {
				done <- err
				return
			}
			if f, err := sender.TryRead(servertest.Timeout); err != nil || f["type"] != "ack" {
				done <- fmt.Errorf("message %d: got %v, %v; want its ack", i, f, err)
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < n; i++ {
		if f := reader.Read(); f["type"] != "message" {
			t.Fatalf("frame %d: got %v", i, f["type"])
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(servertest.Timeout)
	for !strings.Contains(s.Logs(), "dropping slow client") {
		if time.Now().After(deadline) {
			t.Fatal("the stuck client was never dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// 50 clients each send 20 messages at once: every client gets every other client's messages exactly once,
// in each sender's order, and an ack for each of its own.
func TestManyConcurrentSenders(t *testing.T) {
	t.Parallel() // it waits on the clock; its server is its own
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		const clients, perClient = 50, 20
		s := start(map[string]string{"REGISTRATIONS_PER_IP": "0"}) // 50 accounts from one address
		conns := make([]*servertest.Client, clients)
		for i := range conns {
			conns[i] = s.Connect(t, s.Register(t, fmt.Sprintf("user%d@example.com", i)))
		}
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < perClient; j++ {
					if err := c.WriteJSON(map[string]string{"type": "message", "text": fmt.Sprintf("%d/%d", i, j), "id": fmt.Sprint(j)}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := make(map[string]int) // sender name -> next expected j
				acks := 0
				for got := 0; got < (clients-1)*perClient+perClient; got++ {
					f, err := c.TryRead(servertest.Timeout)
					if err != nil {
						errs <- fmt.Errorf("client %d after %d frames: %v", i, got, err)
						return
					}
					switch f["type"] {
					case "ack":
						if f["id"] != fmt.Sprint(acks) {
							errs <- fmt.Errorf("client %d: ack %v, want %d", i, f["id"], acks)
							return
						}
						acks++
					case "message":
						var from, j int
						fmt.Sscanf(f["text"].(string), "%d/%d", &from, &j)
						if from == i {
							errs <- fmt.Errorf("client %d got its own message back", i)
							return
						}
						key := f["from"].(map[string]any)["name"].(string)
						if j != next[key] {
							errs <- fmt.Errorf("client %d: from %s got #%d, want #%d", i, key, j, next[key])
							return
						}
						next[key]++
					default:
						errs <- fmt.Errorf("client %d: unexpected %v", i, f)
						return
					}
				}
				if acks != perClient {
					errs <- fmt.Errorf("client %d: %d acks", i, acks)
				}
				// Nothing more: no duplicate is on its way.
				if f, err := c.TryRead(200 * time.Millisecond); err == nil {
					errs <- fmt.Errorf("client %d: extra frame %v", i, f)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		var stored int
		if err := servertest.QueryRow(t, s, `SELECT COUNT(*) FROM messages`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != clients*perClient {
			t.Errorf("stored %d messages, want %d", stored, clients*perClient)
		}
	})
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	u := s.Register(t, "ada@example.com")
	a, b := s.Connect(t, u), s.Connect(t, u)
	a.SendText("last words")
	a.Read() // ack
	go s.Stop(t)
	for name, c := range map[string]*servertest.Client{"a": a, "b": b} {
		if got := c.CloseCode(); got != websocket.CloseGoingAway {
			t.Errorf("%s: close code %d, want 1001", name, got)
		}
	}
}

// A peer that stops answering pings is disconnected after PONG_WAIT; one that answers stays.
func TestSilentPeerIsDisconnected(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"PING_INTERVAL": "100ms", "PONG_WAIT": "400ms"})
	u := s.Register(t, "ada@example.com")

	alive := s.Connect(t, u)
	var pings atomic.Int32
	alive.SetPingHandler(func(data string) error {
		pings.Add(1)
		return alive.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	frames := make(chan map[string]any, 1)
	go func() { // gorilla answers pings only while it reads
		for {
			f, err := alive.TryRead(servertest.Timeout)
			if err != nil {
				close(frames)
				return
			}
			frames <- f
		}
	}()

	silent := s.Connect(t, u)
	silent.SetPingHandler(func(string) error { return nil }) // swallow pings: no pong goes back
	if code := silent.CloseCode(); code != websocket.CloseAbnormalClosure {
		t.Errorf("silent peer: close code %d, want the connection dropped (1006)", code)
	}

	if pings.Load() == 0 {
		t.Error("the live peer got no ping")
	}
	alive.SendText("still alive")
	if f := <-frames; f["type"] != "ack" {
		t.Errorf("live peer: got %v, want an ack", f)
	}
}

func TestTokensNeverLogged(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"LOG_LEVEL": "debug"})
	u := s.Register(t, "ada@example.com")
	c := s.Connect(t, u)
	c.SendText("hi")
	c.Read()
	s.TryDial("/ws?token=bogus-token-value", nil)
	s.Do(t, http.MethodGet, "/api/me?token="+u.Token, "", nil)
	logs := s.Logs()
	for _, secret := range []string{u.Token, "bogus-token-value", "password123"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
	if !strings.Contains(logs, "token=REDACTED") {
		t.Error("logs have no redacted request line")
	}
	if !strings.Contains(logs, "message received") {
		t.Error("received message not logged")
	}
}

// A client's own ping, after the connection has been quiet for longer than the write deadline, still gets
// its pong: x/net/websocket answers it, and its writes must not inherit a lapsed deadline.
func TestClientPingAfterLongQuiet(t *testing.T) {
	t.Parallel() // it waits past the write deadline
	s := servertest.Start(t, map[string]string{"WS_WRITE_TIMEOUT": "1s"})
	c := s.Connect(t, s.Register(t, "ada@example.com"))
	time.Sleep(1500 * time.Millisecond) // the quiet itself is what is tested
	pong := make(chan string, 1)
	c.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("still there?"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go c.TryReadRaw(servertest.Timeout) // gorilla runs the pong handler while it reads
	select {
	case got := <-pong:
		if got != "still there?" {
			t.Errorf("pong %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}

// gorilla/websocket's default Dialer, the most common Go client, splits a message longer than its 4 KiB
// write buffer into continuation frames: each message must still be acknowledged once, delivered whole
// and stored once, on both backends.
func TestGorillaDefaultDialerMessagesArriveWhole(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"MAX_MESSAGE_BYTES": fmt.Sprint(60 << 10), "RATE_LIMIT": "0"})
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		sender, _ := s.DialWith(t, &websocket.Dialer{}, "/ws?token="+ada.Token) // 4 KiB buffers
		receiver := s.Connect(t, bob)
		texts := map[string]string{
			"1 B":    "x",
			"4 KiB":  strings.Repeat("a", 4<<10),
			"16 KiB": strings.Repeat("b", 16<<10),
			"60 KiB": strings.Repeat("c", 60<<10),
			// Two-byte characters: the client's frames cut some of them in two.
			"5,000 B of é": strings.Repeat("é", 2500),
		}
		for name, text := range texts {
			t.Run(name, func(t *testing.T) {
				id := "id-" + strings.ReplaceAll(name, " ", "-")
				sender.Send(map[string]string{"type": "message", "id": id, "text": text})
				for {
					f := sender.Read()
					if f["type"] == "welcome" || f["type"] == "presence" || f["type"] == "history" {
						continue
					}
					if f["type"] != "ack" || f["id"] != id {
						t.Fatalf("sender got %.200v, want the ack of %s", f, id)
					}
					if got := f["message"].(map[string]any)["text"]; got != text {
						t.Fatalf("acked text of %d bytes, want %d", len(got.(string)), len(text))
					}
					break
				}
				if m := receiver.Read(); m["type"] != "message" || m["text"] != text {
					t.Fatalf("receiver got %.200v, want the whole message", m)
				}
				var stored int
				if err := servertest.QueryRow(t, s, `SELECT COUNT(*) FROM messages WHERE client_id = $1`, id).Scan(&stored); err != nil {
					t.Fatal(err)
				}
				if stored != 1 {
					t.Errorf("stored %d times, want once", stored)
				}
			})
		}
	})
}

// With WS_COMPRESSION=1, a client that offers permessage-deflate gets it: its compressed messages are read
// whole, and large frames come to it compressed. Without the setting, nothing is negotiated.
func TestCompression(t *testing.T) {
	t.Parallel()
	text := strings.Repeat("Bonjour à tous, ", 200)
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("WS_COMPRESSION=%v", on), func(t *testing.T) {
			env := map[string]string{"MAX_MESSAGE_BYTES": "60000"}
			if on {
				env["WS_COMPRESSION"] = "1"
			}
			s := servertest.Start(t, env)
			ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
			offer := http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"}}
			raw := s.DialRaw(t, "/ws?token="+bob.Token, offer)
			if got := raw.Response.Header.Get("Sec-Websocket-Extensions"); (got != "") != on {
				t.Fatalf("extensions answered: %q", got)
			}
			raw.Opened()
			sender, resp := s.DialWith(t, &websocket.Dialer{EnableCompression: true}, "/ws?token="+ada.Token)
			if got := resp.Header.Get("Sec-Websocket-Extensions"); (got != "") != on {
				t.Fatalf("gorilla's offer answered: %q", got)
			}
			sender.Read() // welcome
			sender.Send(map[string]string{"type": "message", "id": "big", "text": text})
			for {
				f := sender.Read()
				if f["type"] == "ack" {
					if f["message"].(map[string]any)["text"] != text {
						t.Fatal("acked text differs")
					}
					break
				}
			}
			for {
				f := raw.Next()
				if f.Op != 0x1 || !bytes.Contains(f.Payload, []byte(`"type":"message"`)) {
					continue
				}
				if compressed := f.RSV == 0x40; compressed != on || on && f.Wire > len(text)/4 {
					t.Errorf("message frame of %d bytes on the wire, compressed %v", f.Wire, compressed)
				}
				var m map[string]any
				if err := json.Unmarshal(f.Payload, &m); err != nil || m["text"] != text {
					t.Errorf("message %.100v, %v", m, err)
				}
				break
			}
		})
	}
}
