package chat

import (
	"context"
	"fmt"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/access"
	"github.com/causerie/causerie/app/bus"
)

// RoomStore is the storage of rooms and of their members that the hub needs.
type RoomStore interface {
	access.Store
	// CreateRoom stores a new room with its first members, or fails with app.CodeConflict when the name
	// is taken.
	CreateRoom(ctx context.Context, r app.Room, members []int64, at time.Time) error
	// VisibleRooms returns every public room, and the private rooms and DMs user is a member of, by name.
	VisibleRooms(ctx context.Context, user int64) ([]app.Room, error)
	// AddMember and RemoveMember report whether they changed anything.
	AddMember(ctx context.Context, room string, user int64, at time.Time) (bool, error)
	RemoveMember(ctx context.Context, room string, user int64) (bool, error)
	Members(ctx context.Context, room string, after int64, limit int) ([]app.Author, error)
	// MarkRead records how far user has read room, forwards only, and returns the read state then.
	MarkRead(ctx context.Context, room string, user, upto int64) (read, unread int64, err error)
	// MemberRooms returns the rooms user is a member of, with unread counts and, for a DM, the other user.
	MemberRooms(ctx context.Context, user int64) (app.RoomList, error)
	// UserByName returns the user of that name (compared as app.NameKey compares), or app.CodeNotFound.
	UserByName(ctx context.Context, name string) (app.User, error)
}

// CreateRoom makes the room name, public or private, owned by user, who is its first member; it counts
// against RoomsPerHour.
func (h *Hub) CreateRoom(ctx context.Context, user app.Identity, name string, private bool) (app.Room, error) {
	if err := access.CheckName(name); err != nil {
		return app.Room{}, err
	}
	if err := h.creations.Take(ctx, user.UserID); err != nil {
		return app.Room{}, err
	}
	r := app.Room{Name: name, Kind: app.RoomPublic, Owner: user.UserID}
	if private {
		r.Kind = app.RoomPrivate
	}
	if err := h.opts.Store.CreateRoom(ctx, r, []int64{user.UserID}, h.opts.Now()); err != nil {
		return app.Room{}, fmt.Errorf("chat: create room %s: %w", name, err)
	}
	h.pushRooms(ctx, user.UserID, "")
	return r, nil
}

// Open returns the room name if user may see it, or the not_found error of a room that does not exist.
func (h *Hub) Open(ctx context.Context, user int64, name string) (app.Room, error) {
	return h.access.Open(ctx, user, name)
}

// Rooms lists the rooms user may see, by name, with their users online on every node.
func (h *Hub) Rooms(ctx context.Context, user int64) ([]app.RoomInfo, error) {
	rooms, err := h.opts.Store.VisibleRooms(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("chat: list rooms: %w", err)
	}
	online := h.presence.Online(ctx)
	list := make([]app.RoomInfo, len(rooms))
	for i, r := range rooms {
		list[i] = app.RoomInfo{Name: r.Name, Kind: r.Kind, Online: online[r.Name]}
	}
	return list, nil
}

// Members returns limit members of room at most, by name, after the member of id after (0: from the
// first), for a user who may see it.
func (h *Hub) Members(ctx context.Context, user int64, room string, after int64, limit int) ([]app.Author, error) {
	if _, err := h.access.Open(ctx, user, room); err != nil {
		return nil, err
	}
	members, err := h.opts.Store.Members(ctx, room, after, limit)
	if err != nil {
		return nil, fmt.Errorf("chat: members of %s: %w", room, err)
	}
	return members, nil
}

// AddMember makes the user called name a member of room, a private room that actor owns, with a
// member_added event in the room's log, which the store writes with the membership. A member already gets
// created false and no event: the store refuses the event, under the room's lock, so that two adds at
// once, on any nodes, make one.
func (h *Hub) AddMember(ctx context.Context, actor app.Identity, room, name string) (ev app.Message, created bool, err error) {
	r, err := h.access.Open(ctx, actor.UserID, room)
	if err != nil {
		return app.Message{}, false, err
	}
	switch {
	case r.Kind != app.RoomPrivate:
		return app.Message{}, false, app.Errorf(app.CodeForbidden, "only a private room has members to add: anyone may join a public room, and a DM is for two")
	case r.Owner != actor.UserID:
		return app.Message{}, false, app.Errorf(app.CodeForbidden, "only the owner of #%s adds members", room)
	}
	who, err := h.user(ctx, name)
	if err != nil {
		return app.Message{}, false, err
	}
	ev, err = h.logMember(ctx, actor, room, app.MemberAdded, who)
	if app.ErrorCode(err) == app.CodeConflict {
		return app.Message{}, false, nil
	}
	if err != nil {
		return app.Message{}, false, err
	}
	h.pushRooms(ctx, who.ID, "")
	return ev, true, nil
}

// RemoveMember ends the membership of the user called name in room, a private room: its owner removes
// anyone but itself, and a member removes itself (leaves). A member_removed or member_left event goes in
// the room's log; once a node delivers it, that user's connections there get nothing more of the room. A
// user who is no member gets not_found: the store refuses the event.
func (h *Hub) RemoveMember(ctx context.Context, actor app.Identity, room, name string) (app.Message, error) {
	r, err := h.access.Open(ctx, actor.UserID, room)
	if err != nil {
		return app.Message{}, err
	}
	who, err := h.user(ctx, name)
	if err != nil {
		return app.Message{}, err
	}
	self := who.ID == actor.UserID
	switch {
	case r.Kind != app.RoomPrivate:
		return app.Message{}, app.Errorf(app.CodeForbidden, "only a private room has members to remove: anyone may join a public room, and a DM is for two")
	case self && r.Owner == actor.UserID:
		return app.Message{}, app.Errorf(app.CodeForbidden, "the owner of #%s cannot leave it", room)
	case !self && r.Owner != actor.UserID:
		return app.Message{}, app.Errorf(app.CodeForbidden, "only the owner of #%s removes others", room)
	}
	kind := app.MemberRemoved
	if self {
		kind = app.MemberLeft
	}
	ev, err := h.logMember(ctx, actor, room, kind, who)
	if err != nil {
		return app.Message{}, err
	}
	h.pushRooms(ctx, who.ID, "")
	return ev, nil
}

// user returns the user called name as an author, or a not_found error.
func (h *Hub) user(ctx context.Context, name string) (app.Author, error) {
	u, err := h.opts.Store.UserByName(ctx, name)
	if app.ErrorCode(err) == app.CodeNotFound {
		return app.Author{}, app.Errorf(app.CodeNotFound, "no user %q", name)
	}
	if err != nil {
		return app.Author{}, fmt.Errorf("chat: user %q: %w", name, err)
	}
	return app.Author{ID: u.ID, Name: u.Name}, nil
}

// logMember stores a member event of kind, done by actor to who, in room's log, with the change of
// membership it records, delivers it like a message, and returns it. A client that goes away meanwhile
// does not cancel it: the change is made and known everywhere, or not made.
func (h *Hub) logMember(ctx context.Context, actor app.Identity, room, kind string, who app.Author) (app.Message, error) {
	res, err := h.commit(context.WithoutCancel(ctx), app.Message{Room: room, From: author(actor), Kind: kind, User: &who, At: h.now()})
	if err != nil {
		return app.Message{}, err
	}
	return res.Msg, res.Err
}

// evict takes out of r the connections of the user a member event removes (removed, or left): they got
// the event, and get nothing of the room after it. It runs in the room's order, from its sequencer, so
// on every node the event is the last of the room they get; and so a room it empties stops on a
// goroutine of its own, as Stop waits for the sequencer.
func (h *Hub) evict(r *room, ev bus.Event) {
	m, ok := app.DecodeMemberEvent(ev.Payload)
	if !ok || m.Kind == app.MemberAdded {
		return
	}
	var gone []*Client
	r.members.each(func(c *Client) {
		if c.User.UserID == m.User.ID {
			gone = append(gone, c)
		}
	})
	for _, c := range gone {
		if !c.leave(r.name) {
			continue
		}
		left := func() { h.presence.Leave(r.name, author(c.User)) }
		if r.exit(c, left) {
			h.rooms.CompareAndDelete(r.name, r)
			h.subs.gone(r.name)
			go r.seq.Stop()
		}
	}
}

// OpenDM returns the DM between actor and the user called name, made by the first call of either (created
// true): the same room from either side.
func (h *Hub) OpenDM(ctx context.Context, actor app.Identity, name string) (room app.MemberRoom, created bool, err error) {
	who, err := h.user(ctx, name)
	if err != nil {
		return app.MemberRoom{}, false, err
	}
	if who.ID == actor.UserID {
		return app.MemberRoom{}, false, app.Errorf(app.CodeInvalid, "a direct message is with another user")
	}
	room = app.MemberRoom{Name: access.DMName(actor.UserID, who.ID), Kind: app.RoomDM, With: &who}
	if _, err := h.opts.Store.Room(ctx, room.Name); app.ErrorCode(err) == app.CodeNotFound {
		// A DM is a room: its making counts against RoomsPerHour, which keeps one user from opening DMs with
		// everyone.
		if err := h.creations.Take(ctx, actor.UserID); err != nil {
			return app.MemberRoom{}, false, err
		}
		err = h.opts.Store.CreateRoom(ctx, app.Room{Name: room.Name, Kind: app.RoomDM}, []int64{actor.UserID, who.ID}, h.opts.Now())
		if err == nil {
			h.pushRooms(ctx, actor.UserID, "")
			h.pushRooms(ctx, who.ID, "")
			return room, true, nil
		}
		if app.ErrorCode(err) != app.CodeConflict { // a conflict: the other user opened it meanwhile
			return app.MemberRoom{}, false, fmt.Errorf("chat: open DM: %w", err)
		}
	}
	list, err := h.opts.Store.MemberRooms(ctx, actor.UserID)
	if err != nil {
		return app.MemberRoom{}, false, fmt.Errorf("chat: open DM: %w", err)
	}
	for _, r := range list.Rooms {
		if r.Name == room.Name && r.Kind == app.RoomDM {
			return r, false, nil
		}
	}
	// A public room took the name before rooms had kinds (a room was made by its first message then).
	return app.MemberRoom{}, false, app.Errorf(app.CodeConflict, "an earlier room is called %s: the DM cannot be opened", room.Name)
}
