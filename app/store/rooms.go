package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/causerie/causerie/app"
)

// roomQueries are the statements of rooms and their members.
type roomQueries struct {
	createRoom, room, addMember, removeMember string
	members, memberRooms, readUpto, markRead  string
	isMember, visibleRooms, giveBackIDs       string
	addMemberAt, bumpList, listVersion        string
}

func newRoomQueries(r func(string) string) roomQueries {
	// What is unread: the messages of others after what was read; not one's own, not member events, not
	// the changes to messages (an edit or a reaction is no news of the room). The partial index
	// messages_news (migration 0008) holds just the messages, with their authors, so that the count need
	// not read the rows of the messages it counts.
	const unread = `(SELECT COUNT(*) FROM messages AS x WHERE x.room = m.room AND x.id > m.read_upto
		AND x.kind IS NULL AND x.user_id <> m.user_id)`
	return roomQueries{
		createRoom: r(`INSERT INTO rooms (name, last_id, kind, owner_id) VALUES (?, 0, ?, ?)`),
		room:       r(`SELECT kind, COALESCE(owner_id, 0), last_id FROM rooms WHERE name = ?`),
		// A new member has read what came before: a room's history is not news to one who just came.
		addMember: r(`INSERT INTO room_members (room, user_id, added_at, read_upto) SELECT name, ?, ?, last_id FROM rooms
			WHERE name = ? ON CONFLICT (room, user_id) DO NOTHING`),
		removeMember: r(`DELETE FROM room_members WHERE room = ? AND user_id = ?`),
		// A member_added event's member has read up to the event.
		addMemberAt: r(`INSERT INTO room_members (room, user_id, added_at, read_upto) VALUES (?, ?, ?, ?)
			ON CONFLICT (room, user_id) DO NOTHING`),
		bumpList:    r(`UPDATE users SET list_version = list_version + 1 WHERE id = ?`),
		listVersion: r(`SELECT list_version FROM users WHERE id = ?`),
		// A page of members, by name, after the member of id ? (0: from the first; one that names no user
		// gives an empty page). Row values compare the sort keys in order, so that a page starts right after
		// the previous one's last, names alike or not. The CAST: PostgreSQL would type the parameter after
		// the literal 0, as a 32-bit integer.
		members: r(`SELECT u.id, u.name FROM room_members AS m JOIN users AS u ON u.id = m.user_id
			WHERE m.room = ? AND (CAST(? AS BIGINT) = 0 OR (COALESCE(u.name_key, LOWER(u.name)), u.id) >
				(SELECT COALESCE(a.name_key, LOWER(a.name)), a.id FROM users AS a WHERE a.id = ?))
			ORDER BY COALESCE(u.name_key, LOWER(u.name)), u.id LIMIT ?`),
		memberRooms: r(`SELECT r.name, r.kind, r.last_id, m.read_upto, ` + unread + `, COALESCE(o.id, 0), COALESCE(o.name, ''),
			CASE WHEN r.owner_id = m.user_id THEN 1 ELSE 0 END
			FROM room_members AS m JOIN rooms AS r ON r.name = m.room
			LEFT JOIN room_members AS om ON r.kind = 'dm' AND om.room = r.name AND om.user_id <> m.user_id
			LEFT JOIN users AS o ON o.id = om.user_id
			WHERE m.user_id = ? ORDER BY r.name`),
		readUpto: r(`SELECT m.read_upto, r.last_id, ` + unread + ` FROM room_members AS m JOIN rooms AS r ON r.name = m.room
			WHERE m.room = ? AND m.user_id = ?`),
		markRead:    r(`UPDATE room_members SET read_upto = ? WHERE room = ? AND user_id = ? AND read_upto < ?`),
		isMember:    r(`SELECT COUNT(*) FROM room_members WHERE room = ? AND user_id = ?`),
		giveBackIDs: r(`UPDATE rooms SET last_id = last_id - ? WHERE name = ?`),
		visibleRooms: r(`SELECT name, kind, COALESCE(owner_id, 0), last_id FROM rooms WHERE kind = 'public'
			OR name IN (SELECT room FROM room_members WHERE user_id = ?) ORDER BY name`),
	}
}

// CreateRoom stores a new room of no messages with its first members (its owner, or a DM's two users),
// or fails with an app.CodeConflict error when the name is taken, by a room of any kind.
func (d *DB) CreateRoom(ctx context.Context, r app.Room, members []int64, at time.Time) error {
	var owner any // NULL for a room without an owner
	if r.Owner != 0 {
		owner = r.Owner
	}
	return d.inTx(ctx, "create room", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, d.rq.createRoom, r.Name, r.Kind, owner); err != nil {
			if d.dialect.isUnique(err) {
				return app.Errorf(app.CodeConflict, "the room name %q is taken", r.Name)
			}
			return err
		}
		for _, user := range members {
			if _, err := tx.ExecContext(ctx, d.rq.addMember, user, at.UnixMilli(), r.Name); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, d.rq.bumpList, user); err != nil {
				return err
			}
		}
		return nil
	})
}

// applyMembers changes the memberships that the member events of stored, a batch of AppendMessages, record,
// in the batch's transaction: an event and its change are stored together or not at all.
func (d *DB) applyMembers(ctx context.Context, tx *sql.Tx, stored []app.Message) error {
	for _, m := range stored {
		if m.Kind != app.MemberAdded && m.Kind != app.MemberRemoved && m.Kind != app.MemberLeft {
			continue
		}
		var err error
		if m.Kind == app.MemberAdded {
			_, err = tx.ExecContext(ctx, d.rq.addMemberAt, m.Room, m.User.ID, m.At.UnixMilli(), m.ID)
		} else {
			_, err = tx.ExecContext(ctx, d.rq.removeMember, m.Room, m.User.ID)
		}
		if err == nil {
			_, err = tx.ExecContext(ctx, d.rq.bumpList, m.User.ID)
		}
		if err != nil {
			return fmt.Errorf("store: %s %d in %s: %w", m.Kind, m.User.ID, m.Room, err)
		}
	}
	return nil
}

// refuseMadeChanges refuses the member events of out whose change is already made (a user added twice at
// once, or removed twice), before they take an id: it reads the memberships under the locks of the rooms,
// which claimIDs took, so a concurrent batch of another node waits and then reads this one's (under
// PostgreSQL's READ COMMITTED, its default, each statement sees what committed before it began). The ids
// claimed for the refused events are given back, so that a room's ids keep no gap; back counts them per
// room.
func (d *DB) refuseMadeChanges(ctx context.Context, tx *sql.Tx, out []app.Appended) (back map[string]int64, err error) {
	type membership struct {
		room string
		user int64
	}
	member := map[membership]bool{} // as the events before, in this batch, left it
	for i := range out {
		m := out[i].Message
		if !out[i].Created || m.User == nil || (m.Kind != app.MemberAdded && m.Kind != app.MemberRemoved && m.Kind != app.MemberLeft) {
			continue
		}
		k := membership{m.Room, m.User.ID}
		is, known := member[k]
		if !known {
			var n int
			if err := tx.QueryRowContext(ctx, d.rq.isMember, m.Room, m.User.ID).Scan(&n); err != nil {
				return nil, fmt.Errorf("store: membership of %d in %s: %w", m.User.ID, m.Room, err)
			}
			is = n > 0
		}
		var refused error
		switch {
		case m.Kind == app.MemberAdded && is:
			refused = app.Errorf(app.CodeConflict, "%s is already a member of #%s", m.User.Name, m.Room)
		case m.Kind != app.MemberAdded && !is:
			refused = app.Errorf(app.CodeNotFound, "%s is not a member of #%s", m.User.Name, m.Room)
		}
		if refused == nil {
			member[k] = m.Kind == app.MemberAdded
			continue
		}
		member[k] = is
		out[i] = app.Appended{Message: m, Err: refused}
		if back == nil {
			back = map[string]int64{}
		}
		back[m.Room]++
	}
	for room, n := range back {
		if _, err := tx.ExecContext(ctx, d.rq.giveBackIDs, n, room); err != nil {
			return nil, fmt.Errorf("store: give back %d ids of %s: %w", n, room, err)
		}
	}
	return back, nil
}

// inTx runs f in a transaction of the write pool, committed when f returns nil.
func (d *DB) inTx(ctx context.Context, what string, f func(tx *sql.Tx) error) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin %s: %w", what, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		var e *app.Error
		if errors.As(err, &e) {
			return err
		}
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit %s: %w", what, err)
	}
	return nil
}

// Room returns the room name, or an app.CodeNotFound error when there is none: no message was ever
// stored in it and nobody created it.
func (d *DB) Room(ctx context.Context, name string) (app.Room, error) {
	r := app.Room{Name: name}
	err := d.read.QueryRowContext(ctx, d.rq.room, name).Scan(&r.Kind, &r.Owner, &r.LastID)
	if errors.Is(err, sql.ErrNoRows) {
		return app.Room{}, app.Errorf(app.CodeNotFound, "no room %q", name)
	}
	if err != nil {
		return app.Room{}, fmt.Errorf("store: room %s: %w", name, err)
	}
	return r, nil
}

// AddMember makes user a member of room, which must exist, and reports whether it was not one already. It
// records no event: it is for a public room's place in a room list (a private room's members come and go
// with member events, see AppendMessages).
func (d *DB) AddMember(ctx context.Context, room string, user int64, at time.Time) (bool, error) {
	if _, err := d.Room(ctx, room); err != nil {
		return false, err
	}
	return d.changeMember(ctx, "add member to "+room, user, d.rq.addMember, user, at.UnixMilli(), room)
}

// RemoveMember ends user's membership of room, and reports whether there was one. Like AddMember, it
// records no event.
func (d *DB) RemoveMember(ctx context.Context, room string, user int64) (bool, error) {
	return d.changeMember(ctx, "remove member from "+room, user, d.rq.removeMember, room, user)
}

// changeMember runs query, a change of user's memberships, and moves user's list version on when it
// changed anything.
func (d *DB) changeMember(ctx context.Context, what string, user int64, query string, args ...any) (changed bool, err error) {
	err = d.inTx(ctx, what, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		changed = true
		_, err = tx.ExecContext(ctx, d.rq.bumpList, user)
		return err
	})
	return changed, err
}

// IsMember reports whether user is a member of room.
func (d *DB) IsMember(ctx context.Context, room string, user int64) (bool, error) {
	var n int
	if err := d.read.QueryRowContext(ctx, d.rq.isMember, room, user).Scan(&n); err != nil {
		return false, fmt.Errorf("store: is %d a member of %s: %w", user, room, err)
	}
	return n > 0, nil
}

// VisibleRooms returns the rooms user may see, by name: every public room, and the private rooms and DMs
// user is a member of.
func (d *DB) VisibleRooms(ctx context.Context, user int64) ([]app.Room, error) {
	rows, err := d.read.QueryContext(ctx, d.rq.visibleRooms, user)
	if err != nil {
		return nil, fmt.Errorf("store: rooms user %d sees: %w", user, err)
	}
	defer rows.Close()
	var out []app.Room
	for rows.Next() {
		var r app.Room
		if err := rows.Scan(&r.Name, &r.Kind, &r.Owner, &r.LastID); err != nil {
			return nil, fmt.Errorf("store: rooms user %d sees: %w", user, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Members returns limit members of room at most, by name, from the one after the member of id after (0:
// from the first).
func (d *DB) Members(ctx context.Context, room string, after int64, limit int) ([]app.Author, error) {
	rows, err := d.read.QueryContext(ctx, d.rq.members, room, after, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: members of %s: %w", room, err)
	}
	defer rows.Close()
	var out []app.Author
	for rows.Next() {
		var a app.Author
		if err := rows.Scan(&a.ID, &a.Name); err != nil {
			return nil, fmt.Errorf("store: members of %s: %w", room, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// MemberRooms returns the rooms user is a member of, by name, with their newest message id and how many
// messages after what the user has read, and the list's version. The version is read first: the list is
// then at least as new as it says.
func (d *DB) MemberRooms(ctx context.Context, user int64) (app.RoomList, error) {
	var list app.RoomList
	err := d.read.QueryRowContext(ctx, d.rq.listVersion, user).Scan(&list.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return app.RoomList{Rooms: []app.MemberRoom{}}, nil
	}
	if err != nil {
		return app.RoomList{}, fmt.Errorf("store: room list version of user %d: %w", user, err)
	}
	list.Rooms, err = d.memberRooms(ctx, user)
	return list, err
}

func (d *DB) memberRooms(ctx context.Context, user int64) ([]app.MemberRoom, error) {
	rows, err := d.read.QueryContext(ctx, d.rq.memberRooms, user)
	if err != nil {
		return nil, fmt.Errorf("store: rooms of user %d: %w", user, err)
	}
	defer rows.Close()
	out := []app.MemberRoom{}
	for rows.Next() {
		var r app.MemberRoom
		var with app.Author
		var owner int
		if err := rows.Scan(&r.Name, &r.Kind, &r.LastID, &r.ReadUpto, &r.Unread, &with.ID, &with.Name, &owner); err != nil {
			return nil, fmt.Errorf("store: rooms of user %d: %w", user, err)
		}
		r.Owner = owner == 1
		if with.ID != 0 {
			r.With = &with
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkRead records that user has read room up to message upto (at most the room's newest), and returns
// how far the user has read it now, never less than before, and how many messages are left unread. A user
// who is not a member gets an app.CodeNotFound error.
func (d *DB) MarkRead(ctx context.Context, room string, user, upto int64) (read, unread int64, err error) {
	var last int64
	err = d.write.QueryRowContext(ctx, d.rq.readUpto, room, user).Scan(&read, &last, &unread)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, app.Errorf(app.CodeNotFound, "no room %q", room)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: read state of %s: %w", room, err)
	}
	upto = min(upto, last)
	if upto <= read {
		return read, unread, nil
	}
	// Only forwards, whatever another connection of the user wrote meanwhile; and what is stored then is
	// the answer, which such a write may have moved past upto.
	if _, err := d.write.ExecContext(ctx, d.rq.markRead, upto, room, user, upto); err != nil {
		return 0, 0, fmt.Errorf("store: mark %s read: %w", room, err)
	}
	if err := d.write.QueryRowContext(ctx, d.rq.readUpto, room, user).Scan(&read, &last, &unread); err != nil {
		return 0, 0, fmt.Errorf("store: read state of %s: %w", room, err)
	}
	return read, unread, nil
}
