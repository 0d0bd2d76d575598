package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// OpenSQLite opens (creating if needed) the SQLite database at path and brings its schema up to date.
// A database it creates can be read by its owner only (mode 0600), and so can its -wal and -shm files.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	// SQLite writes its log and shared memory beside the database: a directory it cannot write to would
	// fail later, as "unable to open database file (14)".
	probe, err := os.CreateTemp(dir, ".causerie-write-check-*")
	if err != nil {
		abs, _ := filepath.Abs(dir)
		return nil, fmt.Errorf("store: %s is not writable, and SQLite writes its log beside the database: %w", abs, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	// SQLite would create the file 0644; it creates the -wal and -shm files with the mode of the
	// database file. An existing file keeps the mode its operator gave it.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", path, err)
	}
	// WAL lets readers run beside the writer; synchronous(FULL) makes every commit durable before it
	// returns, which is what lets the hub acknowledge a message once AppendMessages returns.
	q := url.Values{}
	// wal_autocheckpoint(0): the committing connection would otherwise copy the log back into the database,
	// and sync it, in the middle of a commit, every thousand pages; checkpointLoop does it beside the
	// writer instead (commit p99 went from about 100 ms to under 10 ms at 10,000 messages/s).
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(5000)", "foreign_keys(ON)", "wal_autocheckpoint(0)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()

	write, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	read, err := sql.Open("sqlite", dsn)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))

	d, err := open(ctx, write, read, sqliteDialect)
	if err != nil {
		return nil, err
	}
	go d.checkpointLoop()
	return d, nil
}

var sqliteDialect = dialect{
	name:       "sqlite",
	migrations: "migrations/sqlite",
	// BEGIN IMMEDIATE (_txlock) already makes a second process wait for the first one's migrations.
	lockMigrations: "",
	rebind:         keepPlaceholders,
	// The column is COLLATE NOCASE, and so is its unique index.
	emailIs:     "email = ?",
	isUnique:    isSQLiteUnique,
	isNameTaken: isSQLiteNameTaken,
	// SQLite looks each row of VALUES up in the index, statistics or not; a chain of ORs costs more to
	// compile, and is limited to a depth of 1000.
	earlierMessages: batchQuery{
		name: "look up earlier messages",
		head: `SELECT ` + messageColumns + ` FROM messages
			WHERE client_id IS NOT NULL AND (user_id, client_id) IN (VALUES `,
		first: `(?, ?)`,
		row:   `(?, ?)`,
		tail:  `)`,
	},
}

// checkpointInterval is how often the write-ahead log is copied back into the database file.
const checkpointInterval = time.Second

// checkpointLoop checkpoints the log every checkpointInterval until Close. A PASSIVE checkpoint copies
// what no reader still needs and never blocks the writer, so commits do not wait for it.
func (d *DB) checkpointLoop() {
	defer close(d.stopped)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			// A failed checkpoint only leaves the log longer; the next one catches up.
			_, _ = d.read.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

func isSQLiteUnique(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// isSQLiteNameTaken reads the column from the message, "UNIQUE constraint failed: users.name_key": SQLite
// gives no other way to tell which index refused the row.
func isSQLiteNameTaken(err error) bool {
	return isSQLiteUnique(err) && strings.Contains(err.Error(), "users.name_key")
}
