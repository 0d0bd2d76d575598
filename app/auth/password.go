// Package auth hashes passwords with bcrypt and issues and verifies the HS256 tokens that every route
// and every WebSocket accepts.
package auth

import (
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// Passwords hashes and checks passwords at a fixed bcrypt cost.
type Passwords struct {
	cost int
	// dummy is compared against when the account does not exist, so that an unknown e-mail and a wrong
	// password take the same time and a caller cannot tell which one it was.
	dummy []byte
}

// NewPasswords returns a Passwords hashing at cost (bcrypt.MinCost to bcrypt.MaxCost).
func NewPasswords(cost int) (*Passwords, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password anyone has"), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: bcrypt cost %d: %w", cost, err)
	}
	return &Passwords{cost: cost, dummy: dummy}, nil
}

// Hash returns the bcrypt hash of password.
func (p *Passwords) Hash(password string) (string, error) {
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
func (p *Passwords) Check(hash, password string) bool {
	if len(password) > MaxPasswordBytes {
		return false
	}
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(p.dummy, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
