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
	"github.com/causerie/causerie/app/store"
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
	tokens := auth.NewTokens([]byte("0123456789abcdef0123456789abcdef"), clock)
	want := app.Identity{UserID: 42, Name: "ada", Session: "s1", Generation: 3, ExpiresAt: now.Add(time.Hour)}
	s, err := tokens.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tokens.Parse(s)
	if err != nil || id.UserID != want.UserID || id.Name != want.Name || id.Session != want.Session ||
		id.Generation != want.Generation || !id.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("Parse = %+v, %v; want %+v", id, err, want)
	}
	noSession, err := tokens.Issue(app.Identity{UserID: 42, Name: "ada", ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Parse(noSession); app.ErrorCode(err) != app.CodeUnauthorized {
		t.Errorf("a token without a session (jti): err = %v, want unauthorized", err)
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
	tokens := auth.NewTokens([]byte("0123456789abcdef0123456789abcdef"), time.Now)
	s, err := tokens.Issue(app.Identity{UserID: 42, Name: "ada", Session: "s1", ExpiresAt: time.Now().Add(time.Hour)})
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

// sessionsAt returns Sessions over a real SQLite store, with a clock the test moves, and a user.
func sessionsAt(t *testing.T, now *time.Time) (*auth.Sessions, app.User) {
	t.Helper()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "causerie.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u, err := db.CreateUser(ctx, app.User{Email: "ada@example.com", Name: "ada", PasswordHash: "h", CreatedAt: *now})
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return *now }
	return &auth.Sessions{Tokens: auth.NewTokens([]byte("0123456789abcdef0123456789abcdef"), clock), Store: db,
		TTL: time.Hour, Max: 3 * time.Hour, Now: clock}, u
}

func verifies(s *auth.Sessions, token string) bool {
	_, err := s.Verify(ctx, token)
	return err == nil
}

func TestSessionRefreshRotates(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s, u := sessionsAt(t, &now)
	first, err := s.Start(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Verify(ctx, first)
	if err != nil || id.UserID != u.ID || id.Name != "ada" || id.Session == "" {
		t.Fatalf("Verify(first) = %+v, %v", id, err)
	}
	second, err := s.Refresh(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Another tab refreshes with the first token meanwhile: it gets the same generation, and moves nothing.
	again, err := s.Refresh(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{"second": second, "again": again} {
		got, err := s.Verify(ctx, token)
		if err != nil || got.Session != id.Session || got.Generation != 1 {
			t.Errorf("%s token: %+v, %v; want generation 1 of the session", name, got, err)
		}
	}
	if !verifies(s, first) {
		t.Error("the replaced token fails within the grace")
	}
	now = now.Add(auth.RefreshGrace + time.Second)
	if verifies(s, first) {
		t.Error("the replaced token still works after the grace")
	}
	if !verifies(s, second) {
		t.Error("the new token fails")
	}
}

func TestSessionEnds(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s, u := sessionsAt(t, &now)
	a, _ := s.Start(ctx, u)
	b, _ := s.Start(ctx, u)
	c, _ := s.Start(ctx, u)
	idA, _ := s.Verify(ctx, a)
	if err := s.End(ctx, idA.Session); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, a); app.ErrorCode(err) != app.CodeUnauthorized {
		t.Errorf("token of an ended session: err = %v, want unauthorized", err)
	}
	if !verifies(s, b) || !verifies(s, c) {
		t.Error("ending one session ended others")
	}
	ended, err := s.EndAll(ctx, u.ID)
	if err != nil || len(ended) != 2 {
		t.Fatalf("EndAll = %v, %v; want the two sessions left", ended, err)
	}
	if verifies(s, b) || verifies(s, c) {
		t.Error("a token works after EndAll")
	}
}

// No token outlives SESSION_MAX, however often it is refreshed.
func TestSessionMax(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	start := now
	s, u := sessionsAt(t, &now)
	token, _ := s.Start(ctx, u)
	for now.Sub(start) < s.Max {
		id, err := s.Verify(ctx, token)
		if err != nil {
			t.Fatalf("after %s: %v", now.Sub(start), err)
		}
		if id.ExpiresAt.After(start.Add(s.Max)) {
			t.Fatalf("a token expires at %s, past the session's end", id.ExpiresAt)
		}
		if token, err = s.Refresh(ctx, id); err != nil {
			t.Fatal(err)
		}
		now = now.Add(40 * time.Minute)
	}
	if verifies(s, token) {
		t.Error("a token works past SESSION_MAX")
	}
}
