package commit

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/store"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hubSide records what a pipeline hands the hub, and the marks it sets.
type hubSide struct {
	mu     sync.Mutex
	events []bus.Event
	marks  map[string]int
}

func (p *hubSide) mark(m app.Message, delta int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marks[m.ClientID] += delta
}

func (p *hubSide) publish(ev bus.Event, landed *app.Message, done func()) {
	p.mu.Lock()
	p.events = append(p.events, ev)
	if landed != nil {
		p.marks[landed.ClientID]--
	}
	p.mu.Unlock()
	done()
}

// A pipeline stores what waits in one transaction, publishes in id order with the sender's connection to
// skip, answers a repeated client id with the earlier message, and refuses messages once closed.
func TestPipeline(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	u, err := db.CreateUser(ctx, app.User{Email: "a@example.com", Name: "a", PasswordHash: "h", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	pub := &hubSide{marks: map[string]int{}}
	var batches []int
	p := New(Config{Store: db, Mark: pub.mark, Publish: pub.publish, Commit: func(_ time.Duration, n int) { batches = append(batches, n) }})

	results := make(chan Result, 4)
	answer := func(r Result) { results <- r }
	msg := func(id string) app.Message {
		return app.Message{Room: "r", From: app.Author{ID: u.ID, Name: "a"}, Text: "hi " + id, At: time.Now(), ClientID: id}
	}
	// Queued before the committer runs: one transaction takes them all.
	for _, req := range []*Request{
		{Msg: msg("c1"), Conn: "n-1", Answer: answer},
		{Msg: msg("c2"), Answer: answer},
		{Msg: msg("c1"), Conn: "n-1", Answer: answer}, // the same client id again
	} {
		if err := p.Submit(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		p.Run()
		close(done)
	}()
	var got []Result
	for range 3 {
		got = append(got, <-results)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p.Close(closeCtx)
	<-done

	if len(batches) != 1 || batches[0] != 3 {
		t.Errorf("transactions of %v messages, want one of 3", batches)
	}
	if !got[0].Created || !got[1].Created || got[2].Created || got[2].Msg.ID != got[0].Msg.ID {
		t.Errorf("results %+v: want two created, then the first again, not created", got)
	}
	if len(pub.events) != 3 || pub.events[0].Skip != "n-1" || pub.events[1].Skip != "" || pub.events[2].Payload != nil {
		t.Errorf("events %+v: want the first skipping its connection, the second skipping none, the repeat bare", pub.events)
	}
	if pub.marks["c1"] != 0 {
		t.Errorf("marks left after the events: %v", pub.marks)
	}
	if err := p.Submit(ctx, &Request{Msg: msg("c3"), Answer: answer}); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close: %v, want ErrClosed", err)
	}
}
