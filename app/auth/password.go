// Package auth hashes passwords with bcrypt and issues and verifies the HS256 tokens that every route
// and every WebSocket accepts.
package auth

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/causerie/causerie/app"
)

// Passwords hashes and checks passwords at a fixed bcrypt cost. At most one bcrypt runs per core but one
// at a time (one on a single core, which Go's scheduler still shares with the chat): bcrypt is made to take
// the CPU, and a storm of logins must leave a core to the chat.
type Passwords struct {
	cost int
	// dummy is compared against when the account does not exist, so that an unknown e-mail and a wrong
	// password take the same time and a caller cannot tell which one it was.
	dummy []byte
	// slots holds a token per bcrypt running.
	slots chan struct{}
}

// NewPasswords returns a Passwords hashing at cost (bcrypt.MinCost to bcrypt.MaxCost).
func NewPasswords(cost int) (*Passwords, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password anyone has"), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: bcrypt cost %d: %w", cost, err)
	}
	return &Passwords{cost: cost, dummy: dummy, slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))}, nil
}

// slotWait bounds the wait for a bcrypt slot: past it, a storm of logins is answered with 429 rather than
// queued for minutes ahead of everyone else's.
const slotWait = 5 * time.Second

// acquire waits for a bcrypt slot, at most slotWait, or until ctx ends.
func (p *Passwords) acquire(ctx context.Context) error {
	t := time.NewTimer(slotWait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-t.C:
		return app.Limited(app.CodeRateLimited, slotWait, "the server is busy checking passwords: try again in a few seconds")
	case <-ctx.Done():
		return fmt.Errorf("auth: wait for a bcrypt slot: %w", ctx.Err())
	}
}

func (p *Passwords) release() { <-p.slots }

// Hash returns the bcrypt hash of password.
func (p *Passwords) Hash(ctx context.Context, password string) (string, error) {
	if err := p.acquire(ctx); err != nil {
		return "", err
	}
	defer p.release()
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}

// MaxPasswordBytes is the most of a password bcrypt reads. Hash refuses a longer one.
const MaxPasswordBytes = 72

// Check reports whether password matches hash. An empty hash (no such account) is checked against a
// dummy hash and never matches. A password over MaxPasswordBytes never matches either: bcrypt would
// compare only its first 72 bytes, and so match any password that begins with the right one.
func (p *Passwords) Check(ctx context.Context, hash, password string) (bool, error) {
	if len(password) > MaxPasswordBytes {
		return false, nil
	}
	if err := p.acquire(ctx); err != nil {
		return false, err
	}
	defer p.release()
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(p.dummy, []byte(password))
		return false, nil
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil, nil
}
