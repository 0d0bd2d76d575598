// Package access decides who sees a room: anyone a public room, only its members a private room or a
// direct message. Every route and frame that names a room asks it first, so that a room a user may not see
// answers exactly as one that does not exist.
package access

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/causerie/causerie/app"
)

// Store is what access reads.
type Store interface {
	// Room returns the room name, or an app.CodeNotFound error.
	Room(ctx context.Context, name string) (app.Room, error)
	IsMember(ctx context.Context, room string, user int64) (bool, error)
}

// Rooms answers who may see which room. It is safe for concurrent use.
type Rooms struct {
	store Store
	// known caches rooms by name: a room is never deleted, and its kind and owner never change, so only
	// its membership is read again.
	known sync.Map
}

// New returns the access rules over store.
func New(store Store) *Rooms { return &Rooms{store: store} }

// NotFound is the error of a room that does not exist, and of one the user may not see.
func NotFound(name string) error {
	return app.Errorf(app.CodeNotFound, "no room %q", name)
}

// Open returns room name if user may see it, or NotFound. A public room costs no read of the store once
// known; a private room or a DM, one read of its membership.
func (a *Rooms) Open(ctx context.Context, user int64, name string) (app.Room, error) {
	r, err := a.room(ctx, name)
	if err != nil {
		return app.Room{}, err
	}
	if r.Kind == app.RoomPublic {
		return r, nil
	}
	member, err := a.store.IsMember(ctx, name, user)
	if err != nil {
		return app.Room{}, fmt.Errorf("access: may %d see %s: %w", user, name, err)
	}
	if !member {
		return app.Room{}, NotFound(name)
	}
	return r, nil
}

// room returns the room name, from the cache when it is known; its LastID is not kept.
func (a *Rooms) room(ctx context.Context, name string) (app.Room, error) {
	if v, ok := a.known.Load(name); ok {
		return v.(app.Room), nil
	}
	if !app.ValidRoom(name) {
		return app.Room{}, NotFound(name)
	}
	r, err := a.store.Room(ctx, name)
	if app.ErrorCode(err) == app.CodeNotFound {
		return app.Room{}, NotFound(name)
	}
	if err != nil {
		return app.Room{}, fmt.Errorf("access: room %s: %w", name, err)
	}
	r.LastID = 0
	a.known.Store(name, r)
	return r, nil
}

// dmPrefix starts the name of every DM, and of no other room: CheckName refuses it.
const dmPrefix = "dm-"

// DMName is the name of the DM between users a and b: the same from either side.
func DMName(a, b int64) string {
	return dmPrefix + strconv.FormatInt(min(a, b), 10) + "-" + strconv.FormatInt(max(a, b), 10)
}

// CheckName refuses a name a new room cannot take: one that is not a room name, or one that is kept for
// DMs.
func CheckName(name string) error {
	switch {
	case !app.ValidRoom(name):
		return app.Errorf(app.CodeInvalid, "room name must be 1 to %d characters of a-z, 0-9, - and _", app.MaxRoomName)
	case strings.HasPrefix(name, dmPrefix):
		return app.Errorf(app.CodeInvalid, "room names starting with %q are kept for direct messages", dmPrefix)
	}
	return nil
}
