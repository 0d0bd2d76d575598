package chat

import (
	"cmp"
	"context"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

// Presence is the directory of who is in which room on every node. The hub records in it each user's
// first connection to a room on this node and their last one leaving; joined and left events go out when
// a user appears in a room on no node before, or is left on none. Nil means this node is the only one:
// its own rooms are the directory.
type Presence interface {
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

// presenceOp is a user's first connection to a room on this node (enter), or their last one leaving it,
// on its way to the directory, with the joined or left event it may announce.
type presenceOp struct {
	enter bool
	room  string
	who   app.Author
	// skip is the connection that must not get the joined event: the joiner's, which gets the presence.
	skip string
	// done, when not nil, is closed once the directory has been told.
	done chan struct{}
}

// presenceQueue holds changes of this node's users in the order they happened, for one goroutine, which
// exists while there are some, to hand the directory: no join or leave waits for Redis under a room's
// lock, and a room's joined and left events still go out in the order of its changes. The hub has
// presenceShards of them, a room's changes all in one, so that rooms do not wait for each other.
type presenceQueue struct {
	mu      sync.Mutex
	ops     []presenceOp
	running bool
}

// announce hands op to the directory and publishes its event when the directory says it is news. It
// runs under the room's lock; with no directory (a single node) it does it at once, as it takes no I/O.
func (h *Hub) announce(op presenceOp) {
	if h.opts.Presence == nil {
		h.applyPresence(op)
		return
	}
	q := &h.presenceQ[shardOf(op.room)]
	q.mu.Lock()
	q.ops = append(q.ops, op)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go h.drainPresence(q)
	}
}

// presenceShards is how many queues of changes the hub has, each with its own goroutine while busy.
const presenceShards = 16

// shardOf returns the queue of the room name.
func shardOf(name string) int {
	f := fnv.New32a()
	_, _ = f.Write([]byte(name)) // a hash never fails to write
	return int(f.Sum32() % presenceShards)
}

// drainPresence applies q's changes, oldest first, until there are none.
func (h *Hub) drainPresence(q *presenceQueue) {
	for {
		q.mu.Lock()
		if len(q.ops) == 0 {
			q.ops, q.running = nil, false
			q.mu.Unlock()
			return
		}
		op := q.ops[0]
		q.ops[0] = presenceOp{}
		q.ops = q.ops[1:]
		q.mu.Unlock()
		h.applyPresence(op)
	}
}

func (h *Hub) applyPresence(op presenceOp) {
	if op.done != nil {
		defer close(op.done)
	}
	if op.enter && h.isClosing() { // its leave will not be told: do not put the user back
		return
	}
	if op.enter {
		if h.enterPresence(op.room, op.who) {
			h.publishEvent(app.FrameJoined, op.room, op.who, bus.Event{Skip: op.skip})
		}
		return
	}
	if h.leavePresence(op.room, op.who) {
		h.publishEvent(app.FrameLeft, op.room, op.who, bus.Event{})
	}
}

// presenceTimeout bounds one call to the directory. Past it the hub goes on with what it knows locally:
// presence is advisory, and a join must not hang on it.
const presenceTimeout = time.Second

// enterPresence records c's user in room and reports whether their joined event must go out.
//
// While the directory is known to be off (a call failed since the last refresh), it is not called: the
// next refresh sets this node's users again anyway, and a Redis that is down would otherwise cost every
// change a timeout, one after the other in a reconnect storm.
func (h *Hub) enterPresence(room string, who app.Author) bool {
	if h.opts.Presence == nil || h.presenceDirty.Load() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
	defer cancel()
	h.presenceCalls.Add(1)
	first, err := h.opts.Presence.Enter(ctx, room, who)
	if err != nil {
		h.log.Warn("presence: enter; the next refresh sets this node's users again", "room", room, "user", who.ID, "err", err)
		h.presenceDirty.Store(true)
		return true
	}
	return first
}

// leavePresence records that who left room here and reports whether their left event must go out. As
// enterPresence, it skips a directory known to be off.
func (h *Hub) leavePresence(room string, who app.Author) bool {
	if h.opts.Presence == nil || h.presenceDirty.Load() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
	defer cancel()
	h.presenceCalls.Add(1)
	last, err := h.opts.Presence.Leave(ctx, room, who)
	if err != nil {
		h.log.Warn("presence: leave; the next refresh sets this node's users again", "room", room, "user", who.ID, "err", err)
		h.presenceDirty.Store(true)
		return true
	}
	return last
}

// roomUsers returns who is in r, on every node when there are several and the directory is to be
// trusted; this node's own users otherwise. This node's users are in it either way: the directory may
// not have their joins yet (see announce).
func (h *Hub) roomUsers(ctx context.Context, r *room) []app.Author {
	local := r.userList()
	if h.opts.Presence == nil || h.presenceDirty.Load() {
		return local
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	list, err := h.opts.Presence.List(ctx, r.name)
	if err != nil {
		if caller.Err() == nil { // the directory failed, not the join that asked
			h.log.Warn("presence: list; answering with this node's users", "room", r.name, "err", err)
			h.presenceDirty.Store(true)
		}
		return local
	}
	for _, who := range local {
		if !slices.ContainsFunc(list, func(a app.Author) bool { return a.ID == who.ID }) {
			list = append(list, who)
		}
	}
	slices.SortFunc(list, func(a, b app.Author) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return list
}

// online returns the users present per room, on every node when there are several and the directory
// is to be trusted; this node's own users otherwise.
func (h *Hub) online(ctx context.Context) map[string]int {
	if h.opts.Presence != nil && !h.presenceDirty.Load() {
		ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
		defer cancel()
		all, err := h.opts.Presence.Online(ctx)
		if err == nil {
			return all
		}
		h.log.Warn("presence: online; answering with this node's users", "err", err)
		h.presenceDirty.Store(true)
	}
	local := map[string]int{}
	h.rooms.Range(func(k, v any) bool {
		if n := v.(*room).online(); n > 0 {
			local[k.(string)] = n
		}
		return true
	})
	return local
}

// Start clears what an earlier process with this node's id left in the presence directory, telling the
// rooms those users left, and registers the node. Call it before serving.
func (h *Hub) Start(ctx context.Context) error {
	h.startLoops() // subscribed before the first connection, so that it misses no event of the others
	if h.opts.Presence == nil {
		return nil
	}
	got, err := h.opts.Presence.Refresh(ctx, true)
	if err != nil {
		return err
	}
	h.departed(got.Gone)
	// An earlier process with this id may have stored messages it never published: every node catches
	// up, as when a node claims a stopped one (see refreshPresence).
	h.relay.Send(bus.ResyncEvent(h.opts.NodeID))
	return nil
}

// refreshPresence renews this node's heartbeat, tells rooms about users who left with stopped nodes,
// and sets this node's users again when the directory may disagree with it.
//
// A node that stopped may have committed messages it never published. Only the node that claims it
// learns of it, so it asks every node, itself included, to catch its rooms up from the store: such a
// message reaches live clients within a TTL, not only with the next message of its room.
func (h *Hub) refreshPresence(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	got, err := h.opts.Presence.Refresh(ctx, false)
	if err != nil {
		h.log.Warn("presence: refresh", "err", err)
		return
	}
	h.departed(got.Gone)
	if got.Claimed > 0 {
		h.log.Info("presence: claimed stopped nodes; every node catches up from the store", "nodes", got.Claimed, "users_left", len(got.Gone))
		h.resync()
		h.relay.Send(bus.ResyncEvent(h.opts.NodeID))
	}
	if got.Lost {
		h.log.Warn("presence: this node had been given up for dead; setting its users again")
		h.presenceDirty.Store(true)
	}
	if h.presenceDirty.Swap(false) {
		h.reassertPresence(ctx)
	}
}

// reassertPresence sets this node's users in the directory again, and announces those who had gone from
// it. It runs when the directory and this node may disagree; a failure leaves that for the next refresh.
func (h *Hub) reassertPresence(ctx context.Context) {
	calls := h.presenceCalls.Load()
	var here []app.RoomUser
	h.rooms.Range(func(_, v any) bool {
		r := v.(*room)
		for _, who := range r.userList() {
			here = append(here, app.RoomUser{Room: r.name, User: who})
		}
		return true
	})
	added, err := h.opts.Presence.Reassert(ctx, here)
	if err != nil {
		h.log.Warn("presence: set this node's users again", "err", err)
		h.presenceDirty.Store(true)
		return
	}
	for _, a := range added {
		h.publishEvent(app.FrameJoined, a.Room, a.User, bus.Event{})
	}
	if h.presenceCalls.Load() != calls {
		// A join or leave went to the directory between the snapshot and the script, which may have
		// undone it: once more at the next refresh.
		h.presenceDirty.Store(true)
	}
}

func (h *Hub) departed(gone []app.RoomUser) {
	for _, g := range gone {
		h.publishEvent(app.FrameLeft, g.Room, g.User, bus.Event{})
	}
}
