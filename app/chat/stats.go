package chat

import (
	"sync"
	"sync/atomic"
)

// Stats are the hub's counters, updated with atomics on the hot path and read by the metrics collector.
type Stats struct {
	Connections        atomic.Int64
	MessagesReceived   atomic.Uint64
	Deliveries         atomic.Int64
	SlowClientsDropped atomic.Uint64
	// CaughtUp counts messages read back from the store to fill a gap in what the bus delivered.
	CaughtUp atomic.Uint64
	// Unserved counts the room events the bus brought from other nodes for rooms this node neither serves
	// nor asked for: decoded for nothing. With a channel per room it stays 0.
	Unserved atomic.Uint64
	// Subscriptions counts the rooms this node wants of a bus that carries rooms apart (Redis).
	Subscriptions atomic.Int64
	badFrames     sync.Map // code -> *atomic.Uint64
}

func (s *Stats) badFrame(code string) {
	v, ok := s.badFrames.Load(code)
	if !ok {
		v, _ = s.badFrames.LoadOrStore(code, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// BadFrames returns the number of refused frames by error code.
func (s *Stats) BadFrames() map[string]uint64 {
	out := map[string]uint64{}
	s.badFrames.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}
