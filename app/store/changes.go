package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/causerie/causerie/app"
)

// changeQueries are the statements that apply a change to a message, in the transaction that logs it.
type changeQueries struct {
	edit, delete, dropReactions, react, unreact string
}

func newChangeQueries(r func(string) string) changeQueries {
	const live = `kind IS NULL AND NOT deleted`
	return changeQueries{
		edit:          r(`UPDATE messages SET text = ?, edited_at = ? WHERE room = ? AND id = ? AND ` + live),
		delete:        r(`UPDATE messages SET text = '', deleted = TRUE, edited_at = NULL WHERE room = ? AND id = ? AND kind IS NULL`),
		dropReactions: r(`DELETE FROM reactions WHERE room = ? AND message_id = ?`),
		react: r(`INSERT INTO reactions (room, message_id, emoji, user_id, created_at)
			SELECT room, id, ?, ?, ? FROM messages WHERE room = ? AND id = ? AND ` + live + `
			ON CONFLICT (room, message_id, emoji, user_id) DO NOTHING`),
		unreact: r(`DELETE FROM reactions WHERE room = ? AND message_id = ? AND emoji = ? AND user_id = ?`),
	}
}

// applyChanges applies the changes of a batch (the entries of out it stored) to their messages, and gives
// each its message in its new state. A change to a message that is gone (deleted) changes nothing: its
// entry stays in the log, and says so by the state it carries.
func (d *DB) applyChanges(ctx context.Context, tx *sql.Tx, out []app.Appended) error {
	for i := range out {
		m := &out[i].Message
		if !app.IsChange(m.Kind) {
			continue
		}
		if out[i].Created {
			if err := d.applyChange(ctx, tx, m); err != nil {
				return err
			}
		}
		// Read in the transaction: the state this change left, which a later one cannot have moved yet. A
		// repeat (a client id used before) made no change: its answer carries the message as it is now.
		targets, err := d.messagesByID(ctx, tx, m.Room, []int64{m.TargetID})
		if err != nil {
			return err
		}
		if len(targets) == 1 {
			m.Target = &targets[0]
		}
	}
	return nil
}

// applyChange applies m, a change, to its message.
func (d *DB) applyChange(ctx context.Context, tx *sql.Tx, m *app.Message) error {
	var err error
	switch m.Kind {
	case app.ChangeEdit:
		_, err = tx.ExecContext(ctx, d.cq.edit, m.Text, m.At.UnixMilli(), m.Room, m.TargetID)
	case app.ChangeDelete:
		if _, err = tx.ExecContext(ctx, d.cq.delete, m.Room, m.TargetID); err == nil {
			_, err = tx.ExecContext(ctx, d.cq.dropReactions, m.Room, m.TargetID)
		}
	case app.ChangeReact:
		_, err = tx.ExecContext(ctx, d.cq.react, m.Text, m.From.ID, m.At.UnixMilli(), m.Room, m.TargetID)
	case app.ChangeUnreact:
		_, err = tx.ExecContext(ctx, d.cq.unreact, m.Room, m.TargetID, m.Text, m.From.ID)
	}
	if err != nil {
		return fmt.Errorf("store: %s of %d in %s: %w", m.Kind, m.TargetID, m.Room, err)
	}
	return nil
}

// querier is a pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// withTargets completes msgs, entries of room's log: each message gets its reactions, and each change its
// message in its current state.
func (d *DB) withTargets(ctx context.Context, q querier, room string, msgs []app.Message) error {
	var targetIDs []int64
	for _, m := range msgs {
		if app.IsChange(m.Kind) {
			targetIDs = append(targetIDs, m.TargetID)
		}
	}
	if err := d.withReactions(ctx, q, room, msgs); err != nil {
		return err
	}
	if len(targetIDs) == 0 {
		return nil
	}
	slices.Sort(targetIDs)
	targets, err := d.messagesByID(ctx, q, room, slices.Compact(targetIDs))
	if err != nil {
		return err
	}
	byID := make(map[int64]*app.Message, len(targets))
	for i := range targets {
		byID[targets[i].ID] = &targets[i]
	}
	for i := range msgs {
		if app.IsChange(msgs[i].Kind) {
			msgs[i].Target = byID[msgs[i].TargetID]
		}
	}
	return nil
}

// messagesByID returns the messages of room with those ids, with their reactions.
func (d *DB) messagesByID(ctx context.Context, q querier, room string, ids []int64) ([]app.Message, error) {
	var out []app.Message
	for chunk := range slices.Chunk(ids, batchRows) {
		query := d.dialect.rebind(`SELECT ` + messageColumns + ` FROM messages WHERE room = ? AND id IN (` + placeholders(len(chunk)) + `) ORDER BY id`)
		args := append([]any{room}, int64Args(chunk)...)
		msgs, err := scanMessages(q.QueryContext(ctx, query, args...))
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	return out, d.withReactions(ctx, q, room, out)
}

// withReactions gives the messages of msgs (not member events, changes or tombstones) their reactions, in
// the order of app.Emoji, each with its users by id.
func (d *DB) withReactions(ctx context.Context, q querier, room string, msgs []app.Message) error {
	index := make(map[int64]int)
	var ids []int64
	for i, m := range msgs {
		if m.Kind == "" && !m.Deleted {
			index[m.ID] = i
			ids = append(ids, m.ID)
		}
	}
	for chunk := range slices.Chunk(ids, batchRows) {
		query := d.dialect.rebind(`SELECT message_id, emoji, user_id FROM reactions WHERE room = ? AND message_id IN (` +
			placeholders(len(chunk)) + `) ORDER BY message_id, user_id`)
		rows, err := q.QueryContext(ctx, query, append([]any{room}, int64Args(chunk)...)...)
		if err != nil {
			return fmt.Errorf("store: reactions in %s: %w", room, err)
		}
		err = scanReactions(rows, func(id int64, emoji string, user int64) {
			m := &msgs[index[id]]
			k := slices.IndexFunc(m.Reactions, func(r app.Reaction) bool { return r.Emoji == emoji })
			if k < 0 {
				m.Reactions = append(m.Reactions, app.Reaction{Emoji: emoji})
				k = len(m.Reactions) - 1
			}
			m.Reactions[k].Count++
			m.Reactions[k].Users = append(m.Reactions[k].Users, user)
		})
		if err != nil {
			return fmt.Errorf("store: reactions in %s: %w", room, err)
		}
	}
	for _, i := range index {
		slices.SortFunc(msgs[i].Reactions, func(a, b app.Reaction) int {
			return slices.Index(app.Emoji, a.Emoji) - slices.Index(app.Emoji, b.Emoji)
		})
	}
	return nil
}

func scanReactions(rows *sql.Rows, each func(id int64, emoji string, user int64)) error {
	defer rows.Close()
	for rows.Next() {
		var id, user int64
		var emoji string
		if err := rows.Scan(&id, &emoji, &user); err != nil {
			return err
		}
		each(id, emoji, user)
	}
	return rows.Err()
}

// placeholders returns n ? placeholders, comma-separated.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func int64Args(ids []int64) []any {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return args
}
