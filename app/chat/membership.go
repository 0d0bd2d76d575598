package chat

import (
	"context"
	"fmt"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/access"
)

// RoomStore is the storage of rooms and of their members that the hub needs.
type RoomStore interface {
	access.Store
	// CreateRoom stores a new room with its first members, or fails with app.CodeConflict when the name
	// is taken.
	CreateRoom(ctx context.Context, r app.Room, members []int64, at time.Time) error
	// VisibleRooms returns every public room, and the private rooms and DMs user is a member of, by name.
	VisibleRooms(ctx context.Context, user int64) ([]app.Room, error)
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
