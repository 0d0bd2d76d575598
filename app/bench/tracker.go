package bench

import (
	"sync"
	"sync/atomic"
)

// chunkSize and maxChunks bound the messages one sender can track: 4096 × 4096, 16 M.
const (
	chunkSize = 4096
	maxChunks = 4096
)

// tracker counts, for each message of each sender, how many receivers got it, so that the run knows what
// was lost and when a message has reached everyone (which reopens a closed-loop slot). Senders allocate;
// receivers only increment, without locks.
type tracker struct {
	senders []*senderLog
}

type senderLog struct {
	expected int32 // receivers of each message: the connections in its room but the sender's
	sent     atomic.Int64
	refused  atomic.Int64 // messages the server refused (rate_limited): nobody is to get them
	chunks   [maxChunks]atomic.Pointer[[chunkSize]atomic.Int32]
	// done gets a token when a message reaches every receiver.
	done chan struct{}
	mu   sync.Mutex // serialises chunk allocation
}

func newTracker(expected []int, window int) *tracker {
	t := &tracker{senders: make([]*senderLog, len(expected))}
	for i, e := range expected {
		t.senders[i] = &senderLog{expected: int32(e), done: make(chan struct{}, max(window, 1))}
	}
	return t
}

// next reserves the sequence number of sender's next message, or -1 when it can track no more.
func (t *tracker) next(sender int) int64 {
	s := t.senders[sender]
	seq := s.sent.Load()
	chunk := seq / chunkSize
	if chunk >= maxChunks {
		return -1
	}
	if s.chunks[chunk].Load() == nil {
		s.mu.Lock()
		if s.chunks[chunk].Load() == nil {
			s.chunks[chunk].Store(new([chunkSize]atomic.Int32))
		}
		s.mu.Unlock()
	}
	s.sent.Add(1)
	return seq
}

// unsend forgets the last reserved message, which could not be sent.
func (t *tracker) unsend(sender int) { t.senders[sender].sent.Add(-1) }

// deliver records that one more receiver got message seq of sender (receivers drop duplicates first).
func (t *tracker) deliver(sender int, seq int64) {
	if sender < 0 || sender >= len(t.senders) || seq < 0 || seq >= maxChunks*chunkSize {
		return
	}
	s := t.senders[sender]
	chunk := s.chunks[seq/chunkSize].Load()
	if chunk == nil {
		return
	}
	if chunk[seq%chunkSize].Add(1) == s.expected {
		select {
		case s.done <- struct{}{}:
		default:
		}
	}
}

// refuse records that the server refused one of sender's messages, which frees its closed-loop slot.
func (t *tracker) refuse(sender int) {
	s := t.senders[sender]
	s.refused.Add(1)
	select {
	case s.done <- struct{}{}:
	default:
	}
}

// refusedTotal returns how many messages the server refused.
func (t *tracker) refusedTotal() int64 {
	var n int64
	for _, s := range t.senders {
		n += s.refused.Load()
	}
	return n
}

// totals returns the deliveries expected for what was sent, and those that arrived at least once.
func (t *tracker) totals() (expected, unique int64) {
	for _, s := range t.senders {
		sent := s.sent.Load()
		expected += (sent - s.refused.Load()) * int64(s.expected)
		for seq := int64(0); seq < sent; seq++ {
			unique += int64(min(s.chunks[seq/chunkSize].Load()[seq%chunkSize].Load(), s.expected))
		}
	}
	return expected, unique
}
