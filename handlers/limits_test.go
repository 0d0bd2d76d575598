package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
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
	t.Parallel()
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
	t.Parallel()
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

// login posts credentials and returns the status, the error code and the Retry-After header.
func login(t *testing.T, s *servertest.Server, email, password string) (int, string, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := http.Post(s.URL+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error struct{ Code string } }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error.Code, resp.Header.Get("Retry-After")
}

// Login attempts are counted per account and address, per account and per address, across nodes with
// Redis: past a limit, even the right password waits for the window to end.
func TestLoginFailuresAreThrottled(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"LOGIN_FAILURES": "3"})
		s.Register(t, "ada@example.com")
		s.Register(t, "bob@example.com")
		for i := range 3 {
			if status, _, _ := login(t, s, "ada@example.com", "not-her-password"); status != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d, want 401", i+1, status)
			}
		}
		status, code, retry := login(t, s, "ada@example.com", "password123")
		if status != http.StatusTooManyRequests || code != "rate_limited" || retry == "" {
			t.Errorf("after 3 failures: %d %s, Retry-After %q; want 429 rate_limited with Retry-After", status, code, retry)
		}
		if status, _, _ := login(t, s, "bob@example.com", "password123"); status != http.StatusOK {
			t.Errorf("another account: %d, want 200", status)
		}
		// Attempts sent at once are counted at once: of 30, three reach a password check.
		var wg sync.WaitGroup
		var checked atomic.Int32
		for range 30 {
			wg.Go(func() {
				if status, _, _ := login(t, s, "cat@example.com", "guess"); status == http.StatusUnauthorized {
					checked.Add(1)
				}
			})
		}
		wg.Wait()
		if n := checked.Load(); n > 3 {
			t.Errorf("30 logins at once: %d reached a password check, want at most 3", n)
		}
		// An address that tries many accounts: twenty times the per-account limit.
		for i := range 60 {
			login(t, s, fmt.Sprintf("guess%d@example.com", i), "guess")
		}
		if status, _, _ := login(t, s, "bob@example.com", "password123"); status != http.StatusTooManyRequests {
			t.Errorf("after 100 attempts from one address: %d, want 429", status)
		}
	})
}

// Someone who mistypes their password twice, then gets it right, day after day, never waits.
func TestOrdinaryLoginsAreNotThrottled(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	s.Register(t, "ada@example.com")
	for day := range 5 {
		for range 2 {
			if status, _, _ := login(t, s, "ada@example.com", "pasword123"); status != http.StatusUnauthorized {
				t.Fatalf("day %d: a typo got %d, want 401", day, status)
			}
		}
		if status, code, _ := login(t, s, "ada@example.com", "password123"); status != http.StatusOK {
			t.Fatalf("day %d: the right password got %d %s, want 200", day, status, code)
		}
	}
}

// All of a user's connections, and REST posts, share one budget of RATE_LIMIT frames per second: more
// sockets do not buy more messages.
func TestMessageBudgetIsPerUser(t *testing.T) {
	t.Parallel()
	// One frame every 100 s past the burst: however slow the test runs, the burst is all that passes.
	s := servertest.Start(t, map[string]string{"RATE_LIMIT": "0.01", "RATE_BURST": "5"})
	ada := s.Register(t, "ada@example.com")
	tabs := make([]*servertest.Client, 4)
	for i := range tabs {
		tabs[i] = s.Connect(t, ada)
	}
	for i, c := range tabs {
		for j := range 5 {
			c.Send(map[string]string{"type": "message", "id": fmt.Sprintf("t%d-%d", i, j), "text": "hi"})
		}
	}
	// Frames over the budget are dropped as they are read, before anything is stored; those taken are
	// stored in order, so once bob's later message is in the room, all of ada's taken ones are too.
	bob := s.Register(t, "bob@example.com")
	if status, _ := s.Do(t, http.MethodPost, "/api/rooms/general/messages", bob.Token, map[string]string{"text": "marker"}); status != http.StatusCreated {
		t.Fatalf("bob's post: %d", status)
	}
	_, body := s.Do(t, http.MethodGet, "/api/rooms/general/messages?limit=100", ada.Token, nil)
	stored := 0
	for _, m := range body["messages"].([]any) {
		if m.(map[string]any)["from"].(map[string]any)["name"] == "ada" {
			stored++
		}
	}
	if stored != 5 {
		t.Errorf("4 connections of one user sent 20 messages at once: %d stored, want the burst's 5", stored)
	}
	// Each connection that was refused hears of it once for the wait, not once per frame.
	for i, c := range tabs {
		c.Send(map[string]string{"type": "ping"})
		errors := 0
		for f := c.Read(); f["type"] != "pong"; f = c.Read() {
			if f["code"] == "rate_limited" {
				if f["retry_after_ms"].(float64) <= 0 {
					t.Errorf("tab %d: %v has no retry_after_ms", i, f)
				}
				errors++
			}
		}
		if errors > 1 {
			t.Errorf("tab %d got %d rate_limited errors for one wait, want at most 1", i, errors)
		}
	}
	status, body := s.Do(t, http.MethodPost, "/api/rooms/general/messages", ada.Token, map[string]string{"text": "from a script"})
	if status != http.StatusTooManyRequests || body["error"].(map[string]any)["code"] != "rate_limited" {
		t.Errorf("a REST post with the budget spent: %d %v, want 429 rate_limited", status, body)
	}
	if status, _ := s.Do(t, http.MethodPost, "/api/rooms/general/messages", bob.Token, map[string]string{"text": "hello"}); status != http.StatusCreated {
		t.Errorf("another user's post: %d, want 201", status)
	}
}

// Three tabs chatting at 5 messages a second in all, a JSON ping now and then, never meet the defaults.
func TestOrdinaryChatNeverMeetsTheBudget(t *testing.T) {
	t.Parallel() // it waits on the clock; its server is its own
	s := servertest.Start(t, nil)
	ada := s.Register(t, "ada@example.com")
	tabs := []*servertest.Client{s.Connect(t, ada), s.Connect(t, ada), s.Connect(t, ada)}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := range 15 {
		<-tick.C
		tabs[i%3].Send(map[string]string{"type": "message", "id": fmt.Sprint("m", i), "text": "bonjour"})
		if i%5 == 0 {
			tabs[i%3].Send(map[string]string{"type": "ping"})
		}
	}
	tabs[0].Send(map[string]string{"type": "ping"})
	for f := tabs[0].Read(); f["type"] != "pong"; f = tabs[0].Read() {
		if f["type"] == "error" {
			t.Fatalf("got %v", f)
		}
	}
	for i, c := range tabs[1:] {
		c.Send(map[string]string{"type": "ping"})
		for f := c.Read(); f["type"] != "pong"; f = c.Read() {
			if f["type"] == "error" {
				t.Fatalf("tab %d got %v", i+2, f)
			}
		}
	}
}

// Pings have a budget of their own per connection: a client pinging in a loop gets a few pongs, and its
// messages still go through.
func TestPingsHaveABudget(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	c := s.Connect(t, s.Register(t, "ada@example.com"))
	for range 200 {
		c.Send(map[string]string{"type": "ping"})
	}
	c.Send(map[string]string{"type": "message", "id": "after", "text": "still here"})
	pongs := 0
	for f := c.Read(); f["type"] != "ack"; f = c.Read() {
		if f["type"] == "pong" {
			pongs++
		}
	}
	if pongs > 25 {
		t.Errorf("200 pings at once got %d pongs, want the budget's 20 or so", pongs)
	}
}

// A user creates at most ROOMS_PER_HOUR rooms; messages, in rooms of theirs or others', are not counted.
func TestRoomCreationsAreCapped(t *testing.T) {
	t.Parallel()
	servertest.EachBackend(t, func(t *testing.T, start func(map[string]string) *servertest.Server) {
		s := start(map[string]string{"ROOMS_PER_HOUR": "3", "RATE_LIMIT": "0"})
		ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
		create := func(u servertest.User, room string, private bool) (int, map[string]any) {
			return s.Do(t, http.MethodPost, "/api/rooms", u.Token, map[string]any{"name": room, "private": private})
		}
		for i := range 3 {
			if status, body := create(ada, fmt.Sprint("ada-", i), i == 2); status != http.StatusCreated {
				t.Fatalf("room %d: %d %v", i, status, body)
			}
		}
		if status, body := create(ada, "ada-3", true); status != http.StatusTooManyRequests || body["error"].(map[string]any)["code"] != "rate_limited" {
			t.Errorf("a fourth room: %d %v, want 429 rate_limited", status, body)
		}
		post := func(u servertest.User, room string) int {
			status, _ := s.Do(t, http.MethodPost, "/api/rooms/"+room+"/messages", u.Token, map[string]string{"text": "hi"})
			return status
		}
		for _, p := range []struct {
			who  servertest.User
			room string
		}{{ada, "ada-0"}, {ada, "ada-0"}, {bob, "ada-1"}, {ada, "general"}} {
			if status := post(p.who, p.room); status != http.StatusCreated {
				t.Errorf("%s posting in %s: %d, want 201", p.who.Name, p.room, status)
			}
		}
		// Another user has a cap of their own.
		if status, body := create(bob, "bob-0", false); status != http.StatusCreated {
			t.Errorf("bob's first room: %d %v, want 201", status, body)
		}
		// A DM is a room: ada, over her cap, cannot open one; once bob has, it costs her nothing to open it.
		dm := func(u servertest.User, with string) int {
			status, _ := s.Do(t, http.MethodPost, "/api/dms", u.Token, map[string]any{"user": with})
			return status
		}
		if status := dm(ada, "bob"); status != http.StatusTooManyRequests {
			t.Errorf("ada opening a DM over her cap: %d, want 429", status)
		}
		if status := dm(bob, "ada"); status != http.StatusCreated {
			t.Errorf("bob opening a DM with ada: %d, want 201", status)
		}
		if status := dm(ada, "bob"); status != http.StatusOK {
			t.Errorf("ada opening the DM bob made: %d, want 200", status)
		}
	})
}

// A user who makes a few rooms and writes to a dozen people, twice, never meets ROOMS_PER_HOUR's default.
func TestOrdinaryRoomMakingNeverMeetsTheCap(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	ada := s.Register(t, "ada@example.com")
	for i := range 5 {
		if status, body := s.Do(t, http.MethodPost, "/api/rooms", ada.Token, map[string]any{"name": fmt.Sprint("projet-", i), "private": i%2 == 0}); status != http.StatusCreated {
			t.Fatalf("room %d: %d %v", i, status, body)
		}
	}
	var friends []string
	for i := range 12 {
		friends = append(friends, s.Register(t, fmt.Sprintf("ami%d@example.com", i)).Name)
	}
	for round, want := range []int{http.StatusCreated, http.StatusOK} {
		for _, name := range friends {
			if status, body := s.Do(t, http.MethodPost, "/api/dms", ada.Token, map[string]any{"user": name}); status != want {
				t.Fatalf("round %d, DM with %s: %d %v, want %d", round, name, status, body, want)
			}
		}
	}
}

// WebSocket control pings share the connection's ping budget: a loop of them gets a few pongs.
func TestControlPingsHaveABudget(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	c := s.DialRaw(t, "/ws?token="+s.Register(t, "ada@example.com").Token, nil)
	c.Opened()
	var frames [][]byte
	for i := range 200 {
		frames = append(frames, servertest.ClientFrame(true, 0, 0x9, []byte(fmt.Sprint(i))))
	}
	c.Write(frames...)
	c.Write(servertest.Text("after the pings"))
	pongs := 0
	for {
		f := c.Next()
		if f.Op == 0xA {
			pongs++
		}
		if f.Op == 0x1 && bytes.Contains(f.Payload, []byte(`"ack"`)) {
			break
		}
	}
	if pongs > 25 {
		t.Errorf("200 pings got %d pongs, want the budget's 20 or fewer", pongs)
	}
}

// An address registers at most REGISTRATIONS_PER_IP accounts an hour; a family of five never meets the
// default.
func TestRegistrationsPerAddress(t *testing.T) {
	t.Parallel()
	t.Run("over the cap", func(t *testing.T) {
		s := servertest.Start(t, map[string]string{"REGISTRATIONS_PER_IP": "3"})
		for i := range 3 {
			s.Register(t, fmt.Sprintf("user%d@example.com", i))
		}
		status, body := s.Do(t, http.MethodPost, "/api/register", "", map[string]string{"email": "more@example.com", "password": "password123"})
		if status != http.StatusTooManyRequests || body["error"].(map[string]any)["code"] != "rate_limited" {
			t.Errorf("a fourth account: %d %v, want 429 rate_limited", status, body)
		}
	})
	t.Run("a family", func(t *testing.T) {
		s := servertest.Start(t, nil)
		for _, name := range []string{"mum", "dad", "lea", "tom", "granny"} {
			s.Register(t, name+"@example.com")
		}
	})
}

// Logins that succeed do not add up against their address: an office behind one address logs in all
// morning and never meets the per-address limit.
func TestSuccessfulLoginsDoNotAddUpPerAddress(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"LOGIN_FAILURES": "1"}) // 20 attempts per address
	for i := range 3 {
		s.Register(t, fmt.Sprintf("colleague%d@example.com", i))
	}
	for i := range 30 {
		if status, code, _ := login(t, s, fmt.Sprintf("colleague%d@example.com", i%3), "password123"); status != http.StatusOK {
			t.Fatalf("login %d: %d %s, want 200", i+1, status, code)
		}
	}
}

// dialUntilRefused dials path on s until the upgrade is refused, closing each connection it gets: the
// other nodes' figures reach s within an exchange (a second).
func dialUntilRefused(t *testing.T, s *servertest.Server, path string) {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for time.Now().Before(deadline) {
		c, resp, err := s.TryDial(path, nil)
		if err != nil {
			if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("dial: %v (%v), want 429", err, resp)
			}
			return
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the upgrade was never refused")
}

// MAX_CONNS_PER_USER holds across nodes: a user at the cap on one node is refused on the other.
func TestConnectionCapAcrossNodes(t *testing.T) {
	t.Parallel() // it waits on the clock; its server is its own
	nodes := servertest.NodeEnvs(t, 2, map[string]string{"MAX_CONNS_PER_USER": "3"})
	one, two := servertest.Start(t, nodes[0]), servertest.Start(t, nodes[1])
	ada := one.Register(t, "ada@example.com")
	for range 3 {
		one.Connect(t, ada)
	}
	dialUntilRefused(t, two, "/ws?token="+ada.Token)
	refusedUpgrade(t, two, "/ws?token="+ada.Token, "too_many_connections")
	two.Connect(t, two.Register(t, "bob@example.com"))
}

// A user with three tabs spread over two nodes, reloading one ten times, never meets the default cap.
func TestOrdinaryUseNeverMeetsTheCapAcrossNodes(t *testing.T) {
	t.Parallel() // it waits on the clock; its server is its own
	one, two := nodesWithDefaultLimits(t)
	ada := one.Register(t, "ada@example.com")
	one.Connect(t, ada)
	one.Connect(t, ada)
	two.Connect(t, ada)
	for i := range 10 {
		node := []*servertest.Server{one, two}[i%2]
		c, resp, err := node.TryDial("/ws?token="+ada.Token, nil)
		if err != nil {
			t.Fatalf("reload %d: %v (%v)", i, err, resp)
		}
		c.Close()
		time.Sleep(150 * time.Millisecond) // a reload storm spans exchanges
	}
}

// RATE_LIMIT holds across nodes: two sockets of one user, one per node, each sending under the limit
// but together over it, are refused. Each node alone would let everything through.
func TestRateLimitAcrossNodes(t *testing.T) {
	t.Parallel() // it waits on the clock; its server is its own
	envs := servertest.NodeEnvs(t, 2, map[string]string{"RATE_LIMIT": "10", "RATE_BURST": "10"})
	one, two := servertest.Start(t, envs[0]), servertest.Start(t, envs[1])
	ada := one.Register(t, "ada@example.com")
	sockets := []*servertest.Client{one.Connect(t, ada), two.Connect(t, ada)}
	// 8 messages a second on each socket, for 4 seconds: under 10 each, 16 together.
	const perSocket = 32
	for i := range perSocket {
		for j, c := range sockets {
			c.Send(map[string]string{"type": "message", "text": fmt.Sprint(j, "-", i), "id": fmt.Sprint(j, "-", i)})
		}
		time.Sleep(125 * time.Millisecond)
	}
	acked, limited := 0, 0
	for _, c := range sockets {
		for acked+limited < 2*perSocket {
			f, err := c.TryRead(time.Second)
			if err != nil {
				break // a frame over the limit gets one error per wait, not one each
			}
			switch {
			case f["type"] == "ack":
				acked++
			case f["type"] == "error" && f["code"] == "rate_limited":
				limited++
			}
		}
	}
	if limited == 0 {
		t.Fatalf("%d messages acknowledged and none refused: each node counted its own socket alone", acked)
	}
	// 10 of burst and 10 a second for 4 seconds, and what an exchange lets through on each node.
	if acked > 10+10*4+2*10 {
		t.Errorf("%d messages acknowledged, want at most about 70", acked)
	}
	t.Logf("%d acknowledged, %d rate_limited error frames", acked, limited)
}

// A user with three tabs over two nodes, each chatting at 5 messages a second, never meets the default
// rate limit, all nodes counted together.
func TestOrdinaryChatNeverMeetsTheRateLimitAcrossNodes(t *testing.T) {
	t.Parallel() // it waits on the clock; its server is its own
	one, two := nodesWithDefaultLimits(t)
	ada := one.Register(t, "ada@example.com")
	tabs := []*servertest.Client{one.Connect(t, ada), one.Connect(t, ada), two.Connect(t, ada)}
	const perTab = 15 // 3 seconds at 5 a second
	for i := range perTab {
		for j, c := range tabs {
			c.Send(map[string]string{"type": "message", "text": fmt.Sprint(j, "-", i), "id": fmt.Sprint(j, "-", i)})
		}
		time.Sleep(200 * time.Millisecond)
	}
	for j, c := range tabs {
		for acked := 0; acked < perTab; {
			f := c.Read()
			switch f["type"] {
			case "ack":
				acked++
			case "error":
				t.Fatalf("tab %d: %v", j, f)
			}
		}
	}
}

// nodesWithDefaultLimits starts two nodes of one deployment with the default limits, RATE_LIMIT included
// (servertest.NodeEnvs turns it off): what an ordinary user meets.
func nodesWithDefaultLimits(t *testing.T) (one, two *servertest.Server) {
	t.Helper()
	envs := servertest.NodeEnvs(t, 2, nil)
	for _, env := range envs {
		delete(env, "RATE_LIMIT")
	}
	return servertest.Start(t, envs[0]), servertest.Start(t, envs[1])
}
