package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/sequence"
	"github.com/causerie/causerie/app/store"
)

// frameConn keeps the frames written to it. The sequencer's tests need to see exactly what one client
// receives while they play another node's part on the bus; everything else in them is real (a SQLite
// store, the hub, the memory bus).
type frameConn struct {
	mu     sync.Mutex
	frames []map[string]any
	writes int // calls of WriteFrames
}

func (f *frameConn) WriteFrames(frames [][]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	for _, b := range frames {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		f.frames = append(f.frames, m)
	}
	return nil
}
func (f *frameConn) Ping() error         { return nil }
func (f *frameConn) Pong([]byte) error   { return nil }
func (f *frameConn) Close(int, string)   {}
func (f *frameConn) Abort()              {}
func (f *frameConn) LastRead() time.Time { return time.Now() }

// messageIDs returns the ids of the message frames received so far, in order.
func (f *frameConn) messageIDs() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []int64
	for _, m := range f.frames {
		if m["type"] == app.FrameMessage {
			ids = append(ids, int64(m["id"].(float64)))
		}
	}
	return ids
}

// waitIDs polls until the client has received want, or fails.
func (f *frameConn) waitIDs(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for fmt.Sprint(f.messageIDs()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("message ids = %v, want %s", f.messageIDs(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitOrder polls until the message ids and acks received so far, in order, read want (as "[1 2 ack]").
func (f *frameConn) waitOrder(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		var order []string
		for _, m := range f.frames {
			switch m["type"] {
			case app.FrameMessage:
				order = append(order, fmt.Sprint(m["id"]))
			case app.FrameAck:
				order = append(order, "ack")
			}
		}
		f.mu.Unlock()
		got := fmt.Sprint(order)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames = %s, want %s", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// remoteNode stores messages as another node would, and returns their bus events without publishing
// them: the test decides which reach this node's hub, and in which order.
func remoteNode(t *testing.T, db *store.DB, n int) []bus.Event {
	t.Helper()
	ctx := context.Background()
	u, err := db.UserByEmail(ctx, "remote@example.com")
	if app.ErrorCode(err) == app.CodeNotFound {
		u, err = db.CreateUser(ctx, app.User{Email: "remote@example.com", Name: "remote", PasswordHash: "h", CreatedAt: time.Now()})
	}
	if err != nil {
		t.Fatal(err)
	}
	var evs []bus.Event
	for i := 0; i < n; i++ {
		out, err := db.AppendMessages(ctx, []app.Message{{Room: "general", From: app.Author{ID: u.ID, Name: "remote"}, Text: fmt.Sprint(i), At: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}
		frame, _, err := app.EncodeMessage(out[0].Message)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, bus.Event{Room: "general", Payload: frame, ID: out[0].Message.ID, Node: "remote"})
	}
	return evs
}

// newTestHub runs a hub over SQLite in t's directory and the memory bus; each of with may change the
// options first.
func newTestHub(t *testing.T, with ...func(*Options)) (*Hub, *store.DB) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts := Options{
		Store: db, Bus: bus.NewMemory(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now,
		MaxMessageBytes: 4096, QueueBytes: 1 << 20, HistoryLimit: 50, ResumeMax: 1000, MaxRooms: 10,
	}
	for _, change := range with {
		change(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		h.Run(ctx)
		close(ran)
	}()
	t.Cleanup(func() {
		h.Shutdown(context.Background(), app.CloseGoingAway, "")
		cancel()
		<-ran
	})
	return h, db
}

func joinGeneral(t *testing.T, h *Hub) *frameConn {
	t.Helper()
	conn, _ := register(t, h)
	return conn
}

// register connects a client of user 99 in general; it unregisters when the test ends, as the transport
// does when a socket closes.
func register(t *testing.T, h *Hub) (*frameConn, *Client) {
	t.Helper()
	conn := &frameConn{}
	c, err := h.Register(context.Background(), conn, Session{
		User:  app.Identity{UserID: 99, Name: "local", ExpiresAt: time.Now().Add(time.Hour)},
		Joins: []Join{{Room: "general"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(c) })
	return conn, c
}

// Events of another node that arrive out of order are delivered in id order, each once.
func TestSequencerReorders(t *testing.T) {
	h, db := newTestHub(t)
	conn := joinGeneral(t, h)
	evs := remoteNode(t, db, 4)
	for _, i := range []int{1, 3, 0, 2, 2, 0} { // ids 2, 4, 1, 3, then two repeats
		busHandler{h}.Event(evs[i])
	}
	conn.waitIDs(t, "[1 2 3 4]")
	time.Sleep(2 * sequence.GapWait)
	if got := fmt.Sprint(conn.messageIDs()); got != "[1 2 3 4]" {
		t.Errorf("after the repeats: %s, want [1 2 3 4]", got)
	}
	if n := h.stats.CaughtUp.Load(); n != 0 {
		t.Errorf("%d messages read back from the store, want 0: nothing was missing", n)
	}
}

// An event lost on the bus is read from the store once a later one shows the gap; so are events lost
// while the bus was away, once it says so with Resync.
func TestSequencerFillsGapsFromTheStore(t *testing.T) {
	h, db := newTestHub(t)
	conn := joinGeneral(t, h)
	evs := remoteNode(t, db, 3)
	busHandler{h}.Event(evs[0])
	busHandler{h}.Event(evs[2]) // 2 is lost
	conn.waitIDs(t, "[1 2 3]")

	// 4 to 6 are lost and nothing follows them: only a resync can tell.
	later := remoteNode(t, db, 3)
	time.Sleep(2 * sequence.GapWait)
	conn.waitIDs(t, "[1 2 3]")
	busHandler{h}.Resync()
	conn.waitIDs(t, "[1 2 3 4 5 6]")
	busHandler{h}.Event(later[1])                                          // late: dropped
	busHandler{h}.Event(bus.Event{Room: "general", ID: 6, Node: "remote"}) // a bare head already reached
	time.Sleep(2 * sequence.GapWait)
	if got := fmt.Sprint(conn.messageIDs()); got != "[1 2 3 4 5 6]" {
		t.Errorf("after late events: %s", got)
	}
	if n := h.stats.CaughtUp.Load(); n != 4 {
		t.Errorf("%d messages read back from the store, want 4 (2, 4, 5 and 6)", n)
	}
}

// A bare head (a node announcing ids it could not publish) makes the hub read them from the store.
func TestSequencerFollowsBareHead(t *testing.T) {
	h, db := newTestHub(t)
	conn := joinGeneral(t, h)
	remoteNode(t, db, 3)
	busHandler{h}.Event(bus.Event{Room: "general", ID: 3, Node: "remote"})
	conn.waitIDs(t, "[1 2 3]")
}

// The local sender's ack comes after every earlier message of the room, including another node's that
// had to be read from the store.
func TestAckWaitsForEarlierMessages(t *testing.T) {
	h, db := newTestHub(t)
	conn, c := register(t, h)
	if _, err := db.CreateUser(context.Background(), app.User{Email: "local@example.com", Name: "local", PasswordHash: "h", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	remoteNode(t, db, 2) // user 2; ids 1 and 2 never come over the bus
	c.User.UserID = 1
	h.Receive(context.Background(), c, []byte(`{"type":"message","text":"mine","id":"m1"}`))
	conn.waitOrder(t, "[1 2 ack]") // the ack of id 3 after ids 1 and 2
}

// A client resuming with since on a node that has not yet delivered messages up to since (it saw them on
// another node) does not get them again when they arrive here.
func TestResumeAheadOfThisNode(t *testing.T) {
	h, db := newTestHub(t)
	first := joinGeneral(t, h)
	evs := remoteNode(t, db, 2) // stored by another node, not yet here
	conn := &frameConn{}
	since := int64(2)
	c, err := h.Register(context.Background(), conn, Session{
		User:  app.Identity{UserID: 98, Name: "resumer", ExpiresAt: time.Now().Add(time.Hour)},
		Joins: []Join{{Room: "general", Since: &since}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(c) })
	busHandler{h}.Event(evs[0])
	busHandler{h}.Event(evs[1])
	first.waitIDs(t, "[1 2]")
	time.Sleep(2 * sequence.GapWait)
	if got := conn.messageIDs(); len(got) != 0 {
		t.Errorf("the resumed client got %v again, want nothing: it had seen up to 2", got)
	}
}

// registerAuthor stores a user "author" and connects a client of theirs in general.
func registerAuthor(t *testing.T, h *Hub, db *store.DB) (app.User, *frameConn, *Client) {
	t.Helper()
	author, err := db.CreateUser(context.Background(), app.User{Email: "author@example.com", Name: "author", PasswordHash: "h", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	conn := &frameConn{}
	c, err := h.Register(context.Background(), conn, Session{
		User:  app.Identity{UserID: author.ID, Name: "author", ExpiresAt: time.Now().Add(time.Hour)},
		Joins: []Join{{Room: "general"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(c) })
	return author, conn, c
}

// A message sent again with its client id, after the node that stored it first stopped before
// publishing it, reaches the room (read from the store), and its sender's ack comes after it.
func TestRepeatReachesTheRoomBeforeItsAck(t *testing.T) {
	h, db := newTestHub(t)
	bystander := joinGeneral(t, h)
	ctx := context.Background()
	author, conn, c := registerAuthor(t, h, db)
	// Stored by another node, which died before publishing it.
	if _, err := db.AppendMessages(ctx, []app.Message{{Room: "general", From: app.Author{ID: author.ID, Name: "author"}, Text: "x", At: time.Now(), ClientID: "x-1"}}); err != nil {
		t.Fatal(err)
	}
	h.Receive(ctx, c, []byte(`{"type":"message","text":"x","id":"x-1"}`))
	bystander.waitIDs(t, "[1]")
	conn.waitOrder(t, "[1 ack]") // the message, as its other tabs get it, then the ack
}

// A catch-up that reads from the store a message of this node's sender, stored but not yet published,
// leaves it to its event: the sender gets its ack where the others get the message, never its own
// message as someone else's. No lock keeps the catch-up from reading meanwhile: the message is marked in
// flight before it is stored.
func TestCatchUpLeavesAMessageInFlightToItsEvent(t *testing.T) {
	h, db := newTestHub(t)
	bystander := joinGeneral(t, h)
	ctx := context.Background()
	author, conn, c := registerAuthor(t, h, db)

	// As the committer does: marked, then stored; its event is still to come.
	mine := app.Message{Room: "general", From: app.Author{ID: author.ID, Name: "author"}, Text: "mine", At: time.Now(), ClientID: "m-1"}
	h.fly(mine, +1)
	out, err := db.AppendMessages(ctx, []app.Message{mine})
	if err != nil {
		t.Fatal(err)
	}
	// Another node's message after it arrives, and the gap before it sends a catch-up to the store.
	busHandler{h}.Event(remoteNode(t, db, 1)[0])
	time.Sleep(3 * sequence.GapWait)
	if got := conn.messageIDs(); len(got) != 0 {
		t.Fatalf("the sender got %v before its message's event: its own message as someone else's", got)
	}

	frame, object, err := app.EncodeMessage(out[0].Message)
	if err != nil {
		t.Fatal(err)
	}
	ev := bus.Event{Room: "general", Payload: frame, ID: out[0].Message.ID, Skip: c.ID}
	h.publish(ev, &mine, func() { c.enqueue(app.EncodeMessageAck("m-1", object)) })
	conn.waitOrder(t, "[ack 2]")
	bystander.waitIDs(t, "[1 2]")
}
