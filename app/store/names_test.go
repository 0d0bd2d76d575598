package store_test

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/store"
)

// A name is taken by its key: case, width and Unicode normalization aside. A taken e-mail is reported
// as such, whatever the name.
func TestNameTaken(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		if _, err := db.CreateUser(ctx, app.User{Email: "alice@example.com", Name: "Alice", PasswordHash: "h", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name, email, userName, code string
		}{
			{"same name", "a1@example.com", "Alice", app.CodeNameTaken},
			{"lower case", "a2@example.com", "alice", app.CodeNameTaken},
			{"upper case", "a3@example.com", "ALICE", app.CodeNameTaken},
			{"full width", "a4@example.com", "ａｌｉｃｅ", app.CodeNameTaken},
			{"e-mail and name taken", "alice@example.com", "alice", app.CodeConflict},
			{"e-mail taken, name free", "ALICE@example.com", "Alicia", app.CodeConflict},
			{"another name", "bob@example.com", "Bob", ""},
			{"name the profile refuses", "eve@example.com", "eve\u202e", app.CodeInvalid},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, err := db.CreateUser(ctx, app.User{Email: tc.email, Name: tc.userName, PasswordHash: "h", CreatedAt: time.Now()})
				if tc.code == "" {
					if err != nil {
						t.Fatalf("CreateUser(%q): %v", tc.userName, err)
					}
					return
				}
				if got := app.ErrorCode(err); got != tc.code {
					t.Errorf("CreateUser(%s, %q): err = %v, want %s", tc.email, tc.userName, err, tc.code)
				}
			})
		}
	})
}

// A database of version 2 may hold names that are the same under the PRECIS profile, and names the
// profile refuses: migrating it does not fail, the first user of a name gets its key, the others none,
// and a new user cannot take a key that is held.
func TestNameKeysOfEarlierUsers(t *testing.T) {
	for _, dl := range dialects {
		t.Run(dl.name, func(t *testing.T) {
			ctx := context.Background()
			addr := dl.database(t)
			reopen := func() *store.DB {
				t.Helper()
				db, err := dl.open(ctx, addr)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
			reopen().Close()

			driver := map[string]string{"sqlite": "sqlite", "postgres": "pgx"}[dl.name]
			raw, err := sql.Open(driver, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			// Back to version 2, then the users an earlier server let in.
			for _, stmt := range []string{
				`DROP INDEX users_name_key`,
				`ALTER TABLE users DROP COLUMN name_key`,
				`DELETE FROM schema_migrations WHERE version = 3`,
			} {
				if _, err := raw.ExecContext(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			earlier := []struct {
				name string
				key  sql.NullString
			}{
				{"bob", sql.NullString{String: "bob", Valid: true}},
				{"Bob", sql.NullString{}},
				{"Ada Lovelace", sql.NullString{String: "ada lovelace", Valid: true}},
				{"ADA  LOVELACE", sql.NullString{}},
				{"eve\u202e", sql.NullString{}},
				{"E\u0301lodie", sql.NullString{String: "élodie", Valid: true}},
				{"élodie", sql.NullString{}},
				{"\u0430lice", sql.NullString{String: "\u0430lice", Valid: true}}, // mixed, but PRECIS takes it
			}
			insert := `INSERT INTO users (email, name, password_hash, created_at) VALUES (?, ?, 'h', 0)`
			if dl.name == "postgres" {
				insert = strings.NewReplacer("?, ?", "$1, $2").Replace(insert)
			}
			for i, u := range earlier {
				if _, err := raw.ExecContext(ctx, insert, "u"+string(rune('a'+i))+"@example.com", u.name); err != nil {
					t.Fatal(err)
				}
			}

			db := reopen()
			rows, err := raw.QueryContext(ctx, `SELECT name, name_key FROM users ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for i := 0; rows.Next(); i++ {
				var name string
				var key sql.NullString
				if err := rows.Scan(&name, &key); err != nil {
					t.Fatal(err)
				}
				if want := earlier[i]; name != want.name || key != want.key {
					t.Errorf("user %d: name %q key %+v, want name %q key %+v", i+1, name, key, want.name, want.key)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}

			for name, code := range map[string]string{"BOB": app.CodeNameTaken, "Élodie": app.CodeNameTaken, "Zoé": ""} {
				_, err := db.CreateUser(ctx, app.User{Email: "new-" + name + "@example.com", Name: name, PasswordHash: "h", CreatedAt: time.Now()})
				if got := app.ErrorCode(err); err != nil && got != code || err == nil && code != "" {
					t.Errorf("CreateUser(%q): err = %v, want %q", name, err, code)
				}
			}
			db.Close()
			reopen() // the users without a key are looked at again, and still fail nothing
		})
	}
}

// The database holds password hashes: a new one is readable by its owner only, and so are the files of
// its write-ahead log. An existing file keeps the mode its operator chose.
func TestSQLiteFilesArePrivate(t *testing.T) {
	ctx := context.Background()
	t.Run("new", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "causerie.db")
		db, err := store.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		u := createUser(t, db, "a@example.com")
		if _, err := db.AppendMessages(ctx, []app.Message{{Room: "general", From: app.Author{ID: u.ID, Name: "a"}, Text: "hi", At: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			assertMode(t, f, 0o600)
		}
	})
	t.Run("existing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "causerie.db")
		if err := os.WriteFile(path, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o640); err != nil { // whatever the umask
			t.Fatal(err)
		}
		db, err := store.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		assertMode(t, path, 0o640)
	})
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", filepath.Base(path), got, want)
	}
}
