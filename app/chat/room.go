package chat

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/causerie/causerie/app"
)

// room is one room on this node: its local connections, and who they belong to.
type room struct {
	name    string
	members members

	// mu guards users.
	mu    sync.Mutex
	users map[int64]*presence
}

// presence is one user in a room: a user with several connections there is present once.
type presence struct {
	author     app.Author
	conns      int
	lastTyping time.Time
}

// addUser counts one more connection of a and reports whether it is a's first in the room.
func (r *room) addUser(a app.Author) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == nil {
		r.users = make(map[int64]*presence)
	}
	p, ok := r.users[a.ID]
	if !ok {
		p = &presence{author: a}
		r.users[a.ID] = p
	}
	p.conns++
	return p.conns == 1
}

// removeUser counts one connection of user id less and reports whether it was the last.
func (r *room) removeUser(id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.users[id]
	if !ok {
		return false
	}
	if p.conns--; p.conns > 0 {
		return false
	}
	delete(r.users, id)
	return true
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
