// Package chat is the hub: who is connected, which rooms they are in, and how a message goes from its
// sender to the store, the bus and every other connection. It knows no WebSocket library: a client is an
// identity and a bounded queue over a Conn.
package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

// MessageStore is the storage the hub needs.
type MessageStore interface {
	// AppendMessage stores m as the next message of its room and returns it with its ID, once durable.
	AppendMessage(ctx context.Context, m app.Message) (app.Message, error)
}

// ErrShuttingDown is returned by Register once Shutdown has begun.
var ErrShuttingDown = errors.New("chat: shutting down")

// Options configures a Hub. Zero durations and sizes are not valid; config.Load supplies defaults.
type Options struct {
	Store           MessageStore
	Bus             bus.Bus
	Log             *slog.Logger
	Now             func() time.Time
	MaxMessageBytes int
	QueueBytes      int
	PingInterval    time.Duration
	PongWait        time.Duration
}

// Hub routes messages between clients. It is safe for concurrent use.
type Hub struct {
	opts   Options
	log    *slog.Logger
	nodeID string
	seq    atomic.Uint64
	stats  Stats

	// clients is the registry of live connections by Client.ID.
	clients sync.Map
	// rooms maps a room name to its *room; rooms are created on first use and kept.
	rooms sync.Map

	mu       sync.Mutex
	closing  bool
	sessions sync.WaitGroup
}

type room struct {
	name    string
	members members
	// sendMu makes "store, then publish" one step per room, so that messages reach every socket in the
	// order of their ids.
	sendMu sync.Mutex
}

// New returns a hub subscribed to opts.Bus.
func New(opts Options) *Hub {
	var node [4]byte
	_, _ = rand.Read(node[:]) // crypto/rand.Read never fails on supported platforms
	h := &Hub{opts: opts, log: opts.Log, nodeID: hex.EncodeToString(node[:])}
	opts.Bus.Subscribe(h.deliver)
	return h
}

// Stats returns the hub's counters; they are read without locks and safe to read at any time.
func (h *Hub) Stats() *Stats { return &h.stats }

// Register adds a connection for user, joins it to the default room and queues its welcome frame.
// The caller must call Unregister when the connection ends.
func (h *Hub) Register(user app.Identity, conn Conn) (*Client, error) {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil, ErrShuttingDown
	}
	h.sessions.Add(1)
	h.mu.Unlock()

	seq := h.seq.Add(1)
	c := &Client{
		ID:       h.nodeID + "-" + strconv.FormatUint(seq, 10),
		User:     user,
		seq:      seq,
		conn:     conn,
		hub:      h,
		maxQueue: h.opts.QueueBytes,
		rooms:    map[string]struct{}{app.DefaultRoom: {}},
	}
	h.clients.Store(c.ID, c)
	h.stats.Connections.Add(1)
	c.enqueue(app.EncodeWelcome(author(user), c.roomNames()))
	h.room(app.DefaultRoom).members.add(c)
	return c, nil
}

// Unregister removes c from its rooms and the registry.
func (h *Hub) Unregister(c *Client) {
	if _, loaded := h.clients.LoadAndDelete(c.ID); !loaded {
		return
	}
	for _, name := range c.roomNames() {
		if r, ok := h.rooms.Load(name); ok {
			r.(*room).members.remove(c)
		}
	}
	h.stats.Connections.Add(-1)
	h.sessions.Done()
}

// Receive handles one text frame from c. Refused frames get an error frame; nothing here closes c.
func (h *Hub) Receive(ctx context.Context, c *Client, data []byte) {
	in, err := app.DecodeInbound(data)
	if err != nil {
		h.refuse(c, err, "")
		return
	}
	switch in.Type {
	case app.FrameMessage:
		h.send(ctx, c, in)
	case app.FramePing:
		c.enqueue(app.PongFrame)
	case "":
		h.refuse(c, app.Errorf(app.CodeUnknownType, "type is required"), in.ID)
	default:
		h.refuse(c, app.Errorf(app.CodeUnknownType, "unknown frame type %q", in.Type), in.ID)
	}
}

// CountBadFrame counts a frame the transport refused before it reached the hub (binary, too large).
func (h *Hub) CountBadFrame(code string) { h.stats.badFrame(code) }

func (h *Hub) refuse(c *Client, err error, clientID string) {
	var e *app.Error
	if !errors.As(err, &e) {
		e = app.Errorf(app.CodeInternal, "internal error")
	}
	h.stats.badFrame(e.Code)
	c.enqueue(app.EncodeError(e.Code, e.Message, clientID))
}

func (h *Hub) send(ctx context.Context, c *Client, in app.Inbound) {
	if in.Room == "" {
		in.Room = app.DefaultRoom
	}
	switch {
	case strings.TrimSpace(in.Text) == "":
		h.refuse(c, app.Errorf(app.CodeEmptyText, "text is empty"), in.ID)
		return
	case len(in.Text) > h.opts.MaxMessageBytes:
		h.refuse(c, app.Errorf(app.CodeTooLong, "text is %d bytes, over the limit of %d", len(in.Text), h.opts.MaxMessageBytes), in.ID)
		return
	case !c.inRoom(in.Room):
		h.refuse(c, app.Errorf(app.CodeNotJoined, "not in room %q", in.Room), in.ID)
		return
	}
	h.stats.MessagesReceived.Add(1)
	h.log.Info("message received", "conn", c.ID, "user", c.User.UserID, "name", c.User.Name, "room", in.Room, "bytes", len(in.Text))

	object, err := h.publish(ctx, c, app.Message{
		Room:     in.Room,
		From:     author(c.User),
		Text:     in.Text,
		At:       h.opts.Now().UTC().Truncate(time.Millisecond),
		ClientID: in.ID,
	})
	if err != nil {
		h.log.Error("store message", "conn", c.ID, "room", in.Room, "err", err)
		c.enqueue(app.EncodeError(app.CodeInternal, "the message could not be stored; send it again", in.ID))
		return
	}
	c.enqueue(app.EncodeAck(in.ID, object))
}

// publish stores m and hands its frame to the bus, returning the stored message's JSON for the ack.
// A bus failure is logged, not returned: the message is durable, so it is acknowledged.
func (h *Hub) publish(ctx context.Context, c *Client, m app.Message) ([]byte, error) {
	r := h.room(m.Room)
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	stored, err := h.opts.Store.AppendMessage(ctx, m)
	if err != nil {
		return nil, err
	}
	frame, object, err := app.EncodeMessage(stored)
	if err != nil {
		return nil, err
	}
	if err := h.opts.Bus.Publish(ctx, bus.Event{Room: m.Room, Payload: frame, Skip: c.ID}); err != nil {
		h.log.Error("publish message", "room", m.Room, "id", stored.ID, "err", err)
	}
	return object, nil
}

// deliver is the bus handler: it queues ev's frame, the same bytes, on every local member of its room.
func (h *Hub) deliver(ev bus.Event) {
	v, ok := h.rooms.Load(ev.Room)
	if !ok {
		return
	}
	var n int64
	v.(*room).members.each(func(c *Client) {
		if c.ID != ev.Skip && c.enqueue(ev.Payload) {
			n++
		}
	})
	h.stats.Deliveries.Add(n)
}

func (h *Hub) room(name string) *room {
	if v, ok := h.rooms.Load(name); ok {
		return v.(*room)
	}
	v, _ := h.rooms.LoadOrStore(name, &room{name: name})
	return v.(*room)
}

// Run pings every client each PingInterval and aborts those silent for longer than PongWait, until ctx
// ends. One loop serves all clients so that an idle connection costs no timer and no goroutine.
func (h *Hub) Run(ctx context.Context) {
	t := time.NewTicker(h.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Real time, not opts.Now: LastRead comes from the wall clock of the socket.
			deadline := time.Now().Add(-h.opts.PongWait)
			h.clients.Range(func(_, v any) bool {
				c := v.(*Client)
				if c.conn.LastRead().Before(deadline) {
					h.log.Info("closing silent connection", "conn", c.ID, "user", c.User.UserID)
					c.conn.Abort()
				} else {
					c.requestPing()
				}
				return true
			})
		}
	}
}

// Shutdown refuses new clients, closes every client with code (after what is already queued) and waits
// until all have unregistered or ctx ends.
func (h *Hub) Shutdown(ctx context.Context, code int, reason string) error {
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	h.clients.Range(func(_, v any) bool {
		v.(*Client).Close(code, reason)
		return true
	})
	done := make(chan struct{})
	go func() {
		h.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		h.clients.Range(func(_, v any) bool {
			v.(*Client).conn.Abort()
			return true
		})
		return fmt.Errorf("chat: shutdown: %w", ctx.Err())
	}
}

func author(u app.Identity) app.Author { return app.Author{ID: u.UserID, Name: u.Name} }
