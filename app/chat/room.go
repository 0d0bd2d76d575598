package chat

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/causerie/causerie/app"
)

// room is one room on this node: its local connections, and who they belong to. A room is created when
// a connection joins it and removed when the last one leaves, so rooms cost nothing once empty.
type room struct {
	name    string
	members members
	seq     sequencer

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
// it must not wait on I/O (it queues, see Hub.announce).
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
	slices.SortFunc(list, func(a, b app.Author) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return list
}

// online returns the number of users present.
func (r *room) online() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.users)
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
