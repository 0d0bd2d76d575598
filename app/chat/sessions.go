package chat

import (
	"context"
	"encoding/json"
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

// endedSessions is the payload of the bus event that tells every node that sessions ended.
type endedSessions struct {
	Ended []string `json:"ended"`
}

func decodeEnded(payload []byte) []string {
	var e endedSessions
	if json.Unmarshal(payload, &e) != nil {
		return nil
	}
	return e.Ended
}

// EndSessions closes the connections of sessions that just ended (a log out), on this node at once and on
// the others when the bus brings them the news: each gets a session_ended error frame, then close 4001.
// Should the bus lose it, the relay asks every node to catch up once it works again, and the nodes then
// ask the store which of their connections' sessions still exist (checkSessions).
func (h *Hub) EndSessions(ids ...string) {
	if len(ids) == 0 {
		return
	}
	h.closeSessions(ids)
	payload, _ := json.Marshal(endedSessions{Ended: ids}) // a struct of strings always encodes
	h.relay.send(bus.Event{Node: h.opts.NodeID, Sent: time.Now().UnixNano(), Payload: payload})
}

// closeSessions closes this node's connections of the sessions ids.
func (h *Hub) closeSessions(ids []string) {
	ended := make(map[string]bool, len(ids))
	for _, id := range ids {
		ended[id] = true
	}
	h.clients.Range(func(_, v any) bool {
		if c := v.(*Client); ended[c.User.Session] {
			c.enqueue(app.EncodeError(app.CodeSessionEnded, "this session was logged out: log in again", "", 0))
			c.Close(CloseUnauthorized, "session ended")
		}
		return true
	})
}

// checkSessions asks Run to close the connections of sessions that no longer exist; it never blocks.
func (h *Hub) checkSessions() {
	if h.opts.Sessions == nil {
		return
	}
	select {
	case h.sessionCheck <- struct{}{}:
	default: // one is already asked for
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
