package chat

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// budgets gives each user of this node one rate limiter, shared by all of the user's connections and REST
// posts: a limit per connection let twenty sockets of one user send twenty times the limit.
type budgets struct {
	limit rate.Limit // 0: no limit
	burst int

	// mu guards users.
	mu    sync.Mutex
	users map[int64]*rate.Limiter
}

func newBudgets(perSecond float64, burst int) *budgets {
	return &budgets{limit: rate.Limit(perSecond), burst: burst, users: map[int64]*rate.Limiter{}}
}

// take spends one of user's frames and reports whether there was one, or how long until there is.
func (b *budgets) take(user int64, now time.Time) (bool, time.Duration) {
	if b.limit <= 0 {
		return true, 0
	}
	b.mu.Lock()
	lim := b.users[user]
	if lim == nil {
		lim = rate.NewLimiter(b.limit, b.burst)
		b.users[user] = lim
	}
	b.mu.Unlock()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// sweep forgets the limiters that are full again: a new one would be the same, and a server that has seen
// many users keeps none of them.
func (b *budgets) sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for user, lim := range b.users {
		if lim.TokensAt(now) >= float64(b.burst) {
			delete(b.users, user)
		}
	}
}

// Pings, JSON or control frames, have a small budget of their own per connection, outside the user's: a
// client keeping its connection alive pings every few seconds at most, and one pinging in a loop would
// otherwise get all the pongs it asks for.
const (
	pingsPerSecond = 2
	pingBurst      = 20
)
