package redispresence_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus/bustest"
	"github.com/causerie/causerie/app/presence"
	"github.com/causerie/causerie/app/presence/redispresence"
)

// open returns a client and a key prefix of the test's own.
func open(t *testing.T) (*redis.Client, string) { return bustest.Client(t) }

var (
	ada = app.Author{ID: 1, Name: "ada"}
	bob = app.Author{ID: 2, Name: "bob"}
)

func start(t *testing.T, p *redispresence.Directory) {
	t.Helper()
	if _, err := p.Refresh(context.Background(), true); err != nil {
		t.Fatal(err)
	}
}

// startNodes starts the directories of count nodes, "a", "b", ..., on a key prefix of the test's own.
func startNodes(t *testing.T, ttl time.Duration, count int) []*redispresence.Directory {
	t.Helper()
	client, prefix := open(t)
	nodes := make([]*redispresence.Directory, count)
	for i := range nodes {
		nodes[i] = redispresence.New(client, prefix, string(rune('a'+i)), ttl)
		start(t, nodes[i])
	}
	return nodes
}

func TestUserOnTwoNodesCountsOnce(t *testing.T) {
	ctx := context.Background()
	n := startNodes(t, time.Minute, 2)
	a, b := n[0], n[1]

	steps := []struct {
		name  string
		do    func() (bool, error)
		want  bool
		users string
	}{
		{"ada enters on a: first", func() (bool, error) { return a.Enter(ctx, "general", ada) }, true, "[{1 ada}]"},
		{"ada enters on b: not first", func() (bool, error) { return b.Enter(ctx, "general", ada) }, false, "[{1 ada}]"},
		{"bob enters on b: first", func() (bool, error) { return b.Enter(ctx, "general", bob) }, true, "[{1 ada} {2 bob}]"},
		{"ada leaves a: still on b", func() (bool, error) { return a.Leave(ctx, "general", ada) }, false, "[{1 ada} {2 bob}]"},
		{"ada leaves b: gone", func() (bool, error) { return b.Leave(ctx, "general", ada) }, true, "[{2 bob}]"},
	}
	for _, s := range steps {
		got, err := s.do()
		if err != nil || got != s.want {
			t.Fatalf("%s: got %v, %v; want %v", s.name, got, err, s.want)
		}
		list, err := a.List(ctx, "general")
		if err != nil || fmt.Sprint(sorted(list)) != s.users {
			t.Fatalf("%s: list = %v, %v; want %s", s.name, list, err, s.users)
		}
	}
	online, err := b.Online(ctx)
	if err != nil || fmt.Sprint(online) != "map[general:1]" {
		t.Errorf("online = %v, %v", online, err)
	}
}

// A node that stops refreshing drops out of every listing after the TTL; the first live node to
// refresh then claims it and reports, once, the users no other node has.
func TestStoppedNodeIsReapedOnce(t *testing.T) {
	ctx := context.Background()
	n := startNodes(t, 300*time.Millisecond, 3)
	a, b, c := n[0], n[1], n[2]
	for _, step := range []func() (bool, error){
		func() (bool, error) { return a.Enter(ctx, "general", ada) },
		func() (bool, error) { return a.Enter(ctx, "general", bob) },
		func() (bool, error) { return b.Enter(ctx, "general", bob) },
		func() (bool, error) { return a.Enter(ctx, "other", ada) },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	// a stops; b and c keep refreshing.
	deadline := time.Now().Add(5 * time.Second)
	var gone []app.RoomUser
	claimed := 0
	for time.Now().Before(deadline) {
		for _, p := range []*redispresence.Directory{b, c} {
			got, err := p.Refresh(ctx, false)
			if err != nil || got.Lost {
				t.Fatalf("refresh: %v, lost %v", err, got.Lost)
			}
			gone = append(gone, got.Gone...)
			claimed += got.Claimed
		}
		if list, _ := b.List(ctx, "general"); fmt.Sprint(list) == "[{2 bob}]" && len(gone) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := fmt.Sprint(gone); got != "[{general {1 ada}} {other {1 ada}}]" && got != "[{other {1 ada}} {general {1 ada}}]" {
		t.Errorf("departures = %s, want ada from general and other, once each (bob is still on b)", got)
	}
	if claimed != 1 {
		t.Errorf("a was claimed %d times, want once", claimed)
	}
	if online, err := c.Online(ctx); err != nil || fmt.Sprint(online) != "map[general:1]" {
		t.Errorf("online after the reap = %v, %v", online, err)
	}
	// a comes back: it learns that it had been claimed.
	if got, err := a.Refresh(ctx, false); err != nil || !got.Lost {
		t.Errorf("a's refresh after being claimed: %+v, %v; want lost", got, err)
	}
}

// A node restarted with the same id first clears what its earlier process recorded.
func TestRestartClearsEarlierLife(t *testing.T) {
	ctx := context.Background()
	client, prefix := open(t)
	a := redispresence.New(client, prefix, "a", time.Minute)
	start(t, a)
	if _, err := a.Enter(ctx, "general", ada); err != nil {
		t.Fatal(err)
	}
	again := redispresence.New(client, prefix, "a", time.Minute)
	got, err := again.Refresh(ctx, true)
	if err != nil || fmt.Sprint(got.Gone) != "[{general {1 ada}}]" {
		t.Errorf("restart: departures %v, %v", got.Gone, err)
	}
	if list, _ := again.List(ctx, "general"); len(list) != 0 {
		t.Errorf("list after restart = %v, want empty", list)
	}
}

func sorted(list []app.Author) []app.Author {
	slices.SortFunc(list, func(a, b app.Author) int { return cmp.Compare(a.ID, b.ID) })
	return list
}

// A user on two nodes that stop together leaves once.
func TestTwoStoppedNodesOneDeparture(t *testing.T) {
	ctx := context.Background()
	const ttl = 200 * time.Millisecond
	n := startNodes(t, ttl, 3)
	a, b, c := n[0], n[1], n[2]
	for _, p := range []*redispresence.Directory{a, b} {
		if _, err := p.Enter(ctx, "general", ada); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * ttl)
	got, err := c.Refresh(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Claimed != 2 || fmt.Sprint(got.Gone) != "[{general {1 ada}}]" {
		t.Errorf("refresh = %+v, want 2 nodes claimed and ada gone once", got)
	}
}

// Reassert makes a node's entries exactly what it says, and names the users it brought back.
func TestReassert(t *testing.T) {
	ctx := context.Background()
	n := startNodes(t, time.Minute, 2)
	a, b := n[0], n[1]
	carol := app.Author{ID: 3, Name: "ca|rol"}
	for _, step := range []func() (bool, error){
		func() (bool, error) { return a.Enter(ctx, "general", ada) },
		func() (bool, error) { return a.Enter(ctx, "general", bob) }, // a missed bob's leave
		func() (bool, error) { return b.Enter(ctx, "general", carol) },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	added, err := a.Reassert(ctx, []app.RoomUser{
		{Room: "general", User: ada},
		{Room: "general", User: carol}, // also on b: not announced
		{Room: "other", User: ada},     // a missed this enter
	})
	if err != nil || fmt.Sprint(added) != "[{other {1 ada}}]" {
		t.Errorf("reassert added %v, %v; want ada in other only", added, err)
	}
	list, err := b.List(ctx, "general")
	if err != nil || fmt.Sprint(sorted(list)) != "[{1 ada} {3 ca|rol}]" {
		t.Errorf("general = %v, %v; want ada and carol, bob gone", list, err)
	}
}

// Two nodes' trackers over one directory announce a user's joined event once, when they first appear on
// any node, and their left event once, when they are gone from every node.
func TestTrackersOfTwoNodes(t *testing.T) {
	dirs := startNodes(t, time.Minute, 2)
	var mu sync.Mutex
	var got []string
	tracker := func(d *redispresence.Directory) *presence.Tracker {
		return presence.New(presence.Config{
			Directory: d,
			Announce: func(kind, room string, who app.Author, _ string) {
				mu.Lock()
				got = append(got, kind+" "+who.Name)
				mu.Unlock()
			},
			Resync:  func() {},
			Here:    func() []app.RoomUser { return nil },
			Closing: func() bool { return false },
		})
	}
	a, b := tracker(dirs[0]), tracker(dirs[1])
	<-a.Enter("general", ada, "a-1")
	<-b.Enter("general", ada, "b-1")
	a.Leave("general", ada)
	<-a.Enter("general", bob, "a-2") // changes of a room go out in order: ada's leave is done
	b.Leave("general", ada)
	<-b.Enter("general", bob, "b-2")
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"joined ada", "joined bob", "left ada"}; !slices.Equal(got, want) {
		t.Errorf("announced %q, want %q", got, want)
	}
}
