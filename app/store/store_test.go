package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/store"
)

func openTemp(t *testing.T) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "causerie.db")
	db, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	created := time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC)
	u, err := db.CreateUser(ctx, app.User{Email: "ada@example.com", Name: "ada", PasswordHash: "h", CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == 0 {
		t.Fatal("no id")
	}
	if _, err := db.CreateUser(ctx, app.User{Email: "ADA@example.com", Name: "x", PasswordHash: "h", CreatedAt: created}); app.ErrorCode(err) != app.CodeConflict {
		t.Errorf("duplicate e-mail in another case: err = %v, want conflict", err)
	}
	for name, get := range map[string]func() (app.User, error){
		"by e-mail":               func() (app.User, error) { return db.UserByEmail(ctx, "ada@example.com") },
		"by e-mail in upper case": func() (app.User, error) { return db.UserByEmail(ctx, "ADA@EXAMPLE.COM") },
		"by id":                   func() (app.User, error) { return db.UserByID(ctx, u.ID) },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ID != u.ID || got.Name != "ada" || got.PasswordHash != "h" || !got.CreatedAt.Equal(created) {
			t.Errorf("%s: got %+v", name, got)
		}
	}
	if _, err := db.UserByID(ctx, 999); app.ErrorCode(err) != app.CodeNotFound {
		t.Errorf("missing user: err = %v, want not_found", err)
	}
}

func TestMessageIDsArePerRoomAndOrdered(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	u, err := db.CreateUser(ctx, app.User{Email: "a@example.com", Name: "a", PasswordHash: "h", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for i, room := range []string{"general", "general", "other", "general", "other"} {
		m, created, err := appendOne(t, db, app.Message{Room: room, From: app.Author{ID: u.ID, Name: u.Name}, Text: "t", At: time.Now()})
		if err != nil || !created {
			t.Fatal(created, err)
		}
		want[room]++
		if m.ID != want[room] {
			t.Errorf("message %d in %s: id %d, want %d", i, room, m.ID, want[room])
		}
	}
}

func TestRepeatedClientIDStoresOnce(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	a, _ := db.CreateUser(ctx, app.User{Email: "a@example.com", Name: "a", PasswordHash: "h", CreatedAt: time.Now()})
	b, _ := db.CreateUser(ctx, app.User{Email: "b@example.com", Name: "b", PasswordHash: "h", CreatedAt: time.Now()})
	msg := func(u app.User, text string) app.Message {
		return app.Message{Room: "general", From: app.Author{ID: u.ID, Name: u.Name}, Text: text, At: time.Now(), ClientID: "c-1"}
	}
	first, created, err := appendOne(t, db, msg(a, "first"))
	if err != nil || !created {
		t.Fatal(created, err)
	}
	again, created, err := appendOne(t, db, msg(a, "resent"))
	if err != nil || created || again.ID != first.ID || again.Text != "first" {
		t.Errorf("resend: %+v, created %v, %v; want the first message back", again, created, err)
	}
	other, created, err := appendOne(t, db, msg(b, "b's own c-1"))
	if err != nil || !created || other.ID == first.ID {
		t.Errorf("another user's c-1: %+v, created %v, %v; want a new message", other, created, err)
	}
}

func TestMessagesPages(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	u, _ := db.CreateUser(ctx, app.User{Email: "a@example.com", Name: "a", PasswordHash: "h", CreatedAt: time.Now()})
	for i := 0; i < 10; i++ {
		if _, _, err := appendOne(t, db, app.Message{Room: "r", From: app.Author{ID: u.ID}, Text: "t", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		q    app.MessageQuery
		want []int64
	}{
		{"newest", app.MessageQuery{Limit: 3, Latest: true}, []int64{8, 9, 10}},
		{"before", app.MessageQuery{Before: 5, Limit: 3, Latest: true}, []int64{2, 3, 4}},
		{"after", app.MessageQuery{After: 5, Limit: 3}, []int64{6, 7, 8}},
		{"newest after", app.MessageQuery{After: 5, Limit: 3, Latest: true}, []int64{8, 9, 10}},
		{"between", app.MessageQuery{After: 2, Before: 5, Limit: 10}, []int64{3, 4}},
		{"past the end", app.MessageQuery{After: 10, Limit: 10}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := db.Messages(ctx, "r", tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, m := range msgs {
				got = append(got, m.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("ids = %v, want %v", got, tc.want)
			}
		})
	}
	rooms, err := db.Rooms(ctx)
	if err != nil || fmt.Sprint(rooms) != "[r]" {
		t.Errorf("Rooms = %v, %v", rooms, err)
	}
}

func appendOne(t *testing.T, db *store.DB, m app.Message) (app.Message, bool, error) {
	t.Helper()
	out, err := db.AppendMessages(context.Background(), []app.Message{m})
	if err != nil {
		return app.Message{}, false, err
	}
	return out[0].Message, out[0].Created, nil
}

// A batch is one transaction: ids follow each other per room, a client id repeated inside the batch is
// stored once, and a failure stores nothing.
func TestAppendBatch(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	u, _ := db.CreateUser(ctx, app.User{Email: "a@example.com", Name: "a", PasswordHash: "h", CreatedAt: time.Now()})
	m := func(room, clientID string) app.Message {
		return app.Message{Room: room, From: app.Author{ID: u.ID, Name: "a"}, Text: room + clientID, At: time.Now(), ClientID: clientID}
	}
	out, err := db.AppendMessages(ctx, []app.Message{m("x", ""), m("y", "k"), m("x", ""), m("y", "k"), m("y", "")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range out {
		got = append(got, fmt.Sprintf("%s%d:%v", a.Message.Room, a.Message.ID, a.Created))
	}
	if want := "[x1:true y1:true x2:true y1:false y2:true]"; fmt.Sprint(got) != want {
		t.Errorf("batch = %v, want %s", got, want)
	}
	bad := m("x", "")
	bad.From.ID = 999 // no such user: the foreign key fails the whole batch
	if _, err := db.AppendMessages(ctx, []app.Message{m("x", ""), bad}); err == nil {
		t.Fatal("a batch with a bad message was stored")
	}
	if msgs, _ := db.Messages(ctx, "x", app.MessageQuery{Limit: 10}); len(msgs) != 2 {
		t.Errorf("room x has %d messages after the failed batch, want 2", len(msgs))
	}
}

func TestReopenKeepsDataAndSkipsAppliedMigrations(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	if _, err := db.CreateUser(ctx, app.User{Email: "a@example.com", Name: "a", PasswordHash: "h", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	again, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()
	if _, err := again.UserByEmail(ctx, "a@example.com"); err != nil {
		t.Errorf("user lost across reopen: %v", err)
	}
	if err := again.Ping(ctx); err != nil {
		t.Error(err)
	}
}

// BenchmarkAppend stores messages one transaction each, and in batches of 64 as the hub's committer does
// under load; ns/msg compares them. Every commit is synced to disk (synchronous=FULL).
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := context.Background()
			db, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			u, err := db.CreateUser(ctx, app.User{Email: "a@example.com", Name: "a", PasswordHash: "h", CreatedAt: time.Now()})
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]app.Message, size)
			for i := range batch {
				batch[i] = app.Message{Room: fmt.Sprint("r", i%8), From: app.Author{ID: u.ID, Name: "a"}, Text: "Bonjour à tous", At: time.Now()}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := db.AppendMessages(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/msg")
		})
	}
}
