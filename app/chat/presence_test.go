package chat

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/causerie/causerie/app"
	directory "github.com/causerie/causerie/app/presence"
)

// silentRedis accepts connections and reads commands but never answers, like a Redis behind a partition.
// It counts the connections it was asked for: every call of a client whose last one timed out opens one.
type silentRedis struct {
	ln    net.Listener
	mu    sync.Mutex
	conns int
}

func newSilentRedis(t *testing.T) *silentRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentRedis{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return s
}

func (s *silentRedis) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// With Redis not answering, the first join pays the timeout and the directory is marked off; the joins
// after it do not ask Redis at all (in a reconnect storm each would otherwise wait its turn for a timeout,
// under the room's lock), and their joined events still go out.
func TestJoinsDoNotWaitOnADirectoryKnownToBeOff(t *testing.T) {
	h, _ := newTestHub(t)
	silent := newSilentRedis(t)
	// As redisbus.New configures the client it shares with the directory.
	client := redis.NewClient(&redis.Options{Addr: silent.ln.Addr().String(), MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	h.opts.Presence = directory.NewRedis(client, "t:", "n", time.Minute)

	watcher := joinGeneral(t, h) // pays the timeout
	if !h.presenceDirty.Load() {
		t.Fatal("a failed enter did not mark the directory off")
	}
	for i := int64(1); i <= 5; i++ {
		c, err := h.Register(context.Background(), &frameConn{}, Session{
			User:  app.Identity{UserID: 100 + i, Name: "u", ExpiresAt: time.Now().Add(time.Hour)},
			Joins: []Join{{Room: "general"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Unregister(c) })
	}
	if n := silent.count(); n != 1 {
		t.Errorf("Redis was asked %d times, want once: joins after the failure must not ask", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		watcher.mu.Lock()
		joined := 0
		for _, f := range watcher.frames {
			if f["type"] == app.FrameJoined {
				joined++
			}
		}
		watcher.mu.Unlock()
		if joined == 5 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first client saw %d joined events, want 5", joined)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
