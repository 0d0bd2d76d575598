package redisbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

var _ bus.Bus = (*Bus)(nil)

// Timing of the subscription's watchdog. go-redis's own health check only writes its pings: on a
// half-open connection (a partition, a frozen host) the writes succeed, nothing comes back, and the node
// would go deaf, unnoticed, until TCP gives up minutes later.
const (
	// quietFor is how long the subscription may stay silent before it is pinged; a ping left unanswered
	// for as long again means the connection is dead: it is dropped and the node subscribes afresh. Long
	// enough that a Redis busy for a moment (a slow script, a fork) does not make every node resubscribe
	// and catch every room up at once.
	quietFor = 2 * time.Second
	// subscribeTimeout bounds one attempt to subscribe; attempts go on, further and further apart, up
	// to maxBackoff.
	subscribeTimeout = 5 * time.Second
	maxBackoff       = 5 * time.Second
)

// Bus is the bus of a deployment of several nodes, over Redis pub/sub. A room's events go on a channel of
// the room's, which a node hears only while it wants the room (Want: while it has connections there), so
// that a node decodes the events of the rooms it serves and no others; the events of no room (nodes'
// presence, sessions ended, resync requests, a user's own) go on one channel every node hears.
//
// Pub/sub and not streams: the store already keeps every message, numbered per room, so the bus only has
// to be fast; what pub/sub loses while a node is disconnected, the hub reads back from the store, told by
// Resync when the subscription comes back or by a gap in a room's ids. Streams would keep a second copy
// of the history in Redis, to be trimmed and kept in step with the database. A room's events published
// before its subscription is confirmed may be missed: the handler is told (Subscribed) and the room
// catches up from the store, as after a lost subscription.
type Bus struct {
	client  *redis.Client
	channel string // the channel of the events of no room
	prefix  string // starts the channels of rooms
	log     *slog.Logger
	// live is set while the subscription answers; Ping reports it.
	live    atomic.Bool
	stop    context.CancelFunc
	stopped chan struct{}

	closeOnce sync.Once
	closeErr  error

	// mu guards handlers, and pubsub and closed: the receive loop replaces a dead subscription, Close
	// closes the current one.
	mu       sync.RWMutex
	handlers []bus.Handler
	pubsub   *redis.PubSub
	closed   bool
	// rooms are the rooms this node wants, subscribed again with every new subscription; changes holds
	// the wants not yet sent to Redis, in order, for the loop that sends them (wants), woken by wake.
	rooms   map[string]bool
	changes []roomWant
	wake    chan struct{}
}

type roomWant struct {
	room string
	want bool
}

// Config says where the bus is.
type Config struct {
	// URL is redis://[user:password@]host:port/db.
	URL string
	// Prefix starts the channel's name (and the presence keys'), so that deployments, or tests, can share
	// a Redis.
	Prefix string
	// Node names the connections (CLIENT LIST shows prefix+node), to tell the nodes apart.
	Node string
}

// New connects to Redis and subscribes to the channel Prefix+"events". It returns once the
// subscription is active, so that no event published after it returns is missed.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("bus: REDIS_URL: %w", err)
	}
	opts.ClientName = cfg.Prefix + cfg.Node
	// The callers' deadlines (a second for presence, two for a publish) must hold on a Redis that does not
	// answer, not go-redis's own 3 to 5 s.
	opts.ContextTimeoutEnabled = true
	redis.SetLogger(redisLog{log})
	client := redis.NewClient(opts)
	r := &Bus{client: client, channel: cfg.Prefix + "events", prefix: cfg.Prefix + "room:", log: log,
		stopped: make(chan struct{}), rooms: map[string]bool{}, wake: make(chan struct{}, 1)}
	r.pubsub, err = r.subscribe(ctx)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("bus: subscribe to redis at %s: %w", opts.Addr, err)
	}
	r.live.Store(true)
	loop, stop := context.WithCancel(context.Background())
	r.stop = stop
	go r.receive(loop, r.pubsub)
	go r.wants(loop)
	return r, nil
}

// Want starts (want true) or stops carrying room's events to this node. It does not wait for Redis: once
// the subscription is confirmed, the handlers that have a Subscribed(room) method are told, and the room
// catches up from the store what was published before.
func (r *Bus) Want(room string, want bool) {
	r.mu.Lock()
	if want {
		r.rooms[room] = true
	} else {
		delete(r.rooms, room)
	}
	r.changes = append(r.changes, roomWant{room, want})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// wants sends the wants to Redis, in order, on the current subscription, until ctx ends. A want that
// fails is mended by the next subscription, which subscribes to every room wanted then.
func (r *Bus) wants(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		r.mu.Lock()
		changes, ps := r.changes, r.pubsub
		r.changes = nil
		r.mu.Unlock()
		if ps == nil {
			// Being replaced: kept for the new subscription, which wakes this loop, as a want made while it
			// was subscribing may have missed it.
			r.mu.Lock()
			r.changes = append(changes, r.changes...)
			r.mu.Unlock()
			continue
		}
		for _, c := range changes {
			sctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
			var err error
			if c.want {
				err = ps.Subscribe(sctx, r.prefix+c.room)
			} else {
				err = ps.Unsubscribe(sctx, r.prefix+c.room)
			}
			cancel()
			if err != nil {
				r.log.Warn("bus: change a room's subscription", "room", c.room, "want", c.want, "err", err)
			}
		}
	}
}

// channelOf is the channel ev goes on: its room's, or that of the events of no room.
func (r *Bus) channelOf(ev bus.Event) string {
	if ev.Room == "" || !app.ValidRoom(ev.Room) {
		return r.channel
	}
	return r.prefix + ev.Room
}

// subscribe opens a subscription, to the channel of the events of no room and to every room wanted, and
// waits for Redis to confirm the first; the rooms' confirmations come to the receive loop.
func (r *Bus) subscribe(ctx context.Context) (*redis.PubSub, error) {
	r.mu.RLock()
	channels := make([]string, 0, len(r.rooms)+1)
	channels = append(channels, r.channel)
	for room := range r.rooms {
		channels = append(channels, r.prefix+room)
	}
	r.mu.RUnlock()
	ps := r.client.Subscribe(ctx, channels...)
	if _, err := ps.Receive(ctx); err != nil { // the first reply is the confirmation
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

// receive hands what the subscription brings to the handlers until ctx ends. A subscription that fails,
// or stays silent through a ping, is replaced, and the handlers are told to resync.
func (r *Bus) receive(ctx context.Context, ps *redis.PubSub) {
	defer close(r.stopped)
	pinged := false
	for {
		m, err := ps.ReceiveTimeout(ctx, quietFor)
		if ctx.Err() != nil {
			return
		}
		var ne net.Error
		if err != nil && !pinged && errors.As(err, &ne) && ne.Timeout() {
			if pinged = ps.Ping(ctx) == nil; pinged {
				continue
			}
		}
		if err != nil {
			if r.live.Swap(false) {
				r.log.Warn("bus: lost the redis subscription; subscribing again", "err", err)
			}
			if ps = r.resubscribe(ctx, ps); ps == nil {
				return
			}
			pinged = false
			r.live.Store(true)
			r.log.Info("bus: subscribed to redis again; catching up from the store", "channel", r.channel)
			r.resync()
			continue
		}
		pinged = false
		switch m := m.(type) {
		case *redis.Subscription:
			r.confirmed(m)
		case *redis.Message:
			ev, err := decodeEvent([]byte(m.Payload))
			if err != nil {
				r.log.Error("bus: drop malformed event", "err", err)
				continue
			}
			r.mu.RLock()
			for _, h := range r.handlers {
				h.Event(ev)
			}
			r.mu.RUnlock()
		}
	}
}

// resubscribe closes old and subscribes until it works or ctx ends (nil then).
func (r *Bus) resubscribe(ctx context.Context, old *redis.PubSub) *redis.PubSub {
	r.mu.Lock()
	r.pubsub = nil // closed here: Close must not close it again
	r.mu.Unlock()
	_ = old.Close()
	backoff := 100 * time.Millisecond
	for {
		sctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
		ps, err := r.subscribe(sctx)
		cancel()
		if err == nil {
			r.mu.Lock()
			closed := r.closed
			if !closed {
				r.pubsub = ps
			}
			r.mu.Unlock()
			if closed {
				_ = ps.Close()
				return nil
			}
			select {
			case r.wake <- struct{}{}:
			default:
			}
			return ps
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// confirmed takes a subscription's confirmation: a room's tells the handlers that the room may have
// missed events before it; that of the events of no room comes only when go-redis reconnected by itself,
// after a read failed, and subscribed again.
func (r *Bus) confirmed(m *redis.Subscription) {
	if m.Kind != "subscribe" {
		return
	}
	room, ok := strings.CutPrefix(m.Channel, r.prefix)
	if !ok {
		r.log.Info("bus: subscribed to redis again; catching up from the store", "channel", m.Channel)
		r.resync()
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, h := range r.handlers {
		if s, ok := h.(subscribedHandler); ok {
			s.Subscribed(room)
		}
	}
}

// subscribedHandler is a handler told when a room's subscription is confirmed.
type subscribedHandler interface {
	Subscribed(room string)
}

func (r *Bus) resync() {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, h := range r.handlers {
		h.Resync()
	}
}

// Publish sends evs in one round trip, in order.
func (r *Bus) Publish(ctx context.Context, evs ...bus.Event) error {
	pipe := r.client.Pipeline()
	for _, ev := range evs {
		pipe.Publish(ctx, r.channelOf(ev), encodeEvent(ev))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("bus: publish %d events: %w", len(evs), err)
	}
	return nil
}

// Subscribe adds h.
func (r *Bus) Subscribe(h bus.Handler) {
	r.mu.Lock()
	r.handlers = append(r.handlers, h)
	r.mu.Unlock()
}

// Ping reports whether Redis answers and the subscription is alive.
func (r *Bus) Ping(ctx context.Context) error {
	if !r.live.Load() {
		return errors.New("bus: redis subscription lost; subscribing again")
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("bus: redis: %w", err)
	}
	return nil
}

// Client returns the Redis client, for the presence directory to share its connections.
func (r *Bus) Client() *redis.Client { return r.client }

// Close ends the subscription and the connections. Later calls do nothing.
func (r *Bus) Close() error {
	r.closeOnce.Do(func() {
		r.stop()
		r.mu.Lock()
		r.closed = true
		ps := r.pubsub
		r.mu.Unlock()
		var err error
		if ps != nil {
			err = ps.Close() // unblocks the receive loop's read
		}
		<-r.stopped
		r.closeErr = errors.Join(err, r.client.Close())
	})
	return r.closeErr
}

// redisLog sends go-redis's own messages (failed dials while Redis is away, mostly) to the node's log,
// in its format, instead of to the standard logger. go-redis has one logger per process: the last bus
// opened sets it.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// eventVersion opens every encoded event, so that a format change can be told from the old one.
const eventVersion = 1

// encodeEvent lays ev out as a version byte, the length-prefixed strings Room, Skip and Node, the varints
// SkipUser, ID and Sent, and the payload to the end: no JSON around JSON, one allocation.
func encodeEvent(ev bus.Event) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(ev.Room)+len(ev.Skip)+len(ev.Node)+3*binary.MaxVarintLen64+len(ev.Payload))
	b = append(b, eventVersion)
	for _, s := range [...]string{ev.Room, ev.Skip, ev.Node} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, ev.SkipUser)
	b = binary.AppendVarint(b, ev.ID)
	b = binary.AppendVarint(b, ev.Sent)
	return append(b, ev.Payload...)
}

var errMalformed = errors.New("bus: malformed event")

func decodeEvent(b []byte) (bus.Event, error) {
	if len(b) == 0 || b[0] != eventVersion {
		return bus.Event{}, errMalformed
	}
	b = b[1:]
	var strs [3]string
	for i := range strs {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return bus.Event{}, errMalformed
		}
		strs[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	var ints [3]int64
	for i := range ints {
		v, k := binary.Varint(b)
		if k <= 0 {
			return bus.Event{}, errMalformed
		}
		ints[i] = v
		b = b[k:]
	}
	ev := bus.Event{Room: strs[0], Skip: strs[1], Node: strs[2], SkipUser: ints[0], ID: ints[1], Sent: ints[2]}
	if len(b) > 0 {
		ev.Payload = b
	}
	return ev, nil
}
