package bus

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

const (
	// relayQueue is how many events may wait for the bus. Past it events are not queued: a message's
	// id is kept and announced later, other events (joined, left, typing) are dropped.
	relayQueue = 8192
	// relayBatch caps the events of one Publish call (one round trip to Redis).
	relayBatch = 256
	// publishTimeout bounds one Publish call, so that a bus that hangs costs a retry, not a stuck relay.
	publishTimeout = 2 * time.Second
	// retryEvery is how often a relay whose bus failed announces, again, what it could not publish.
	retryEvery = time.Second
	// staleAfter is the age past which a joined, left or typing event is not worth publishing.
	staleAfter = 5 * time.Second
)

// Relay hands this node's events to the bus from one goroutine, so that the order of publication is the
// order of send, and nobody else waits on the bus: the hub has already delivered the events to its own
// connections, and acks do not wait for other nodes.
//
// When the bus fails, the relay keeps, per room, the highest message id it could not publish, and
// announces it as a bare head once the bus works again: other nodes then read what they missed from the
// store. So a message committed here reaches the other nodes, late at worst, unless the node stops first;
// then the node that claims it in the presence directory (or its own next process) makes every node
// catch up.
type Relay struct {
	bus  Bus
	node string
	log  *slog.Logger
	in   chan Event
	// stopped is closed when the loop has published (or given up on) everything sent before close.
	stopped chan struct{}

	mu sync.Mutex
	// unsent is, per room, the highest message id that failed to reach the bus.
	unsent map[string]int64
	// resync is set when a request for every node to catch up failed to reach the bus.
	resync bool
	// failing is set from a failed Publish to the next one that works, to log once per outage.
	failing bool
	closed  bool
}

// NewRelay returns a relay of node's events to b; Run carries them.
func NewRelay(b Bus, node string, log *slog.Logger) *Relay {
	return &Relay{bus: b, node: node, log: log, in: make(chan Event, relayQueue), stopped: make(chan struct{})}
}

// Send queues ev for the bus; it never blocks.
func (r *Relay) Send(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	select {
	case r.in <- ev:
	default:
		r.keepLocked(ev)
	}
}

// keepLocked remembers that ev did not reach the bus. r.mu must be held.
func (r *Relay) keepLocked(ev Event) {
	if ev.Room == "" {
		r.resync = true
	}
	if ev.ID == 0 {
		return
	}
	if r.unsent == nil {
		r.unsent = make(map[string]int64)
	}
	r.unsent[ev.Room] = max(r.unsent[ev.Room], ev.ID)
}

// Run publishes what Send queues, in order, until Close; it retries what failed every retryEvery.
func (r *Relay) Run() {
	defer close(r.stopped)
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	batch := make([]Event, 0, relayBatch)
	for {
		batch = batch[:0]
		select {
		case ev, ok := <-r.in:
			if !ok {
				r.publish(r.takeUnsent())
				return
			}
			batch = append(batch, ev)
		more:
			for len(batch) < relayBatch {
				select {
				case ev, ok := <-r.in:
					if !ok {
						break more
					}
					batch = append(batch, ev)
				default:
					break more
				}
			}
		case <-retry.C:
		}
		r.publish(append(batch, r.takeUnsent()...))
	}
}

// takeUnsent returns a bare head event for every room with unsent messages, and forgets them.
func (r *Relay) takeUnsent() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var heads []Event
	now := time.Now().UnixNano()
	for room, id := range r.unsent {
		heads = append(heads, Event{Room: room, ID: id, Node: r.node, Sent: now})
	}
	if r.resync {
		heads = append(heads, ResyncEvent(r.node))
	}
	r.unsent, r.resync = nil, false
	return heads
}

func (r *Relay) publish(evs []Event) {
	// joined, left and typing events that waited out a bus outage are news no more.
	stale := time.Now().Add(-staleAfter).UnixNano()
	evs = slices.DeleteFunc(evs, func(ev Event) bool { return ev.ID == 0 && ev.Room != "" && ev.Sent < stale })
	if len(evs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	err := r.bus.Publish(ctx, evs...)
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if !r.failing {
			r.log.Error("publish to the bus; other nodes will read the messages from the store once it is back", "events", len(evs), "err", err)
		}
		r.failing = true
		for _, ev := range evs {
			r.keepLocked(ev)
		}
		return
	}
	if r.failing {
		r.log.Info("bus publishing again")
		r.failing = false
	}
}

// Close stops taking events and waits, until ctx ends, for those queued to be published.
func (r *Relay) Close(ctx context.Context) {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.in)
	}
	r.mu.Unlock()
	select {
	case <-r.stopped:
	case <-ctx.Done():
	}
}

// ResyncEvent asks every other node to catch all its rooms up from the store.
func ResyncEvent(node string) Event {
	return Event{Node: node, Sent: time.Now().UnixNano()}
}
