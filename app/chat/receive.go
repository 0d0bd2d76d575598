package chat

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/access"
	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/commit"
	"github.com/causerie/causerie/app/presence"
)

// Receive handles one text frame from c. Refused frames get an error frame; nothing here closes c.
func (h *Hub) Receive(ctx context.Context, c *Client, data []byte) {
	in, err := app.DecodeInbound(data)
	if err == nil && in.Type == app.FramePing {
		if c.pingAllowed() {
			c.enqueue(app.PongFrame)
		}
		return
	}
	if ok, wait := h.budgets.Take(c.User.UserID, time.Now()); !ok {
		// One error per wait: answering every dropped frame would let a flood buy a frame back for each.
		if now := time.Now(); !now.Before(c.quietUntil) {
			c.quietUntil = now.Add(wait)
			h.refuse(c, app.Limited(app.CodeRateLimited, wait, "over %g frames per second, all your connections together: frames dropped until retry_after_ms", h.opts.RateLimit), in.ID)
		} else {
			h.stats.badFrame(app.CodeRateLimited)
		}
		return
	}
	if err != nil {
		h.refuse(c, err, in.ID)
		return
	}
	switch in.Type {
	case app.FrameMessage:
		err = h.send(ctx, c, in)
	case app.FrameJoin:
		err = h.joinFrame(ctx, c, in)
	case app.FrameLeave:
		err = h.leave(ctx, c, in)
	case app.FrameTyping:
		err = h.typing(c, in.Room)
	case app.FrameAuth:
		err = h.reauth(ctx, c, in)
	case app.FrameRead:
		err = h.read(ctx, c, in)
	case app.FrameEdit, app.FrameDelete, app.FrameReact, app.FrameUnreact:
		err = h.change(ctx, c, in)
	case "":
		err = app.Errorf(app.CodeUnknownType, "type is required")
	default:
		err = app.Errorf(app.CodeUnknownType, "unknown frame type %q", in.Type)
	}
	if err != nil {
		h.refuse(c, err, in.ID)
	}
}

// CountBadFrame counts a frame the transport refused before it reached the hub (binary, too large).
func (h *Hub) CountBadFrame(code string) { h.stats.badFrame(code) }

// refuse sends c an error frame, the one writer of them but for a stored message's (send's answer):
// clientID, when set, names the frame it answers. Errors that are not *app.Error are faults of ours:
// they are logged and the client gets a generic message. A code after which the connection cannot go on
// (app.CloseCode) closes it with that code.
func (h *Hub) refuse(c *Client, err error, clientID string) {
	var e *app.Error
	if !errors.As(err, &e) {
		h.log.Error("handle frame", "conn", c.ID, "err", err)
		e = app.Errorf(app.CodeInternal, "internal error; try again")
	}
	code := app.CloseCode(e.Code)
	if code == 0 { // the others end the connection, for what it is, not for a frame it sent
		h.stats.badFrame(e.Code)
	}
	c.enqueue(app.EncodeError(e.Code, e.Message, clientID, e.RetryAfter))
	if code != 0 {
		c.Close(code, e.Code)
	}
}

func (h *Hub) send(ctx context.Context, c *Client, in app.Inbound) error {
	if in.Room == "" {
		in.Room = app.DefaultRoom
	}
	if err := h.checkMessage(in.Room, in.Text); err != nil {
		return err
	}
	if !c.inRoom(in.Room) {
		return app.Errorf(app.CodeNotJoined, "not in room %q; join it first", in.Room)
	}
	msg := h.newMessage(c.User, in.Room, in.Text, in.ID)
	// The course logs each message; at debug, and checked first, so that at info it costs nothing.
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.Debug("message received", "conn", c.ID, "user", c.User.UserID, "name", c.User.Name, "room", in.Room, "bytes", len(in.Text))
	}
	// The ack (or the error) comes from the pipeline once the message is stored and published; meanwhile
	// this reader goes on with the connection's next frames.
	c.expectAnswer()
	if msg.ClientID == "" {
		// Every message of a connection is found in the store by its client id (see sequence.Room.Fly):
		// one the client did not name gets one of ours, which it never sees.
		msg.ClientID = h.ownClientID()
	}
	ackID := in.ID // msg.ClientID may be one of ours: the ack echoes the client's
	answer := func(res commit.Result) {
		if res.Err != nil {
			h.log.Error("store message", "conn", c.ID, "room", msg.Room, "err", res.Err)
			c.answer(app.EncodeError(app.CodeInternal, "the message could not be stored; send it again", ackID, 0))
			return
		}
		if err := sameEntry(msg, res.Msg); err != nil {
			c.answer(app.EncodeError(app.CodeConflict, err.Error(), ackID, 0))
			return
		}
		c.answer(app.EncodeMessageAck(ackID, res.Object))
	}
	if err := h.pipe.Submit(ctx, &commit.Request{Msg: msg, Conn: c.ID, Answer: answer}); err != nil {
		c.answer(nil)
		return err
	}
	return nil
}

// Post stores and delivers a message on behalf of user, as the REST publish route does: every connection
// in the room gets it, the user's own included. For a clientID the user already used, it returns the
// earlier message with created false and delivers nothing.
func (h *Hub) Post(ctx context.Context, user app.Identity, room, text, clientID string) (app.Message, bool, error) {
	if err := h.checkMessage(room, text); err != nil {
		return app.Message{}, false, err
	}
	if len(clientID) > app.MaxClientIDBytes {
		return app.Message{}, false, app.Errorf(app.CodeInvalid, "id must be at most %d bytes", app.MaxClientIDBytes)
	}
	if ok, wait := h.budgets.Take(user.UserID, time.Now()); !ok {
		return app.Message{}, false, app.Limited(app.CodeRateLimited, wait, "over %g messages per second, all your connections together", h.opts.RateLimit)
	}
	if _, err := h.access.Open(ctx, user.UserID, room); err != nil {
		return app.Message{}, false, err
	}
	msg := h.newMessage(user, room, text, clientID)
	res, err := h.commit(ctx, msg)
	if err == nil {
		err = res.Err
	}
	if err == nil {
		err = sameEntry(msg, res.Msg)
	}
	if err != nil {
		return app.Message{}, false, err
	}
	return res.Msg, res.Created, nil
}

// commit stores msg and publishes it, through the pipeline, and returns once it is done, or ctx is.
func (h *Hub) commit(ctx context.Context, msg app.Message) (commit.Result, error) {
	done := make(chan commit.Result, 1)
	req := &commit.Request{Msg: msg, Answer: func(res commit.Result) { done <- res }}
	if err := h.pipe.Submit(ctx, req); err != nil {
		return commit.Result{}, err
	}
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done(): // done is buffered: the pipeline's late answer does not block it
		return commit.Result{}, ctx.Err()
	}
}

// now is when a message or an event is stored, as it goes on the wire: to the millisecond.
func (h *Hub) now() time.Time { return h.opts.Now().UTC().Truncate(time.Millisecond) }

func (h *Hub) checkText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return app.Errorf(app.CodeEmptyText, "text is empty")
	case len(text) > h.opts.MaxMessageBytes:
		return app.Errorf(app.CodeTooLong, "text is %d bytes, over the limit of %d", len(text), h.opts.MaxMessageBytes)
	}
	return nil
}

func checkRoom(name string) error {
	if !app.ValidRoom(name) {
		return app.Errorf(app.CodeInvalidRoom, "room name must be 1 to %d characters of a-z, 0-9, - and _", app.MaxRoomName)
	}
	return nil
}

// checkMessage refuses a message whose text or room cannot be.
func (h *Hub) checkMessage(room, text string) error {
	if err := h.checkText(text); err != nil {
		return err
	}
	return checkRoom(room)
}

// newMessage returns a message of user to room, ready to store, once checkMessage passed it and access
// let user in the room (by its join, for a connection).
func (h *Hub) newMessage(user app.Identity, room, text, clientID string) app.Message {
	h.stats.MessagesReceived.Add(1)
	return app.Message{
		Room:     room,
		From:     author(user),
		Text:     text,
		At:       h.now(),
		ClientID: clientID,
	}
}

// ownClientID returns a client id for a message whose client gave none: random, so that no other
// message, of any node or process, has it, and starting with "~", which no client id is made to.
func (h *Hub) ownClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "~" + base64.RawURLEncoding.EncodeToString(b[:])
}

// joinTimeout bounds a join: its backlog read from the store and its presence.
const joinTimeout = 10 * time.Second

// join puts c in room. It queues the ack (for a join frame: ack is set, reqID is the frame's id), the
// presence, then the backlog (history, or the replay after since), then the room's live events. c joins
// the room before its backlog is read and holds live events meanwhile, so nothing sent during the read is
// lost, and it drops those the backlog already had.
func (h *Hub) join(ctx context.Context, c *Client, name string, since *int64, ack bool, reqID string) (app.Room, error) {
	if err := checkRoom(name); err != nil {
		return app.Room{}, err
	}
	// A store or a directory that hangs must not hold the connection's reader, or a shutdown, for ever.
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	if since != nil && *since < 0 {
		return app.Room{}, app.Errorf(app.CodeInvalid, "since must be a message id, 0 or more")
	}
	room, err := h.access.Open(ctx, c.User.UserID, name)
	if err != nil {
		return app.Room{}, err
	}
	added, err := c.join(name, h.opts.MaxRooms)
	if err != nil {
		return app.Room{}, err
	}
	var frames [][]byte
	if ack {
		frames = append(frames, app.EncodeAck(app.Ack{For: app.FrameJoin, ID: reqID, Room: name}))
	}
	if !added {
		c.enqueue(frames...)
		return room, nil
	}
	r, recorded := h.enterRoom(c, name)
	// Not under the room's lock: the joiner's list shows the joiner in the directory, as the other nodes
	// will see it, while the room's other joins go on.
	presence.Await(ctx, recorded)
	frames = append(frames, app.EncodePresence(name, h.presence.List(ctx, name, r.userList())))
	err = r.seq.Begin(ctx)
	var backlog [][]byte
	var last int64
	if err == nil {
		backlog, last, err = h.backlog(ctx, name, since, c.User.UserID)
	}
	if err != nil {
		h.log.Error("read backlog", "conn", c.ID, "room", name, "err", err)
		c.leave(name)
		h.removeFromRoom(c, name)
		return app.Room{}, app.Errorf(app.CodeInternal, "could not read the messages of %q; join it again", name)
	}
	if room.Kind != app.RoomPublic {
		// A removal stored between the check above and the room's base would never reach this connection
		// as an event: ask again, now that any later one will.
		if member, err := h.opts.Store.IsMember(ctx, name, c.User.UserID); err != nil || !member {
			c.leave(name)
			h.removeFromRoom(c, name)
			if err != nil {
				return app.Room{}, fmt.Errorf("chat: join %s: %w", name, err)
			}
			return app.Room{}, access.NotFound(name)
		}
	}
	if !c.release(name, append(frames, backlog...), last) {
		return app.Room{}, access.NotFound(name) // removed while joining
	}
	return room, nil
}

// joinFrame joins the room a join frame names; a public room goes into the user's room list, which the
// user's connections then get.
func (h *Hub) joinFrame(ctx context.Context, c *Client, in app.Inbound) error {
	room, err := h.join(ctx, c, in.Room, in.Since, true, in.ID)
	if err != nil {
		return err
	}
	listed, err := h.remember(ctx, c.User.UserID, room)
	if err != nil {
		// The connection is in the room; only the list missed it, which the next join mends.
		h.log.Error("add to room list", "conn", c.ID, "room", in.Room, "err", err)
	}
	if listed {
		h.pushRooms(ctx, c.User.UserID, "")
	}
	return nil
}

// backlog returns the frames that bring a joining client up to date in room, and the id of the last
// message the client will then have seen.
// Messages are shown to viewer: its own reactions are marked.
func (h *Hub) backlog(ctx context.Context, room string, since *int64, viewer int64) ([][]byte, int64, error) {
	if since == nil {
		msgs, err := h.opts.Store.Messages(ctx, room, app.MessageQuery{Limit: h.opts.HistoryLimit, Latest: true})
		if err != nil {
			return nil, 0, err
		}
		for i := range msgs {
			msgs[i] = msgs[i].ShownTo(viewer)
		}
		frame, err := app.EncodeHistory(room, msgs)
		if err != nil {
			return nil, 0, err
		}
		var last int64
		if len(msgs) > 0 {
			last = msgs[len(msgs)-1].ID
		}
		return [][]byte{frame}, last, nil
	}
	var last int64
	// The replay is the log: changes after since come again, those to older messages too, each with its
	// message as it is now.
	msgs, err := h.opts.Store.Messages(ctx, room, app.MessageQuery{After: *since, Limit: h.opts.ResumeMax + 1, Latest: true, Log: true})
	if err != nil {
		return nil, 0, err
	}
	complete := len(msgs) <= h.opts.ResumeMax
	if !complete {
		msgs = msgs[1:]
	}
	// The client has seen everything up to since, which may be ahead of what this node has delivered
	// (it saw it on another node): the floor must cover it, or those messages would come again. Not past
	// the room's newest message, though: since may be ahead of the room after a database reset.
	head, err := h.opts.Store.LastID(ctx, room)
	if err != nil {
		return nil, 0, err
	}
	last = min(*since, head)
	frames := make([][]byte, 0, len(msgs)+1)
	for _, m := range msgs {
		frame, _, err := app.EncodeMessage(m.ShownTo(viewer))
		if err != nil {
			return nil, 0, err
		}
		frames = append(frames, frame)
		last = m.ID
	}
	return append(frames, app.EncodeResumed(room, complete)), last, nil
}

// leave takes c out of a room it joined. A public room also leaves the user's room list, which the
// user's connections then get; a private room stays in it (leaving one is DELETE on its members).
func (h *Hub) leave(ctx context.Context, c *Client, in app.Inbound) error {
	if err := checkRoom(in.Room); err != nil {
		return err
	}
	if !c.leave(in.Room) {
		return app.Errorf(app.CodeNotJoined, "not in room %q", in.Room)
	}
	h.removeFromRoom(c, in.Room)
	c.enqueue(app.EncodeAck(app.Ack{For: app.FrameLeave, ID: in.ID, Room: in.Room}))
	if r, err := h.access.Open(ctx, c.User.UserID, in.Room); err == nil && r.Kind == app.RoomPublic {
		removed, err := h.opts.Store.RemoveMember(ctx, in.Room, c.User.UserID)
		if err != nil {
			h.log.Error("remove from room list", "conn", c.ID, "room", in.Room, "err", err)
		}
		if removed {
			h.pushRooms(ctx, c.User.UserID, "")
		}
	}
	return nil
}

// typing relays that c's user is typing in room to the room's other users, at most once per typingEvery;
// the rest are dropped quietly, as they carry nothing the next one will not.
func (h *Hub) typing(c *Client, name string) error {
	if err := checkRoom(name); err != nil {
		return err
	}
	if !c.inRoom(name) {
		return app.Errorf(app.CodeNotJoined, "not in room %q", name)
	}
	if v, ok := h.rooms.Load(name); ok && v.(*room).typingAllowed(c.User.UserID, h.opts.Now()) {
		h.publishEvent(app.FrameTyping, name, author(c.User), bus.Event{SkipUser: c.User.UserID})
	}
	return nil
}

// reauth replaces the expiry of c's token with that of a fresh token of the same session: a connection
// belongs to one session, which a log out closes.
func (h *Hub) reauth(ctx context.Context, c *Client, in app.Inbound) error {
	id, err := h.opts.Tokens.Verify(ctx, in.Token)
	if err != nil {
		return err
	}
	if id.UserID != c.User.UserID || id.Session != c.User.Session {
		return app.Errorf(app.CodeUnauthorized, "the token is for another session: reconnect with it")
	}
	c.expiry.Reset(time.Until(id.ExpiresAt))
	c.enqueue(app.EncodeAck(app.Ack{For: app.FrameAuth, ID: in.ID, ExpiresAt: &id.ExpiresAt}))
	return nil
}
