package sequence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// roomLog is a room's stored messages, as the store numbers them, for a sequencer with no hub and no store.
type roomLog struct {
	mu        sync.Mutex
	msgs      []app.Message
	delivered []int64
	fetches   int
}

func (l *roomLog) add(n int) []bus.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var evs []bus.Event
	for range n {
		m := app.Message{ID: int64(len(l.msgs) + 1), Room: "r", From: app.Author{ID: 1, Name: "a"}, Text: "t", At: time.Now(), ClientID: fmt.Sprint("c", len(l.msgs)+1)}
		l.msgs = append(l.msgs, m)
		frame, _, _ := app.EncodeMessage(m)
		evs = append(evs, bus.Event{Room: "r", Payload: frame, ID: m.ID})
	}
	return evs
}

func (l *roomLog) sequencer() *Room {
	return New(Config{
		Name: "r",
		Deliver: func(ev bus.Event) {
			l.mu.Lock()
			l.delivered = append(l.delivered, ev.ID)
			l.mu.Unlock()
		},
		Base: func(context.Context) (int64, error) { return 0, nil },
		Fetch: func(_ context.Context, after int64) ([]app.Message, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.fetches++
			var out []app.Message
			for _, m := range l.msgs {
				if m.ID > after {
					out = append(out, m)
				}
			}
			return out, nil
		},
	})
}

// waitDelivered polls until the ids delivered are want.
func (l *roomLog) waitDelivered(t *testing.T, want []int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		got := slices.Clone(l.delivered)
		l.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Events that come out of order are delivered in id order, each once; one that never comes is read
// from the store; the sender's answer (done) comes right after its message, before the next.
func TestSequencerAlone(t *testing.T) {
	var l roomLog
	s := l.sequencer()
	t.Cleanup(s.Stop)
	if err := s.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := l.add(5)
	var answered []int64
	answer := func(id int64) func() {
		return func() {
			l.mu.Lock()
			answered = append(answered, id)
			l.mu.Unlock()
		}
	}
	s.Dispatch(evs[1], nil, answer(2)) // 2 before 1
	s.Dispatch(evs[0], nil, nil)
	s.Dispatch(evs[0], nil, nil) // a repeat
	s.Dispatch(evs[4], nil, nil) // 5, with 3 and 4 lost on the way
	l.waitDelivered(t, []int64{1, 2, 3, 4, 5})
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Equal(answered, []int64{2}) || l.fetches == 0 {
		t.Errorf("answered %v after %d store reads; want 2 answered, and the gap read from the store", answered, l.fetches)
	}
}

// A message of this node's marked in flight is left by a catch-up to its event.
func TestSequencerLeavesMessagesInFlight(t *testing.T) {
	var l roomLog
	s := l.sequencer()
	t.Cleanup(s.Stop)
	if err := s.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := l.add(2)
	mine := l.msgs[0]
	s.Fly(mine, +1)
	s.Dispatch(evs[1], nil, nil) // 2 shows a gap at 1, which is in flight
	time.Sleep(3 * GapWait)
	l.waitDelivered(t, nil)
	s.Dispatch(evs[0], &mine, nil)
	l.waitDelivered(t, []int64{1, 2})
}

// A catch-up that stops at a message in flight remembers how far the store went: once that message's
// event comes, the ones after it, whose events were lost, are read too.
func TestSequencerCatchUpPastAMessageInFlight(t *testing.T) {
	var l roomLog
	s := l.sequencer()
	t.Cleanup(s.Stop)
	if err := s.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := l.add(3) // 2 and 3 from another node, their events lost
	mine := l.msgs[0]
	s.Fly(mine, +1)
	s.Resync() // the bus says events may have been lost
	time.Sleep(3 * GapWait)
	l.waitDelivered(t, nil)
	s.Dispatch(evs[0], &mine, nil)
	l.waitDelivered(t, []int64{1, 2, 3})
}

// Stop ends a catch-up whose read of the store hangs: nothing of a room outlives it.
func TestStopEndsACatchUp(t *testing.T) {
	reading := make(chan struct{})
	ended := make(chan error, 1)
	s := New(Config{
		Name:    "r",
		Deliver: func(bus.Event) {},
		Base:    func(context.Context) (int64, error) { return 0, nil },
		Fetch: func(ctx context.Context, _ int64) ([]app.Message, error) {
			close(reading)
			<-ctx.Done()
			ended <- ctx.Err()
			return nil, ctx.Err()
		},
	})
	if err := s.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Dispatch(bus.Event{Room: "r", ID: 2, Payload: []byte("{}")}, nil, nil) // 1 is missing: a catch-up
	<-reading
	s.Stop()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the read ended with %v, want context.Canceled", err)
		}
	case <-time.After(catchUpTimeout / 2):
		t.Fatal("the store read went on after Stop")
	}
}

// A resync that comes while the room's base is being read (a subscription confirmed during a join) is not
// lost: the base may predate what was missed, so a catch-up follows the read.
func TestResyncDuringBeginCatchesUp(t *testing.T) {
	reading, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var delivered []int64
	msgs := []app.Message{{ID: 1, Room: "r", Text: "missed", At: time.Now()}}
	s := New(Config{
		Name: "r",
		Deliver: func(ev bus.Event) {
			mu.Lock()
			delivered = append(delivered, ev.ID)
			mu.Unlock()
		},
		Base: func(context.Context) (int64, error) {
			close(reading)
			<-release
			return 0, nil // read before message 1 was stored
		},
		Fetch: func(_ context.Context, after int64) ([]app.Message, error) {
			if after == 0 {
				return msgs, nil
			}
			return nil, nil
		},
	})
	t.Cleanup(s.Stop)
	began := make(chan error, 1)
	go func() { began <- s.Begin(context.Background()) }()
	<-reading
	s.Resync()
	close(release)
	if err := <-began; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(delivered)
		mu.Unlock()
		if slices.Equal(got, []int64{1}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %v, want message 1 caught up", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
