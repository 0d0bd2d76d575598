package throttle_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
		url, prefix := bustest.Redis(t)
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		client := redis.NewClient(opts)
		t.Cleanup(func() { client.Close() })
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
