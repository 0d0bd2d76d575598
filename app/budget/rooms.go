package budget

import (
	"context"
	"strconv"
	"time"

	"github.com/causerie/causerie/app"
)

// Counter counts events per key over a window (app/throttle), in this process or for every node.
type Counter interface {
	Add(ctx context.Context, key string) (n int64, left time.Duration, err error)
}

// Rooms caps the rooms one user creates in the window of its Counter.
type Rooms struct {
	Max     int // 0: no cap
	Counter Counter
}

// Take counts a room user is about to create against Max: an attempt that then fails (the name is taken)
// counts too, so that trying names is capped as well. A counter that does not answer (Redis down)
// refuses nothing: creating rooms is not worth an outage.
func (r *Rooms) Take(ctx context.Context, user int64) error {
	if r.Max <= 0 {
		return nil
	}
	n, left, err := r.Counter.Add(ctx, "rooms:user:"+strconv.FormatInt(user, 10))
	if err == nil && n > int64(r.Max) {
		return app.Limited(app.CodeRateLimited, left, "you created %d rooms in the last hour, the most one user may (ROOMS_PER_HOUR)", r.Max)
	}
	return nil
}
