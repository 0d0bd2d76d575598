package chat

import (
	"context"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

// SessionChecker says which sessions still exist (the store).
type SessionChecker interface {
	LiveSessions(ctx context.Context, ids []string, now time.Time) (map[string]bool, error)
}

// sessionCheckTimeout bounds the store query that looks for ended sessions.
const sessionCheckTimeout = 5 * time.Second

// EndSessions closes the connections of sessions that just ended (a log out), on this node at once and on
// the others when the bus brings them the news: each gets a session_ended error frame, then close 4001.
// Should the bus lose it, the relay asks every node to catch up once it works again, and the nodes then
// ask the store which of their connections' sessions still exist (watchSessions), as they do every
// sessionCheckEvery anyway.
func (h *Hub) EndSessions(ids ...string) {
	if len(ids) == 0 {
		return
	}
	h.closeSessions(ids)
	h.relay.Send(bus.Event{Node: h.opts.NodeID, Sent: time.Now().UnixNano(), Payload: app.EncodeEndedSessions(ids)})
}

// endedMemory is how long a node remembers that a session ended: longer than a WebSocket handshake takes
// from the token's check to Register.
const endedMemory = 2 * time.Minute

// closeSessions closes this node's connections of the sessions ids, and remembers the ids for
// endedMemory: a connection whose session was checked before the news came, and that registers after it,
// is closed by Register.
func (h *Hub) closeSessions(ids []string) {
	now := time.Now()
	h.endedMu.Lock()
	for id, at := range h.ended {
		if now.Sub(at) > endedMemory {
			delete(h.ended, id)
		}
	}
	for _, id := range ids {
		h.ended[id] = now
	}
	h.endedMu.Unlock()
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	h.clients.Range(func(_, v any) bool {
		if c := v.(*Client); set[c.User.Session] {
			h.endSession(c)
		}
		return true
	})
}

// endedLately reports whether session ended within endedMemory, as far as this node heard.
func (h *Hub) endedLately(session string) bool {
	h.endedMu.Lock()
	defer h.endedMu.Unlock()
	_, ok := h.ended[session]
	return ok
}

func (h *Hub) endSession(c *Client) {
	h.refuse(c, app.Errorf(app.CodeSessionEnded, "this session has ended (logged out, or over SESSION_MAX): log in again"), "")
}

// checkSessions asks watchSessions to look for connections of ended sessions now; it never blocks.
func (h *Hub) checkSessions() {
	select {
	case h.sessionCheck <- struct{}{}:
	default: // one is already asked for
	}
}

// sessionCheckEvery is how often a node asks the store whether its connections' sessions still exist,
// news of the bus aside: it bounds how long a socket outlives a session whose news was lost (a node that
// stopped between the log out and its publication).
const sessionCheckEvery = time.Minute

// watchSessions closes the connections of sessions that no longer exist, every sessionCheckEvery and
// whenever checkSessions asks, until ctx ends. On a goroutine of its own, so that a slow store delays no
// ping.
func (h *Hub) watchSessions(ctx context.Context) {
	t := time.NewTicker(sessionCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.sessionCheck:
		}
		h.closeEndedSessions(ctx)
	}
}

// closeEndedSessions asks the store which sessions of this node's connections still exist, and closes
// the connections of the others.
func (h *Hub) closeEndedSessions(ctx context.Context) {
	seen := map[string]bool{}
	var ids []string
	h.clients.Range(func(_, v any) bool {
		if s := v.(*Client).User.Session; !seen[s] {
			seen[s] = true
			ids = append(ids, s)
		}
		return true
	})
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sessionCheckTimeout)
	defer cancel()
	live, err := h.opts.Sessions.LiveSessions(ctx, ids, h.opts.Now())
	if err != nil {
		h.log.Warn("sessions: look for ended sessions", "err", err)
		return
	}
	var ended []string
	for _, id := range ids {
		if !live[id] {
			ended = append(ended, id)
		}
	}
	if len(ended) > 0 {
		h.log.Info("sessions: closing the connections of sessions that ended", "sessions", len(ended))
		h.closeSessions(ended)
	}
}
