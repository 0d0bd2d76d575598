// Package store keeps users, their sessions and messages in SQL. The DB type is the same for every dialect; dialects
// differ only in how they are opened and in query text. Driver errors are turned into *app.Error codes
// here (a unique violation becomes app.CodeConflict), so callers never see a driver type.
//
// What differs between SQLite (OpenSQLite) and PostgreSQL (OpenPostgres):
//
//   - Connections. SQLite has one writer connection, so that writers queue in Go rather than in SQLite's
//     busy handler, beside a pool of readers over the write-ahead log, and a loop that checkpoints that
//     log. PostgreSQL has one pool of maxConns connections for both, and no background work.
//   - Query text. Queries are written once with ? placeholders; PostgreSQL's are rewritten to $1, $2, ...
//     once, at open, except those of AppendMessages, which have a row of values per message or room and
//     are made for each batch (those of up to preparedRows rows are prepared at open). A user is found
//     by e-mail through lower(email) on PostgreSQL, whose unique index is on that expression, and
//     through the COLLATE NOCASE column on SQLite.
//   - Migrations. Both apply the same versions, from migrations/sqlite and migrations/postgres, in one
//     transaction at open. Several processes may open the same database at once: on PostgreSQL the
//     transaction first takes an advisory lock, on SQLite it begins IMMEDIATE, so each version is
//     applied once.
//   - Message ids. Both take a room's next ids from its row in rooms, locked for the whole batch, so a
//     committed id N means every id below N of that room is committed. A batch of any length is two
//     statements (of up to batchRows rows each): one locks its rooms and moves their counters past its
//     new messages, one inserts them. If a message's client id turns out to be taken, the batch is rolled
//     back and run again, first reading the messages its client ids name: through IN (VALUES ...) on
//     SQLite, a LATERAL probe per pair on PostgreSQL. Several nodes write to one PostgreSQL database at
//     once: a batch locks its rooms in name order before it writes anything, so two batches wait for each
//     other instead of deadlocking. On SQLite the single writer already serialises them.
//   - Unique violations. SQLITE_CONSTRAINT_UNIQUE and PostgreSQL's 23505 both become app.CodeConflict,
//     or app.CodeNameTaken on users.name_key: SQLite names the column in its message, PostgreSQL the
//     index in the error's ConstraintName.
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
	// isNameTaken reports whether a driver error is a violation of the unique index on users.name_key.
	isNameTaken func(error) bool
	// earlierMessages finds the stored messages of a list of (user_id, client_id) pairs through the
	// unique index of messages, one probe a pair.
	earlierMessages batchQuery
}

// queries is every statement of the store in one dialect's text, rebound once at open.
type queries struct {
	createUser, userByEmail, userByID      string
	userByNameKey                          string
	messagesOldest, messagesNewest, lastID string
	logOldest, logNewest                   string
	usersWithoutNameKey, setNameKey        string
	createSession, dropExpiredSessions     string
	session, rotateSession                 string
	deleteSession, deleteSessions          string
}

func newQueries(dl dialect) queries {
	const selectUser = `SELECT id, email, name, password_hash, created_at FROM users WHERE `
	// Bounds left out by a MessageQuery are given as 0 and MaxInt64, so that one text serves every
	// query: no text is built, or rebound, per call.
	const selectLog = `SELECT ` + messageColumns + ` FROM messages WHERE room = ? AND id > ? AND id < ? `
	const selectMessages = selectLog + `AND (kind IS NULL OR kind NOT IN ('edit', 'delete', 'react', 'unreact')) ORDER BY id `
	r := dl.rebind
	return queries{
		createUser:     r(`INSERT INTO users (email, name, name_key, password_hash, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`),
		userByEmail:    r(selectUser + dl.emailIs),
		userByID:       r(selectUser + `id = ?`),
		userByNameKey:  r(selectUser + `name_key = ?`),
		messagesOldest: r(selectMessages + `ASC LIMIT ?`),
		messagesNewest: r(selectMessages + `DESC LIMIT ?`),
		logOldest:      r(selectLog + `ORDER BY id ASC LIMIT ?`),
		logNewest:      r(selectLog + `ORDER BY id DESC LIMIT ?`),
		lastID:         r(`SELECT last_id FROM rooms WHERE name = ?`),
		// A key goes to the first user to have it: a later user whose name has the same key keeps none.
		usersWithoutNameKey: r(`SELECT id, name FROM users WHERE name_key IS NULL ORDER BY id`),
		setNameKey: r(`UPDATE users SET name_key = ? WHERE id = ? AND name_key IS NULL
			AND NOT EXISTS (SELECT 1 FROM users AS other WHERE other.name_key = ?)`),
		createSession: r(`INSERT INTO sessions (id, user_id, generation, previous_until, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`),
		dropExpiredSessions: r(`DELETE FROM sessions WHERE expires_at <= ?`),
		session: r(`SELECT s.user_id, s.generation, s.previous_until, s.created_at, s.expires_at, u.name
			FROM sessions AS s JOIN users AS u ON u.id = s.user_id WHERE s.id = ?`),
		rotateSession:  r(`UPDATE sessions SET generation = generation + 1, previous_until = ? WHERE id = ? AND generation = ?`),
		deleteSession:  r(`DELETE FROM sessions WHERE id = ?`),
		deleteSessions: r(`DELETE FROM sessions WHERE user_id = ? RETURNING id`),
	}
}

// batchQuery is a statement of AppendMessages with one row of values per room or message: its text is
// made for each batch, as long as the batch.
type batchQuery struct {
	name                   string // for errors
	head, first, row, tail string
}

// The statements of AppendMessages that are the same on every dialect, in the order a batch runs them.
var (
	// One statement creates a batch's rooms, locks their rows and moves their counters past the batch's
	// new messages. PostgreSQL inserts the rows of VALUES in their order, so it locks the rooms in the
	// order given.
	claimIDs = batchQuery{
		name:  "claim ids",
		head:  `INSERT INTO rooms (name, last_id) VALUES `,
		first: `(?, ?)`,
		row:   `(?, ?)`,
		tail:  ` ON CONFLICT (name) DO UPDATE SET last_id = rooms.last_id + excluded.last_id RETURNING name, last_id`,
	}
	// A message whose client id is taken inserts nothing rather than failing the statement, and the
	// batch is run again (see AppendMessages). On PostgreSQL the insert first waits for a transaction of
	// another node that took it, so the next run finds its message.
	insertMessages = batchQuery{
		name:  "insert messages",
		head:  `INSERT INTO messages (room, id, user_id, user_name, text, client_id, created_at, kind, subject_id, subject_name, target_id) VALUES `,
		first: `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		row:   `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tail:  ` ON CONFLICT (user_id, client_id) WHERE client_id IS NOT NULL DO NOTHING`,
	}
)

// batchRows is the most rows of values one statement of AppendMessages carries; a longer batch takes
// several. It keeps a statement's parameters (11 a row) well under SQLite's limit of 32766 (PostgreSQL's
// is 65535).
const batchRows = 1000

// preparedRows is the most rows of values of the statements of AppendMessages prepared at open. A quiet
// server's batches are that short, and SQLite takes about as long to compile one of their statements as
// to run it (90 µs for the claim of one room); it compiles longer ones for each batch. PostgreSQL needs
// none: pgx prepares each new text once per connection and keeps it (512 texts by default), so that a
// length seen before costs one round trip a statement.
const preparedRows = 8

// text returns q for n rows in the dialect's placeholders.
func (q batchQuery) text(dl dialect, n int) string {
	var b strings.Builder
	b.Grow(len(q.head) + len(q.first) + (n-1)*(len(q.row)+2) + len(q.tail))
	b.WriteString(q.head)
	b.WriteString(q.first)
	for range n - 1 {
		b.WriteString(", ")
		b.WriteString(q.row)
	}
	b.WriteString(q.tail)
	return dl.rebind(b.String())
}

// query runs q for n rows with args in tx.
func (d *DB) query(ctx context.Context, tx *sql.Tx, q batchQuery, n int, args []any) (*sql.Rows, error) {
	text := q.text(d.dialect, n)
	if s, ok := d.prepared[text]; ok {
		return tx.StmtContext(ctx, s).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, text, args...)
}

// exec runs q for n rows with args in tx.
func (d *DB) exec(ctx context.Context, tx *sql.Tx, q batchQuery, n int, args []any) (sql.Result, error) {
	text := q.text(d.dialect, n)
	if s, ok := d.prepared[text]; ok {
		return tx.StmtContext(ctx, s).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, text, args...)
}

// inChunks calls f with the successive ranges [i, j) of n rows, none longer than batchRows, until f
// fails.
func inChunks(n int, f func(i, j int) error) error {
	for i := 0; i < n; i += batchRows {
		if err := f(i, min(i+batchRows, n)); err != nil {
			return err
		}
	}
	return nil
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
	rq          roomQueries
	cq          changeQueries
	// prepared holds, by text, the statements of AppendMessages of up to preparedRows rows, prepared on
	// write at open and closed by Close. It is not changed after open.
	prepared map[string]*sql.Stmt
	// stop ends the background work of the dialect (SQLite's checkpoints); stopped is closed when it has.
	stop, stopped chan struct{}
	closeOnce     sync.Once
}

// open brings the schema of a newly opened database up to date. On error it closes write and read. The
// caller starts any background work, or closes stopped.
func open(ctx context.Context, write, read *sql.DB, dl dialect) (*DB, error) {
	d := &DB{write: write, read: read, dialect: dl, q: newQueries(dl), rq: newRoomQueries(dl.rebind), cq: newChangeQueries(dl.rebind), prepared: map[string]*sql.Stmt{},
		stop: make(chan struct{}), stopped: make(chan struct{})}
	fail := func(err error) (*DB, error) {
		close(d.stopped)
		d.Close()
		return nil, err
	}
	if err := d.migrate(ctx); err != nil {
		return fail(err)
	}
	if err := d.backfillNameKeys(ctx); err != nil {
		return fail(err)
	}
	for _, q := range []batchQuery{dl.earlierMessages, claimIDs, insertMessages} {
		for n := 1; n <= preparedRows; n++ {
			text := q.text(dl, n)
			s, err := write.PrepareContext(ctx, text)
			if err != nil {
				return fail(fmt.Errorf("store: prepare %s for %d rows: %w", q.name, n, err))
			}
			d.prepared[text] = s
		}
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
		for _, s := range d.prepared {
			errs = append(errs, s.Close())
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

// CreateUser stores u (whose Email must already be in lower case, and whose Name app.NormalizeName
// accepts) with the key of its name, and returns it with its ID. A taken e-mail is an app.CodeConflict
// error; a name whose key another user has (app.NameKey), and an e-mail that is free, an
// app.CodeNameTaken error.
func (d *DB) CreateUser(ctx context.Context, u app.User) (app.User, error) {
	key, err := app.NameKey(u.Name)
	if err != nil {
		return app.User{}, app.Errorf(app.CodeInvalid, "name %q is not allowed", u.Name)
	}
	err = d.write.QueryRowContext(ctx, d.q.createUser, u.Email, u.Name, key, u.PasswordHash, u.CreatedAt.UnixMilli()).Scan(&u.ID)
	if d.dialect.isNameTaken(err) {
		// Which index a database reports first is its own affair: a taken e-mail is what the caller
		// hears about, whatever the name.
		if _, byEmail := d.UserByEmail(ctx, u.Email); app.ErrorCode(byEmail) == app.CodeNotFound {
			return app.User{}, app.Errorf(app.CodeNameTaken, "name %q is already taken", u.Name)
		}
	}
	if d.dialect.isUnique(err) {
		return app.User{}, app.Errorf(app.CodeConflict, "e-mail already registered")
	}
	if err != nil {
		return app.User{}, fmt.Errorf("store: create user: %w", err)
	}
	return u, nil
}

// maxBackfillAttempts is how many times backfillNameKeys runs: a node may register a user with a key
// while another fills keys in, and the second run then finds that user's key taken.
const maxBackfillAttempts = 3

// backfillNameKeys gives each user without a name key the key of their name (app.NameKey), in the order
// they registered, unless another user has it. Users registered before keys existed have none, and so
// do those registered meanwhile by a node of an earlier version. A user whose name the PRECIS profile
// refuses, or whose key another user already has, keeps none: the name was accepted once and stays as it
// is, so that no database fails to open over it, but only the user who holds a key keeps others from
// taking it. It runs at every open; once every user who can have a key has it, it changes nothing.
func (d *DB) backfillNameKeys(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := d.backfillNameKeysOnce(ctx)
		if !d.dialect.isNameTaken(err) || attempt == maxBackfillAttempts {
			return err
		}
	}
}

func (d *DB) backfillNameKeysOnce(ctx context.Context) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin name keys: %w", err)
	}
	defer tx.Rollback()
	// The lock of the migrations: nodes starting together fill keys in one after the other.
	if d.dialect.lockMigrations != "" {
		if _, err := tx.ExecContext(ctx, d.dialect.lockMigrations); err != nil {
			return fmt.Errorf("store: lock name keys: %w", err)
		}
	}
	type named struct {
		id   int64
		name string
	}
	var users []named
	rows, err := tx.QueryContext(ctx, d.q.usersWithoutNameKey)
	if err != nil {
		return fmt.Errorf("store: users without name keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u named
		if err := rows.Scan(&u.id, &u.name); err != nil {
			return fmt.Errorf("store: users without name keys: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: users without name keys: %w", err)
	}
	rows.Close() // before the updates: a PostgreSQL connection runs one statement at a time
	for _, u := range users {
		key, err := app.NameKey(u.name)
		if err != nil {
			continue
		}
		if _, err := tx.ExecContext(ctx, d.q.setNameKey, key, u.id, key); err != nil {
			return fmt.Errorf("store: set the name key of user %d: %w", u.id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit name keys: %w", err)
	}
	return nil
}

// UserByEmail returns the user with that e-mail (any case), or an app.CodeNotFound error.
func (d *DB) UserByEmail(ctx context.Context, email string) (app.User, error) {
	return d.user(ctx, d.q.userByEmail, strings.ToLower(email))
}

// UserByID returns the user with that id, or an app.CodeNotFound error.
func (d *DB) UserByID(ctx context.Context, id int64) (app.User, error) {
	return d.user(ctx, d.q.userByID, id)
}

// UserByName returns the user whose name is name, compared as app.NameKey compares names, or an
// app.CodeNotFound error.
func (d *DB) UserByName(ctx context.Context, name string) (app.User, error) {
	key, err := app.NameKey(name)
	if err != nil {
		return app.User{}, app.Errorf(app.CodeNotFound, "no such user")
	}
	return d.user(ctx, d.q.userByNameKey, key)
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

// CreateSession stores s, and forgets the sessions that have expired, of every user: they would only
// accumulate, one a login, and logins come about as often as sessions expire.
func (d *DB) CreateSession(ctx context.Context, s app.Session) error {
	if _, err := d.write.ExecContext(ctx, d.q.dropExpiredSessions, s.CreatedAt.UnixMilli()); err != nil {
		return fmt.Errorf("store: drop expired sessions: %w", err)
	}
	_, err := d.write.ExecContext(ctx, d.q.createSession, s.ID, s.UserID, s.Generation,
		s.PreviousUntil.UnixMilli(), s.CreatedAt.UnixMilli(), s.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	return nil
}

// Session returns the session with that id, with its user's name, or an app.CodeNotFound error when
// there is none (it ended, or never was).
func (d *DB) Session(ctx context.Context, id string) (app.Session, error) {
	s := app.Session{ID: id}
	var previous, created, expires int64
	err := d.read.QueryRowContext(ctx, d.q.session, id).Scan(&s.UserID, &s.Generation, &previous, &created, &expires, &s.UserName)
	if errors.Is(err, sql.ErrNoRows) {
		return app.Session{}, app.Errorf(app.CodeNotFound, "no such session")
	}
	if err != nil {
		return app.Session{}, fmt.Errorf("store: get session: %w", err)
	}
	s.PreviousUntil = time.UnixMilli(previous).UTC()
	s.CreatedAt = time.UnixMilli(created).UTC()
	s.ExpiresAt = time.UnixMilli(expires).UTC()
	return s, nil
}

// RotateSession moves session id from generation from to the next, whose previous generation stays valid
// until previousUntil. It reports false, and changes nothing, when the session is gone or is no longer
// at generation from (another refresh came first).
func (d *DB) RotateSession(ctx context.Context, id string, from int64, previousUntil time.Time) (bool, error) {
	res, err := d.write.ExecContext(ctx, d.q.rotateSession, previousUntil.UnixMilli(), id, from)
	if err != nil {
		return false, fmt.Errorf("store: rotate session: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: rotate session: %w", err)
	}
	return n == 1, nil
}

// DeleteSession ends session id; ending one that is gone is no error.
func (d *DB) DeleteSession(ctx context.Context, id string) error {
	if _, err := d.write.ExecContext(ctx, d.q.deleteSession, id); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// DeleteSessions ends every session of user userID and returns their ids.
func (d *DB) DeleteSessions(ctx context.Context, userID int64) ([]string, error) {
	ids, err := scanStrings(d.write.QueryContext(ctx, d.q.deleteSessions, userID))
	if err != nil {
		return nil, fmt.Errorf("store: delete sessions: %w", err)
	}
	return ids, nil
}

// LiveSessions returns those of ids whose session exists and has not expired at now.
func (d *DB) LiveSessions(ctx context.Context, ids []string, now time.Time) (map[string]bool, error) {
	live := make(map[string]bool, len(ids))
	err := inChunks(len(ids), func(i, j int) error {
		args := make([]any, 0, 1+j-i)
		args = append(args, now.UnixMilli())
		for _, id := range ids[i:j] {
			args = append(args, id)
		}
		found, err := scanStrings(d.read.QueryContext(ctx, liveSessions.text(d.dialect, j-i), args...))
		if err != nil {
			return fmt.Errorf("store: %s: %w", liveSessions.name, err)
		}
		for _, id := range found {
			live[id] = true
		}
		return nil
	})
	return live, err
}

// liveSessions finds which of a list of sessions exist and have not expired at its first argument.
var liveSessions = batchQuery{
	name:  "live sessions",
	head:  `SELECT id FROM sessions WHERE expires_at > ? AND id IN (`,
	first: `?`,
	row:   `?`,
	tail:  `)`,
}

// maxAppendAttempts is how many times AppendMessages runs a batch whose client ids turn out to be
// taken: once without looking for earlier messages, then looking for them, then once more for a client
// id that another node took while the batch ran.
const maxAppendAttempts = 3

// errClientIDTaken reports that the insert of a batch left out a message whose client id was taken.
var errClientIDTaken = errors.New("a client id of the batch is taken")

// AppendMessages stores msgs, in order, each as the next message of its room, in one transaction: one
// commit, so one disk sync, for the whole batch. It returns only once they are durable, so a caller may
// acknowledge them. Either every message is stored or none is. A message whose ClientID its author
// already used, even earlier in msgs, is not stored: its Appended holds the earlier message.
//
// The rows of the rooms the batch stores messages in stay locked until the commit, so batches sharing
// a room run one after the other, on every node.
func (d *DB) AppendMessages(ctx context.Context, msgs []app.Message) ([]app.Appended, error) {
	// A client id is taken only when its message is sent again, after a lost acknowledgement. So the
	// first run does not look for earlier messages (looking first made a batch of 64 cost SQLite 40%
	// more), and an insert that leaves a message out rolls the batch back and runs it again, looking.
	lookUp := false
	for attempt := 1; ; attempt++ {
		out, err := d.appendMessages(ctx, msgs, lookUp)
		if !errors.Is(err, errClientIDTaken) {
			return out, err
		}
		if attempt == maxAppendAttempts {
			return nil, fmt.Errorf("store: append %d messages, %d times: %w", len(msgs), attempt, err)
		}
		lookUp = true
	}
}

// clientKey is what a client id is unique within.
type clientKey struct {
	user int64
	id   string
}

// appendMessages stores msgs in one transaction; lookUp has it find the messages that their client
// ids name first. It returns errClientIDTaken when a client id it did not find was taken.
func (d *DB) appendMessages(ctx context.Context, msgs []app.Message, lookUp bool) ([]app.Appended, error) {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin append: %w", err)
	}
	defer tx.Rollback()

	earlier := map[clientKey]app.Message{}
	if lookUp {
		if earlier, err = d.earlierMessages(ctx, tx, msgs); err != nil {
			return nil, err
		}
	}
	out := make([]app.Appended, len(msgs))
	// repeats maps a message to the earlier message of the batch with its client id.
	repeats := map[int]int{}
	first := map[clientKey]int{}
	newIn := map[string]int64{}
	var created int
	for i, m := range msgs {
		if m.ClientID != "" {
			k := clientKey{m.From.ID, m.ClientID}
			if prev, ok := earlier[k]; ok {
				out[i] = app.Appended{Message: prev}
				continue
			}
			if j, ok := first[k]; ok {
				repeats[i] = j
				continue
			}
			first[k] = i
		}
		out[i] = app.Appended{Message: m, Created: true}
		newIn[m.Room]++
		created++
	}

	// Name order: two batches locking the same rooms take them in the same order, so neither holds a
	// room the other waits for while it waits for one the other holds.
	names := make([]string, 0, len(newIn))
	for name := range newIn {
		names = append(names, name)
	}
	slices.Sort(names)
	last, err := d.claimIDs(ctx, tx, names, newIn)
	if err != nil {
		return nil, err
	}
	back, err := d.refuseMadeChanges(ctx, tx, out)
	if err != nil {
		return nil, err
	}
	for name, n := range back {
		newIn[name] -= n
		last[name] -= n
	}
	next := make(map[string]int64, len(names))
	for _, name := range names {
		next[name] = last[name] - newIn[name]
	}
	stored := make([]app.Message, 0, created)
	for i := range out {
		if j, ok := repeats[i]; ok {
			out[i] = app.Appended{Message: asStored(out[j].Message)}
			continue
		}
		if !out[i].Created {
			continue
		}
		// Only a stored message takes an id, so a room's ids have no gap.
		m := &out[i].Message
		next[m.Room]++
		m.ID = next[m.Room]
		stored = append(stored, *m)
	}

	if err := d.insertMessages(ctx, tx, stored); err != nil {
		return nil, err
	}
	if err := d.applyMembers(ctx, tx, stored); err != nil {
		return nil, err
	}
	if err := d.applyChanges(ctx, tx, out); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: commit %d messages: %w", len(msgs), err)
	}
	return out, nil
}

// asStored returns m as the store reads it back: its time to the millisecond, in UTC.
func asStored(m app.Message) app.Message {
	m.At = time.UnixMilli(m.At.UnixMilli()).UTC()
	return m
}

// earlierMessages returns the stored messages named by the client ids of msgs.
func (d *DB) earlierMessages(ctx context.Context, tx *sql.Tx, msgs []app.Message) (map[clientKey]app.Message, error) {
	var keys []clientKey
	seen := map[clientKey]bool{}
	for _, m := range msgs {
		k := clientKey{m.From.ID, m.ClientID}
		if m.ClientID != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	earlier := map[clientKey]app.Message{}
	err := inChunks(len(keys), func(i, j int) error {
		args := make([]any, 0, 2*(j-i))
		for _, k := range keys[i:j] {
			args = append(args, k.user, k.id)
		}
		found, err := scanMessages(d.query(ctx, tx, d.dialect.earlierMessages, j-i, args))
		if err != nil {
			return err
		}
		for _, m := range found {
			earlier[clientKey{m.From.ID, m.ClientID}] = m
		}
		return nil
	})
	return earlier, err
}

// claimIDs locks the rooms names, in their order, adds newIn[name] to each one's counter, and returns
// the counters.
func (d *DB) claimIDs(ctx context.Context, tx *sql.Tx, names []string, newIn map[string]int64) (map[string]int64, error) {
	last := make(map[string]int64, len(names))
	err := inChunks(len(names), func(i, j int) error {
		args := make([]any, 0, 2*(j-i))
		for _, name := range names[i:j] {
			args = append(args, name, newIn[name])
		}
		rows, err := d.query(ctx, tx, claimIDs, j-i, args)
		if err != nil {
			return fmt.Errorf("store: lock %d rooms: %w", j-i, err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var id int64
			if err := rows.Scan(&name, &id); err != nil {
				return fmt.Errorf("store: lock %d rooms: %w", j-i, err)
			}
			last[name] = id
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: lock %d rooms: %w", j-i, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(last) != len(names) {
		return nil, fmt.Errorf("store: lock %d rooms: %d counters returned", len(names), len(last))
	}
	return last, nil
}

// insertMessages inserts msgs, or returns errClientIDTaken if a client id among them is taken.
func (d *DB) insertMessages(ctx context.Context, tx *sql.Tx, msgs []app.Message) error {
	return inChunks(len(msgs), func(i, j int) error {
		args := make([]any, 0, 11*(j-i))
		for _, m := range msgs[i:j] {
			var clientID, kind, subjectName sql.NullString
			var subjectID, targetID sql.NullInt64
			if m.ClientID != "" {
				clientID = sql.NullString{String: m.ClientID, Valid: true}
			}
			if m.Kind != "" {
				kind = sql.NullString{String: m.Kind, Valid: true}
			}
			if m.User != nil {
				subjectID = sql.NullInt64{Int64: m.User.ID, Valid: true}
				subjectName = sql.NullString{String: m.User.Name, Valid: true}
			}
			if m.TargetID != 0 {
				targetID = sql.NullInt64{Int64: m.TargetID, Valid: true}
			}
			text := m.Text
			if m.Kind == app.ChangeEdit {
				// The new text goes into the message (applyChanges); the entry keeps no copy, which a
				// later deletion would leave behind.
				text = ""
			}
			args = append(args, m.Room, m.ID, m.From.ID, m.From.Name, text, clientID, m.At.UnixMilli(), kind, subjectID, subjectName, targetID)
		}
		res, err := d.exec(ctx, tx, insertMessages, j-i, args)
		if err != nil {
			return fmt.Errorf("store: insert %d messages: %w", j-i, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: insert %d messages: %w", j-i, err)
		}
		// A message left out would leave its id, and those after it, unused: the batch must run again.
		if n != int64(j-i) {
			return errClientIDTaken
		}
		return nil
	})
}

// Messages returns the messages of room that q selects, oldest first.
func (d *DB) Messages(ctx context.Context, room string, q app.MessageQuery) ([]app.Message, error) {
	before := q.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	query := d.q.messagesOldest
	switch {
	case q.Log && q.Latest:
		query = d.q.logNewest
	case q.Log:
		query = d.q.logOldest
	case q.Latest:
		query = d.q.messagesNewest
	}
	msgs, err := scanMessages(d.read.QueryContext(ctx, query, room, q.After, before, q.Limit))
	if err != nil {
		return nil, err
	}
	if q.Latest {
		slices.Reverse(msgs)
	}
	if err := d.withTargets(ctx, d.read, room, msgs); err != nil {
		return nil, err
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

// scanStrings reads the rows of a query of one text column, and closes them.
func scanStrings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

const messageColumns = `room, id, user_id, user_name, text, COALESCE(client_id, ''), created_at,
	COALESCE(kind, ''), COALESCE(subject_id, 0), COALESCE(subject_name, ''), COALESCE(target_id, 0), edited_at, deleted`

func scanMessages(rows *sql.Rows, err error) ([]app.Message, error) {
	if err != nil {
		return nil, fmt.Errorf("store: query messages: %w", err)
	}
	defer rows.Close()
	var msgs []app.Message
	for rows.Next() {
		var m app.Message
		var at int64
		var subject app.Author
		var edited sql.NullInt64
		if err := rows.Scan(&m.Room, &m.ID, &m.From.ID, &m.From.Name, &m.Text, &m.ClientID, &at, &m.Kind, &subject.ID, &subject.Name,
			&m.TargetID, &edited, &m.Deleted); err != nil {
			return nil, fmt.Errorf("store: scan message: %w", err)
		}
		if subject.ID != 0 {
			m.User = &subject
		}
		if edited.Valid {
			e := time.UnixMilli(edited.Int64).UTC()
			m.EditedAt = &e
		}
		m.At = time.UnixMilli(at).UTC()
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read messages: %w", err)
	}
	return msgs, nil
}
