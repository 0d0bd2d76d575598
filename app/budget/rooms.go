package budget

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/causerie/causerie/app"
)

// Counter counts events per key over a window (app/throttle), in this process or for every node.
type Counter interface {
	Add(ctx context.Context, key string) (n int64, left time.Duration, err error)
}

// RoomFinder says whether a room has messages: its newest message id, 0 when it has none (the store).
type RoomFinder interface {
	LastID(ctx context.Context, room string) (int64, error)
}

// Rooms caps the rooms one user creates, by storing their first message, in the window of its Counter.
type Rooms struct {
	Max     int // 0: no cap
	Counter Counter
	Store   RoomFinder
	// stored holds the names of rooms known to have messages: a message to one of them creates nothing.
	stored sync.Map
}

// Check counts a message of user to a room without messages, which creates the room, against Max. A room
// known to have messages costs nothing; one not known yet, a read of the store. A counter that does not
// answer (Redis down) refuses nothing: creating rooms is not worth an outage.
func (r *Rooms) Check(ctx context.Context, user int64, room string) error {
	if r.Max <= 0 || room == app.DefaultRoom {
		return nil
	}
	if _, ok := r.stored.Load(room); ok {
		return nil
	}
	last, err := r.Store.LastID(ctx, room)
	if err != nil {
		return fmt.Errorf("budget: does room %q exist: %w", room, err)
	}
	if last > 0 {
		r.stored.Store(room, struct{}{})
		return nil
	}
	n, left, err := r.Counter.Add(ctx, "rooms:user:"+strconv.FormatInt(user, 10))
	if err == nil && n > int64(r.Max) {
		return app.Limited(app.CodeRateLimited, left, "you created %d rooms in the last hour, the most one user may (ROOMS_PER_HOUR): post in a room that has messages", r.Max)
	}
	return nil
}
