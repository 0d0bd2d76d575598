package redisbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

var _ bus.Bus = (*Bus)(nil)

// Timing of a subscription's watchdog. go-redis's own health check only writes its pings: on a
// half-open connection (a partition, a frozen host) the writes succeed, nothing comes back, and the node
// would go deaf, unnoticed, until TCP gives up minutes later.
const (
	// quietFor is how long a subscription may stay silent before it is pinged; a ping left unanswered
	// for as long again means the connection is dead: it is dropped and the node subscribes afresh. Long
	// enough that a Redis busy for a moment (a slow script, a fork) does not make every node resubscribe
	// and catch every room up at once.
	quietFor = 2 * time.Second
	// subscribeTimeout bounds one attempt to subscribe; attempts go on, further and further apart, up
	// to maxBackoff.
	subscribeTimeout = 5 * time.Second
	maxBackoff       = 5 * time.Second
)

// partitions is how many groups the rooms fall into on a Redis Cluster, each on a hash slot of its own
// and heard through one connection: enough that the rooms spread over the masters of a cluster of a few,
// few enough that a node holds at most partitions+1 subscriber connections.
const partitions = 16

// Bus is the bus of a deployment of several nodes, over Redis pub/sub. A room's events go on a channel of
// the room's, which a node hears only while it wants the room (Want: while it has connections there), so
// that a node decodes the events of the rooms it serves and no others; the events of no room (nodes'
// presence, sessions ended, resync requests, a user's own) go on one channel every node hears.
//
// On one Redis, one connection hears them all. On a Redis Cluster (a redis+cluster:// URL), channels are
// sharded (SSUBSCRIBE, SPUBLISH: an event travels to the master of its channel's slot alone, not to every
// master) and a room's channel carries the hash tag of its partition, so that each partition's rooms
// share a slot and one connection, opened at the first room wanted there, hears them: SSUBSCRIBE takes
// the channels of one slot, and go-redis subscribes a connection's channels again in one command.
//
// Pub/sub and not streams: the store already keeps every message, numbered per room, so the bus only has
// to be fast; what pub/sub loses while a node is disconnected, the hub reads back from the store, told by
// Resync when the subscription comes back or by a gap in a room's ids. Streams would keep a second copy
// of the history in Redis, to be trimmed and kept in step with the database. A room's events published
// before its subscription is confirmed may be missed: the handler is told (Subscribed) and the room
// catches up from the store, as after a lost subscription.
type Bus struct {
	client  redis.UniversalClient
	sharded bool   // a Redis Cluster: sharded channels, rooms in partitions
	channel string // the channel of the events of no room
	prefix  string // REDIS_PREFIX, which starts every channel
	log     *slog.Logger
	// loop lives until Close; every subscription's goroutines run in it, counted by running.
	loop    context.Context
	stop    context.CancelFunc
	running sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// handlers are called with no lock held: a handler may call Want (the hub does, from its own locks,
	// which its Event takes too). Subscribe replaces the slice, never appends to it in place.
	handlers atomic.Pointer[[]bus.Handler]

	// mu guards closed, parts, and what each subscription holds.
	mu     sync.RWMutex
	closed bool
	// control hears the events of no room, and on one Redis every room's as well; on a Redis Cluster,
	// parts[p] hears the rooms of partition p, from the first one wanted.
	control *subscription
	parts   []*subscription
}

// Config says where the bus is.
type Config struct {
	// URL is redis://[user:password@]host:port/db, or redis+cluster://[user:password@]host:port for a
	// Redis Cluster, with more seed nodes as addr=host:port parameters (rediss for TLS, both ways).
	URL string
	// Prefix starts every channel's name, so that deployments, or tests, can share a Redis.
	Prefix string
	// Node names the connections (CLIENT LIST shows prefix+node), to tell the nodes apart.
	Node string
}

// New connects to Redis and subscribes to the channel Prefix+"events". It returns once the
// subscription is active, so that no event published after it returns is missed.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	client, addr, sharded, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	redis.SetLogger(redisLog{log})
	b := &Bus{client: client, sharded: sharded, channel: cfg.Prefix + "events", prefix: cfg.Prefix, log: log}
	if sharded {
		b.control = b.newSubscription(b.channel, "")
		b.parts = make([]*subscription, partitions)
	} else {
		b.control = b.newSubscription(b.channel, cfg.Prefix+"room:")
	}
	ps, err := b.control.open(ctx)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("bus: subscribe to redis at %s: %w", addr, err)
	}
	b.control.pubsub = ps
	b.loop, b.stop = context.WithCancel(context.Background())
	b.running.Add(2)
	go b.control.run(b.loop, ps)
	go b.control.wants(b.loop)
	return b, nil
}

// connect makes the client REDIS_URL names, and tells whether it is a Redis Cluster's.
func connect(cfg Config) (client redis.UniversalClient, addr string, sharded bool, err error) {
	if url, ok := cutClusterScheme(cfg.URL); ok {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, "", false, fmt.Errorf("bus: REDIS_URL: %w", err)
		}
		opts.ClientName = cfg.Prefix + cfg.Node
		opts.ContextTimeoutEnabled = true
		return redis.NewClusterClient(opts), strings.Join(opts.Addrs, ","), true, nil
	}
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, "", false, fmt.Errorf("bus: REDIS_URL: %w", err)
	}
	opts.ClientName = cfg.Prefix + cfg.Node
	// The callers' deadlines (a second for presence, two for a publish) must hold on a Redis that does not
	// answer, not go-redis's own 3 to 5 s.
	opts.ContextTimeoutEnabled = true
	return redis.NewClient(opts), opts.Addr, false, nil
}

// cutClusterScheme turns a redis+cluster:// (or rediss+cluster://) URL into the redis:// (rediss://) one
// go-redis parses for a cluster, and reports whether url was one.
func cutClusterScheme(url string) (string, bool) {
	for _, scheme := range [...]string{"redis", "rediss"} {
		if rest, ok := strings.CutPrefix(url, scheme+"+cluster://"); ok {
			return scheme + "://" + rest, true
		}
	}
	return url, false
}

// Want starts (want true) or stops carrying room's events to this node. It does not wait for Redis: once
// the subscription is confirmed, the handlers that have a Subscribed(room) method are told, and the room
// catches up from the store what was published before.
func (b *Bus) Want(room string, want bool) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	s, opened := b.control, false
	if b.sharded {
		p := partition(room)
		if s = b.parts[p]; s == nil {
			if !want {
				b.mu.Unlock()
				return
			}
			s = b.newSubscription(b.partitionPrefix(p), b.partitionPrefix(p))
			b.parts[p], opened = s, true
			b.running.Add(2)
		}
	}
	if want {
		s.rooms[room] = true
	} else {
		delete(s.rooms, room)
	}
	if !opened {
		s.changes = append(s.changes, roomWant{room, want})
	}
	b.mu.Unlock()
	if opened {
		// Its first subscription takes the room with its anchor.
		go s.run(b.loop, nil)
		go s.wants(b.loop)
		return
	}
	s.poke()
}

// partition is the partition of room on a Redis Cluster, by FNV-1a.
func partition(room string) int {
	h := uint32(2166136261)
	for i := 0; i < len(room); i++ {
		h ^= uint32(room[i])
		h *= 16777619
	}
	return int(h % partitions)
}

// partitionPrefix starts the channels of partition p's rooms. Alone, it is the partition's anchor: a
// channel on the partition's slot that nothing is published to.
func (b *Bus) partitionPrefix(p int) string {
	return b.prefix + "room{" + strconv.Itoa(p) + "}:"
}

// channelOf is the channel ev goes on: its room's, or that of the events of no room.
func (b *Bus) channelOf(ev bus.Event) string {
	switch {
	case ev.Room == "" || !app.ValidRoom(ev.Room):
		return b.channel
	case b.sharded:
		return b.partitionPrefix(partition(ev.Room)) + ev.Room
	default:
		return b.prefix + "room:" + ev.Room
	}
}

// subscribers returns the handlers.
func (b *Bus) subscribers() []bus.Handler {
	if hs := b.handlers.Load(); hs != nil {
		return *hs
	}
	return nil
}

// deliver hands ev to every handler.
func (b *Bus) deliver(ev bus.Event) {
	for _, h := range b.subscribers() {
		h.Event(ev)
	}
}

// subscribedHandler is a handler told when a room's subscription is confirmed.
type subscribedHandler interface {
	Subscribed(room string)
}

// subscribed tells the handlers that room's events come from now on, and that it may have missed some
// before.
func (b *Bus) subscribed(room string) {
	for _, h := range b.subscribers() {
		if s, ok := h.(subscribedHandler); ok {
			s.Subscribed(room)
		}
	}
}

func (b *Bus) resync() {
	for _, h := range b.subscribers() {
		h.Resync()
	}
}

// Publish sends evs in one round trip, in order. On a Redis Cluster it takes one round trip per master
// concerned, and the order holds within each partition (a room's events stay in order), not across them:
// nothing needs more, since each room is put back in order by its ids and the events of no room carry
// their own versions.
func (b *Bus) Publish(ctx context.Context, evs ...bus.Event) error {
	pipe := b.client.Pipeline()
	for _, ev := range evs {
		if b.sharded {
			pipe.SPublish(ctx, b.channelOf(ev), encodeEvent(ev))
		} else {
			pipe.Publish(ctx, b.channelOf(ev), encodeEvent(ev))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("bus: publish %d events: %w", len(evs), err)
	}
	return nil
}

// Subscribe adds h.
func (b *Bus) Subscribe(h bus.Handler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	hs := append(slices.Clone(b.subscribers()), h)
	b.handlers.Store(&hs)
}

// Ping reports whether Redis answers and every subscription is alive.
func (b *Bus) Ping(ctx context.Context) error {
	b.mu.RLock()
	subs := append([]*subscription{b.control}, b.parts...)
	b.mu.RUnlock()
	for _, s := range subs {
		if s != nil && !s.live.Load() {
			return errors.New("bus: redis subscription lost; subscribing again")
		}
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("bus: redis: %w", err)
	}
	return nil
}

// Client returns the Redis client, for the presence directory to share its connections.
func (b *Bus) Client() redis.UniversalClient { return b.client }

// Close ends the subscriptions and the connections. Later calls do nothing.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.stop()
		b.mu.Lock()
		b.closed = true
		var errs []error
		for _, s := range append([]*subscription{b.control}, b.parts...) {
			if s != nil && s.pubsub != nil {
				errs = append(errs, s.pubsub.Close()) // unblocks the receive loop's read
			}
		}
		b.mu.Unlock()
		b.running.Wait()
		b.closeErr = errors.Join(append(errs, b.client.Close())...)
	})
	return b.closeErr
}

// redisLog sends go-redis's own messages (failed dials while Redis is away, mostly) to the node's log,
// in its format, instead of to the standard logger. go-redis has one logger per process: the last bus
// opened sets it.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}
