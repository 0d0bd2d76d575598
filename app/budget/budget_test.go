package budget

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Without a Usage (one node), a user who sent frames and left is forgotten once their limiter is full.
func TestForgetIdleUsers(t *testing.T) {
	b := New(Config{PerSecond: 10, Burst: 5, MaxConns: 20})
	now := time.Now()
	for range 3 {
		if ok, _ := b.Take(7, now); !ok {
			t.Fatal("refused under the burst")
		}
	}
	if err := b.Admit(context.Background(), 8); err != nil {
		t.Fatal(err)
	}
	b.Release(8)
	b.sweep(now.Add(time.Second))
	if n := len(b.users); n != 0 {
		t.Errorf("%d users kept after they left and their limiters filled, want 0", n)
	}
}
