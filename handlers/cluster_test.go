package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app/servertest"
)

// startNodes starts n servers in this process, the nodes of servertest.NodeEnvs. The process-level tests
// (three binaries, kill -9) are in cluster_test.go at the top of the repository.
func startNodes(t *testing.T, n int) []*servertest.Server {
	t.Helper()
	var nodes []*servertest.Server
	for _, e := range servertest.NodeEnvs(t, n, nil) {
		nodes = append(nodes, servertest.Start(t, e))
	}
	return nodes
}

// Users on two nodes chat: each message reaches every other connection once, in order per sender, and
// the history is the same from either node.
func TestNodesShareRoomsAndHistory(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	one, two := nodes[0], nodes[1]
	ada, bob := one.Register(t, "ada@example.com"), two.Register(t, "bob@example.com")
	a := one.Connect(t, ada)
	b := two.Connect(t, bob)
	b2 := one.Connect(t, bob) // bob on both nodes

	const n = 50
	for i := 0; i < n; i++ {
		a.Send(map[string]string{"type": "message", "text": fmt.Sprint("a", i), "id": fmt.Sprint("a", i)})
		b.Send(map[string]string{"type": "message", "text": fmt.Sprint("b", i), "id": fmt.Sprint("b", i)})
	}
	// Each connection gets the other user's n messages (and bob's second connection bob's own), in id
	// order, and its own acks.
	check := func(name string, c *servertest.Client, wantFrom map[string]int, acks int) []float64 {
		t.Helper()
		next := map[string]int{}
		var ids []float64
		for got := 0; got < n*len(wantFrom)+acks; got++ {
			f := c.Read()
			switch f["type"] {
			case "ack":
				continue
			case "message":
			default:
				t.Fatalf("%s: unexpected frame %v", name, f)
			}
			text := f["text"].(string)
			from := text[:1]
			if _, ok := wantFrom[from]; !ok {
				t.Fatalf("%s got %q, a message it sent or should not get", name, text)
			}
			if want := fmt.Sprint(from, next[from]); text != want {
				t.Fatalf("%s: got %q, want %q (order per sender, nothing twice)", name, text, want)
			}
			next[from]++
			id := f["id"].(float64)
			if len(ids) > 0 && id <= ids[len(ids)-1] {
				t.Fatalf("%s: id %v after %v: ids must grow", name, id, ids[len(ids)-1])
			}
			ids = append(ids, id)
		}
		if f, err := c.TryRead(200 * time.Millisecond); err == nil {
			t.Fatalf("%s: extra frame %v", name, f)
		}
		return ids
	}
	check("ada on node 1", a, map[string]int{"b": n}, n)
	check("bob on node 2", b, map[string]int{"a": n}, n)
	check("bob's second connection, on node 1", b2, map[string]int{"a": n, "b": n}, 0)

	// Node 2 got node 1's messages over the bus, and timed their trip.
	if m := two.Get(t, "/metrics"); !regexp.MustCompile(`causerie_bus_lag_seconds_count [1-9]`).MatchString(m) {
		t.Error("node 2's bus lag histogram is empty")
	}

	_, h1 := one.Do(t, http.MethodGet, "/api/rooms/general/messages?limit=200", ada.Token, nil)
	_, h2 := two.Do(t, http.MethodGet, "/api/rooms/general/messages?limit=200", bob.Token, nil)
	if fmt.Sprint(h1) != fmt.Sprint(h2) || len(h1["messages"].([]any)) != 2*n {
		t.Errorf("history differs between the nodes, or is not %d messages:\n%v\n%v", 2*n, h1, h2)
	}
}

// A user connected to two nodes is present once; joined and left go out when the user first appears and
// when their last connection, on any node, goes.
func TestPresenceAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	one, two := nodes[0], nodes[1]
	ada, bob := one.Register(t, "ada@example.com"), two.Register(t, "bob@example.com")
	a := one.Connect(t, ada)

	b1 := two.Dial(t, "/ws?token="+bob.Token, nil)
	b1.Read() // welcome
	if p := b1.Expect("presence", "general"); len(p["users"].([]any)) != 2 {
		t.Errorf("bob's presence on node 2 = %v, want ada (node 1) and bob", p)
	}
	if f := a.ReadRaw(); f["type"] != "joined" || f["user"].(map[string]any)["name"] != "bob" {
		t.Errorf("ada got %v, want bob joined", f)
	}
	b2 := one.Connect(t, bob)
	_, rooms := one.Do(t, http.MethodGet, "/api/rooms", ada.Token, nil)
	if got := fmt.Sprint(rooms["rooms"]); got != "[map[kind:public name:general online:2]]" {
		t.Errorf("rooms = %s, want general with 2 online (bob counted once)", got)
	}
	b2.Close()
	b1.Close()
	f := a.ReadRaw()
	if f["type"] != "left" || f["user"].(map[string]any)["name"] != "bob" {
		t.Errorf("ada got %v, want bob left", f)
	}
	if f, err := a.TryReadRaw(300 * time.Millisecond); err == nil {
		t.Errorf("ada got %v: bob joined once and left once", f)
	}
}

// A node whose Redis subscription is cut misses what is published meanwhile; it subscribes again and
// reads the gap from the store, so its clients miss nothing.
func TestNodeCatchesUpAfterLosingTheBus(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	one, two := nodes[0], nodes[1]
	ada, bob := one.Register(t, "ada@example.com"), two.Register(t, "bob@example.com")
	a := one.Connect(t, ada)
	b := two.Connect(t, bob)

	const n = 100
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			a.Send(map[string]string{"type": "message", "text": fmt.Sprint(i)})
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(30 * time.Millisecond)
	killSubscriber(t, two)
	for i := 0; i < n; i++ {
		if f := b.Read(); f["text"] != fmt.Sprint(i) {
			t.Fatalf("bob got %v, want message %d", f, i)
		}
	}
	<-done
	if !strings.Contains(two.Logs(), "catching up from the store") {
		t.Error("node 2 did not resubscribe")
	}
}

// killSubscriber closes s's Redis subscription from the Redis side, as a restart or a network cut would.
func killSubscriber(t *testing.T, s *servertest.Server) {
	t.Helper()
	client := servertest.RedisClient(t)
	ctx := context.Background()
	list, err := client.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	name := s.Config.RedisPrefix + s.Config.NodeID
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name="+name+" ") && subscriber.MatchString(line) {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			if err := client.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no subscriber connection named %s", name)
}

// A member removed on one node stops getting the room on every node, right after the removal event: the
// event comes through each node's sequencer, in the room's order.
func TestRemovalReachesEveryNode(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	one, two := nodes[0], nodes[1]
	ada, bob := one.Register(t, "ada@example.com"), two.Register(t, "bob@example.com")
	if status, body := one.Do(t, http.MethodPost, "/api/rooms", ada.Token, map[string]any{"name": "secret", "private": true}); status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, body)
	}
	one.Do(t, http.MethodPut, "/api/rooms/secret/members/bob", ada.Token, nil)
	a := one.Connect(t, ada, "&rooms=secret")
	b := two.Connect(t, bob, "&rooms=secret")
	a.Send(map[string]string{"type": "message", "room": "secret", "text": "avant", "id": "a1"})
	a.Read() // the ack
	if f := b.Read(); f["text"] != "avant" {
		t.Fatalf("bob on node 2 got %v", f)
	}
	if status, body := one.Do(t, http.MethodDelete, "/api/rooms/secret/members/bob", ada.Token, nil); status != http.StatusOK {
		t.Fatalf("remove: %d %v", status, body)
	}
	a.Send(map[string]string{"type": "message", "room": "secret", "text": "après", "id": "a2"})
	if f := b.Read(); f["type"] != "member" || f["kind"] != "member_removed" {
		t.Errorf("bob on node 2 got %v, want his removal", f)
	}
	b.Send(map[string]string{"type": "ping"})
	if f := b.Read(); f["type"] != "pong" {
		t.Errorf("bob on node 2 got %v after his removal, want nothing of the room", f)
	}
	if status, _ := two.Do(t, http.MethodGet, "/api/rooms/secret/messages", bob.Token, nil); status != http.StatusNotFound {
		t.Errorf("bob reading on node 2: %d, want 404", status)
	}
}

// A user reading on a connection to one node sees the unread count drop on their connection to another.
func TestReadStateAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	checkReadState(t, nodes[0], nodes[1])
}

// A change of a user's room list made through one node reaches their connection to another at once.
func TestRoomListAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	one, two := nodes[0], nodes[1]
	ada, bob := one.Register(t, "ada@example.com"), one.Register(t, "bob@example.com")
	laptop := two.Connect(t, ada)
	one.Do(t, http.MethodPost, "/api/dms", bob.Token, map[string]any{"user": "ada"})
	if got, want := roomList(t, laptop), fmt.Sprintf("dm-%d-%d:dm:0:bob general:public:0", ada.ID, bob.ID); got != want {
		t.Errorf("ada on node 2 got the list %s, want %s", got, want)
	}
}

// Edits, deletions and reactions converge across nodes: ada on one node, bob resuming and cat joining on
// another, all see the messages in the same state.
func TestEditsDeletesAndReactionsConvergeAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	checkConvergence(t, nodes[0], nodes[1])
}

// A node hears the bus only for the rooms it serves: a message in a room served by one node costs the
// other nothing to decode (issue 17), which the metrics show.
func TestNodesDecodeOnlyTheirRooms(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	one, two := nodes[0], nodes[1]
	ada, bob := one.Register(t, "ada@example.com"), one.Register(t, "bob@example.com")
	one.CreateRoom(t, ada, "atelier")
	metric := func(s *servertest.Server, name string) string {
		t.Helper()
		for line := range strings.SplitSeq(s.Get(t, "/metrics"), "\n") {
			if value, ok := strings.CutPrefix(line, name+" "); ok {
				return value
			}
		}
		t.Fatalf("no %s", name)
		return ""
	}
	a := one.Connect(t, ada, "&rooms=atelier,general")
	b := two.Connect(t, bob)
	a.Send(map[string]string{"type": "message", "room": "atelier", "text": "ici seulement", "id": "u1"})
	a.Send(map[string]string{"type": "message", "room": "general", "text": "pour tous", "id": "u2"})
	// One publisher's events come in order: once bob has the second, node 2 has heard all it would.
	if f := b.Read(); f["text"] != "pour tous" {
		t.Fatalf("bob got %v", f)
	}
	if got := metric(two, "causerie_bus_unserved_events_total"); got != "0" {
		t.Errorf("node 2 decoded %s events of rooms it does not serve", got)
	}
	for _, c := range []struct {
		node *servertest.Server
		want string
	}{{one, "2"}, {two, "1"}} {
		if got := metric(c.node, "causerie_bus_room_subscriptions"); got != c.want {
			t.Errorf("%s subscribes to %s rooms, want %s", c.node.Config.NodeID, got, c.want)
		}
	}
}

// subscriber matches the CLIENT LIST line of a connection subscribed to channels: the events of no room,
// and each room wanted.
var subscriber = regexp.MustCompile(` sub=[1-9]`)
