package throttle_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/causerie/causerie/app/bus/bustest"
	"github.com/causerie/causerie/app/throttle"
)

type window interface {
	Add(ctx context.Context, key string) (int64, time.Duration, error)
	Reset(ctx context.Context, key string) error
	Undo(ctx context.Context, key string) error
}

// eachWindow runs test on a Memory and, with TEST_REDIS_URL, on a Redis; expire ends the current windows.
func eachWindow(t *testing.T, span time.Duration, test func(t *testing.T, w window, expire func())) {
	t.Run("memory", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Unix(1_800_000_000, 0)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		test(t, throttle.NewMemory(span, clock), func() { mu.Lock(); now = now.Add(span); mu.Unlock() })
	})
	t.Run("redis", func(t *testing.T) {
		client, prefix := bustest.Client(t)
		w := throttle.NewRedis(client, prefix, span)
		test(t, w, func() {
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if client.Exists(context.Background(), prefix+"throttle:k").Val() == 0 {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Fatal("the window never ended")
		})
	})
}

func TestWindowCountsAndEnds(t *testing.T) {
	const span = 300 * time.Millisecond
	eachWindow(t, span, func(t *testing.T, w window, expire func()) {
		ctx := context.Background()
		for want := int64(1); want <= 3; want++ {
			n, left, err := w.Add(ctx, "k")
			if err != nil || n != want || left <= 0 || left > span {
				t.Fatalf("Add = %d, %v, %v; want %d within the window", n, left, err, want)
			}
		}
		if n, _, _ := w.Add(ctx, "other"); n != 1 {
			t.Errorf("another key's first event counts %d", n)
		}
		if err := w.Undo(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := w.Add(ctx, "k"); n != 3 { // 3, 2 after Undo, 3 again
			t.Errorf("after Undo and Add: %d, want 3", n)
		}
		if err := w.Reset(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if n, _, err := w.Add(ctx, "k"); n != 1 || err != nil {
			t.Errorf("after Reset: %d, %v; want 1", n, err)
		}
		expire()
		if n, _, _ := w.Add(ctx, "k"); n != 1 {
			t.Errorf("first event of a new window counts %d", n)
		}
	})
}

type tries interface {
	Try(ctx context.Context, key string, free int) (time.Duration, error)
	Reset(ctx context.Context, key string) error
	Undo(ctx context.Context, key string) error
}

// Past the free attempts, each attempt sets a delay the next must wait out, doubling from a fifteenth of
// the window; attempts while waiting are not counted, and Reset ends the wait.
func TestTryDelaysGrow(t *testing.T) {
	const span = 1500 * time.Millisecond // delays of 100, 200, 400 ms
	run := func(t *testing.T, w tries, advance func(time.Duration)) {
		ctx := context.Background()
		for i := range 3 {
			if wait, err := w.Try(ctx, "k", 3); wait != 0 || err != nil {
				t.Fatalf("free attempt %d: wait %v, %v", i+1, wait, err)
			}
		}
		for _, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
			wait, err := w.Try(ctx, "k", 3)
			if err != nil || wait <= want/2 || wait > want {
				t.Fatalf("attempt in a delay of %v: wait %v, %v", want, wait, err)
			}
			advance(wait)
			if wait, err := w.Try(ctx, "k", 3); wait != 0 || err != nil {
				t.Fatalf("attempt after the delay of %v: wait %v, %v", want, wait, err)
			}
		}
		if wait, _ := w.Try(ctx, "other", 3); wait != 0 {
			t.Errorf("another key waits %v", wait)
		}
		// An attempt taken back (it succeeded) takes its wait back with it.
		if err := w.Undo(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if wait, _ := w.Try(ctx, "k", 3); wait != 0 {
			t.Errorf("after Undo: wait %v, want none", wait)
		}
		if err := w.Reset(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if wait, _ := w.Try(ctx, "k", 3); wait != 0 {
			t.Errorf("after Reset: wait %v", wait)
		}
	}
	t.Run("memory", func(t *testing.T) {
		now := time.Unix(1_800_000_000, 0)
		run(t, throttle.NewMemory(span, func() time.Time { return now }), func(d time.Duration) { now = now.Add(d) })
	})
	t.Run("redis", func(t *testing.T) {
		client, prefix := bustest.Client(t)
		run(t, throttle.NewRedis(client, prefix, span), func(d time.Duration) { time.Sleep(d + 5*time.Millisecond) })
	})
}
