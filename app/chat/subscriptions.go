package chat

import (
	"sync"
	"sync/atomic"
	"time"
)

// roomBus is a bus that carries a room's events only to the nodes that want the room (redisbus); the
// in-process bus carries every event to its one node, and is not one.
type roomBus interface {
	// Want starts or stops carrying room's events here. It must not block; once the room's events come,
	// the bus calls the hub's Subscribed(room).
	Want(room string, want bool)
}

// roomLinger is how long a node keeps a room's events coming after the room's last connection here left:
// users who come and go (a reload, a flaky network) do not make it subscribe and unsubscribe each time.
const roomLinger = 30 * time.Second

// subscriptions keeps what this node wants of the bus in step with its rooms: a room is wanted from its
// first connection here until roomLinger after its last one left.
type subscriptions struct {
	bus   roomBus // nil: the bus carries every room to every node
	count *atomic.Int64

	mu sync.Mutex
	// wanted holds the rooms wanted; a room that went has the timer that will give it up.
	wanted map[string]*time.Timer
}

// enter says room has a connection here again.
func (s *subscriptions) enter(room string) {
	if s.bus == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.wanted[room]; ok {
		if t != nil {
			t.Stop()
			s.wanted[room] = nil
		}
		return
	}
	if s.wanted == nil {
		s.wanted = make(map[string]*time.Timer)
	}
	s.wanted[room] = nil
	s.count.Add(1)
	s.bus.Want(room, true)
}

// gone says room's last connection here left: the room is given up roomLinger later, unless one comes
// back.
func (s *subscriptions) gone(room string) {
	if s.bus == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.wanted[room]; !ok {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(roomLinger, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.wanted[room] != t { // a connection came back meanwhile
			return
		}
		delete(s.wanted, room)
		s.count.Add(-1)
		s.bus.Want(room, false)
	})
	s.wanted[room] = t
}

// wants reports whether room's events are asked for here: a room with connections, or one given up a
// moment ago that lingers. With a bus that carries every room to every node, none is.
func (s *subscriptions) wants(room string) bool {
	if s.bus == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.wanted[room]
	return ok
}

// stop stops the timers, at shutdown.
func (s *subscriptions) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.wanted {
		if t != nil {
			t.Stop()
		}
	}
}
