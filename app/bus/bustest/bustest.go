// Package bustest is the conformance suite every bus.Bus implementation must pass.
package bustest

import (
	"context"
	"fmt"
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
		got := []*recorder{{}, {}, {}}
		a.Subscribe(got[0].record)
		a.Subscribe(got[1].record)
		b.Subscribe(got[2].record)
		for i := 1; i <= n; i++ {
			ev := bus.Event{Room: "r", Payload: []byte(fmt.Sprint(i)), Skip: "conn-1", SkipUser: 7, ID: int64(i)}
			if err := a.Publish(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range got {
			events := r.wait(t, n)
			for j, ev := range events {
				want := bus.Event{Room: "r", Payload: []byte(fmt.Sprint(j + 1)), Skip: "conn-1", SkipUser: 7, ID: int64(j + 1)}
				if fmt.Sprint(ev) != fmt.Sprint(want) {
					t.Fatalf("subscriber %d, event %d: got %+v, want %+v", i, j, ev, want)
				}
			}
		}
	})
}

type recorder struct {
	mu     sync.Mutex
	events []bus.Event
}

func (r *recorder) record(ev bus.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// wait returns the first n events, failing the test if they do not come in time.
func (r *recorder) wait(t *testing.T, n int) []bus.Event {
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
