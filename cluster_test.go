package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"go.uber.org/goleak"

	"github.com/causerie/causerie/app/bus/bustest"
	"github.com/causerie/causerie/app/servertest"
)

// The tests in this file run the real binary as three processes on loopback ports, sharing PostgreSQL
// and Redis (TEST_DATABASE_URL, TEST_REDIS_URL; they skip without them), and kill them, cut their Redis
// connections, or restart a Redis of their own, while messages flow. Each one checks, message by
// message, that every connection got every stored message exactly once: it logs the counts (lost,
// duplicated) it found.

// TestMain removes the binary the tests built, and fails them if any goroutine outlives them.
func TestMain(m *testing.M) {
	code := m.Run()
	servertest.RemoveBinary()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// quiet is how long a connection that has everything it should is watched for more (a duplicate, a late
// frame): the only way to see that something does not come.
const quiet = 300 * time.Millisecond

// startCluster starts n processes of the binary, the nodes of servertest.NodeEnvs.
func startCluster(t *testing.T, n int, env map[string]string) []*servertest.Node {
	t.Helper()
	var nodes []*servertest.Node
	for _, e := range servertest.NodeEnvs(t, n, env) {
		nodes = append(nodes, servertest.StartProcess(t, e))
	}
	return nodes
}

// received is a message as a connection got it, or as the history lists it.
type received struct {
	ID   int64
	Text string
	From string
}

func parseMessage(v any) (received, error) {
	m, _ := v.(map[string]any)
	id, _ := m["id"].(float64)
	text, _ := m["text"].(string)
	from, _ := m["from"].(map[string]any)
	name, _ := from["name"].(string)
	if id <= 0 || text == "" || name == "" {
		return received{}, fmt.Errorf("malformed message %v", v)
	}
	return received{ID: int64(id), Text: text, From: name}, nil
}

// ack is the answer to one of a member's messages: the id it was stored under, and how many message
// frames the member had received when it came.
type ack struct {
	ID    int64
	After int
}

// member is one user's WebSocket to the room general, read on a goroutine of its own, and reconnected
// (with since) by the test after its node dies. It records every message frame and every ack it gets,
// over all its connections. A member that sends writes the messages <name>-0 to <name>-(n-1), the text
// being the client id, from a goroutine of its own.
type member struct {
	name string // for failure messages: "cat on node-3"
	user servertest.User

	mu         sync.Mutex
	conn       *servertest.Client
	ended      chan struct{}  // closed when the current connection's reader stops
	endErr     error          // why it stopped
	firstEnd   error          // why the first connection stopped, kept across reconnections
	got        []received     // message frames, in arrival order
	replayed   map[int64]bool // ids of the message frames that came in a resume's replay
	acks       map[string]ack
	last       int64 // the largest message id seen: where a resume starts
	conns      int
	unexpected []string // error frames, frames for other rooms, frames of unknown types

	n          int           // messages to send (0: the member only listens)
	every      time.Duration // between two messages (0: as fast as the socket takes them)
	writerDone chan struct{} // closed when the writer stops, nil without a writer
	wrote      map[int]bool  // the indexes of the messages written at least once
}

// join opens u's first connection to node, reads its welcome, presence and history, and starts reading.
func join(t *testing.T, node *servertest.Node, u servertest.User) *member {
	t.Helper()
	m := &member{name: u.Name + " on " + node.Config.NodeID, user: u, acks: map[string]ack{}, replayed: map[int64]bool{}, wrote: map[int]bool{}}
	m.connect(t, node)
	return m
}

// connect opens a connection to node: the first one gets the room's history, the next ones resume from
// the last message id seen. It returns once the backlog is read, and leaves the rest to a reader
// goroutine.
func (m *member) connect(t *testing.T, node *servertest.Node) {
	t.Helper()
	m.mu.Lock()
	first, since := m.conns == 0, m.last
	m.mu.Unlock()
	path := "/ws?token=" + m.user.Token
	if !first {
		path += fmt.Sprintf("&since=general:%d", since)
	}
	c := node.Dial(t, path, nil)
	if f := c.Read(); f["type"] != "welcome" {
		t.Fatalf("%s: first frame %v, want a welcome", m.name, f)
	}
	c.Expect("presence", "general")
	if first {
		h := c.Expect("history", "general")
		for _, v := range h["messages"].([]any) {
			msg, err := parseMessage(v)
			if err != nil {
				t.Fatalf("%s: history: %v", m.name, err)
			}
			m.last = max(m.last, msg.ID)
		}
	} else {
		replayed := 0
		for {
			f := c.Read()
			if f["type"] == "resumed" {
				if f["room"] != "general" || f["complete"] != true {
					t.Errorf("%s: got %v, want general resumed completely", m.name, f)
				}
				break
			}
			if f["type"] != "message" {
				t.Fatalf("%s: got %v while resuming from %d, want messages then resumed", m.name, f, since)
			}
			m.record(f)
			if msg, err := parseMessage(f); err == nil {
				m.mu.Lock()
				m.replayed[msg.ID] = true
				m.mu.Unlock()
			}
			replayed++
		}
		t.Logf("%s: resumed on %s from id %d: %d messages replayed", m.name, node.Config.NodeID, since, replayed)
		m.name = m.user.Name + " on " + node.Config.NodeID
	}
	ended := make(chan struct{})
	m.mu.Lock()
	m.conn, m.ended, m.endErr = c, ended, nil
	m.conns++
	m.mu.Unlock()
	go m.read(c, ended)
}

// readIdle bounds how long a reader waits for a frame; the test ends well before.
const readIdle = 5 * time.Minute

// read records c's frames until it ends.
func (m *member) read(c *servertest.Client, ended chan struct{}) {
	defer close(ended)
	for {
		f, err := c.TryReadRaw(readIdle)
		if err != nil {
			m.mu.Lock()
			m.endErr = err
			if m.firstEnd == nil {
				m.firstEnd = err
			}
			m.mu.Unlock()
			return
		}
		m.record(f)
	}
}

func (m *member) record(f map[string]any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch f["type"] {
	case "message":
		if f["room"] != "general" {
			m.unexpected = append(m.unexpected, fmt.Sprint(f))
			return
		}
		msg, err := parseMessage(f)
		if err != nil {
			m.unexpected = append(m.unexpected, err.Error())
			return
		}
		m.got = append(m.got, msg)
		m.last = max(m.last, msg.ID)
	case "ack":
		if f["for"] != "message" {
			m.unexpected = append(m.unexpected, fmt.Sprint(f))
			return
		}
		id, _ := f["id"].(string)
		msg, err := parseMessage(f["message"])
		if err != nil {
			m.unexpected = append(m.unexpected, err.Error())
			return
		}
		if msg.Text != id {
			m.unexpected = append(m.unexpected, fmt.Sprintf("ack for %q holds %q", id, msg.Text))
		}
		if _, ok := m.acks[id]; !ok {
			m.acks[id] = ack{ID: msg.ID, After: len(m.got)}
		}
		m.last = max(m.last, msg.ID)
	case "joined", "left", "presence", "typing", "pong":
	case "rooms", "read": // the user's room list, sent again by a node whose bus was cut
	default:
		m.unexpected = append(m.unexpected, fmt.Sprint(f))
	}
}

// send starts writing the member's n messages, one every every.
func (m *member) send(n int, every time.Duration) {
	m.n, m.every = n, every
	m.startWriter(m.unacked())
}

// unacked returns the indexes of the member's messages not acknowledged yet, in order.
func (m *member) unacked() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var idx []int
	for i := 0; i < m.n; i++ {
		if _, ok := m.acks[m.clientID(i)]; !ok {
			idx = append(idx, i)
		}
	}
	return idx
}

func (m *member) clientID(i int) string { return fmt.Sprintf("%s-%d", m.user.Name, i) }

// startWriter writes the messages idx on the current connection, until it ends.
func (m *member) startWriter(idx []int) {
	m.mu.Lock()
	c, ended := m.conn, m.ended
	done := make(chan struct{})
	m.writerDone = done
	m.mu.Unlock()
	go func() {
		defer close(done)
		var tick <-chan time.Time
		if m.every > 0 {
			tk := time.NewTicker(m.every)
			defer tk.Stop()
			tick = tk.C
		}
		for _, i := range idx {
			if tick != nil {
				select {
				case <-ended:
					return
				case <-tick:
				}
			} else {
				select {
				case <-ended:
					return
				default:
				}
			}
			id := m.clientID(i)
			_ = c.SetWriteDeadline(time.Now().Add(servertest.Timeout))
			if err := c.WriteJSON(map[string]string{"type": "message", "id": id, "text": id}); err != nil {
				return // the reader sees the end too
			}
			m.mu.Lock()
			m.wrote[i] = true
			m.mu.Unlock()
		}
	}()
}

// recover waits until the member's connection has ended (its node died), connects to node with since,
// and sends again every message it got no ack for, with the same client ids, then the rest.
func (m *member) recover(t *testing.T, node *servertest.Node) {
	t.Helper()
	m.mu.Lock()
	ended, writerDone := m.ended, m.writerDone
	m.mu.Unlock()
	select {
	case <-ended:
	case <-time.After(servertest.Timeout):
		t.Fatalf("%s: connection still open %v after its node died", m.name, servertest.Timeout)
	}
	if writerDone != nil {
		<-writerDone // it stops once ended is closed, or a write fails
	}
	m.mu.Lock()
	t.Logf("%s: connection ended (%v) with %d messages received, %d of %d acked", m.name, m.endErr, len(m.got), len(m.acks), m.n)
	m.mu.Unlock()
	m.connect(t, node)
	if m.n > 0 {
		idx := m.unacked()
		again := 0
		m.mu.Lock()
		for _, i := range idx {
			if m.wrote[i] {
				again++
			}
		}
		m.mu.Unlock()
		m.startWriter(idx)
		t.Logf("%s: sending again, with the same ids, the %d messages written without an ack, then %d more", m.name, again, len(idx)-again)
	}
}

// closeCode returns the close code that ended the member's first connection, 0 if none did.
func (m *member) closeCode() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ce *websocket.CloseError
	if errors.As(m.firstEnd, &ce) {
		return ce.Code
	}
	return 0
}

// isEnded reports whether the current connection has ended.
func (m *member) isEnded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.ended:
		return true
	default:
		return false
	}
}

func (m *member) acked() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.acks)
}

// delivered returns how many distinct messages reached the member, as message frames or acks.
func (m *member) delivered() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := map[int64]bool{}
	for _, r := range m.got {
		ids[r.ID] = true
	}
	for _, a := range m.acks {
		ids[a.ID] = true
	}
	return len(ids)
}

// checkDelivery fails the test unless every message of hist reached m exactly once, as a message frame
// or as the ack of its own message, with the message frames in id order, and nothing else came. A message
// frame for a message m sent is a duplicate, unless it came in a resume's replay before the ack: the
// message had been stored, its ack lost with the node, and m sent it again after resuming.
func checkDelivery(t *testing.T, m *member, hist []received) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	stored := map[int64]received{}
	for _, r := range hist {
		stored[r.ID] = r
	}
	ackedAt := map[int64]ack{}
	for _, a := range m.acks {
		ackedAt[a.ID] = a
	}
	count := map[int64]int{}
	var lost, dup, disorder, extra []string
	var prev int64
	for i, r := range m.got {
		count[r.ID]++
		switch {
		case count[r.ID] > 1:
			dup = append(dup, fmt.Sprintf("%d %q", r.ID, r.Text))
			continue
		case r.ID <= prev:
			disorder = append(disorder, fmt.Sprintf("%d %q after %d", r.ID, r.Text, prev))
		}
		prev = r.ID
		if s, ok := stored[r.ID]; !ok || s != r {
			extra = append(extra, fmt.Sprintf("%d %q (stored: %v)", r.ID, r.Text, s))
		}
		if a, ok := ackedAt[r.ID]; ok && (!m.replayed[r.ID] || a.After <= i) {
			when := "after"
			if a.After > i {
				when = "before"
			}
			dup = append(dup, fmt.Sprintf("%d %q as a message %s its ack (frame %d, ack after frame %d)", r.ID, r.Text, when, i, a.After))
		}
	}
	for _, r := range hist {
		if _, acked := ackedAt[r.ID]; count[r.ID] == 0 && !acked {
			lost = append(lost, fmt.Sprintf("%d %q", r.ID, r.Text))
		}
	}
	t.Logf("%s: %d messages stored, %d received as messages, %d acked; lost %d, duplicated %d, out of order %d, not stored %d; %d connections",
		m.name, len(hist), len(m.got), len(m.acks), len(lost), len(dup), len(disorder), len(extra), m.conns)
	for _, c := range []struct {
		what string
		ids  []string
	}{{"lost", lost}, {"duplicated", dup}, {"out of order", disorder}, {"not in the history", extra}, {"unexpected frames", m.unexpected}} {
		if len(c.ids) > 0 {
			t.Errorf("%s: %d %s: %s", m.name, len(c.ids), c.what, sample(c.ids))
		}
	}
}

func sample(list []string) string {
	const shown = 10
	if len(list) > shown {
		return strings.Join(list[:shown], ", ") + fmt.Sprintf(" and %d more", len(list)-shown)
	}
	return strings.Join(list, ", ")
}

// history returns every message of the room general, oldest first, as node serves them.
func history(t *testing.T, node *servertest.Node, token string) []received {
	t.Helper()
	const page = 200
	var all []received
	before := ""
	for {
		status, body := node.Do(t, http.MethodGet, fmt.Sprintf("/api/rooms/general/messages?limit=%d%s", page, before), token, nil)
		if status != http.StatusOK {
			t.Fatalf("history from %s: status %d, body %v", node.Config.NodeID, status, body)
		}
		list := body["messages"].([]any)
		msgs := make([]received, len(list))
		for i, v := range list {
			msg, err := parseMessage(v)
			if err != nil {
				t.Fatalf("history from %s: %v", node.Config.NodeID, err)
			}
			msgs[i] = msg
		}
		all = append(msgs, all...)
		if len(list) < page {
			return all
		}
		before = fmt.Sprintf("&before=%d", msgs[0].ID)
	}
}

// sameHistory returns the history of general as the first node serves it, failing the test unless
// every other node serves the same.
func sameHistory(t *testing.T, nodes []*servertest.Node, token string) []received {
	t.Helper()
	hist := history(t, nodes[0], token)
	for _, node := range nodes[1:] {
		if other := history(t, node, token); !slices.Equal(other, hist) {
			t.Errorf("history from %s differs from %s's:\n%v\n%v", node.Config.NodeID, nodes[0].Config.NodeID, other, hist)
		}
	}
	return hist
}

// checkHistory fails the test unless hist holds each message of each sender exactly once (the text of
// message i of ada is ada-i, which is also its client id), in id order, each sender's in the order sent,
// and each acknowledged to its sender under its stored id.
func checkHistory(t *testing.T, hist []received, senders ...*member) {
	t.Helper()
	stored := map[string][]int64{}
	var prev int64
	for _, r := range hist {
		if r.ID <= prev {
			t.Errorf("history: id %d after %d: ids must grow", r.ID, prev)
		}
		prev = r.ID
		stored[r.Text] = append(stored[r.Text], r.ID)
	}
	total := 0
	for _, s := range senders {
		s.mu.Lock()
		var lost, dup, unacked, disorder []string
		last := int64(0)
		for i := 0; i < s.n; i++ {
			id := s.clientID(i)
			ids := stored[id]
			switch {
			case len(ids) == 0:
				lost = append(lost, id)
				continue
			case len(ids) > 1:
				dup = append(dup, fmt.Sprintf("%s %v", id, ids))
			}
			if a, ok := s.acks[id]; !ok || a.ID != ids[0] {
				unacked = append(unacked, fmt.Sprintf("%s stored as %d, acked %v", id, ids[0], a))
			}
			if ids[0] < last {
				disorder = append(disorder, fmt.Sprintf("%s (%d) before %d", id, ids[0], last))
			}
			last = ids[0]
			total += len(ids)
		}
		s.mu.Unlock()
		t.Logf("history of %s's %d messages: lost %d, stored twice %d, ack missing or wrong %d, out of order %d", s.user.Name, s.n, len(lost), len(dup), len(unacked), len(disorder))
		for _, c := range []struct {
			what string
			ids  []string
		}{{"not stored", lost}, {"stored more than once", dup}, {"without the right ack", unacked}, {"stored out of the order sent", disorder}} {
			if len(c.ids) > 0 {
				t.Errorf("%s: %d messages %s: %s", s.user.Name, len(c.ids), c.what, sample(c.ids))
			}
		}
	}
	if total != len(hist) {
		t.Errorf("history holds %d messages, want the %d the senders sent", len(hist), total)
	}
}

// waitUntil polls cond until it holds or timeout passes, and reports whether it held.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitDelivered waits until each member has received the n messages of the history, then for quiet, so
// that a duplicate has time to show.
func waitDelivered(t *testing.T, n int, members ...*member) {
	t.Helper()
	for _, m := range members {
		if !waitUntil(servertest.Timeout, func() bool { return m.delivered() >= n }) {
			t.Errorf("%s: %d of %d messages after %v", m.name, m.delivered(), n, servertest.Timeout)
		}
	}
	time.Sleep(quiet)
}

// waitAcked waits until every sender has its n acks.
func waitAcked(t *testing.T, senders ...*member) {
	t.Helper()
	for _, s := range senders {
		if !waitUntil(servertest.Timeout, func() bool { return s.acked() >= s.n }) {
			t.Fatalf("%s: %d of %d messages acknowledged after %v", s.name, s.acked(), s.n, servertest.Timeout)
		}
	}
}

// Users on three nodes chat at once: every message reaches every other connection exactly once, in one
// order (the ids') that keeps each sender's, and the history is the same from every node.
func TestClusterChat(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	bobUser := nodes[1].Register(t, "bob@example.com")
	ada := join(t, nodes[0], nodes[0].Register(t, "ada@example.com"))
	bob := join(t, nodes[1], bobUser)
	bob2 := join(t, nodes[2], bobUser) // bob's other tab, on another node: gets bob's messages too
	cat := join(t, nodes[2], nodes[2].Register(t, "cat@example.com"))

	const n = 150
	start := time.Now()
	for _, s := range []*member{ada, bob, cat} {
		s.send(n, 0)
	}
	waitAcked(t, ada, bob, cat)
	hist := sameHistory(t, nodes, ada.user.Token)
	checkHistory(t, hist, ada, bob, cat)
	waitDelivered(t, len(hist), ada, bob, bob2, cat)
	t.Logf("%d messages from 3 senders on 3 nodes delivered to 4 connections in %v", len(hist), time.Since(start).Round(time.Millisecond))
	for _, m := range []*member{ada, bob, bob2, cat} {
		checkDelivery(t, m, hist)
	}
}

// online returns the online count of the room general from node's GET /api/rooms.
func online(t *testing.T, node *servertest.Node, token string) int {
	t.Helper()
	status, body := node.Do(t, http.MethodGet, "/api/rooms", token, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /api/rooms on %s: status %d, body %v", node.Config.NodeID, status, body)
	}
	for _, r := range body["rooms"].([]any) {
		if r := r.(map[string]any); r["name"] == "general" {
			return int(r["online"].(float64))
		}
	}
	return 0
}

// presenceNames connects u to node and returns the names in the presence frame of general.
func presenceNames(t *testing.T, node *servertest.Node, u servertest.User) (*servertest.Client, string) {
	t.Helper()
	c := node.Dial(t, "/ws?token="+u.Token, nil)
	if f := c.Read(); f["type"] != "welcome" {
		t.Fatalf("first frame %v, want a welcome", f)
	}
	p := c.Expect("presence", "general")
	var names []string
	for _, v := range p["users"].([]any) {
		names = append(names, v.(map[string]any)["name"].(string))
	}
	c.Expect("history", "general")
	sort.Strings(names)
	return c, strings.Join(names, ",")
}

// expectPresenceFrame reads c's next frame, of any kind, and fails unless it is a typ frame (joined or
// left) for name in general.
func expectPresenceFrame(t *testing.T, who string, c *servertest.Client, typ, name string, wait time.Duration) {
	t.Helper()
	f, err := c.TryReadRaw(wait)
	if err != nil {
		t.Fatalf("%s: no %s frame for %s within %v: %v", who, typ, name, wait, err)
	}
	if u, _ := f["user"].(map[string]any); f["type"] != typ || f["room"] != "general" || u["name"] != name {
		t.Fatalf("%s got %v, want %s %s", who, f, name, typ)
	}
}

// A user on two nodes counts once; when a node is killed, its users leave presence within PRESENCE_TTL,
// once each, and those also on a live node stay.
func TestClusterPresence(t *testing.T) {
	const ttl = 3 * time.Second
	// A node's users outlive its last heartbeat by the TTL, and it beats every TTL/3: they drop out of
	// listings at most ttl after the kill, and their left frames go out at the next refresh of a live
	// node, at most ttl/3 later. Slack covers polling and scheduling.
	const slack = time.Second
	nodes := startCluster(t, 3, map[string]string{"PRESENCE_TTL": ttl.String()})
	ada, bob := nodes[0].Register(t, "ada@example.com"), nodes[1].Register(t, "bob@example.com")
	cat, eve := nodes[2].Register(t, "cat@example.com"), nodes[1].Register(t, "eve@example.com")

	a := nodes[0].Connect(t, ada)
	nodes[1].Connect(t, bob)
	nodes[2].Connect(t, bob) // bob on node-2 and node-3
	nodes[2].Connect(t, cat) // cat on node-3 only
	expectPresenceFrame(t, "ada", a, "joined", "bob", servertest.Timeout)
	expectPresenceFrame(t, "ada", a, "joined", "cat", servertest.Timeout) // and no second joined for bob
	for _, node := range nodes {
		if got := online(t, node, ada.Token); got != 3 {
			t.Errorf("general online from %s = %d, want 3 (ada, bob once, cat)", node.Config.NodeID, got)
		}
	}
	e, names := presenceNames(t, nodes[1], eve)
	if want := "ada,bob,cat,eve"; names != want {
		t.Errorf("eve's presence on node-2 = %s, want %s", names, want)
	}
	expectPresenceFrame(t, "ada", a, "joined", "eve", servertest.Timeout)

	killed := time.Now()
	nodes[2].Kill(t)
	var dropped time.Duration
	var seen []int
	ok := waitUntil(ttl+servertest.Timeout, func() bool {
		n := online(t, nodes[0], ada.Token)
		if len(seen) == 0 || seen[len(seen)-1] != n {
			seen = append(seen, n)
		}
		dropped = time.Since(killed)
		return n <= 3
	})
	if !ok || online(t, nodes[1], eve.Token) != 3 || online(t, nodes[0], ada.Token) != 3 {
		t.Fatalf("general online from node-1 went %v, want 4 then 3 (cat gone, bob still on node-2)", seen)
	}
	t.Logf("cat left the online count %v after node-3 was killed (PRESENCE_TTL %v)", dropped.Round(time.Millisecond), ttl)
	if dropped > ttl+slack {
		t.Errorf("cat left the online count %v after the kill, want within PRESENCE_TTL %v (+%v)", dropped, ttl, slack)
	}

	// Every live connection gets one left frame, for cat only: bob is still on node-2.
	live := []struct {
		who string
		c   *servertest.Client
	}{{"ada on node-1", a}, {"eve on node-2", e}}
	for _, c := range live {
		expectPresenceFrame(t, c.who, c.c, "left", "cat", time.Until(killed.Add(ttl+ttl/3+slack)))
		t.Logf("%s had cat's left frame %v after the kill", c.who, time.Since(killed).Round(time.Millisecond))
	}
	for _, c := range live {
		for {
			f, err := c.c.TryReadRaw(quiet)
			if err != nil {
				break
			}
			// A node that claims a stopped one has every node send its users their room list again.
			if f["type"] != "rooms" {
				t.Errorf("%s got %v after cat left, want nothing (bob is still on node-2)", c.who, f)
			}
		}
	}

	frank := nodes[0].Register(t, "frank@example.com")
	if _, names := presenceNames(t, nodes[0], frank); names != "ada,bob,eve,frank" {
		t.Errorf("frank's presence on node-1 after node-3 died = %s, want ada,bob,eve,frank", names)
	}
	if got := online(t, nodes[1], eve.Token); got != 4 {
		t.Errorf("general online from node-2 = %d, want 4", got)
	}
}

// Node loss: node-3 is killed (SIGKILL), or stopped (SIGTERM), while ada (node-1), bob (node-2) and dan
// (node-3) send and cat (node-3) listens. cat resumes on node-1 with since, dan on node-2, sending again
// what had no ack; every message is stored once and reaches every connection once, and the clients of the
// other nodes notice nothing.
func TestClusterNodeLoss(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(*servertest.Node, testing.TB)
		// code is the close code node-3's clients must see; 0 for any end (a killed process sends no
		// close frame: the client sees an EOF or a reset).
		code int
	}{
		{"SIGKILL", (*servertest.Node).Kill, 0},
		{"SIGTERM", (*servertest.Node).Stop, websocket.CloseServiceRestart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loseANode(t, startCluster(t, 3, nil), tc.end, tc.code)
		})
	}
}

// The same on a Redis Cluster of three masters: rooms on sharded channels, presence and usage each on a
// slot of their own. Every user shows online from every node, and a node killed mid-flow loses nothing.
func TestClusterOnRedisCluster(t *testing.T) {
	envs := servertest.NodeEnvs(t, 3, nil) // skips without PostgreSQL, before a Redis Cluster is started for nothing
	url := bustest.RedisCluster(t)
	var nodes []*servertest.Node
	for _, e := range envs {
		e["REDIS_URL"] = url
		nodes = append(nodes, servertest.StartProcess(t, e))
	}
	loseANode(t, nodes, (*servertest.Node).Kill, 0)
	// The other nodes' messages came over Redis (bob's 200 and some of dan's to node-1), not only through
	// catch-ups from the store, and nothing came for a room node-1 does not serve.
	metrics := nodes[0].Get(t, "/metrics")
	if n := metricSum(metrics, "causerie_bus_lag_seconds_count"); n < 200 {
		t.Errorf("node-1 received %d events over the bus, want at least bob's 200", n)
	}
	if n := metricSum(metrics, "causerie_bus_unserved_events_total"); n != 0 {
		t.Errorf("node-1 received %d events of rooms it does not serve", n)
	}
}

// metricSum adds up the samples of name in a /metrics page.
func metricSum(page, name string) int {
	sum := 0.0
	for line := range strings.SplitSeq(page, "\n") {
		if fields := strings.Fields(line); len(fields) == 2 && (fields[0] == name || strings.HasPrefix(fields[0], name+"{")) {
			v, _ := strconv.ParseFloat(fields[1], 64)
			sum += v
		}
	}
	return int(sum)
}

// loseANode joins ada, bob, cat and dan to general on nodes 1, 2, 3 and 3, ends node-3 with end while
// ada, bob and dan send, and checks that every message reaches every one of them exactly once, cat and
// dan reconnecting to the other nodes; code is the close code node-3's clients must see, 0 for any.
func loseANode(t *testing.T, nodes []*servertest.Node, end func(*servertest.Node, testing.TB), code int) {
	t.Helper()
	ada := join(t, nodes[0], nodes[0].Register(t, "ada@example.com"))
	bob := join(t, nodes[1], nodes[1].Register(t, "bob@example.com"))
	cat := join(t, nodes[2], nodes[2].Register(t, "cat@example.com"))
	dan := join(t, nodes[2], nodes[2].Register(t, "dan@example.com"))
	for _, node := range nodes {
		if !waitUntil(servertest.Timeout, func() bool { return online(t, node, ada.user.Token) == 4 }) {
			t.Errorf("%s counts %d online in general, want 4", node.Config.NodeID, online(t, node, ada.user.Token))
		}
	}

	const n, every = 200, 4 * time.Millisecond
	for _, s := range []*member{ada, bob, dan} {
		s.send(n, every)
	}
	// End node-3 when about a quarter of the messages are through.
	if !waitUntil(servertest.Timeout, func() bool { return cat.delivered() >= 3*n/4 }) {
		t.Fatalf("cat got %d messages, want %d before node-3 ends", cat.delivered(), 3*n/4)
	}
	end(nodes[2], t)
	t.Logf("node-3 ended with cat at %d messages, dan at %d acks, ada at %d, bob at %d", cat.delivered(), dan.acked(), ada.acked(), bob.acked())
	cat.recover(t, nodes[0])
	dan.recover(t, nodes[1])
	if code != 0 {
		for _, m := range []*member{cat, dan} {
			if m.closeCode() != code {
				t.Errorf("%s: node-3's connection ended with %v, want close %d", m.name, m.firstEnd, code)
			}
		}
	}

	waitAcked(t, ada, bob, dan)
	hist := sameHistory(t, nodes[:2], ada.user.Token)
	checkHistory(t, hist, ada, bob, dan)
	waitDelivered(t, len(hist), cat, ada, bob, dan)
	for _, m := range []*member{cat, ada, bob, dan} {
		checkDelivery(t, m, hist)
	}
	for _, m := range []*member{ada, bob} {
		if m.conns != 1 || m.isEnded() {
			t.Errorf("%s: %d connections, ended %v: node-3's end must not touch the other nodes' clients", m.name, m.conns, m.isEnded())
		}
	}
}

// redisConn is a connection of CLIENT LIST.
type redisConn struct {
	ID, Name string
	Sub      bool // subscribed to a channel
}

func redisConns(t *testing.T, rc *redis.Client, prefix string) []redisConn {
	t.Helper()
	list, err := rc.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var conns []redisConn
	for _, line := range strings.Split(list, "\n") {
		fields := map[string]string{}
		for _, kv := range strings.Fields(line) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				fields[k] = v
			}
		}
		if !strings.HasPrefix(fields["name"], prefix) {
			continue
		}
		sub, _ := strconv.Atoi(fields["sub"])
		conns = append(conns, redisConn{ID: fields["id"], Name: fields["name"], Sub: sub > 0 || strings.Contains(fields["flags"], "P")})
	}
	return conns
}

// cutRedis closes, from the Redis side, every connection named with prefix (the nodes name theirs
// prefix+NODE_ID), as a Redis restart would, and returns the ids it closed.
func cutRedis(t *testing.T, rc *redis.Client, prefix string) map[string]bool {
	t.Helper()
	closed := map[string]bool{}
	subs := map[string]bool{}
	for _, c := range redisConns(t, rc, prefix) {
		if err := rc.Do(context.Background(), "CLIENT", "KILL", "ID", c.ID).Err(); err != nil {
			t.Fatalf("CLIENT KILL ID %s: %v", c.ID, err)
		}
		closed[c.ID] = true
		if c.Sub {
			subs[c.Name] = true
		}
	}
	if len(subs) != 3 {
		t.Fatalf("closed %d connections, subscriptions of %v: want those of 3 nodes", len(closed), subs)
	}
	return closed
}

// Redis drops every node's connections twice while ada, bob and cat, on three nodes, send: the nodes
// reconnect and subscribe again by themselves, catch up from the store, and every client gets every
// message exactly once without reconnecting; /healthz says the bus is ok again.
func TestClusterRedisDrop(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	prefix := nodes[0].Config.RedisPrefix
	rc := servertest.RedisClient(t)
	ada := join(t, nodes[0], nodes[0].Register(t, "ada@example.com"))
	bob := join(t, nodes[1], nodes[1].Register(t, "bob@example.com"))
	cat := join(t, nodes[2], nodes[2].Register(t, "cat@example.com"))
	members := []*member{ada, bob, cat}
	home := map[*member]*servertest.Node{ada: nodes[0], bob: nodes[1], cat: nodes[2]}

	const n, every = 200, 4 * time.Millisecond
	for _, s := range members {
		s.send(n, every)
	}
	acked := func() int { return ada.acked() + bob.acked() + cat.acked() }
	for _, at := range []int{n, 2 * n} {
		if !waitUntil(servertest.Timeout, func() bool { return acked() >= at }) {
			t.Fatalf("%d messages acknowledged, want %d before cutting Redis", acked(), at)
		}
		closed := cutRedis(t, rc, prefix)
		t.Logf("cut %d Redis connections at %d acks", len(closed), acked())
		resubscribed := waitUntil(servertest.Timeout, func() bool {
			subs := map[string]bool{}
			for _, c := range redisConns(t, rc, prefix) {
				if c.Sub && !closed[c.ID] {
					subs[c.Name] = true
				}
			}
			return len(subs) == 3
		})
		if !resubscribed {
			t.Errorf("not every node subscribed to Redis again within %v: %v", servertest.Timeout, redisConns(t, rc, prefix))
		}
	}
	waitAllAcked(t, members, home, 3*n)
	checkAfterRedis(t, nodes, members)
}

// waitAllAcked waits until the members' acks add up to total. No client should notice a Redis outage; one
// that does resumes on its node.
func waitAllAcked(t *testing.T, members []*member, home map[*member]*servertest.Node, total int) {
	t.Helper()
	acked := func() int {
		sum := 0
		for _, m := range members {
			sum += m.acked()
		}
		return sum
	}
	if !waitUntil(servertest.Timeout, func() bool {
		for _, m := range members {
			if m.isEnded() {
				t.Logf("%s: disconnected while Redis was away; resuming", m.name)
				m.recover(t, home[m])
			}
		}
		return acked() >= total
	}) {
		t.Fatalf("%d of %d messages acknowledged after %v", acked(), total, servertest.Timeout)
	}
}

// checkAfterRedis checks, once Redis is back, that every node has the same history, that every member got
// every message once, and that every node reports its bus healthy again.
func checkAfterRedis(t *testing.T, nodes []*servertest.Node, members []*member) {
	t.Helper()
	hist := sameHistory(t, nodes, members[0].user.Token)
	checkHistory(t, hist, members...)
	waitDelivered(t, len(hist), members...)
	for _, m := range members {
		checkDelivery(t, m, hist)
	}
	for _, node := range nodes {
		var health map[string]any
		if !waitUntil(servertest.Timeout, func() bool {
			_, health = node.Do(t, http.MethodGet, "/healthz", "", nil)
			return health["status"] == "ok" && health["bus"] == "ok"
		}) {
			t.Errorf("%s /healthz = %v, want status and bus ok", node.Config.NodeID, health)
		}
	}
}

// redisServer is a Redis of the test's own, so that it can be stopped and started again, as an operator
// restarting Redis would, without disturbing other tests' Redis.
type redisServer struct {
	port int
	cmd  *exec.Cmd
}

// startRedis starts redis-server on a free port, keeping nothing on disk; it skips t when redis-server
// is not installed.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not in PATH: the Redis restart test skipped")
	}
	r := &redisServer{port: bustest.FreePort(t)}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer rc.Close()
	if !waitUntil(servertest.Timeout, func() bool { return rc.Ping(context.Background()).Err() == nil }) {
		t.Fatalf("redis-server on port %d did not answer", r.port)
	}
}

// stop kills the server: an empty Redis comes back, as one that keeps nothing on disk does.
func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Redis is killed while messages flow between three nodes, and started again, empty, once the nodes have
// reported it unavailable and gone on acknowledging without it.
// The nodes keep storing and acknowledging meanwhile, report the bus unavailable, subscribe again by
// themselves, and every client ends with every message exactly once, without reconnecting.
func TestClusterRedisRestart(t *testing.T) {
	rs := startRedis(t)
	nodes := startCluster(t, 3, map[string]string{"REDIS_URL": rs.url()})
	ada := join(t, nodes[0], nodes[0].Register(t, "ada@example.com"))
	bob := join(t, nodes[1], nodes[1].Register(t, "bob@example.com"))
	cat := join(t, nodes[2], nodes[2].Register(t, "cat@example.com"))
	members := []*member{ada, bob, cat}
	home := map[*member]*servertest.Node{ada: nodes[0], bob: nodes[1], cat: nodes[2]}

	// 500 messages each, over 2 s: some before Redis goes, some while it is away, some after.
	const n, every = 500, 4 * time.Millisecond
	for _, s := range members {
		s.send(n, every)
	}
	acked := func() int { return ada.acked() + bob.acked() + cat.acked() }
	if !waitUntil(servertest.Timeout, func() bool { return acked() >= 300 }) {
		t.Fatalf("%d messages acknowledged, want 300 before stopping Redis", acked())
	}
	rs.stop()
	// Counted from the kill, not from when /healthz notices: under load that can take until every
	// message is sent.
	before := acked()
	t.Logf("Redis killed at %d acks", before)
	var health map[string]any
	if !waitUntil(servertest.Timeout, func() bool {
		_, health = nodes[0].Do(t, http.MethodGet, "/healthz", "", nil)
		return health["bus"] == "unavailable"
	}) {
		t.Errorf("/healthz with Redis down = %v, want the bus unavailable", health)
	}
	if !waitUntil(servertest.Timeout, func() bool { return acked() > before }) {
		t.Error("no message was acknowledged while Redis was down: nodes should keep storing")
	}
	rs.start(t)
	t.Logf("Redis back at %d acks", acked())

	waitAllAcked(t, members, home, 3*n)
	checkAfterRedis(t, nodes, members)
}
