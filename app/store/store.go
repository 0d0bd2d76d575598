// Package store keeps users and messages in SQL. The DB type is the same for every dialect; dialects
// differ only in how they are opened and in query text. Driver errors are turned into *app.Error codes
// here (a unique violation becomes app.CodeConflict), so callers never see a driver type.
//
// What differs between SQLite (OpenSQLite) and PostgreSQL (OpenPostgres):
//
//   - Connections. SQLite has one writer connection, so that writers queue in Go rather than in SQLite's
//     busy handler, beside a pool of readers over the write-ahead log, and a loop that checkpoints that
//     log. PostgreSQL has one pool of maxConns connections for both, and no background work.
//   - Query text. Queries are written once with ? placeholders; PostgreSQL's are rewritten to $1, $2, ...
//     once, at open. A user is found by e-mail through lower(email) on PostgreSQL, whose unique index is
//     on that expression, and through the COLLATE NOCASE column on SQLite.
//   - Migrations. Both apply the same versions, from migrations/sqlite and migrations/postgres, in one
//     transaction at open. Several processes may open the same database at once: on PostgreSQL the
//     transaction first takes an advisory lock, on SQLite it begins IMMEDIATE, so each version is
//     applied once.
//   - Message ids. Both take a room's next id from its row in rooms, locked for the whole batch, so a
//     committed id N means every id below N of that room is committed. Several nodes write to one
//     PostgreSQL database at once: a batch locks its rooms in name order at its start, so two batches
//     wait for each other instead of deadlocking. On SQLite the single writer already serialises them.
//   - Unique violations. SQLITE_CONSTRAINT_UNIQUE and PostgreSQL's 23505 both become app.CodeConflict.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/causerie/causerie/app"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// dialect is what differs between databases once they are open.
type dialect struct {
	name string
	// migrations is the directory of the embedded migrations written for this database. Every dialect
	// has the same versions.
	migrations string
	// lockMigrations, when set, is run first in the migration transaction and holds until its end, so
	// that processes starting together apply each migration once.
	lockMigrations string
	// rebind turns the ? placeholders of a query into the database's own.
	rebind func(string) string
	// emailIs is the condition that finds a user by the lower-case e-mail given as its argument, written
	// so that it uses the unique index of users.
	emailIs string
	// isUnique reports whether a driver error is a unique-constraint violation.
	isUnique func(error) bool
}

// queries is every statement of the store in one dialect's text, rebound once at open.
type queries struct {
	createUser, userByEmail, userByID      string
	messagesOldest, messagesNewest, lastID string
	rooms                                  string
	// Used by AppendMessages, prepared once at open.
	lockRoom, insertMessage, earlierMessage, setLastID string
}

func newQueries(dl dialect) queries {
	const selectUser = `SELECT id, email, name, password_hash, created_at FROM users WHERE `
	// Bounds left out by a MessageQuery are given as 0 and MaxInt64, so that one text serves every
	// query: no text is built, or rebound, per call.
	const selectMessages = `SELECT ` + messageColumns + ` FROM messages WHERE room = ? AND id > ? AND id < ? ORDER BY id `
	r := dl.rebind
	return queries{
		createUser:     r(`INSERT INTO users (email, name, password_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id`),
		userByEmail:    r(selectUser + dl.emailIs),
		userByID:       r(selectUser + `id = ?`),
		messagesOldest: r(selectMessages + `ASC LIMIT ?`),
		messagesNewest: r(selectMessages + `DESC LIMIT ?`),
		lastID:         r(`SELECT last_id FROM rooms WHERE name = ?`),
		// A room's row may exist without messages: a batch creates the rows of its rooms before it knows
		// whether each message is new.
		rooms: r(`SELECT name FROM rooms WHERE last_id > 0 ORDER BY name`),
		// The no-op update is what locks an existing row on PostgreSQL (DO NOTHING would not): one
		// statement creates, locks and reads a room's counter.
		lockRoom: r(`INSERT INTO rooms (name, last_id) VALUES (?, 0)
			ON CONFLICT (name) DO UPDATE SET last_id = rooms.last_id RETURNING last_id`),
		// A client id its author already used inserts nothing, and takes no id, even when the earlier
		// message was committed by another node while this insert waited for it.
		insertMessage: r(`INSERT INTO messages (room, id, user_id, user_name, text, client_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id, client_id) WHERE client_id IS NOT NULL DO NOTHING`),
		earlierMessage: r(`SELECT ` + messageColumns + ` FROM messages WHERE user_id = ? AND client_id = ?`),
		setLastID:      r(`UPDATE rooms SET last_id = ? WHERE name = ?`),
	}
}

// keepPlaceholders is the rebind of databases that take ? placeholders.
func keepPlaceholders(query string) string { return query }

// DB is the store. It is safe for concurrent use.
type DB struct {
	// write serves every transaction that changes something; read serves every query that changes
	// nothing. They are the same pool on PostgreSQL.
	write, read *sql.DB
	dialect     dialect
	q           queries
	// The statements of AppendMessages, prepared on write once rather than in every transaction.
	lockRoom, insertMessage, earlierMessage, setLastID *sql.Stmt
	// stop ends the background work of the dialect (SQLite's checkpoints); stopped is closed when it has.
	stop, stopped chan struct{}
	closeOnce     sync.Once
}

// open brings the schema of a newly opened database up to date and prepares the statements. On error it
// closes write and read. The caller starts any background work, or closes stopped.
func open(ctx context.Context, write, read *sql.DB, dl dialect) (*DB, error) {
	d := &DB{write: write, read: read, dialect: dl, q: newQueries(dl), stop: make(chan struct{}), stopped: make(chan struct{})}
	fail := func(err error) (*DB, error) {
		close(d.stopped)
		d.Close()
		return nil, err
	}
	if err := d.migrate(ctx); err != nil {
		return fail(err)
	}
	for _, p := range []struct {
		name  string
		stmt  **sql.Stmt
		query string
	}{
		{"lock room", &d.lockRoom, d.q.lockRoom},
		{"insert message", &d.insertMessage, d.q.insertMessage},
		{"earlier message", &d.earlierMessage, d.q.earlierMessage},
		{"set last id", &d.setLastID, d.q.setLastID},
	} {
		s, err := write.PrepareContext(ctx, p.query)
		if err != nil {
			return fail(fmt.Errorf("store: prepare %s: %w", p.name, err))
		}
		*p.stmt = s
	}
	return d, nil
}

// Close stops the background work and closes the database. Later calls do nothing.
func (d *DB) Close() error {
	var err error
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.stopped
		var errs []error
		for _, s := range []*sql.Stmt{d.lockRoom, d.insertMessage, d.earlierMessage, d.setLastID} {
			if s != nil {
				errs = append(errs, s.Close())
			}
		}
		errs = append(errs, d.write.Close())
		if d.read != d.write {
			errs = append(errs, d.read.Close())
		}
		err = errors.Join(errs...)
	})
	return err
}

// Ping reports whether the database answers.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.read.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// migration is one embedded schema change.
type migration struct {
	version int
	file    string // path in the migrations FS
}

// migrationsOf lists the migrations in dir by version. A file is named by its version, an underscore
// and a description: 0002_rooms.sql.
func migrationsOf(dir string) ([]migration, error) {
	files, err := fs.Glob(migrations, dir+"/*.sql")
	if err != nil {
		return nil, fmt.Errorf("store: list migrations: %w", err)
	}
	var ms []migration
	for _, f := range files {
		prefix, _, _ := strings.Cut(path.Base(f), "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %s: name must start with a positive number and _", f)
		}
		ms = append(ms, migration{version: v, file: f})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("store: migrations %s and %s have the same version", ms[i-1].file, ms[i].file)
		}
	}
	return ms, nil
}

// migrate applies, in order, every migration of the dialect that schema_migrations does not list. They
// are applied in one transaction: a failure leaves the schema as it was.
func (d *DB) migrate(ctx context.Context) error {
	ms, err := migrationsOf(d.dialect.migrations)
	if err != nil {
		return err
	}
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin migrations: %w", err)
	}
	defer tx.Rollback()
	if d.dialect.lockMigrations != "" {
		if _, err := tx.ExecContext(ctx, d.dialect.lockMigrations); err != nil {
			return fmt.Errorf("store: lock migrations: %w", err)
		}
	}
	// BIGINT is SQLite's INTEGER too; databases made before PostgreSQL support have the same table
	// with applied_at INTEGER.
	if _, err := tx.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, tx)
	if err != nil {
		return err
	}
	record := d.dialect.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`)
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		body, err := migrations.ReadFile(m.file)
		if err != nil {
			return fmt.Errorf("store: read migration %s: %w", m.file, err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("store: apply migration %s: %w", m.file, err)
		}
		if _, err := tx.ExecContext(ctx, record, m.version, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("store: record migration %d: %w", m.version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit migrations: %w", err)
	}
	return nil
}

func appliedVersions(ctx context.Context, tx *sql.Tx) (map[int]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("store: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	return applied, nil
}

// CreateUser stores u (whose Email must already be in lower case) and returns it with its ID.
// A taken e-mail is an app.CodeConflict error.
func (d *DB) CreateUser(ctx context.Context, u app.User) (app.User, error) {
	err := d.write.QueryRowContext(ctx, d.q.createUser, u.Email, u.Name, u.PasswordHash, u.CreatedAt.UnixMilli()).Scan(&u.ID)
	if d.dialect.isUnique(err) {
		return app.User{}, app.Errorf(app.CodeConflict, "e-mail already registered")
	}
	if err != nil {
		return app.User{}, fmt.Errorf("store: create user: %w", err)
	}
	return u, nil
}

// UserByEmail returns the user with that e-mail (any case), or an app.CodeNotFound error.
func (d *DB) UserByEmail(ctx context.Context, email string) (app.User, error) {
	return d.user(ctx, d.q.userByEmail, strings.ToLower(email))
}

// UserByID returns the user with that id, or an app.CodeNotFound error.
func (d *DB) UserByID(ctx context.Context, id int64) (app.User, error) {
	return d.user(ctx, d.q.userByID, id)
}

func (d *DB) user(ctx context.Context, query string, arg any) (app.User, error) {
	var u app.User
	var created int64
	err := d.read.QueryRowContext(ctx, query, arg).Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return app.User{}, app.Errorf(app.CodeNotFound, "no such user")
	}
	if err != nil {
		return app.User{}, fmt.Errorf("store: get user: %w", err)
	}
	u.CreatedAt = time.UnixMilli(created).UTC()
	return u, nil
}

// counter is a room's message counter as an AppendMessages transaction sees it.
type counter struct {
	room        string
	start, last int64
}

// AppendMessages stores msgs, in order, each as the next message of its room, in one transaction: one
// commit, so one disk sync, for the whole batch. It returns only once they are durable, so a caller may
// acknowledge them. Either every message is stored or none is. A message whose ClientID its author
// already used, even earlier in msgs, is not stored: its Appended holds the earlier message.
//
// The rows of the batch's rooms stay locked until the commit, so batches sharing a room run one after
// the other, on every node.
func (d *DB) AppendMessages(ctx context.Context, msgs []app.Message) ([]app.Appended, error) {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin append: %w", err)
	}
	defer tx.Rollback()

	// Name order: two batches locking the same rooms take them in the same order, so neither holds a
	// room the other waits for while it waits for one the other holds.
	names := make([]string, len(msgs))
	for i, m := range msgs {
		names[i] = m.Room
	}
	slices.Sort(names)
	names = slices.Compact(names)
	counters := make([]counter, len(names))
	lock := tx.StmtContext(ctx, d.lockRoom)
	for i, name := range names {
		var last int64
		if err := lock.QueryRowContext(ctx, name).Scan(&last); err != nil {
			return nil, fmt.Errorf("store: lock room %s: %w", name, err)
		}
		counters[i] = counter{room: name, start: last, last: last}
	}

	insert := tx.StmtContext(ctx, d.insertMessage)
	earlier := tx.StmtContext(ctx, d.earlierMessage)
	out := make([]app.Appended, len(msgs))
	for i, m := range msgs {
		j, _ := slices.BinarySearch(names, m.Room)
		c := &counters[j]
		m.ID = c.last + 1
		var clientID sql.NullString
		if m.ClientID != "" {
			clientID = sql.NullString{String: m.ClientID, Valid: true}
		}
		res, err := insert.ExecContext(ctx, m.Room, m.ID, m.From.ID, m.From.Name, m.Text, clientID, m.At.UnixMilli())
		if err != nil {
			return nil, fmt.Errorf("store: append message to %s: %w", m.Room, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("store: append message to %s: %w", m.Room, err)
		}
		if n == 0 {
			prev, err := scanMessages(earlier.QueryContext(ctx, m.From.ID, m.ClientID))
			if err != nil {
				return nil, err
			}
			if len(prev) == 0 {
				return nil, fmt.Errorf("store: append message to %s: client id %q refused but not found", m.Room, m.ClientID)
			}
			out[i] = app.Appended{Message: prev[0]}
			continue
		}
		// Only a stored message takes its id, so a room's ids have no gap.
		c.last = m.ID
		out[i] = app.Appended{Message: m, Created: true}
	}

	set := tx.StmtContext(ctx, d.setLastID)
	for _, c := range counters {
		if c.last == c.start {
			continue
		}
		if _, err := set.ExecContext(ctx, c.last, c.room); err != nil {
			return nil, fmt.Errorf("store: count messages of %s: %w", c.room, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: commit %d messages: %w", len(msgs), err)
	}
	return out, nil
}

// Messages returns the messages of room that q selects, oldest first.
func (d *DB) Messages(ctx context.Context, room string, q app.MessageQuery) ([]app.Message, error) {
	before := q.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	query := d.q.messagesOldest
	if q.Latest {
		query = d.q.messagesNewest
	}
	msgs, err := scanMessages(d.read.QueryContext(ctx, query, room, q.After, before, q.Limit))
	if err != nil {
		return nil, err
	}
	if q.Latest {
		slices.Reverse(msgs)
	}
	return msgs, nil
}

// LastID returns the id of the newest message stored in room, or 0 when it has none.
func (d *DB) LastID(ctx context.Context, room string) (int64, error) {
	var last int64
	err := d.read.QueryRowContext(ctx, d.q.lastID, room).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: last id of %s: %w", room, err)
	}
	return last, nil
}

// Rooms returns the names of the rooms that have messages, in order.
func (d *DB) Rooms(ctx context.Context) ([]string, error) {
	rows, err := d.read.QueryContext(ctx, d.q.rooms)
	if err != nil {
		return nil, fmt.Errorf("store: list rooms: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: list rooms: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list rooms: %w", err)
	}
	return names, nil
}

const messageColumns = `room, id, user_id, user_name, text, COALESCE(client_id, ''), created_at`

func scanMessages(rows *sql.Rows, err error) ([]app.Message, error) {
	if err != nil {
		return nil, fmt.Errorf("store: query messages: %w", err)
	}
	defer rows.Close()
	var msgs []app.Message
	for rows.Next() {
		var m app.Message
		var at int64
		if err := rows.Scan(&m.Room, &m.ID, &m.From.ID, &m.From.Name, &m.Text, &m.ClientID, &at); err != nil {
			return nil, fmt.Errorf("store: scan message: %w", err)
		}
		m.At = time.UnixMilli(at).UTC()
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read messages: %w", err)
	}
	return msgs, nil
}
