// Package throttle counts events per key over windows: in this process for one node (Memory), or in
// Redis for every node of a deployment (Redis), so that guessing passwords through several nodes costs the
// same as through one. Add counts over fixed windows (so many an hour); Try counts attempts that, past a
// number of free ones, wait growing delays (failed logins).
package throttle

import (
	"context"
	"sync"
	"time"
)

// Memory counts in this process. It is safe for concurrent use.
type Memory struct {
	window time.Duration
	now    func() time.Time

	// mu guards counts and swept.
	mu     sync.Mutex
	counts map[string]*count
	swept  time.Time
}

type count struct {
	n   int64
	end time.Time
	// until is the end of the delay Try set.
	until time.Time
}

// delay is the wait Try sets after attempt n of a key with free attempts, in a window of window: from a
// fifteenth of the window after the last free attempt, doubling with each attempt after it, up to the
// window. With 15 minutes: 1, 2, 4, 8, then 15 minutes.
func delay(n int64, free int, window time.Duration) time.Duration {
	if n < int64(free) {
		return 0
	}
	d := window / 15
	for i := int64(free); i < n && d < window; i++ {
		d *= 2
	}
	return min(d, window)
}

// NewMemory returns a Memory whose windows last window; now is the clock (time.Now outside tests).
func NewMemory(window time.Duration, now func() time.Time) *Memory {
	return &Memory{window: window, now: now, counts: map[string]*count{}}
}

// Add counts one event for key, and returns the count in key's current window and the time left in it.
func (m *Memory) Add(_ context.Context, key string) (int64, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	c := m.countLocked(key, now)
	c.n++
	return c.n, c.end.Sub(now), nil
}

// Try counts an attempt for key, or returns how long key must still wait, without counting it, when an
// attempt before set a delay. Past free attempts, each attempt counted sets a delay (see delay) that
// the next must wait out. A key's count, and its wait, end a window after its first attempt: an account
// that attackers keep trying is free again each window, as with Add.
func (m *Memory) Try(_ context.Context, key string, free int) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	c := m.countLocked(key, now)
	if now.Before(c.until) {
		if c.end.Before(c.until) {
			return c.end.Sub(now), nil
		}
		return c.until.Sub(now), nil
	}
	c.n++
	c.until = now.Add(delay(c.n, free, m.window))
	return 0, nil
}

// Undo takes back one event of key's current window, if it has one, with the wait it set: the attempt
// Undo takes back passed Try, so any wait there is is its own.
func (m *Memory) Undo(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.counts[key]; c != nil && c.n > 0 {
		c.n--
		c.until = time.Time{}
	}
	return nil
}

// Reset forgets key's count.
func (m *Memory) Reset(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.counts, key)
	return nil
}

// countLocked returns key's count in the window at now, a new one when the last has ended. m.mu must be
// held.
func (m *Memory) countLocked(key string, now time.Time) *count {
	m.sweepLocked(now)
	c := m.counts[key]
	if c == nil || !now.Before(c.end) {
		c = &count{end: now.Add(m.window)}
		m.counts[key] = c
	}
	return c
}

// sweepLocked drops ended windows, at most once a window, so that keys an attacker makes up do not pile
// up. m.mu must be held.
func (m *Memory) sweepLocked(now time.Time) {
	if now.Sub(m.swept) < m.window {
		return
	}
	m.swept = now
	for k, c := range m.counts {
		if !now.Before(c.end) {
			delete(m.counts, k)
		}
	}
}
