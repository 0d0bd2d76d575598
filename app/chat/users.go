package chat

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

// byUser indexes this node's connections by user, for the frames that go to a user wherever they are
// connected rather than to a room: their room list and their read state.
type byUser struct {
	mu    sync.RWMutex
	conns map[int64][]*Client
}

func (u *byUser) add(c *Client) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conns == nil {
		u.conns = make(map[int64][]*Client)
	}
	u.conns[c.User.UserID] = append(u.conns[c.User.UserID], c)
}

func (u *byUser) remove(c *Client) {
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.conns[c.User.UserID]
	for i, other := range list {
		if other == c {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(u.conns, c.User.UserID)
	} else {
		u.conns[c.User.UserID] = list
	}
}

// ids returns the users with a connection here.
func (u *byUser) ids() []int64 {
	u.mu.RLock()
	defer u.mu.RUnlock()
	ids := make([]int64, 0, len(u.conns))
	for user := range u.conns {
		ids = append(ids, user)
	}
	return ids
}

// each calls fn for each connection of user; fn must not block.
func (u *byUser) each(user int64, fn func(*Client)) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	for _, c := range u.conns[user] {
		fn(c)
	}
}

// toUser queues ev, an event of a user's channel (app.UserChannel), on that user's connections here.
func (h *Hub) toUser(user int64, ev bus.Event) {
	h.users.each(user, func(c *Client) {
		if c.ID != ev.Skip {
			c.offer(ev)
		}
	})
}

// pushRooms sends user's room list, as the store has it now, to each of the user's connections on every
// node but skip: their room list changed.
func (h *Hub) pushRooms(ctx context.Context, user int64, skip string) {
	list, err := h.opts.Store.MemberRooms(ctx, user)
	if err != nil {
		// The list is whole in every rooms frame and welcome: the next change, or connection, mends it.
		h.log.Error("read room list", "user", user, "err", err)
		return
	}
	h.publish(bus.Event{Room: app.UserChannel(user), Payload: app.EncodeRooms(list), Skip: skip}, nil, nil)
}

// resendLists gives each user connected to this node their room list again, as the store has it: the bus
// may have lost a rooms or read frame. Each user's connections on other nodes get theirs from their node.
func (h *Hub) resendLists(ctx context.Context) {
	for _, user := range h.users.ids() {
		list, err := h.opts.Store.MemberRooms(ctx, user)
		if err != nil {
			h.log.Error("read room list", "user", user, "err", err)
			return
		}
		h.toUser(user, bus.Event{Room: app.UserChannel(user), Payload: app.EncodeRooms(list)})
	}
}

// MemberRooms returns user's room list: the public rooms they joined and did not leave, their private
// rooms and their DMs, with the newest message id and the unread count of each.
func (h *Hub) MemberRooms(ctx context.Context, user int64) (app.RoomList, error) {
	list, err := h.opts.Store.MemberRooms(ctx, user)
	if err != nil {
		return app.RoomList{}, fmt.Errorf("chat: room list: %w", err)
	}
	return list, nil
}

// welcomeList returns the room list of c's user for its welcome, once the public rooms c joins at connect
// are in it, and reports whether any was not: the user's other connections are then told. One read of the
// store in the common case, where they all are; nil when the store cannot be read, and the welcome goes
// without a list, which the next change brings whole.
func (h *Hub) welcomeList(ctx context.Context, c *Client, public []string) (*app.RoomList, bool) {
	user := c.User.UserID
	list, err := h.opts.Store.MemberRooms(ctx, user)
	if err != nil {
		h.log.Error("read room list", "conn", c.ID, "err", err)
		return nil, false
	}
	listed := false
	for _, name := range public {
		if slices.ContainsFunc(list.Rooms, func(r app.MemberRoom) bool { return r.Name == name }) {
			continue
		}
		added, err := h.opts.Store.AddMember(ctx, name, user, h.opts.Now())
		if err != nil {
			// The connection joins all the same; only the list missed the room, which the next join mends.
			h.log.Error("add to room list", "conn", c.ID, "room", name, "err", err)
		}
		listed = listed || added
	}
	if listed {
		if list, err = h.opts.Store.MemberRooms(ctx, user); err != nil {
			h.log.Error("read room list", "conn", c.ID, "err", err)
			return nil, true
		}
	}
	return &list, listed
}

// remember puts room, a public room user joined, in user's room list, and reports whether it was not
// there: the caller then tells the user's other connections. A private room or a DM is in the list of
// each member already.
func (h *Hub) remember(ctx context.Context, user int64, room app.Room) (bool, error) {
	if room.Kind != app.RoomPublic {
		return false, nil
	}
	member, err := h.opts.Store.IsMember(ctx, room.Name, user)
	if err != nil || member {
		return false, err
	}
	return h.opts.Store.AddMember(ctx, room.Name, user, h.opts.Now())
}

// read stores how far c's user has read room, and tells each of the user's connections, on every node,
// with the unread count that leaves.
func (h *Hub) read(ctx context.Context, c *Client, in app.Inbound) error {
	if err := checkRoom(in.Room); err != nil {
		return err
	}
	if in.Upto == nil || *in.Upto < 0 {
		return app.Errorf(app.CodeInvalid, "upto must be a message id, 0 or more")
	}
	r, err := h.access.Open(ctx, c.User.UserID, in.Room)
	if err != nil {
		return err
	}
	upto, unread, err := h.opts.Store.MarkRead(ctx, in.Room, c.User.UserID, *in.Upto)
	if app.ErrorCode(err) == app.CodeNotFound && r.Kind == app.RoomPublic {
		return app.Errorf(app.CodeNotJoined, "not in room %q; join it first", in.Room)
	}
	if err != nil {
		return fmt.Errorf("chat: mark %s read: %w", in.Room, err)
	}
	h.publish(bus.Event{Room: app.UserChannel(c.User.UserID), Payload: app.EncodeRead(in.Room, upto, unread)}, nil, nil)
	if in.ID != "" {
		c.enqueue(app.EncodeAck(app.Ack{For: app.FrameRead, ID: in.ID, Room: in.Room}))
	}
	return nil
}
