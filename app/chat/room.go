package chat

import (
	"context"
	"sync"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/presence"
	"github.com/causerie/causerie/app/sequence"
)

// room is one room on this node: its local connections, and who they belong to. A room is created when
// a connection joins it and removed when the last one leaves, so rooms cost nothing once empty.
type room struct {
	name    string
	members members
	seq     *sequence.Room

	// mu guards users, conns and gone, and orders joins, leaves and their joined/left events.
	mu    sync.Mutex
	users map[int64]*roomUser
	conns int
	// gone is set when the room has been removed from the hub: a join that finds it takes a new one.
	gone bool
}

// roomUser is one user in a room: a user with several connections there is present once.
type roomUser struct {
	author     app.Author
	conns      int
	lastTyping time.Time
}

// enter adds c, and reports false when the room is gone. When c is its user's first connection here,
// joined runs, under the room's lock, so that joined and left events go out in the order of the changes;
// it must not wait on I/O (it queues, see presence.Tracker.Enter).
func (r *room) enter(c *Client, joined func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return false
	}
	r.members.add(c)
	r.conns++
	if r.users == nil {
		r.users = make(map[int64]*roomUser)
	}
	p, ok := r.users[c.User.UserID]
	if !ok {
		p = &roomUser{author: author(c.User)}
		r.users[c.User.UserID] = p
	}
	if p.conns++; p.conns == 1 {
		joined()
	}
	return true
}

// exit removes c; left, when not nil, runs under the room's lock if c was its user's last connection
// here. It reports whether the room is now empty, and so gone.
func (r *room) exit(c *Client, left func()) (empty bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.members.remove(c) {
		return false
	}
	if p, ok := r.users[c.User.UserID]; ok {
		if p.conns--; p.conns == 0 {
			delete(r.users, c.User.UserID)
			if left != nil {
				left()
			}
		}
	}
	if r.conns--; r.conns == 0 {
		r.gone = true
		return true
	}
	return false
}

// userList returns the users present, by name.
func (r *room) userList() []app.Author {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := make([]app.Author, 0, len(r.users))
	for _, p := range r.users {
		list = append(list, p.author)
	}
	presence.SortUsers(list)
	return list
}

// typingAllowed reports whether user id may send a typing event at now, at most one per typingEvery.
func (r *room) typingAllowed(id int64, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.users[id]
	if !ok || now.Sub(p.lastTyping) < typingEvery {
		return false
	}
	p.lastTyping = now
	return true
}

// typingEvery is the least time between two typing events of a user in a room that are relayed.
const typingEvery = time.Second

// dispatch hands ev to the members of its room on this node: message events in id order, through the
// room's sequencer, others at once. done, when not nil, runs once ev is delivered or known to need no
// delivery here: it queues the sender's ack, which so never overtakes a message of the room on the
// sender's connection. landed, when not nil, is the message of a connection of this node that ev
// announces: its in-flight mark goes. It reports false for the event of a room with no connection here.
func (h *Hub) dispatch(ev bus.Event, landed *app.Message, done func()) bool {
	if user, ok := app.ChannelUser(ev.Room); ok {
		h.toUser(user, ev)
		if done != nil {
			done()
		}
		return true
	}
	v, ok := h.rooms.Load(ev.Room)
	if !ok {
		if done != nil {
			done()
		}
		return false
	}
	r := v.(*room)
	if ev.ID == 0 {
		h.fanOut(r, ev)
		return true
	}
	r.seq.Dispatch(ev, landed, done)
	return true
}

// newSequencer returns the sequencer of room r of the hub.
func (h *Hub) newSequencer(r *room) *sequence.Room {
	return sequence.New(sequence.Config{
		Name: r.name,
		Deliver: func(ev bus.Event) {
			h.fanOut(r, ev)
			h.evict(r, ev)
		},
		Base: func(ctx context.Context) (int64, error) { return h.opts.Store.LastID(ctx, r.name) },
		Fetch: func(ctx context.Context, after int64) ([]app.Message, error) {
			return h.opts.Store.Messages(ctx, r.name, app.MessageQuery{After: after, Limit: sequence.CatchUpBatch, Log: true})
		},
		CaughtUp: func() { h.stats.CaughtUp.Add(1) },
		Log:      h.log,
	})
}

// fly marks m, a message of a connection of this node, as on its way to the store and its event (delta
// +1), or takes the mark back (-1): see sequence.Room.Fly. A room that is gone needs no mark: a room made
// afterwards reads its base from the store, and its sender rejoined it.
func (h *Hub) fly(m app.Message, delta int) {
	if v, ok := h.rooms.Load(m.Room); ok {
		v.(*room).seq.Fly(m, delta)
	}
}

// resync catches every room of this node up from the store: the bus says it may have lost events.
func (h *Hub) resync() {
	h.rooms.Range(func(_, v any) bool {
		v.(*room).seq.Resync()
		return true
	})
}
