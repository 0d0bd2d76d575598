package redisbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// subscription is one subscriber connection and the channels it holds: its anchor, for as long as it
// lives, and the rooms wanted from it. Its fields but live are guarded by the bus's mu.
type subscription struct {
	b *Bus
	// anchor is the channel of the events of no room (control) or a partition's own: the first of every
	// subscription, which a Redis Cluster routes by, and whose confirmation says the subscription is on.
	anchor string
	// roomPrefix starts the channels of the rooms heard here; "" where none are.
	roomPrefix string
	// live is set while the subscription answers; Ping reports it.
	live atomic.Bool

	pubsub *redis.PubSub // nil while being replaced
	// rooms are the rooms wanted from here, subscribed again with every new connection; changes holds
	// the wants not yet sent to Redis, in order, for the loop that sends them (wants), woken by wake.
	rooms   map[string]bool
	changes []roomWant
	wake    chan struct{}
}

type roomWant struct {
	room string
	want bool
}

func (b *Bus) newSubscription(anchor, roomPrefix string) *subscription {
	s := &subscription{b: b, anchor: anchor, roomPrefix: roomPrefix, rooms: map[string]bool{}, wake: make(chan struct{}, 1)}
	s.live.Store(true)
	return s
}

func (s *subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// open subscribes to the anchor and every room wanted, and waits for Redis to confirm the anchor; the
// rooms' confirmations come to the receive loop.
func (s *subscription) open(ctx context.Context) (*redis.PubSub, error) {
	s.b.mu.RLock()
	channels := make([]string, 0, len(s.rooms)+1)
	channels = append(channels, s.anchor)
	for room := range s.rooms {
		channels = append(channels, s.roomPrefix+room)
	}
	s.b.mu.RUnlock()
	var ps *redis.PubSub
	if s.b.sharded {
		ps = s.b.client.SSubscribe(ctx, channels...)
	} else {
		ps = s.b.client.Subscribe(ctx, channels...)
	}
	if _, err := ps.Receive(ctx); err != nil { // the first reply is the anchor's confirmation
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

// run hands what the subscription brings to the handlers until ctx ends; ps is its connection, or nil
// when it is still to be opened. A connection that fails, or stays silent through a ping, is replaced,
// and the handlers catch up: every room (Resync) when it is the control subscription's, each room of a
// partition as Redis confirms it again (Subscribed).
func (s *subscription) run(ctx context.Context, ps *redis.PubSub) {
	defer s.b.running.Done()
	if ps == nil {
		if ps = s.reopen(ctx, nil); ps == nil {
			return
		}
	}
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
		if err == nil {
			pinged = false
			if err = s.take(m); err == nil {
				continue
			}
		}
		if s.live.Swap(false) {
			s.b.log.Warn("bus: lost the redis subscription; subscribing again", "channel", s.anchor, "err", err)
		}
		if ps = s.reopen(ctx, ps); ps == nil {
			return
		}
		pinged = false
		s.b.log.Info("bus: subscribed to redis again; catching up from the store", "channel", s.anchor)
		if s.anchor == s.b.channel {
			s.b.resync()
		}
	}
}

// take hands a message to the handlers, or takes a subscription's news; it fails when Redis ended the
// anchor's subscription.
func (s *subscription) take(m any) error {
	switch m := m.(type) {
	case *redis.Subscription:
		return s.confirmed(m)
	case *redis.Message:
		ev, err := decodeEvent([]byte(m.Payload))
		if err != nil {
			s.b.log.Error("bus: drop malformed event", "err", err)
			return nil
		}
		s.b.deliver(ev)
	}
	return nil
}

// confirmed takes a subscription's news. A room's confirmation tells the handlers that the room may
// have missed events before it; the anchor's comes here only when go-redis reconnected by itself, after
// a read failed, and subscribed again. Redis ends a sharded channel's subscriptions itself when its slot
// moves to another master (resharding, a failover), the anchor's among them since it shares the slot:
// the connection is then replaced, and goes where the slot is now. A room's own end is the answer to an
// unsubscribe of ours.
func (s *subscription) confirmed(m *redis.Subscription) error {
	switch {
	case m.Channel == s.anchor && m.Kind == "sunsubscribe":
		return fmt.Errorf("bus: redis ended the subscription to %s", m.Channel)
	case m.Kind != "subscribe" && m.Kind != "ssubscribe":
		return nil
	case m.Channel != s.anchor:
		if room, ok := strings.CutPrefix(m.Channel, s.roomPrefix); ok && s.roomPrefix != "" {
			s.b.subscribed(room)
		}
	case s.anchor == s.b.channel:
		s.b.log.Info("bus: subscribed to redis again; catching up from the store", "channel", m.Channel)
		s.b.resync()
	}
	return nil
}

// reopen closes old, if any, and subscribes until it works or ctx ends (nil then).
func (s *subscription) reopen(ctx context.Context, old *redis.PubSub) *redis.PubSub {
	s.b.mu.Lock()
	s.pubsub = nil // closed here: Close must not close it again
	s.b.mu.Unlock()
	if old != nil {
		_ = old.Close()
		s.reloadSlots()
	}
	backoff := 100 * time.Millisecond
	for {
		sctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
		ps, err := s.open(sctx)
		cancel()
		if err == nil {
			s.b.mu.Lock()
			closed := s.b.closed
			if !closed {
				s.pubsub = ps
			}
			s.b.mu.Unlock()
			if closed {
				_ = ps.Close()
				return nil
			}
			s.live.Store(true)
			s.poke() // a want made while this subscribed may have found no connection
			return ps
		}
		if s.live.Swap(false) {
			s.b.log.Warn("bus: subscribe to redis", "channel", s.anchor, "err", err)
		}
		s.reloadSlots()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// reloadSlots asks a Redis Cluster, in the background, where the slots are now: a connection lost may
// mean that its slot moved, or that its master failed over.
func (s *subscription) reloadSlots() {
	if cc, ok := s.b.client.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}

// wants sends the wants to Redis, in order, on the current connection, until ctx ends. A want that fails
// closes the connection: go-redis may have replaced it by then without the room, and the next one, which
// run opens, subscribes to every room wanted.
func (s *subscription) wants(ctx context.Context) {
	defer s.b.running.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.b.mu.Lock()
		changes, ps := s.changes, s.pubsub
		if ps == nil {
			// Being replaced: kept for the new connection, which wakes this loop, as a want made while it
			// was subscribing may have missed it.
			s.b.mu.Unlock()
			continue
		}
		s.changes = nil
		s.b.mu.Unlock()
		for _, c := range changes {
			if err := s.send(ctx, ps, c); err != nil {
				s.b.log.Warn("bus: change a room's subscription; subscribing afresh", "room", c.room, "want", c.want, "err", err)
				_ = ps.Close()
				break
			}
		}
	}
}

func (s *subscription) send(ctx context.Context, ps *redis.PubSub, c roomWant) error {
	ctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	channel := s.roomPrefix + c.room
	switch {
	case c.want && s.b.sharded:
		return ps.SSubscribe(ctx, channel)
	case c.want:
		return ps.Subscribe(ctx, channel)
	case s.b.sharded:
		return ps.SUnsubscribe(ctx, channel)
	default:
		return ps.Unsubscribe(ctx, channel)
	}
}
