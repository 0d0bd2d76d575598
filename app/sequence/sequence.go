// Package sequence puts a room's message events back in the order of their ids, whatever order the
// bus brings them in, and fills the gaps it leaves from the store.
package sequence

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

// Timing of the catch-up that fills a gap in a room's messages from the store.
const (
	// GapWait is how long a message that arrived ahead of a missing one waits for it before the store is
	// read. Nodes publish what they commit within milliseconds, so a gap that outlives this is a loss
	// (a dropped bus connection, a failed publish), not two nodes' messages crossing on the way.
	GapWait = 100 * time.Millisecond
	// CatchUpBatch is how many messages one store read of a catch-up takes.
	CatchUpBatch = 500
	// catchUpTimeout bounds one such read. A failed read is tried again GapWait later, then further and
	// further apart, up to maxCatchUpWait.
	catchUpTimeout = 5 * time.Second
	maxCatchUpWait = 5 * time.Second
	// maxPending caps the events a room keeps while it waits for a missing one. Past it, events from other
	// nodes are not kept (their ids are: the catch-up reads them from the store); this node's are, since
	// their senders wait for them.
	maxPending = 10000
)

// Room hands a room's message events to the room's members on this node in id order, each once.
//
// The store numbers a room's messages without gaps and in commit order, on any number of nodes, so the
// Room knows which id comes next: an event for a later id waits for the missing ones, and if they
// do not come over the bus within GapWait, they are read from the store. A missed bus event therefore
// costs a delay, never a hole; and because members see a room's messages in id order, a client that
// resumes from the last id it saw misses nothing.
//
// It knows the room only through its Config. So it is tested without a hub.
type Room struct {
	Config
	// ctx ends with Stop, and with it a catch-up's read of the store.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// basing is closed when the read of the base in progress ends: no member reads its backlog before
	// the room has a base, and none holds a lock while the store reads it.
	basing chan struct{}
	// based is set once last holds the room's newest stored message id as of the first member's join.
	based bool
	// last is the id of the newest message delivered here.
	last int64
	// head is the highest id the bus announced for the room, delivered or not.
	head int64
	// pending holds events that arrived before the ones they follow.
	pending map[int64]pendingEvent
	// inflight counts, by author and client id, the messages of this node's connections on their way from
	// the committer to their events: a catch-up that reads one from the store stops there and leaves it to
	// its event, which skips the sender and answers it. Delivered from the store, the sender would get its
	// own message as someone else's, and its ack after it. flightMu guards it, apart from mu, which a
	// fan-out holds: the committer marks without waiting for one. Taken after mu when both are.
	flightMu sync.Mutex
	inflight map[flightKey]int
	// waiters are the senders of repeated messages, answered once last reaches their message's id.
	waiters []pendingEvent
	// timer is the catch-up scheduled, for Stop to cancel.
	timer *time.Timer
	// fetching is set while a catch-up is scheduled or running; again, when a resync came meanwhile: what
	// it says was missed may postdate what the running one read.
	fetching, again bool
	// resyncBased is set when a resync came while the base was being read: the base may predate what the
	// resync says was missed, so a catch-up follows the read.
	resyncBased bool
	// retry is the wait before the next catch-up after a failed one; 0 when the last one worked.
	retry time.Duration
	// closed is set when the room has gone: what still arrives is answered and dropped.
	closed bool
}

// Config is what a Room knows of its room.
type Config struct {
	Name string
	// Deliver hands an event to the room's members on this node, in order, one at a time.
	Deliver func(bus.Event)
	// Base reads the id of the room's newest stored message.
	Base func(ctx context.Context) (int64, error)
	// Fetch reads the room's stored messages after an id, oldest first, at most CatchUpBatch of them.
	Fetch func(ctx context.Context, after int64) ([]app.Message, error)
	// CaughtUp counts a message delivered from the store.
	CaughtUp func()
	// Log tells of the store's failures.
	Log *slog.Logger
}

// New returns the sequencer of a room.
func New(cfg Config) *Room {
	if cfg.CaughtUp == nil {
		cfg.CaughtUp = func() {}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Room{Config: cfg}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// flightKey names a message before the store numbers it.
type flightKey struct {
	user     int64
	clientID string
}

// pendingEvent is a message event waiting for its turn; done, when not nil, answers its sender.
type pendingEvent struct {
	ev   bus.Event
	done func()
}

// Dispatch takes a message event of the room and delivers it in its turn. done, when not nil, runs once
// ev is delivered or known to need no delivery here: it answers the event's sender, whose ack so never
// overtakes an earlier message of the room. landed, when not nil, is the message of a connection of this
// node that ev announces: its in-flight mark (Fly) goes.
func (s *Room) Dispatch(ev bus.Event, landed *app.Message, done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if landed != nil {
		s.Fly(*landed, -1)
	}
	s.head = max(s.head, ev.ID)
	if ev.Payload == nil && done != nil && !s.closed && !(s.based && ev.ID <= s.last) {
		// A repeated message: answer its sender once the earlier one is delivered here.
		s.waiters = append(s.waiters, pendingEvent{ev: ev, done: done})
		done = nil
	}
	if s.closed || (s.based && ev.ID <= s.last) || ev.Payload == nil {
		// Closed, already delivered, or a bare head (a repeat, or ids a node failed to publish, announced
		// again): nothing to hold, but a head past last needs a catch-up.
		if s.based && !s.closed && s.head > s.last {
			s.scheduleCatchUpLocked(0)
		}
		if done != nil {
			done()
		}
		return
	}
	if s.based && ev.ID == s.last+1 && len(s.pending) == 0 && s.head == ev.ID {
		// The common case, and the only one on a single node: the next message, nothing waiting.
		s.deliverLocked(pendingEvent{ev: ev, done: done})
		return
	}
	if s.pending == nil {
		s.pending = make(map[int64]pendingEvent)
	}
	if len(s.pending) >= maxPending && done == nil {
		if s.based {
			s.scheduleCatchUpLocked(GapWait)
		}
		return
	}
	s.pending[ev.ID] = pendingEvent{ev: ev, done: done}
	if s.based {
		s.flushLocked()
	}
}

// inFlight reports whether m is marked (see inflight).
func (s *Room) inFlight(m app.Message) bool {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	return s.inflight[flightKey{m.From.ID, m.ClientID}] > 0
}

// Fly marks m, a message of a connection of this node, as on its way to the store and its event (delta
// +1), or takes the mark back (-1): see inflight.
func (s *Room) Fly(m app.Message, delta int) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	k := flightKey{m.From.ID, m.ClientID}
	switch n := s.inflight[k] + delta; {
	case n > 0:
		if s.inflight == nil {
			s.inflight = make(map[flightKey]int)
		}
		s.inflight[k] = n
	default:
		delete(s.inflight, k)
	}
}

// Begin gives the room its base, the id of its newest stored message, if it has none yet. Every joining
// member calls it before reading its backlog, so that every backlog reaches at least the base and the
// deliveries, which begin after it, leave no member a hole.
func (s *Room) Begin(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.based {
			s.mu.Unlock()
			return nil
		}
		reading := s.basing
		if reading != nil { // another member reads it: wait for that read, without a lock
			s.mu.Unlock()
			select {
			case <-reading:
				continue // based, or failed: then this member reads it
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		reading = make(chan struct{})
		s.basing = reading
		s.mu.Unlock()

		last, err := s.Base(ctx)
		s.mu.Lock()
		s.basing = nil
		close(reading)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		s.based, s.last = true, last
		if s.resyncBased {
			s.resyncBased = false
			s.scheduleCatchUpLocked(0)
		}
		s.answerWaitersLocked()
		for id, pe := range s.pending {
			if id <= last {
				delete(s.pending, id)
				if pe.done != nil {
					pe.done()
				}
			}
		}
		s.flushLocked()
		s.mu.Unlock()
		return nil
	}
}

// flushLocked delivers the pending events that follow last without a gap, and schedules a catch-up if a
// gap is left. s.mu must be held.
func (s *Room) flushLocked() {
	for id, pe := range s.pending {
		// Passed by a catch-up that found the store skipping ids (a message deleted by hand, say).
		if id <= s.last {
			delete(s.pending, id)
			if pe.done != nil {
				pe.done()
			}
		}
	}
	for {
		pe, ok := s.pending[s.last+1]
		if !ok {
			break
		}
		delete(s.pending, s.last+1)
		s.deliverLocked(pe)
	}
	if len(s.pending) > 0 || s.head > s.last {
		s.scheduleCatchUpLocked(GapWait)
	}
}

// deliverLocked delivers pe as the room's next message. s.mu must be held.
func (s *Room) deliverLocked(pe pendingEvent) {
	s.last = pe.ev.ID
	s.Deliver(pe.ev)
	if pe.done != nil {
		pe.done()
	}
	s.answerWaitersLocked()
}

// answerWaitersLocked answers the waiters whose message has been delivered, or all when the room is
// closed. s.mu must be held.
func (s *Room) answerWaitersLocked() {
	if len(s.waiters) == 0 {
		return
	}
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if s.closed || (s.based && w.ev.ID <= s.last) {
			w.done()
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.waiters[len(kept):])
	s.waiters = kept
}

// scheduleCatchUpLocked reads the store after wait unless a catch-up is already on its way. s.mu must
// be held.
func (s *Room) scheduleCatchUpLocked(wait time.Duration) {
	if s.fetching || s.closed {
		return
	}
	s.fetching = true
	s.timer = time.AfterFunc(wait, s.catchUp)
}

// catchUp delivers, from the store, the messages of the room after the last one delivered, merging the
// events that were waiting for them.
func (s *Room) catchUp() {
	for {
		s.mu.Lock()
		after, closed := s.last, s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, catchUpTimeout)
		msgs, err := s.Fetch(ctx, after)
		cancel()

		s.mu.Lock()
		if err != nil && s.closed { // Stop ended the read: the room is gone
			s.mu.Unlock()
			return
		}
		if err != nil {
			if s.retry == 0 {
				s.Log.Error("catch up from the store; trying again", "room", s.Name, "after", after, "err", err)
			}
			s.retry = min(max(2*s.retry, GapWait), maxCatchUpWait)
			s.fetching = false
			s.scheduleCatchUpLocked(s.retry)
			s.mu.Unlock()
			return
		}
		if s.retry != 0 {
			s.Log.Info("catch up from the store: working again", "room", s.Name)
			s.retry = 0
		}
		for _, m := range msgs {
			if m.ID <= s.last {
				continue
			}
			if s.inFlight(m) {
				// A connection of this node sent it and its event is on the way, with the sender to skip
				// and the ack to queue: delivered from here, the sender would get its own message. The
				// event flushes what follows: the head says how far the store goes, so that it does.
				s.head = max(s.head, msgs[len(msgs)-1].ID)
				break
			}
			pe, ok := s.pending[m.ID]
			if ok {
				delete(s.pending, m.ID)
			} else {
				frame, _, err := app.EncodeMessage(m)
				if err != nil {
					s.Log.Error("encode stored message", "room", s.Name, "id", m.ID, "err", err)
					continue
				}
				pe = pendingEvent{ev: bus.Event{Room: s.Name, Payload: frame, ID: m.ID}}
				s.CaughtUp()
			}
			s.deliverLocked(pe)
		}
		more := len(msgs) == CatchUpBatch && s.last == msgs[len(msgs)-1].ID
		if !more && s.again {
			s.again, more = false, true
		}
		if !more {
			s.fetching = false
			s.flushLocked()
		}
		s.mu.Unlock()
		if !more {
			return
		}
	}
}

// Stop answers what the room still holds, ends its catch-up, and makes it drop what comes later: the
// room has left the hub.
func (s *Room) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cancel()
	if s.timer != nil {
		s.timer.Stop()
	}
	for _, pe := range s.pending {
		if pe.done != nil {
			pe.done()
		}
	}
	s.pending = nil
	s.answerWaitersLocked()
}

// Resync catches the room up from the store: the bus says it may have lost events.
func (s *Room) Resync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.based:
		s.again = s.fetching
		s.scheduleCatchUpLocked(0)
	case s.basing != nil:
		s.resyncBased = true
	}
}
