// Package store keeps users and messages in SQL. The DB type is the same for every dialect; dialects
// differ only in how they are opened and in query text. Driver errors are turned into *app.Error codes
// here (a unique violation becomes app.CodeConflict), so callers never see a driver type.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/causerie/causerie/app"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the store. It is safe for concurrent use.
type DB struct {
	// write has a single connection so that writers queue in Go instead of sleeping in SQLite's busy
	// handler; read serves every query that changes nothing.
	write *sql.DB
	read  *sql.DB
	// isUnique reports whether a driver error is a unique-constraint violation.
	isUnique func(error) bool
	// stop ends the background work of the dialect (SQLite's checkpoints); stopped is closed when it has.
	stop, stopped chan struct{}
	closeOnce     sync.Once
}

// Close stops the background work and closes the database. Later calls do nothing.
func (d *DB) Close() error {
	var err error
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.stopped
		err = errors.Join(d.write.Close(), d.read.Close())
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

// migrate applies, in order, every embedded migration that the schema_migrations table does not list.
func (d *DB) migrate(ctx context.Context) error {
	if _, err := d.write.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("store: list migrations: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("store: migration %s: name must start with a number", base)
		}
		if err := d.applyMigration(ctx, version, name); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) applyMigration(ctx context.Context, version int, name string) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin migration %d: %w", version, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return fmt.Errorf("store: check migration %d: %w", version, err)
	}
	if n > 0 {
		return nil
	}
	body, err := migrations.ReadFile(name)
	if err != nil {
		return fmt.Errorf("store: read migration %d: %w", version, err)
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return fmt.Errorf("store: apply migration %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		version, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("store: record migration %d: %w", version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit migration %d: %w", version, err)
	}
	return nil
}

// CreateUser stores u (whose Email must already be in lower case) and returns it with its ID.
// A taken e-mail is an app.CodeConflict error.
func (d *DB) CreateUser(ctx context.Context, u app.User) (app.User, error) {
	err := d.write.QueryRowContext(ctx,
		`INSERT INTO users (email, name, password_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id`,
		u.Email, u.Name, u.PasswordHash, u.CreatedAt.UnixMilli()).Scan(&u.ID)
	if d.isUnique(err) {
		return app.User{}, app.Errorf(app.CodeConflict, "e-mail already registered")
	}
	if err != nil {
		return app.User{}, fmt.Errorf("store: create user: %w", err)
	}
	return u, nil
}

// UserByEmail returns the user with that e-mail (any case), or an app.CodeNotFound error.
func (d *DB) UserByEmail(ctx context.Context, email string) (app.User, error) {
	return d.user(ctx, `WHERE email = ?`, strings.ToLower(email))
}

// UserByID returns the user with that id, or an app.CodeNotFound error.
func (d *DB) UserByID(ctx context.Context, id int64) (app.User, error) {
	return d.user(ctx, `WHERE id = ?`, id)
}

func (d *DB) user(ctx context.Context, where string, arg any) (app.User, error) {
	var u app.User
	var created int64
	err := d.read.QueryRowContext(ctx,
		`SELECT id, email, name, password_hash, created_at FROM users `+where, arg).
		Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return app.User{}, app.Errorf(app.CodeNotFound, "no such user")
	}
	if err != nil {
		return app.User{}, fmt.Errorf("store: get user: %w", err)
	}
	u.CreatedAt = time.UnixMilli(created).UTC()
	return u, nil
}

// AppendMessages stores msgs, in order, each as the next message of its room, in one transaction: one
// commit, so one disk sync, for the whole batch. It returns only once they are durable, so a caller may
// acknowledge them. Either every message is stored or none is.
func (d *DB) AppendMessages(ctx context.Context, msgs []app.Message) ([]app.Appended, error) {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin append: %w", err)
	}
	defer tx.Rollback()
	prev, err := tx.PrepareContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE user_id = ? AND client_id = ?`)
	if err != nil {
		return nil, fmt.Errorf("store: prepare append: %w", err)
	}
	defer prev.Close()
	next, err := tx.PrepareContext(ctx, `INSERT INTO rooms (name, last_id) VALUES (?, 1)
		ON CONFLICT (name) DO UPDATE SET last_id = last_id + 1 RETURNING last_id`)
	if err != nil {
		return nil, fmt.Errorf("store: prepare append: %w", err)
	}
	defer next.Close()
	insert, err := tx.PrepareContext(ctx, `INSERT INTO messages (room, id, user_id, user_name, text, client_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("store: prepare append: %w", err)
	}
	defer insert.Close()

	out := make([]app.Appended, len(msgs))
	for i, m := range msgs {
		if m.ClientID != "" {
			earlier, err := scanMessages(prev.QueryContext(ctx, m.From.ID, m.ClientID))
			if err != nil {
				return nil, err
			}
			if len(earlier) > 0 {
				out[i] = app.Appended{Message: earlier[0]}
				continue
			}
		}
		if err := next.QueryRowContext(ctx, m.Room).Scan(&m.ID); err != nil {
			return nil, fmt.Errorf("store: next id in %s: %w", m.Room, err)
		}
		var clientID sql.NullString
		if m.ClientID != "" {
			clientID = sql.NullString{String: m.ClientID, Valid: true}
		}
		if _, err := insert.ExecContext(ctx, m.Room, m.ID, m.From.ID, m.From.Name, m.Text, clientID, m.At.UnixMilli()); err != nil {
			return nil, fmt.Errorf("store: append message to %s: %w", m.Room, err)
		}
		out[i] = app.Appended{Message: m, Created: true}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: commit %d messages: %w", len(msgs), err)
	}
	return out, nil
}

// Messages returns the messages of room that q selects, oldest first.
func (d *DB) Messages(ctx context.Context, room string, q app.MessageQuery) ([]app.Message, error) {
	where, args := "room = ?", []any{room}
	if q.After > 0 {
		where += " AND id > ?"
		args = append(args, q.After)
	}
	if q.Before > 0 {
		where += " AND id < ?"
		args = append(args, q.Before)
	}
	order := "ASC"
	if q.Latest {
		order = "DESC"
	}
	args = append(args, q.Limit)
	msgs, err := scanMessages(d.read.QueryContext(ctx,
		`SELECT `+messageColumns+` FROM messages WHERE `+where+` ORDER BY id `+order+` LIMIT ?`, args...))
	if err != nil {
		return nil, err
	}
	if q.Latest {
		slices.Reverse(msgs)
	}
	return msgs, nil
}

// Rooms returns the names of the rooms that have messages, in order.
func (d *DB) Rooms(ctx context.Context) ([]string, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT name FROM rooms ORDER BY name`)
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
