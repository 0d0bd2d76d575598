package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/store"
	"github.com/causerie/causerie/app/store/storetest"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// dialects are the databases every test runs against.
var dialects = []struct {
	name string
	// database makes a fresh, empty database for t and returns its address.
	database func(t testing.TB) string
	open     func(ctx context.Context, addr string) (*store.DB, error)
}{
	{
		name:     "sqlite",
		database: func(t testing.TB) string { return filepath.Join(t.TempDir(), "sub", "causerie.db") },
		open:     store.OpenSQLite,
	},
	{
		name:     "postgres",
		database: storetest.PostgresURL,
		open:     func(ctx context.Context, url string) (*store.DB, error) { return store.OpenPostgres(ctx, url, 4) },
	},
}

// forEachDialect runs test once per dialect, as subtests named after it. open opens a store on a
// database made for the subtest, empty at the first call; later calls open the same database again, as
// a restart or another node would. Every store is closed when the subtest ends.
func forEachDialect(t *testing.T, test func(t *testing.T, open func(testing.TB) *store.DB)) {
	for _, dl := range dialects {
		t.Run(dl.name, func(t *testing.T) {
			addr := dl.database(t)
			test(t, func(tb testing.TB) *store.DB {
				tb.Helper()
				db, err := dl.open(context.Background(), addr)
				if err != nil {
					tb.Fatalf("open %s: %v", dl.name, err)
				}
				tb.Cleanup(func() { db.Close() })
				return db
			})
		})
	}
}

func TestUsers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
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
			"by name in upper case":   func() (app.User, error) { return db.UserByName(ctx, "ADA") },
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
		if _, err := db.UserByName(ctx, "nobody"); app.ErrorCode(err) != app.CodeNotFound {
			t.Errorf("missing name: err = %v, want not_found", err)
		}
		if _, err := db.UserByEmail(ctx, "nobody@example.com"); app.ErrorCode(err) != app.CodeNotFound {
			t.Errorf("missing e-mail: err = %v, want not_found", err)
		}
	})
}

func TestMessageIDsArePerRoomAndOrdered(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		db := open(t)
		u := createUser(t, db, "a@example.com")
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
	})
}

func TestRepeatedClientIDStoresOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		a := createUser(t, db, "a@example.com")
		b := createUser(t, db, "b@example.com")
		msg := func(u app.User, room, text string) app.Message {
			return app.Message{Room: room, From: app.Author{ID: u.ID, Name: u.Name}, Text: text, At: time.Now(), ClientID: "c-1"}
		}
		first, created, err := appendOne(t, db, msg(a, "general", "first"))
		if err != nil || !created {
			t.Fatal(created, err)
		}
		again, created, err := appendOne(t, db, msg(a, "general", "resent"))
		if err != nil || created || again.ID != first.ID || again.Text != "first" {
			t.Errorf("resend: %+v, created %v, %v; want the first message back", again, created, err)
		}
		elsewhere, created, err := appendOne(t, db, msg(a, "elsewhere", "resent to another room"))
		if err != nil || created || elsewhere.Room != "general" || elsewhere.ID != first.ID {
			t.Errorf("resend to another room: %+v, created %v, %v; want the first message back", elsewhere, created, err)
		}
		other, created, err := appendOne(t, db, msg(b, "general", "b's own c-1"))
		if err != nil || !created || other.ID == first.ID {
			t.Errorf("another user's c-1: %+v, created %v, %v; want a new message", other, created, err)
		}
		// The resend to "elsewhere" stored nothing there.
		if last, err := db.LastID(ctx, "elsewhere"); err != nil || last != 0 {
			t.Errorf("LastID(elsewhere) = %d, %v; want 0", last, err)
		}
		if last, err := db.LastID(ctx, "general"); err != nil || last != 2 {
			t.Errorf("LastID(general) = %d, %v; want 2", last, err)
		}
	})
}

func TestMessagesPages(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		u := createUser(t, db, "a@example.com")
		for range 10 {
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
				if got := ids(msgs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("ids = %v, want %v", got, tc.want)
				}
			})
		}
	})
}

func TestLastID(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		u := createUser(t, db, "a@example.com")
		if last, err := db.LastID(ctx, "unknown"); err != nil || last != 0 {
			t.Errorf("LastID of an unknown room = %d, %v; want 0", last, err)
		}
		m := func(room string) app.Message {
			return app.Message{Room: room, From: app.Author{ID: u.ID, Name: "a"}, Text: "t", At: time.Now()}
		}
		if _, err := db.AppendMessages(ctx, []app.Message{m("x"), m("y"), m("x"), m("x")}); err != nil {
			t.Fatal(err)
		}
		for room, want := range map[string]int64{"x": 3, "y": 1, "z": 0} {
			if got, err := db.LastID(ctx, room); err != nil || got != want {
				t.Errorf("LastID(%s) = %d, %v; want %d", room, got, err, want)
			}
		}
	})
}

// A batch is one transaction: ids follow each other per room, a client id repeated inside the batch is
// stored once, and a failure stores nothing.
func TestAppendBatch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		u := createUser(t, db, "a@example.com")
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
		if _, err := db.AppendMessages(ctx, []app.Message{m("x", ""), m("new", ""), bad}); err == nil {
			t.Fatal("a batch with a bad message was stored")
		}
		if msgs, _ := db.Messages(ctx, "x", app.MessageQuery{Limit: 10}); len(msgs) != 2 {
			t.Errorf("room x has %d messages after the failed batch, want 2", len(msgs))
		}
		if last, err := db.LastID(ctx, "x"); err != nil || last != 2 {
			t.Errorf("LastID(x) after the failed batch = %d, %v; want 2", last, err)
		}
		if last, err := db.LastID(ctx, "new"); err != nil || last != 0 {
			t.Errorf("LastID(new) after the failed batch = %d, %v; want 0", last, err)
		}
		if out, err := db.AppendMessages(ctx, nil); err != nil || len(out) != 0 {
			t.Errorf("empty batch: %v, %v", out, err)
		}
	})
}

// A batch longer than one statement carries, with client ids repeated inside it and one stored before
// it, is stored as a short one would be.
func TestAppendLongBatch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		u := createUser(t, db, "a@example.com")
		m := func(room, clientID string) app.Message {
			return app.Message{Room: room, From: app.Author{ID: u.ID, Name: "a"}, Text: room + clientID, At: time.Now(), ClientID: clientID}
		}
		before, _, err := appendOne(t, db, m("a", "c-0"))
		if err != nil {
			t.Fatal(err)
		}
		// Messages 0 to 2199 have client ids of their own, the first of which is before's; the next 300
		// repeat the first 300.
		const distinct, repeated = 2200, 300
		rooms := []string{"a", "b", "c"}
		batch := make([]app.Message, distinct+repeated)
		for i := range batch {
			batch[i] = m(rooms[i%len(rooms)], fmt.Sprint("c-", i%distinct))
		}
		out, err := db.AppendMessages(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != len(batch) {
			t.Fatalf("%d results for %d messages", len(out), len(batch))
		}
		for i, a := range out {
			var want app.Message
			switch {
			case i%distinct == 0:
				want = before
			case i >= distinct:
				want = out[i-distinct].Message
			}
			if want.ID != 0 && (a.Created || a.Message.Room != want.Room || a.Message.ID != want.ID || a.Message.Text != want.Text) {
				t.Errorf("message %d: %s %d %q created %v, want %s %d %q back", i, a.Message.Room, a.Message.ID, a.Message.Text, a.Created, want.Room, want.ID, want.Text)
			}
			if want.ID == 0 && (!a.Created || a.Message.Text != batch[i].Text) {
				t.Errorf("message %d: %+v created %v, want it stored", i, a.Message, a.Created)
			}
		}
		for _, room := range rooms {
			msgs, err := db.Messages(ctx, room, app.MessageQuery{Limit: 10_000})
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range msgs {
				if m.ID != int64(i+1) {
					t.Fatalf("room %s: ids %v, want 1..%d", room, ids(msgs), len(msgs))
				}
			}
			if last, err := db.LastID(ctx, room); err != nil || last != int64(len(msgs)) {
				t.Errorf("LastID(%s) = %d, %v; want %d", room, last, err, len(msgs))
			}
		}
	})
}

// A client id taken by another node's transaction after a batch looked for it (here, before the batch
// runs, as the batch does not look first): the batch's insert waits for that transaction, then returns
// its message if it committed, and stores the batch's own if it rolled back. In a batch or alone, the
// message never fails.
func TestPostgresClientIDTakenMeanwhile(t *testing.T) {
	url := storetest.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := store.OpenPostgres(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u := createUser(t, db, "a@example.com")
	raw, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	m := func(room, clientID string) app.Message {
		return app.Message{Room: room, From: app.Author{ID: u.ID, Name: "a"}, Text: "mine", At: time.Now(), ClientID: clientID}
	}
	cases := []struct {
		name   string
		batch  []app.Message
		commit bool
		want   string
	}{
		{"batch", []app.Message{m("x", ""), m("y", "k1"), m("x", "")}, true, "[x1:true elsewhere1:false x2:true]"},
		{"one message", []app.Message{m("y", "k2")}, true, "[elsewhere2:false]"},
		{"rolled back", []app.Message{m("y", "k3")}, false, "[y1:true]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			other, err := raw.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Rollback()
			var pid, id int64
			if err := other.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if err := other.QueryRowContext(ctx, `INSERT INTO rooms (name, last_id) VALUES ('elsewhere', 1)
				ON CONFLICT (name) DO UPDATE SET last_id = rooms.last_id + 1 RETURNING last_id`).Scan(&id); err != nil {
				t.Fatal(err)
			}
			if _, err := other.ExecContext(ctx, `INSERT INTO messages (room, id, user_id, user_name, text, client_id, created_at)
				VALUES ('elsewhere', $1, $2, 'a', 'theirs', $3, 0)`, id, u.ID, tc.batch[len(tc.batch)/2].ClientID); err != nil {
				t.Fatal(err)
			}

			type result struct {
				out []app.Appended
				err error
			}
			done := make(chan result, 1)
			go func() {
				out, err := db.AppendMessages(ctx, tc.batch)
				done <- result{out, err}
			}()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				var waiting bool
				if err := raw.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))`, pid).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				if waiting {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the batch never waited for the other transaction")
				}
			}
			end := other.Rollback
			if tc.commit {
				end = other.Commit
			}
			if err := end(); err != nil {
				t.Fatal(err)
			}

			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			var got []string
			for _, a := range r.out {
				got = append(got, fmt.Sprintf("%s%d:%v", a.Message.Room, a.Message.ID, a.Created))
				if want := map[bool]string{true: "mine", false: "theirs"}[a.Created]; a.Message.Text != want {
					t.Errorf("%s %d holds %q, want %q", a.Message.Room, a.Message.ID, a.Message.Text, want)
				}
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("batch = %v, want %s", got, tc.want)
			}
		})
	}
	// The batches' runs that were rolled back took no id.
	for room, want := range map[string]int64{"x": 2, "y": 1} {
		if last, err := db.LastID(ctx, room); err != nil || last != want {
			t.Errorf("LastID(%s) = %d, %v; want %d", room, last, err, want)
		}
	}
}

func TestReopenKeepsDataAndSkipsAppliedMigrations(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		createUser(t, db, "a@example.com")
		db.Close()
		again := open(t)
		if _, err := again.UserByEmail(ctx, "a@example.com"); err != nil {
			t.Errorf("user lost across reopen: %v", err)
		}
		if err := again.Ping(ctx); err != nil {
			t.Error(err)
		}
	})
}

// A server that cannot be reached, or a URL that cannot be parsed, fails the open with an error that does
// not repeat the password of the URL.
func TestOpenPostgresFails(t *testing.T) {
	for name, url := range map[string]string{
		"unreachable": "postgres://causerie:s3cret@127.0.0.1:1/causerie?connect_timeout=5",
		"bad port":    "postgres://causerie:s3cret@127.0.0.1:port/causerie",
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			db, err := store.OpenPostgres(ctx, url, 0)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// Nodes starting together against a new database each try to apply every migration: one must wait for
// the other instead of failing on tables it has just created.
func TestPostgresConcurrentMigrations(t *testing.T) {
	url := storetest.PostgresURL(t)
	ctx := context.Background()
	const nodes = 4
	errs := make(chan error, nodes)
	for range nodes {
		go func() {
			db, err := store.OpenPostgres(ctx, url, 1)
			if err == nil {
				err = db.Close()
			}
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	raw, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var versions []int
	rows, err := raw.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(versions) != "[1 2 3 4 5 6 7 8]" {
		t.Errorf("schema_migrations lists %v, want [1 2 3 4 5 6 7 8]", versions)
	}
}

// Two nodes append batches to overlapping rooms, in every order, at once: no batch fails or deadlocks,
// and every room's ids are 1..N with no gap or duplicate, each holding the message it was returned for.
func TestPostgresNodesAppendConcurrently(t *testing.T) {
	url := storetest.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var nodes [2]*store.DB
	for i := range nodes {
		db, err := store.OpenPostgres(ctx, url, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		nodes[i] = db
	}
	u := createUser(t, nodes[0], "a@example.com")
	rooms := []string{"a", "b", "c", "d"}
	const writersPerNode, batches = 3, 15

	var mu sync.Mutex
	// stored is every message a batch returned as created, by room and id.
	stored := map[string]map[int64]string{}
	var wg sync.WaitGroup
	for n, db := range nodes {
		for w := range writersPerNode {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(n), uint64(w)))
				for b := range batches {
					batch := make([]app.Message, 1+r.IntN(8))
					for i := range batch {
						text := fmt.Sprintf("node %d writer %d batch %d message %d", n, w, b, i)
						batch[i] = app.Message{Room: rooms[r.IntN(len(rooms))], From: app.Author{ID: u.ID, Name: "a"}, Text: text, At: time.Now()}
						if i%3 == 0 {
							// A client id of this writer's, now and then one it sent before: stored once.
							batch[i].ClientID = fmt.Sprintf("%d-%d-%d", n, w, r.IntN(b*8+i+1))
						}
					}
					out, err := db.AppendMessages(ctx, batch)
					if err != nil {
						t.Errorf("node %d writer %d batch %d: %v", n, w, b, err)
						return
					}
					mu.Lock()
					for _, a := range out {
						if !a.Created {
							continue
						}
						m := a.Message
						if stored[m.Room] == nil {
							stored[m.Room] = map[int64]string{}
						}
						if _, dup := stored[m.Room][m.ID]; dup {
							t.Errorf("%s id %d returned twice", m.Room, m.ID)
						}
						stored[m.Room][m.ID] = m.Text
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, room := range rooms {
		msgs, err := nodes[1].Messages(ctx, room, app.MessageQuery{Limit: 10_000})
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			if m.ID != int64(i+1) {
				t.Fatalf("room %s: ids %v, want 1..%d", room, ids(msgs), len(msgs))
			}
			if stored[room][m.ID] != m.Text {
				t.Errorf("room %s id %d holds %q, was returned for %q", room, m.ID, m.Text, stored[room][m.ID])
			}
		}
		if len(msgs) != len(stored[room]) {
			t.Errorf("room %s holds %d messages, batches returned %d as created", room, len(msgs), len(stored[room]))
		}
		if last, err := nodes[0].LastID(ctx, room); err != nil || last != int64(len(msgs)) {
			t.Errorf("LastID(%s) = %d, %v; want %d", room, last, err, len(msgs))
		}
	}
}

func createUser(t testing.TB, db *store.DB, email string) app.User {
	t.Helper()
	u, err := db.CreateUser(context.Background(), app.User{Email: email, Name: email[:1], PasswordHash: "h", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func appendOne(t testing.TB, db *store.DB, m app.Message) (app.Message, bool, error) {
	t.Helper()
	out, err := db.AppendMessages(context.Background(), []app.Message{m})
	if err != nil {
		return app.Message{}, false, err
	}
	return out[0].Message, out[0].Created, nil
}

func ids(msgs []app.Message) []int64 {
	var out []int64
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// BenchmarkAppend stores messages one transaction each, and in batches of 64 and 256 as the hub's
// committer does under load; ns/msg compares them. In the client_ids runs every message has a client id
// of its own, as the page gives it; in the resent runs, the first message of each batch also repeats the
// last one of the batch before, as a page does when an acknowledgement was lost, so that every batch
// looks for earlier messages. Every commit is synced to disk (synchronous=FULL).
func BenchmarkAppend(b *testing.B) {
	benchmarkAppend(b, func(b *testing.B) (*store.DB, error) {
		return store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	})
}

// BenchmarkAppendPostgres is BenchmarkAppend on the PostgreSQL database of TEST_DATABASE_URL; every
// commit waits for its WAL flush as the server is configured to (synchronous_commit).
func BenchmarkAppendPostgres(b *testing.B) {
	benchmarkAppend(b, func(b *testing.B) (*store.DB, error) {
		return store.OpenPostgres(context.Background(), storetest.PostgresURL(b), 0)
	})
}

func benchmarkAppend(b *testing.B, open func(*testing.B) (*store.DB, error)) {
	for _, size := range []int{1, 64, 256} {
		for _, ids := range []string{"", "client_ids", "resent"} {
			name := fmt.Sprintf("batch=%d", size)
			if ids != "" {
				name += "," + ids
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				db, err := open(b)
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				u := createUser(b, db, "a@example.com")
				batch := make([]app.Message, size)
				for i := range batch {
					batch[i] = app.Message{Room: fmt.Sprint("r", i%8), From: app.Author{ID: u.ID, Name: "a"}, Text: "Bonjour à tous", At: time.Now()}
				}
				b.ReportAllocs()
				sent := 0
				for b.Loop() {
					if ids != "" {
						for i := range batch {
							sent++
							batch[i].ClientID = strconv.Itoa(sent)
						}
					}
					if ids == "resent" && sent > size {
						batch[0].ClientID = strconv.Itoa(sent - size)
					}
					if _, err := db.AppendMessages(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/msg")
			})
		}
	}
}
