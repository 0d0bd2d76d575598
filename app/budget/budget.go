// Package budget keeps what each user spends of the limits per user: frames per second and open
// connections, on this node and, with a Usage, on every node.
package budget

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/causerie/causerie/app"
)

// Usage shares with the other nodes what each user spends here, and says what they spend there
// (app/usage, over Redis): see Exchange there.
type Usage interface {
	Exchange(ctx context.Context, mine map[int64]app.Spent, since int64) (others map[int64]app.Spent, next int64, err error)
}

// exchangeTimeout bounds one exchange with the other nodes; exchangeEvery is how often this node has one.
const (
	exchangeTimeout = time.Second
	exchangeEvery   = time.Second
)

// Users keeps what each user of this node spends of the limits per user: one rate limiter shared by
// all of the user's connections and REST posts (a limit per connection let twenty sockets of one user
// send twenty times the limit), and the count of the user's connections. With a Usage, the other nodes'
// spending counts too: what a user sends elsewhere is charged to the limiter here, and their connections
// elsewhere count against the cap, each known within an exchange.
type Users struct {
	limit    rate.Limit // 0: no limit
	burst    int
	maxConns int // 0: no cap
	usage    Usage
	log      *slog.Logger

	mu    sync.Mutex
	users map[int64]*spender
	// since is the clock of the last exchange, for the next (see Usage).
	since int64
	// retell is set when the other nodes may have dropped this node's figures (an exchange failed, or
	// came too late): the next exchange tells them every user's again.
	retell bool
}

// spender is one user's spending on this node.
type spender struct {
	lim   *rate.Limiter // nil without a rate limit
	conns int
	sent  int // since the last exchange
	// reported is conns as the last exchange that had this user told the others, at reportedAt.
	reported   int
	reportedAt time.Time
	// elsewhere is the other nodes' figures, learned at checked (zero: never).
	elsewhere app.Spent
	checked   time.Time
}

// usageLapse is how long between two exchanges of this node the other nodes may have taken it for
// stopped and dropped its figures (app/server's staleness, with a margin): the next exchange then tells
// them all again.
const usageLapse = 2 * time.Second

// rewriteEvery is how often a user's unchanged figures are written again, well within usage.Keep.
const rewriteEvery = 30 * time.Second

// fresh reports whether what s knows of the other nodes is recent enough for Admit to go by.
func (s *spender) fresh(now time.Time) bool { return now.Sub(s.checked) <= 2*exchangeEvery }

// Config sets the limits per user.
type Config struct {
	// PerSecond is the frames per second a user may send, all connections and REST posts together (0:
	// unlimited), with bursts of Burst.
	PerSecond float64
	Burst     int
	// MaxConns caps the connections of one user (0: no cap).
	MaxConns int
	// Usage may be nil (a single node); with it, the limits hold across nodes.
	Usage Usage
	Log   *slog.Logger
}

// New returns the budgets of cfg; Run keeps them.
func New(cfg Config) *Users {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Users{limit: rate.Limit(cfg.PerSecond), burst: cfg.Burst, maxConns: cfg.MaxConns, usage: cfg.Usage, log: cfg.Log, users: map[int64]*spender{}}
}

// sweepEvery is how often Run forgets the users who spend nothing.
const sweepEvery = time.Second

// Run forgets, every sweepEvery, the users who spend nothing, and with a Usage trades what users spend
// here for what they spend on the other nodes, every exchangeEvery, until ctx ends. The exchange runs on
// a goroutine of its own, so that a slow Redis delays no sweep.
func (b *Users) Run(ctx context.Context) {
	if b.usage != nil {
		go b.exchangeLoop(ctx)
	}
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b.sweep(now)
		}
	}
}

func (b *Users) exchangeLoop(ctx context.Context) {
	t := time.NewTicker(exchangeEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := b.exchange(ctx, time.Now())
			if err != nil && !failing {
				b.log.Warn("usage: exchange with the other nodes failed; limits per user count this node alone until it works", "err", err)
			} else if err == nil && failing {
				b.log.Info("usage: exchange with the other nodes works again")
			}
			failing = err != nil
		}
	}
}

// userLocked returns user's spender, made on first use. b.mu must be held.
func (b *Users) userLocked(user int64) *spender {
	s := b.users[user]
	if s == nil {
		s = &spender{}
		if b.limit > 0 {
			s.lim = rate.NewLimiter(b.limit, b.burst)
		}
		b.users[user] = s
	}
	return s
}

// Take spends one of user's frames and reports whether there was one, or how long until there is.
func (b *Users) Take(user int64, now time.Time) (bool, time.Duration) {
	if b.limit <= 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.userLocked(user)
	if s.lim.AllowN(now, 1) {
		if b.usage != nil { // told to the other nodes at the next exchange, which resets it
			s.sent++
		}
		return true, 0
	}
	r := s.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// ConnRetry is the Retry-After of a connection refused over a cap: connections end when their pages do.
const ConnRetry = 5 * time.Second

// Admit counts a connection of user, or refuses it with a too_many_connections error when the user has
// the most connections one may, on every node. A user whose connections elsewhere this node has not
// learned of in the last two exchanges is looked up first, so that the cap holds from the first
// connection; should the other nodes not answer, it counts what it knows. Release takes it back.
func (b *Users) Admit(ctx context.Context, user int64) error {
	if b.maxConns <= 0 {
		return nil
	}
	b.mu.Lock()
	s := b.userLocked(user)
	lookUp := b.usage != nil && !s.fresh(time.Now())
	b.mu.Unlock()
	var elsewhere app.Spent
	learned := false
	if lookUp {
		ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
		// Conns -1 asks without telling; since = MaxInt64 counts connections only, no messages.
		others, _, err := b.usage.Exchange(ctx, map[int64]app.Spent{user: {Conns: -1}}, math.MaxInt64)
		cancel()
		elsewhere, learned = others[user], err == nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s = b.userLocked(user) // a sweep may have dropped it meanwhile
	if learned && !s.fresh(time.Now()) {
		s.elsewhere, s.checked = elsewhere, time.Now()
	}
	if s.conns+s.elsewhere.Conns >= b.maxConns {
		return app.Limited(app.CodeTooManyConns, ConnRetry, "you have %d connections open, the most one user may (MAX_CONNS_PER_USER); close one", b.maxConns)
	}
	s.conns++
	return nil
}

// Release takes back a connection Admit counted.
func (b *Users) Release(user int64) {
	if b.maxConns <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.users[user]; s != nil && s.conns > 0 {
		s.conns--
	}
}

// sweep forgets the users with no connection here, nothing left to tell the other nodes, and a full
// limiter: a new spender would be the same, and a server that has seen many users keeps none of them.
func (b *Users) sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for user, s := range b.users {
		if s.conns == 0 && s.reported == 0 && s.sent == 0 && (s.lim == nil || s.lim.TokensAt(now) >= float64(b.burst)) {
			delete(b.users, user)
		}
	}
}

// exchange renews this node's heartbeat with the other nodes, tells them what changed of its users'
// spending since the last exchange, and learns what those users spend there: their messages elsewhere are
// charged to the limiters here, their connections elsewhere kept for Admit. Without a Usage it does
// nothing.
func (b *Users) exchange(ctx context.Context, now time.Time) error {
	if b.usage == nil {
		return nil
	}
	b.mu.Lock()
	mine := map[int64]app.Spent{}
	retell := b.retell
	for user, s := range b.users {
		if retell || s.sent > 0 || s.conns != s.reported || (s.conns > 0 && now.Sub(s.reportedAt) >= rewriteEvery) {
			mine[user] = app.Spent{Conns: s.conns, Sent: s.sent}
			s.sent = 0
		}
	}
	since := b.since
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	others, next, err := b.usage.Exchange(ctx, mine, since)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.retell = true
		return err
	}
	b.retell = since != 0 && time.Duration(next-since)*time.Millisecond > usageLapse
	b.since = next
	for user, told := range mine {
		s := b.users[user]
		if s == nil {
			continue
		}
		s.reported, s.reportedAt = told.Conns, now
		s.elsewhere, s.checked = others[user], now
		if s.lim != nil {
			charge(s.lim, s.elsewhere.Sent, b.burst, now)
		}
	}
	return nil
}

// charge takes n tokens from lim, into debt if need be, as if they had been spent here: a reservation
// takes at most burst at a time.
func charge(lim *rate.Limiter, n, burst int, now time.Time) {
	for n > 0 {
		k := min(n, burst)
		lim.ReserveN(now, k)
		n -= k
	}
}
