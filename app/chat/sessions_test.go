package chat

import (
	"context"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
)

// A connection whose token was checked before its session ended, and that registers after the news, is
// closed at once: the log out does not miss a handshake in flight.
func TestRegisterAfterTheSessionEnded(t *testing.T) {
	h, _ := newTestHub(t)
	h.EndSessions("s1")
	conn := &frameConn{}
	c, err := h.Register(context.Background(), conn, Session{
		User: app.Identity{UserID: 1, Name: "ada", Session: "s1", ExpiresAt: time.Now().Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(c) })
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn.mu.Lock()
		var got []any
		for _, f := range conn.frames {
			got = append(got, f["code"])
		}
		conn.mu.Unlock()
		if len(got) > 0 {
			if len(got) != 1 || got[0] != app.CodeSessionEnded {
				t.Fatalf("frames' codes %v, want session_ended alone", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no frame")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	code := c.closeCode
	c.mu.Unlock()
	if code != app.CloseUnauthorized {
		t.Errorf("close code %d, want %d", code, app.CloseUnauthorized)
	}
	// Another session of the user is not refused.
	other, err := h.Register(context.Background(), &frameConn{}, Session{
		User: app.Identity{UserID: 1, Name: "ada", Session: "s2", ExpiresAt: time.Now().Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(other) })
	if other.Closing() {
		t.Error("a connection of another session was closed")
	}
}

// New refuses what cannot work, and a hub of zero options is safe to run: no ticker of zero period.
func TestNewOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("a hub without store and bus was built")
	}
	h, db := newTestHub(t)
	if _, err := New(Options{Store: db, Bus: h.opts.Bus, PingInterval: time.Minute, PongWait: time.Second}); err == nil {
		t.Error("a PongWait shorter than PingInterval was taken")
	}
	zero, err := New(Options{Store: db, Bus: h.opts.Bus})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		zero.Run(ctx)
		close(done)
	}()
	cancel()
	<-done
	zero.Shutdown(context.Background(), app.CloseGoingAway, "")
}

// A write delay holds a busy connection's writes only (one whose last write carried several frames):
// then what is queued meanwhile goes out in the same write, while a connection that gets one frame at a
// time has each written at once.
func TestWriteDelayGathersWhenBusy(t *testing.T) {
	t.Parallel()
	const delay = 200 * time.Millisecond // its half bounds how late an idle connection's write may be
	h, _ := newTestHub(t, func(o *Options) { o.WriteDelay = delay })
	conn := &frameConn{}
	c, err := h.Register(context.Background(), conn, Session{
		User: app.Identity{UserID: 1, Name: "ada", Session: "s", ExpiresAt: time.Now().Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(c) })
	// waitFrames waits for n frames written, and returns the writes they took.
	waitFrames := func(n int) int {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			conn.mu.Lock()
			frames, writes := len(conn.frames), conn.writes
			conn.mu.Unlock()
			if frames == n {
				return writes
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d frames written, want %d", frames, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	twoApart := func() {
		c.enqueue(app.PongFrame)
		time.Sleep(delay / 2) // within the delay
		c.enqueue(app.PongFrame)
	}
	waitFrames(1) // the welcome, alone
	twoApart()
	if writes := waitFrames(3); writes != 3 {
		t.Errorf("an idle connection's first frame waited for the second (%d writes for both, want 2)", writes-1)
	}
	c.enqueue(app.PongFrame, app.PongFrame) // one write of two frames: busy
	waitFrames(5)
	twoApart()
	if writes := waitFrames(7); writes != 5 {
		t.Errorf("a busy connection's two frames took %d writes, want 1", writes-4)
	}
}
