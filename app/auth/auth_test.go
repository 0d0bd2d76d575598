package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/auth"
)

var ctx = context.Background()

// check is Passwords.Check for a context that never ends.
func check(p *auth.Passwords, hash, password string) bool {
	ok, err := p.Check(ctx, hash, password)
	return ok && err == nil
}

func TestPasswords(t *testing.T) {
	p, err := auth.NewPasswords(4)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if h == "correct horse" || !check(p, h, "correct horse") || check(p, h, "wrong horse") || check(p, "", "correct horse") {
		t.Error("bcrypt check does not tell right from wrong")
	}
	if _, err := auth.NewPasswords(99); err == nil {
		t.Error("cost 99 accepted")
	}
}

// bcrypt compares only the first 72 bytes: a longer password that begins with the right ones must not
// match, and none is hashed.
func TestPasswordsOver72Bytes(t *testing.T) {
	p, err := auth.NewPasswords(4)
	if err != nil {
		t.Fatal(err)
	}
	password := strings.Repeat("A", auth.MaxPasswordBytes)
	h, err := p.Hash(ctx, password)
	if err != nil {
		t.Fatal(err)
	}
	if !check(p, h, password) {
		t.Error("the 72-byte password does not match its hash")
	}
	if check(p, h, password+"suffix") {
		t.Error("the 72-byte password with a suffix matches its hash")
	}
	if _, err := p.Hash(ctx, password+"A"); err == nil {
		t.Error("a 73-byte password was hashed")
	}
}

func TestTokensRoundTripAndExpire(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tokens := auth.NewTokens([]byte("0123456789abcdef0123456789abcdef"), time.Hour, clock)
	s, err := tokens.Issue(app.User{ID: 42, Name: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := tokens.Parse(s)
	if err != nil || id.UserID != 42 || id.Name != "ada" || !id.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("Parse = %+v, %v", id, err)
	}
	now = now.Add(time.Hour + time.Second)
	_, err = tokens.Parse(s)
	if app.ErrorCode(err) != app.CodeUnauthorized || err.(*app.Error).Message != "token expired" {
		t.Errorf("expired token: err = %v", err)
	}
}

func TestSecretIsCreatedOnceWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, created, err := auth.LoadOrCreateSecret(dir)
	if err != nil || !created || len(first) < 32 {
		t.Fatalf("first call: %q, %v, %v", first, created, err)
	}
	info, err := os.Stat(filepath.Join(dir, auth.SecretFile))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode = %o, want 600", mode)
	}
	again, created, err := auth.LoadOrCreateSecret(dir)
	if err != nil || created || string(again) != string(first) {
		t.Errorf("second call: %q, %v, %v; want the same secret", again, created, err)
	}
	if err := os.WriteFile(filepath.Join(dir, auth.SecretFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := auth.LoadOrCreateSecret(dir); err == nil {
		t.Error("a short secret file was accepted")
	}
}

func BenchmarkTokenParse(b *testing.B) {
	tokens := auth.NewTokens([]byte("0123456789abcdef0123456789abcdef"), time.Hour, time.Now)
	s, err := tokens.Issue(app.User{ID: 42, Name: "ada"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tokens.Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
