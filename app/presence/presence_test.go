package presence_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/presence"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// events records what a tracker announces.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) announce(kind, room string, who app.Author, skip string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, kind+" "+room+" "+who.Name+" skip="+skip)
}

// With no directory, a node is the only one: every first connection and last leave is news, announced
// before Enter returns, and the list of a room is this node's.
func TestTrackerAlone(t *testing.T) {
	var got events
	here := []app.RoomUser{{Room: "r", User: app.Author{ID: 1, Name: "ada"}}, {Room: "r", User: app.Author{ID: 2, Name: "bob"}}}
	tr := presence.New(presence.Config{
		Announce: got.announce,
		Resync:   func() { t.Error("a lone node resyncs nobody") },
		Here:     func() []app.RoomUser { return here },
		Closing:  func() bool { return false },
	})
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tr.Enter("r", app.Author{ID: 1, Name: "ada"}, "n-1"):
	default:
		t.Fatal("Enter returned before the change was recorded")
	}
	tr.Leave("r", app.Author{ID: 1, Name: "ada"})
	want := []string{"joined r ada skip=n-1", "left r ada skip="}
	if !slices.Equal(got.list, want) {
		t.Errorf("announced %q, want %q", got.list, want)
	}
	if online := tr.Online(context.Background()); online["r"] != 2 {
		t.Errorf("online %v, want r: 2 from this node's users", online)
	}
	if list := tr.List(context.Background(), "r", []app.Author{{ID: 2, Name: "bob"}}); len(list) != 1 || list[0].Name != "bob" {
		t.Errorf("list %v, want this node's [bob]", list)
	}
}
