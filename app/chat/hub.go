// Package chat is the hub: who is connected, which rooms they are in, and how a message goes from its
// sender to the store, the bus and every other connection. It knows no WebSocket library: a client is an
// identity and a bounded queue over a Conn.
package chat

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/access"
	"github.com/causerie/causerie/app/budget"
	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/commit"
	"github.com/causerie/causerie/app/presence"
)

// MessageStore is the storage the hub needs.
type MessageStore interface {
	// AppendMessages stores msgs in one transaction, each as the next message of its room, and returns
	// once they are durable; for a ClientID its author already used it stores nothing and returns the
	// earlier message.
	AppendMessages(ctx context.Context, msgs []app.Message) ([]app.Appended, error)
	// Messages returns messages of room, oldest first.
	Messages(ctx context.Context, room string, q app.MessageQuery) ([]app.Message, error)
	// LastID returns the id of the newest message of room, 0 when it has none.
	LastID(ctx context.Context, room string) (int64, error)
	RoomStore
}

// Timings receives the durations the metrics report. Its methods must not block.
type Timings interface {
	// Commit records one transaction of n messages.
	Commit(took time.Duration, n int)
	// BusLag records the time from publication on another node to delivery here.
	BusLag(took time.Duration)
}

// TokenVerifier verifies the fresh token of an auth frame, and that its session still exists.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (app.Identity, error)
}

// ErrShuttingDown is returned by Register once Shutdown has begun.
var ErrShuttingDown = errors.New("chat: shutting down")

// Options configures a Hub. config.Load supplies every default.
type Options struct {
	Store  MessageStore
	Bus    bus.Bus
	Tokens TokenVerifier
	// Sessions may be nil; with it, the hub closes the connections of sessions that ended while the bus
	// may have lost the news (see EndSessions).
	Sessions SessionChecker
	Log      *slog.Logger
	// Timings may be nil.
	Timings Timings
	// NodeID names this node in bus events and logs; empty draws a random one.
	NodeID          string
	Now             func() time.Time
	MaxMessageBytes int
	QueueBytes      int
	// WriteDelay, when set, is how long a busy connection's writer (one whose last write carried several
	// frames) waits, once it has something to write, for more to write with it: fewer system calls for a
	// little latency, under load only.
	WriteDelay   time.Duration
	PingInterval time.Duration
	PongWait     time.Duration
	// HistoryLimit is how many messages a join without since gets.
	HistoryLimit int
	// ResumeMax caps a replay; past it the replay says complete:false.
	ResumeMax int
	// RateLimit is the frames per second a user may send, all connections on this node and REST posts
	// together (0: unlimited), with bursts of RateBurst. Pings have a budget of their own.
	RateLimit float64
	RateBurst int
	// MaxRooms caps the rooms of one connection.
	MaxRooms int
	// MaxConnsPerUser caps the connections of one user (0: no cap), on every node with Usage.
	MaxConnsPerUser int
	// Usage may be nil (a single node); with it, RateLimit and MaxConnsPerUser hold across nodes.
	Usage budget.Usage
	// RoomsPerHour caps the rooms one user creates in an hour, counted by Creations; 0 is no cap.
	RoomsPerHour int
	Creations    budget.Counter
	// Presence may be nil (a single node). PresenceTTL is how long a stopped node's users stay present;
	// the hub refreshes this node's every third of it.
	Presence    presence.Directory
	PresenceTTL time.Duration
}

// Hub routes messages between clients. It is safe for concurrent use.
type Hub struct {
	opts      Options
	log       *slog.Logger
	pipe      *commit.Pipeline
	relay     *bus.Relay
	connSeq   atomic.Uint64 // numbers this node's connections
	presence  *presence.Tracker
	stats     Stats
	budgets   *budget.Users
	creations *budget.Rooms
	access    *access.Rooms
	subs      subscriptions

	// clients is the registry of live connections by Client.ID, and users the same by user.
	clients sync.Map
	users   byUser
	// rooms maps a room name to its *room while the room has connections.
	rooms sync.Map

	// loops starts the pipeline's and the relay's loops, once, in Run; looping says it has.
	loops   sync.Once
	looping atomic.Bool
	// sessionCheck asks watchSessions to look for connections of ended sessions now.
	sessionCheck chan struct{}
	// ended holds the sessions this node heard ended, with when (see closeSessions).
	endedMu sync.Mutex
	ended   map[string]time.Time

	mu       sync.Mutex
	closing  bool
	sessions sync.WaitGroup
}

// New returns a hub; it starts nothing: Run does. It refuses options that cannot work; zero values take
// config.Load's defaults.
func New(opts Options) (*Hub, error) {
	switch {
	case opts.Store == nil || opts.Bus == nil:
		return nil, errors.New("chat: Options.Store and Options.Bus are required")
	case opts.PingInterval < 0 || opts.PongWait < 0 || opts.MaxMessageBytes < 0 || opts.QueueBytes < 0 || opts.WriteDelay < 0 ||
		opts.HistoryLimit < 0 || opts.ResumeMax < 0 || opts.MaxRooms < 0 || opts.RateLimit < 0:
		return nil, errors.New("chat: an option is negative")
	}
	// Zero values take the defaults of config.Load, so that a hub built in a test is safe to run.
	opts.PingInterval = cmp.Or(opts.PingInterval, 25*time.Second)
	opts.PongWait = cmp.Or(opts.PongWait, 60*time.Second)
	opts.MaxMessageBytes = cmp.Or(opts.MaxMessageBytes, 4096)
	opts.QueueBytes = cmp.Or(opts.QueueBytes, 1<<20)
	opts.ResumeMax = cmp.Or(opts.ResumeMax, 1000)
	opts.MaxRooms = cmp.Or(opts.MaxRooms, 50)
	opts.PresenceTTL = cmp.Or(opts.PresenceTTL, 15*time.Second)
	if opts.PongWait <= opts.PingInterval {
		return nil, fmt.Errorf("chat: PongWait (%s) must be longer than PingInterval (%s)", opts.PongWait, opts.PingInterval)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NodeID == "" {
		var node [4]byte
		_, _ = rand.Read(node[:]) // crypto/rand.Read never fails on supported platforms
		opts.NodeID = hex.EncodeToString(node[:])
	}
	if opts.Timings == nil {
		opts.Timings = noTimings{}
	}
	h := &Hub{opts: opts, log: opts.Log, sessionCheck: make(chan struct{}, 1), ended: map[string]time.Time{}}
	h.budgets = budget.New(budget.Config{PerSecond: opts.RateLimit, Burst: opts.RateBurst, MaxConns: opts.MaxConnsPerUser, Usage: opts.Usage, Log: opts.Log})
	h.creations = &budget.Rooms{Max: opts.RoomsPerHour, Counter: opts.Creations}
	h.access = access.New(opts.Store)
	h.subs.count = &h.stats.Subscriptions
	if rb, ok := opts.Bus.(roomBus); ok {
		h.subs.bus = rb
	}
	h.relay = bus.NewRelay(opts.Bus, opts.NodeID, opts.Log)
	h.presence = presence.New(presence.Config{
		Directory: opts.Presence,
		Announce: func(kind, room string, who app.Author, skip string) {
			h.publishEvent(kind, room, who, bus.Event{Skip: skip})
		},
		Resync: func() {
			h.resync()
			h.relay.Send(bus.ResyncEvent(h.opts.NodeID))
		},
		Here:    h.here,
		Closing: h.isClosing,
		Log:     opts.Log,
	})
	h.pipe = commit.New(commit.Config{Store: opts.Store, Mark: h.fly, Publish: h.publish, Commit: opts.Timings.Commit})
	return h, nil
}

// startLoops starts, once, the loops that carry messages: the committer and the publisher of the
// pipeline, the relay to the bus, and the subscription to it. Shutdown ends them.
func (h *Hub) startLoops() {
	h.loops.Do(func() {
		h.looping.Store(true)
		go h.pipe.Run()
		go h.relay.Run()
		h.opts.Bus.Subscribe(busHandler{h})
	})
}

type noTimings struct{}

func (noTimings) Commit(time.Duration, int) {}
func (noTimings) BusLag(time.Duration)      {}

// busHandler is the hub as the bus sees it.
type busHandler struct{ h *Hub }

// Event delivers an event another node published; the hub's own came back from the bus and were
// delivered when they were published.
func (b busHandler) Event(ev bus.Event) {
	if ev.Node == b.h.opts.NodeID {
		return
	}
	if ev.Room == "" && ev.Payload != nil {
		b.h.closeSessions(app.DecodeEndedSessions(ev.Payload))
		return
	}
	if ev.Room == "" { // another node claimed a stopped one (presence.Tracker.Refresh), or lost a bus event
		b.Resync()
		return
	}
	if ev.Sent != 0 {
		b.h.opts.Timings.BusLag(time.Duration(time.Now().UnixNano() - ev.Sent))
	}
	if !b.h.dispatch(ev, nil, nil) && !b.h.subs.wants(ev.Room) {
		b.h.stats.Unserved.Add(1)
	}
}

// Subscribed catches room up from the store: the bus carries its events from now on, and those published
// before may have been missed.
func (b busHandler) Subscribed(name string) {
	if v, ok := b.h.rooms.Load(name); ok {
		v.(*room).seq.Resync()
	}
}

// Resync catches every room up from the store, closes the connections of sessions that ended meanwhile,
// and gives each user here their room list again.
func (b busHandler) Resync() {
	b.h.resync()
	b.h.checkSessions()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
		defer cancel()
		b.h.resendLists(ctx)
	}()
}

// publish delivers ev to this node's connections and hands it to the bus for the others. done is as
// for dispatch; landed, when not nil, is a message of this node's as it was marked in flight (fly), whose
// mark the delivery clears.
func (h *Hub) publish(ev bus.Event, landed *app.Message, done func()) {
	ev.Node, ev.Sent = h.opts.NodeID, time.Now().UnixNano()
	if landed != nil && landed.Room != ev.Room {
		// A repeat of a client id its author used in another room: the store answered with that room's
		// message, and the mark is in the room it was sent to.
		h.fly(*landed, -1)
		landed = nil
	}
	h.dispatch(ev, landed, done)
	h.relay.Send(ev)
}

// Stats returns the hub's counters; they are read without locks and safe to read at any time.
func (h *Hub) Stats() *Stats { return &h.stats }

// Join is a room to join at connect, with the id of the last message seen there when resuming.
type Join struct {
	Room  string
	Since *int64
}

// Session is what a connection asks for when it opens.
type Session struct {
	User  app.Identity
	Joins []Join
}

// Register adds a connection: it queues the welcome frame, then joins each room with its presence and
// backlog. The caller must call Unregister when the connection ends.
func (h *Hub) Register(ctx context.Context, conn Conn, s Session) (*Client, error) {
	user, joins := s.User, s.Joins
	seq := h.connSeq.Add(1)
	c := &Client{
		ID:       h.opts.NodeID + "-" + strconv.FormatUint(seq, 10),
		User:     user,
		seq:      seq,
		conn:     conn,
		hub:      h,
		maxQueue: h.opts.QueueBytes,
		rooms:    make(map[string]struct{}, len(joins)),
	}
	// Stored under h.mu, so that Shutdown, which sets closing under it, sees every client it must close.
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil, ErrShuttingDown
	}
	h.sessions.Add(1)
	h.clients.Store(c.ID, c)
	// The user's own events wait for the welcome: its room list is read after this, so none is missed.
	c.hold(app.UserChannel(user.UserID))
	h.users.add(c)
	h.mu.Unlock()
	c.expiry = time.AfterFunc(time.Until(user.ExpiresAt), func() { h.expire(c) })
	h.stats.Connections.Add(1)
	if h.endedLately(user.Session) { // the session ended after its token was checked, before this
		h.endSession(c)
		return c, nil
	}

	// The welcome names the rooms the connection will be in: not those that do not exist, or that the
	// user may not see, which get their error after it.
	names := make([]string, 0, len(joins))
	open := make([]Join, 0, len(joins))
	var public []string
	var refused []error
	for _, j := range joins {
		r, err := h.access.Open(ctx, user.UserID, j.Room)
		if err != nil {
			refused = append(refused, err)
			continue
		}
		if r.Kind == app.RoomPublic {
			public = append(public, r.Name)
		}
		open = append(open, j)
		names = append(names, j.Room)
	}
	list, listed := h.welcomeList(ctx, c, public)
	c.enqueue(app.EncodeWelcome(author(user), names, list, h.opts.MaxMessageBytes))
	c.flush(app.UserChannel(user.UserID))
	if listed {
		h.pushRooms(ctx, user.UserID, c.ID)
	}
	for _, err := range refused {
		h.refuse(c, err, "")
	}
	for _, j := range open {
		if _, err := h.join(ctx, c, j.Room, j.Since, false, ""); err != nil {
			h.refuse(c, err, "")
		}
	}
	return c, nil
}

// Unregister removes c from its rooms and the registry; users whose last connection this was leave.
func (h *Hub) Unregister(c *Client) {
	if _, loaded := h.clients.LoadAndDelete(c.ID); !loaded {
		return
	}
	c.expiry.Stop()
	h.users.remove(c)
	for _, name := range c.roomNames() {
		h.removeFromRoom(c, name)
	}
	c.finish()
	h.stats.Connections.Add(-1)
	h.sessions.Done()
}

// enterRoom adds c to the room name, creating the room if needed, and returns it, with, when c is its
// user's first connection there, a channel closed once the directory has the user.
func (h *Hub) enterRoom(c *Client, name string) (*room, <-chan struct{}) {
	var recorded <-chan struct{}
	joined := func() { recorded = h.presence.Enter(name, author(c.User), c.ID) }
	for {
		v, ok := h.rooms.Load(name)
		if !ok {
			fresh := &room{name: name}
			fresh.seq = h.newSequencer(fresh)
			var loaded bool
			if v, loaded = h.rooms.LoadOrStore(name, fresh); !loaded {
				h.subs.enter(name)
			}
		}
		if r := v.(*room); r.enter(c, joined) {
			return r, recorded
		}
		// The room emptied and went between the load and the enter: take a new one.
	}
}

func (h *Hub) removeFromRoom(c *Client, name string) {
	v, ok := h.rooms.Load(name)
	if !ok {
		return
	}
	r := v.(*room)
	var left func()
	if !h.isClosing() { // at shutdown every user leaves: nobody is there to tell
		left = func() { h.presence.Leave(name, author(c.User)) }
	}
	if r.exit(c, left) {
		h.rooms.CompareAndDelete(name, r)
		h.subs.gone(name)
		r.seq.Stop()
	}
}

// publishEvent publishes a joined, left or typing frame; ev supplies who to skip.
func (h *Hub) publishEvent(kind, room string, who app.Author, ev bus.Event) {
	ev.Room, ev.Payload = room, app.EncodeUserEvent(kind, room, who)
	h.publish(ev, nil, nil)
}

// fanOut queues ev's frame, the same bytes, on every member of r.
func (h *Hub) fanOut(r *room, ev bus.Event) {
	var n int64
	r.members.each(func(c *Client) {
		if c.ID == ev.Skip || (ev.SkipUser != 0 && c.User.UserID == ev.SkipUser) {
			return
		}
		if c.offer(ev) {
			n++
		}
	})
	if ev.ID != 0 {
		h.stats.Deliveries.Add(n)
	}
}

// expire ends a connection whose token expired without an auth frame renewing it.
func (h *Hub) expire(c *Client) {
	h.refuse(c, app.Errorf(app.CodeExpired, "your token expired; get a fresh one and reconnect"), "")
}

// writerLinger is how often idle writers are sent away: a connection's writer goroutine lives between
// one and two of these after its last write.
const writerLinger = time.Second

// Run pings every client each PingInterval, aborts those silent for longer than PongWait, retires
// idle writers, and refreshes this node's presence, until ctx ends. It starts, on goroutines of their
// own, the budgets per user (with their exchange with the other nodes) and the watch on ended sessions,
// which end with ctx.
// One loop serves all clients, so that an idle connection costs no goroutine and no ticker of its own:
// its only timer is the one that ends it when its token expires.
func (h *Hub) Run(ctx context.Context) {
	h.startLoops()
	t := time.NewTicker(h.opts.PingInterval)
	defer t.Stop()
	sweep := time.NewTicker(writerLinger)
	defer sweep.Stop()
	go h.budgets.Run(ctx)
	if h.opts.Sessions != nil {
		go h.watchSessions(ctx)
	}
	var refresh <-chan time.Time
	if h.opts.Presence != nil {
		heartbeat := time.NewTicker(h.opts.PresenceTTL / 3)
		defer heartbeat.Stop()
		refresh = heartbeat.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh:
			h.presence.Refresh(ctx)
		case <-sweep.C:
			h.clients.Range(func(_, v any) bool {
				v.(*Client).retireIfIdle()
				return true
			})
		case <-t.C:
			// Real time, not opts.Now: LastRead comes from the wall clock of the socket.
			deadline := time.Now().Add(-h.opts.PongWait)
			h.clients.Range(func(_, v any) bool {
				c := v.(*Client)
				if c.conn.LastRead().Before(deadline) {
					h.log.Info("closing silent connection", "conn", c.ID, "user", c.User.UserID)
					c.conn.Abort()
				} else {
					c.requestPing()
				}
				return true
			})
		}
	}
}

// Admit counts a connection of a user, or refuses it with a too_many_connections error when the user
// has MaxConnsPerUser connections open, on every node with Usage. Release takes it back.
func (h *Hub) Admit(ctx context.Context, user int64) error { return h.budgets.Admit(ctx, user) }

// Release takes back a connection Admit counted.
func (h *Hub) Release(user int64) { h.budgets.Release(user) }

func (h *Hub) isClosing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closing
}

// Shutdown refuses new clients, closes every client with code (after what is already queued), waits
// until all have unregistered or ctx ends, and stops taking messages once every message taken is stored
// and published (within drainTimeout).
func (h *Hub) Shutdown(ctx context.Context, code int, reason string) error {
	defer h.drain()
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	h.clients.Range(func(_, v any) bool {
		v.(*Client).Close(code, reason)
		return true
	})
	done := make(chan struct{})
	go func() {
		h.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		h.clients.Range(func(_, v any) bool {
			v.(*Client).conn.Abort()
			return true
		})
		return fmt.Errorf("chat: shutdown: %w", ctx.Err())
	}
}

// drainTimeout bounds, at shutdown, storing the messages already taken, then, again, handing them to the
// bus. It is a budget of its own: a shutdown that ran out of time waiting for clients must still try to
// publish what it committed, or other nodes would learn of it only with their next message.
const drainTimeout = 3 * time.Second

func (h *Hub) drain() {
	h.subs.stop()
	for _, close := range []func(context.Context){h.pipe.Close, h.relay.Close} {
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		if !h.looping.Load() {
			cancel() // a hub that never ran has no loop to wait for: close, and do not wait
		}
		close(ctx)
		cancel()
	}
}

func author(u app.Identity) app.Author { return app.Author{ID: u.UserID, Name: u.Name} }

// Start clears what an earlier process with this node's id left in the presence directory, telling the
// rooms those users left, and registers the node. Call it before serving.
func (h *Hub) Start(ctx context.Context) error {
	h.startLoops() // subscribed before the first connection, so that it misses no event of the others
	return h.presence.Start(ctx)
}

// here lists this node's users, room by room.
func (h *Hub) here() []app.RoomUser {
	var here []app.RoomUser
	h.rooms.Range(func(_, v any) bool {
		r := v.(*room)
		for _, who := range r.userList() {
			here = append(here, app.RoomUser{Room: r.name, User: who})
		}
		return true
	})
	return here
}
