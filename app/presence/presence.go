// Package presence says who is in which room: on this node, and, with a Directory (redispresence), on
// every node. It decides when a joined or left event is news, and keeps the directory in step with this
// node when Redis fails or the other nodes gave this one up for dead.
package presence

import (
	"cmp"
	"context"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causerie/causerie/app"
)

// Directory is who is in which room on every node. The Tracker records in it each user's first
// connection to a room on this node and their last one leaving; joined and left events go out when a user
// appears in a room on no node before, or is left on none.
type Directory interface {
	// Enter records who in room on this node; first reports that they were in it on no node before.
	Enter(ctx context.Context, room string, who app.Author) (first bool, err error)
	// Leave records that who left room on this node; last reports that they are now in it on no node.
	Leave(ctx context.Context, room string, who app.Author) (last bool, err error)
	// List returns the users in room on any live node.
	List(ctx context.Context, room string) ([]app.Author, error)
	// Online returns the number of users present per room, for the rooms with any.
	Online(ctx context.Context) (map[string]int, error)
	// Refresh renews this node's heartbeat and reports the nodes that stopped, with their users; at start
	// it also clears what an earlier process with this node's id left.
	Refresh(ctx context.Context, start bool) (app.Refreshed, error)
	// Reassert makes this node's entries exactly here, and returns the users it added who were in their
	// room on no node.
	Reassert(ctx context.Context, here []app.RoomUser) (added []app.RoomUser, err error)
}

// Timeout bounds one call to the directory. Past it the node goes on with what it knows locally:
// presence is advisory, and a join must not hang on it.
const Timeout = time.Second

// Config is what a Tracker tells and asks of the hub.
type Config struct {
	// Directory may be nil: this node is the only one, and its own rooms are the directory.
	Directory Directory
	// Announce publishes a joined or left event (app.FrameJoined, app.FrameLeft) of who in room; skip
	// names a connection that must not get it.
	Announce func(kind, room string, who app.Author, skip string)
	// Resync asks every node, this one included, to catch its rooms up from the store.
	Resync func()
	// Here lists this node's users, room by room.
	Here func() []app.RoomUser
	// Closing reports that the node is shutting down: a user who enters then is not recorded, as their
	// leave will not be.
	Closing func() bool
	Log     *slog.Logger
}

// Tracker hands this node's joins and leaves to the directory and announces those that are news. It is
// safe for concurrent use.
type Tracker struct {
	Config
	// dirty is set when the directory may disagree with this node (a call failed, or the other nodes gave
	// it up): the next refresh sets this node's users again, and until then the directory is not asked.
	dirty atomic.Bool
	// calls counts the calls that change this node's entries, so that setting them all again can tell it
	// raced with one.
	calls  atomic.Uint64
	queues [shards]queue
}

// New returns a tracker; the hub calls Refresh every third of the directory's TTL.
func New(cfg Config) *Tracker {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{Config: cfg}
}

// Dirty reports whether the directory is taken to disagree with this node, and so not asked, until the
// next refresh.
func (t *Tracker) Dirty() bool { return t.dirty.Load() }

// change is a user's first connection to a room on this node (enter), or their last one leaving it, on
// its way to the directory, with the event it may announce.
type change struct {
	enter bool
	room  string
	who   app.Author
	skip  string
	// done, when not nil, is closed once the directory has been told.
	done chan struct{}
}

// queue holds changes of this node's users in the order they happened, for one goroutine, which exists
// while there are some, to hand the directory: no join or leave waits for Redis under a room's lock, and
// a room's joined and left events still go out in the order of its changes. A room's changes all go to
// one of shards queues, so that rooms do not wait for each other.
type queue struct {
	mu      sync.Mutex
	changes []change
	running bool
}

// shards is how many queues of changes a tracker has, each with its own goroutine while busy.
const shards = 16

// Enter tells that who, by the connection skip, is in room on this node for the first time; the
// returned channel is closed once the directory has it. The caller holds the room's lock, so that a
// room's changes go out in order: Enter does no I/O, it queues (with no directory it announces at once).
func (t *Tracker) Enter(room string, who app.Author, skip string) <-chan struct{} {
	done := make(chan struct{})
	t.queue(change{enter: true, room: room, who: who, skip: skip, done: done})
	return done
}

// Await waits until the directory has the change of recorded (from Enter; nil: none), or ctx ends, or
// Timeout passes: a bound of its own, which leaves a join its time for the store. A directory that lags
// delays a presence list, never fails a join.
func Await(ctx context.Context, recorded <-chan struct{}) {
	if recorded == nil {
		return
	}
	wait := time.NewTimer(Timeout)
	defer wait.Stop()
	select {
	case <-recorded:
	case <-wait.C:
	case <-ctx.Done():
	}
}

// Leave tells that who has left room on this node, their last connection there gone. As Enter, it does
// no I/O.
func (t *Tracker) Leave(room string, who app.Author) {
	t.queue(change{room: room, who: who})
}

func (t *Tracker) queue(ch change) {
	if t.Directory == nil {
		t.apply(ch)
		return
	}
	f := fnv.New32a()
	_, _ = f.Write([]byte(ch.room)) // a hash never fails to write
	q := &t.queues[f.Sum32()%shards]
	q.mu.Lock()
	q.changes = append(q.changes, ch)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go t.drain(q)
	}
}

// drain applies q's changes, oldest first, until there are none.
func (t *Tracker) drain(q *queue) {
	for {
		q.mu.Lock()
		if len(q.changes) == 0 {
			q.changes, q.running = nil, false
			q.mu.Unlock()
			return
		}
		ch := q.changes[0]
		q.changes[0] = change{}
		q.changes = q.changes[1:]
		q.mu.Unlock()
		t.apply(ch)
	}
}

func (t *Tracker) apply(ch change) {
	if ch.done != nil {
		defer close(ch.done)
	}
	if ch.enter && t.Closing() {
		return
	}
	kind := app.FrameLeft
	if ch.enter {
		kind = app.FrameJoined
	}
	if t.record(ch) {
		t.Announce(kind, ch.room, ch.who, ch.skip)
	}
}

// record tells the directory of ch and reports whether its event must go out: whether the user was in
// the room on no node before, or is now in it on none. While the directory is known to be off (dirty),
// it is not called: the next refresh sets this node's users again anyway, and a Redis that is down would
// otherwise cost every change a timeout, one after the other in a reconnect storm.
func (t *Tracker) record(ch change) bool {
	if t.Directory == nil || t.dirty.Load() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	t.calls.Add(1)
	call, what := t.Directory.Leave, "leave"
	if ch.enter {
		call, what = t.Directory.Enter, "enter"
	}
	news, err := call(ctx, ch.room, ch.who)
	if err != nil {
		t.Log.Warn("presence: "+what+"; the next refresh sets this node's users again", "room", ch.room, "user", ch.who.ID, "err", err)
		t.dirty.Store(true)
		return true
	}
	return news
}

// List returns who is in room, on every node when the directory is there and to be trusted; local, this
// node's users, otherwise. local is in the list either way: the directory may not have their joins yet.
func (t *Tracker) List(ctx context.Context, room string, local []app.Author) []app.Author {
	if t.Directory == nil || t.dirty.Load() {
		return local
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	list, err := t.Directory.List(ctx, room)
	if err != nil {
		if caller.Err() == nil { // the directory failed, not the join that asked
			t.Log.Warn("presence: list; answering with this node's users", "room", room, "err", err)
			t.dirty.Store(true)
		}
		return local
	}
	for _, who := range local {
		if !slices.ContainsFunc(list, func(a app.Author) bool { return a.ID == who.ID }) {
			list = append(list, who)
		}
	}
	SortUsers(list)
	return list
}

// SortUsers sorts users by name, then id.
func SortUsers(list []app.Author) {
	slices.SortFunc(list, func(a, b app.Author) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
}

// Online returns the users present per room, on every node when the directory is there and to be
// trusted, on this node otherwise.
func (t *Tracker) Online(ctx context.Context) map[string]int {
	if t.Directory != nil && !t.dirty.Load() {
		ctx, cancel := context.WithTimeout(ctx, Timeout)
		defer cancel()
		all, err := t.Directory.Online(ctx)
		if err == nil {
			return all
		}
		t.Log.Warn("presence: online; answering with this node's users", "err", err)
		t.dirty.Store(true)
	}
	local := map[string]int{}
	for _, ru := range t.Here() {
		local[ru.Room]++
	}
	return local
}

// Start clears what an earlier process with this node's id left in the directory, telling the rooms
// those users left, and registers the node. An earlier process may have stored messages it never
// published: every node catches up, as when a node claims a stopped one (see Refresh).
func (t *Tracker) Start(ctx context.Context) error {
	if t.Directory == nil {
		return nil
	}
	got, err := t.Directory.Refresh(ctx, true)
	if err != nil {
		return err
	}
	t.departed(got.Gone)
	t.Resync()
	return nil
}

// Refresh renews this node's heartbeat, tells rooms about users who left with stopped nodes, and sets
// this node's users again when the directory may disagree with it.
//
// A node that stopped may have committed messages it never published. Only the node that claims it
// learns of it, so it asks every node, itself included, to catch its rooms up from the store: such a
// message reaches live clients within a TTL, not only with the next message of its room.
func (t *Tracker) Refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	got, err := t.Directory.Refresh(ctx, false)
	if err != nil {
		t.Log.Warn("presence: refresh", "err", err)
		return
	}
	t.departed(got.Gone)
	if got.Claimed > 0 {
		t.Log.Info("presence: claimed stopped nodes; every node catches up from the store", "nodes", got.Claimed, "users_left", len(got.Gone))
		t.Resync()
	}
	if got.Lost {
		t.Log.Warn("presence: this node had been given up for dead; setting its users again")
		t.dirty.Store(true)
	}
	if t.dirty.Swap(false) {
		t.reassert(ctx)
	}
}

// reassert sets this node's users in the directory again, and announces those who had gone from it. A
// failure leaves that for the next refresh.
func (t *Tracker) reassert(ctx context.Context) {
	calls := t.calls.Load()
	added, err := t.Directory.Reassert(ctx, t.Here())
	if err != nil {
		t.Log.Warn("presence: set this node's users again", "err", err)
		t.dirty.Store(true)
		return
	}
	for _, a := range added {
		t.Announce(app.FrameJoined, a.Room, a.User, "")
	}
	if t.calls.Load() != calls {
		// A join or leave went to the directory between the snapshot and the script, which may have
		// undone it: once more at the next refresh.
		t.dirty.Store(true)
	}
}

func (t *Tracker) departed(gone []app.RoomUser) {
	for _, g := range gone {
		t.Announce(app.FrameLeft, g.Room, g.User, "")
	}
}
