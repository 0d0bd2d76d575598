package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus/bustest"
	"github.com/causerie/causerie/app/usage"
)

// Each process learns the others' figures for the users it asks about: connections while the other is
// alive, messages once per interval of the other's.
func TestExchange(t *testing.T) {
	ctx := context.Background()
	c, prefix := bustest.Client(t)
	const stale = 300 * time.Millisecond
	one := usage.NewRedis(c, prefix, "node-1", stale)
	two := usage.NewRedis(c, prefix, "node-2", stale)
	restarted := usage.NewRedis(c, prefix, "node-2", stale) // node 2's next process

	_, since1, err := one.Exchange(ctx, map[int64]app.Spent{7: {Conns: 2, Sent: 5}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	others, since2, err := two.Exchange(ctx, map[int64]app.Spent{7: {Conns: 1, Sent: 3}, 8: {}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := others[7]; got != (app.Spent{Conns: 2, Sent: 5}) {
		t.Errorf("node 2 learns %+v of user 7, want node 1's 2 connections and 5 messages", got)
	}
	if _, ok := others[8]; ok {
		t.Errorf("node 2 learns %+v of user 8, whom nobody else has", others[8])
	}
	// Node 2 asks again without node 1 having written since: the connections count, the messages were
	// counted already.
	others, _, _ = two.Exchange(ctx, map[int64]app.Spent{7: {Conns: 1}}, since2)
	if got := others[7]; got != (app.Spent{Conns: 2}) {
		t.Errorf("asked again: %+v, want the 2 connections and no message counted twice", got)
	}
	others, _, _ = one.Exchange(ctx, map[int64]app.Spent{7: {Conns: 2}}, since1)
	if got := others[7]; got != (app.Spent{Conns: 1}) {
		t.Errorf("node 1 learns %+v, want node 2's connection (its latest figures, which sent nothing)", got)
	}

	// Asking about a user changes nothing of what is told of them.
	if others, _, _ := one.Exchange(ctx, map[int64]app.Spent{7: {Conns: -1}}, 0); others[7] != (app.Spent{Conns: 1}) {
		t.Errorf("node 1 asks about user 7 and learns %+v, want node 2's connection", others[7])
	}
	if others, _, _ := two.Exchange(ctx, map[int64]app.Spent{7: {Conns: -1}}, 0); others[7].Conns != 2 {
		t.Errorf("after node 1 asked, node 2 learns %+v of user 7: the asking erased node 1's 2 connections", others[7])
	}

	// Node 2 stops; its next process starts fresh. Once node 2's heartbeat is stale, its figures no
	// longer count, and the new process's heartbeat does not revive them.
	time.Sleep(stale + 100*time.Millisecond)
	if _, _, err := restarted.Exchange(ctx, nil, 0); err != nil {
		t.Fatal(err)
	}
	others, _, _ = one.Exchange(ctx, map[int64]app.Spent{7: {Conns: 2}}, 0)
	if got := others[7]; got != (app.Spent{}) {
		t.Errorf("after node 2 stopped, node 1 learns %+v of user 7, want nothing", got)
	}
	if n, _ := c.HLen(ctx, prefix+"{usage}:usage:7").Result(); n != 1 {
		t.Errorf("user 7's hash holds %d figures, want node 1's alone (the stopped process's deleted)", n)
	}
}
