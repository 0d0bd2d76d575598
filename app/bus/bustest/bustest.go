// Package bustest is the conformance suite every bus.Bus implementation must pass.
package bustest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/causerie/causerie/app/bus"
)

// Run checks the implementation that open returns; open must return a fresh bus each time, and the two
// buses of one call must share their traffic (two nodes of one deployment).
func Run(t *testing.T, open func(t *testing.T) (bus.Bus, bus.Bus)) {
	t.Run("every subscriber of every node gets every event, in order, intact", func(t *testing.T) {
		a, b := open(t)
		const n = 200
		got := []*Recorder{{}, {}, {}}
		a.Subscribe(got[0])
		a.Subscribe(got[1])
		b.Subscribe(got[2])
		WantRoom(t, "r", got[0], a)
		WantRoom(t, "r", got[2], b)
		event := func(i int) bus.Event {
			return bus.Event{Room: "r", Payload: []byte(fmt.Sprint(i)), Skip: "conn-1", SkipUser: 7, ID: int64(i), Node: "n1", Sent: int64(i) << 40}
		}
		// One at a time, then in batches, as the hub's relay publishes.
		for i := 1; i <= n/2; i++ {
			if err := a.Publish(context.Background(), event(i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := n/2 + 1; i <= n; i += 10 {
			var batch []bus.Event
			for j := i; j < i+10; j++ {
				batch = append(batch, event(j))
			}
			if err := a.Publish(context.Background(), batch...); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range got {
			events := r.Wait(t, n)
			for j, ev := range events {
				if want := event(j + 1); fmt.Sprint(ev) != fmt.Sprint(want) {
					t.Fatalf("subscriber %d, event %d: got %+v, want %+v", i, j, ev, want)
				}
			}
		}
	})
	t.Run("an event with no payload (a bare head) and no skip arrives as sent", func(t *testing.T) {
		a, b := open(t)
		r := &Recorder{}
		b.Subscribe(r)
		want := bus.Event{Room: "room-é", ID: 42, Node: "n2"}
		if err := a.Publish(context.Background(), want); err != nil {
			t.Fatal(err)
		}
		if got := r.Wait(t, 1)[0]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}

// Recorder is a bus.Handler that keeps what it receives.
type Recorder struct {
	mu         sync.Mutex
	events     []bus.Event
	resyncs    int
	subscribed map[string]bool
}

// Subscribed records that room's events come, for a bus that carries rooms apart.
func (r *Recorder) Subscribed(room string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subscribed == nil {
		r.subscribed = map[string]bool{}
	}
	r.subscribed[room] = true
}

// roomBus is a bus that carries a room's events only to the nodes that want the room.
type roomBus interface {
	Want(room string, want bool)
}

// WantRoom makes each of buses that carries rooms apart want room, and waits until r, a subscriber of
// each, is told the room's events come; other buses carry every room already.
func WantRoom(t testing.TB, room string, r *Recorder, buses ...bus.Bus) {
	t.Helper()
	n := 0
	for _, b := range buses {
		if rb, ok := b.(roomBus); ok {
			rb.Want(room, true)
			n++
		}
	}
	if n == 0 {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		done := r.subscribed[room]
		r.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %s: no subscription confirmed", room)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Event records ev.
func (r *Recorder) Event(ev bus.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// Resync counts the call.
func (r *Recorder) Resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
}

// Resyncs returns how many times Resync was called.
func (r *Recorder) Resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}

// Events returns the events received so far.
func (r *Recorder) Events() []bus.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Wait returns the first n events, failing the test if they do not come in time.
func (r *Recorder) Wait(t testing.TB, n int) []bus.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := len(r.events)
		events := r.events
		r.mu.Unlock()
		if got >= n {
			return events[:n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d events, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
