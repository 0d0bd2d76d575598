package bus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ Bus = (*Redis)(nil)

// healthCheckEvery is how often a quiet subscription is pinged; a ping that gets no answer makes the
// client reconnect and subscribe again, and the hub catch up from the store.
const healthCheckEvery = time.Second

// Redis is the bus of a deployment of several nodes, over Redis pub/sub: every node publishes its events
// on one channel and receives everyone's.
//
// Pub/sub and not streams: the store already keeps every message, numbered per room, so the bus only has
// to be fast; what pub/sub loses while a node is disconnected, the hub reads back from the store, told by
// Resync when the subscription comes back or by a gap in a room's ids. Streams would keep a second copy
// of the history in Redis, to be trimmed and kept in step with the database. One channel and not one per
// room: a node then never has to subscribe before a join can read its backlog, and the traffic a node
// drops (rooms it has no connection in) costs a map lookup per event.
type Redis struct {
	client  *redis.Client
	pubsub  *redis.PubSub
	channel string
	log     *slog.Logger
	stopped chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu       sync.RWMutex
	handlers []Handler
}

// RedisConfig says where the bus is.
type RedisConfig struct {
	// URL is redis://[user:password@]host:port/db.
	URL string
	// Prefix starts the channel's name (and the presence keys'), so that deployments, or tests, can share
	// a Redis.
	Prefix string
	// Node names the connections (CLIENT LIST shows prefix+node), to tell the nodes apart.
	Node string
}

// NewRedis connects to Redis and subscribes to the channel Prefix+"events". It returns once the
// subscription is active, so that no event published after it returns is missed.
func NewRedis(ctx context.Context, cfg RedisConfig, log *slog.Logger) (*Redis, error) {
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("bus: REDIS_URL: %w", err)
	}
	opts.ClientName = cfg.Prefix + cfg.Node
	redis.SetLogger(redisLog{log})
	client := redis.NewClient(opts)
	r := &Redis{client: client, channel: cfg.Prefix + "events", log: log, stopped: make(chan struct{})}
	r.pubsub = client.Subscribe(ctx, r.channel)
	// The first reply is the subscription's confirmation; after it, the channel below takes over reading.
	if _, err := r.pubsub.Receive(ctx); err != nil {
		_ = r.pubsub.Close()
		_ = client.Close()
		return nil, fmt.Errorf("bus: subscribe to redis at %s: %w", opts.Addr, err)
	}
	ch := r.pubsub.ChannelWithSubscriptions(redis.WithChannelSize(4096), redis.WithChannelHealthCheckInterval(healthCheckEvery))
	go r.receive(ch)
	return r, nil
}

// receive hands what the subscription brings to the handlers until Close. go-redis reconnects by itself;
// each time it has subscribed again it says so, and the handlers are told to resync.
func (r *Redis) receive(ch <-chan any) {
	defer close(r.stopped)
	for m := range ch {
		switch m := m.(type) {
		case *redis.Subscription:
			r.log.Info("bus: subscribed to redis again; catching up from the store", "channel", m.Channel)
			r.mu.RLock()
			for _, h := range r.handlers {
				h.Resync()
			}
			r.mu.RUnlock()
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

// Publish sends evs in one round trip, in order.
func (r *Redis) Publish(ctx context.Context, evs ...Event) error {
	pipe := r.client.Pipeline()
	for _, ev := range evs {
		pipe.Publish(ctx, r.channel, encodeEvent(ev))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("bus: publish %d events: %w", len(evs), err)
	}
	return nil
}

// Subscribe adds h.
func (r *Redis) Subscribe(h Handler) {
	r.mu.Lock()
	r.handlers = append(r.handlers, h)
	r.mu.Unlock()
}

// Ping reports whether Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("bus: redis: %w", err)
	}
	return nil
}

// Client returns the Redis client, for the presence directory to share its connections.
func (r *Redis) Client() *redis.Client { return r.client }

// Close ends the subscription and the connections. Later calls do nothing.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		err := r.pubsub.Close()
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
	l.log.WarnContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// eventVersion opens every encoded event, so that a format change can be told from the old one.
const eventVersion = 1

// encodeEvent lays ev out as a version byte, the length-prefixed strings Room, Skip and Node, the varints
// SkipUser, ID and Sent, and the payload to the end: no JSON around JSON, one allocation.
func encodeEvent(ev Event) []byte {
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

func decodeEvent(b []byte) (Event, error) {
	if len(b) == 0 || b[0] != eventVersion {
		return Event{}, errMalformed
	}
	b = b[1:]
	var strs [3]string
	for i := range strs {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return Event{}, errMalformed
		}
		strs[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	var ints [3]int64
	for i := range ints {
		v, k := binary.Varint(b)
		if k <= 0 {
			return Event{}, errMalformed
		}
		ints[i] = v
		b = b[k:]
	}
	ev := Event{Room: strs[0], Skip: strs[1], Node: strs[2], SkipUser: ints[0], ID: ints[1], Sent: ints[2]}
	if len(b) > 0 {
		ev.Payload = b
	}
	return ev, nil
}
