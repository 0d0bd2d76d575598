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
	"github.com/causerie/causerie/app/presence/redispresence"
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
	silent := newSilentRedis(t)
	// As redisbus.New configures the client it shares with the directory.
	client := redis.NewClient(&redis.Options{Addr: silent.ln.Addr().String(), MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	h, _ := newTestHub(t, func(o *Options) { o.Presence = redispresence.New(client, "t:", "n", time.Minute) })

	watcher := joinGeneral(t, h) // its enter, queued, pays the timeout
	deadline := time.Now().Add(5 * time.Second)
	for !h.presence.Dirty() {
		if time.Now().After(deadline) {
			t.Fatal("a failed enter did not mark the directory off")
		}
		time.Sleep(5 * time.Millisecond)
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
	if n := silent.count(); n > 2 {
		t.Errorf("Redis was asked %d times, want at most twice (the enter, and the joiner's list): joins after the failure must not ask", n)
	}
	deadline = time.Now().Add(5 * time.Second)
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

// No lock is held while the directory is asked: with a Redis that never answers, the room's lock is free
// while a join's call to it waits, so that the room's other joins, leaves and typing go on.
func TestNoRoomLockWaitsOnTheDirectory(t *testing.T) {
	silent := newSilentRedis(t)
	client := redis.NewClient(&redis.Options{Addr: silent.ln.Addr().String(), MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	h, _ := newTestHub(t, func(o *Options) { o.Presence = redispresence.New(client, "t:", "n", time.Minute) })

	registered := make(chan *Client, 1)
	go func() {
		c, _ := h.Register(context.Background(), &frameConn{}, Session{
			User:  app.Identity{UserID: 7, Name: "ada", ExpiresAt: time.Now().Add(time.Hour)},
			Joins: []Join{{Room: "general"}},
		})
		registered <- c
	}()
	t.Cleanup(func() { h.Unregister(<-registered) })
	deadline := time.Now().Add(5 * time.Second)
	for silent.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the directory was never asked")
		}
		time.Sleep(time.Millisecond)
	}
	v, ok := h.rooms.Load("general")
	if !ok {
		t.Fatal("no room")
	}
	if n := len(v.(*room).userList()); n != 1 || h.presence.Dirty() {
		t.Fatalf("online = %d once the directory gave up (dirty %v): the room's lock waited on Redis", n, h.presence.Dirty())
	}
}
