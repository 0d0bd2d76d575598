package chat

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/commit"
)

// Change asks for a change to a message: an edit (Text is the new text), a deletion, or a reaction added
// or taken back (Text is the emoji).
type Change struct {
	Kind     string
	Room     string
	Message  int64
	Text     string
	ClientID string
}

// newChange checks that user may make ch, and returns it as the entry of the room's log that makes it:
// the author edits a message, the author or the room's owner deletes it, and anyone who sees the room
// reacts; a tombstone takes no change.
func (h *Hub) newChange(ctx context.Context, user app.Identity, ch Change) (app.Message, error) {
	if err := checkRoom(ch.Room); err != nil {
		return app.Message{}, err
	}
	switch ch.Kind {
	case app.ChangeEdit:
		if err := h.checkText(ch.Text); err != nil {
			return app.Message{}, err
		}
	case app.ChangeReact, app.ChangeUnreact:
		if !slices.Contains(app.Emoji, ch.Text) {
			return app.Message{}, app.Errorf(app.CodeInvalid, "emoji must be one of %s", strings.Join(app.Emoji, " "))
		}
	case app.ChangeDelete:
		ch.Text = ""
	}
	if len(ch.ClientID) > app.MaxClientIDBytes {
		return app.Message{}, app.Errorf(app.CodeInvalid, "id must be at most %d bytes", app.MaxClientIDBytes)
	}
	room, err := h.access.Open(ctx, user.UserID, ch.Room)
	if err != nil {
		return app.Message{}, err
	}
	target, err := h.message(ctx, ch.Room, ch.Message)
	if err != nil {
		return app.Message{}, err
	}
	switch {
	case ch.Kind == app.ChangeEdit && target.From.ID != user.UserID:
		return app.Message{}, app.Errorf(app.CodeForbidden, "only its author edits a message")
	case ch.Kind == app.ChangeDelete && target.From.ID != user.UserID && room.Owner != user.UserID:
		return app.Message{}, app.Errorf(app.CodeForbidden, "only its author, or the owner of #%s, deletes a message", ch.Room)
	}
	return app.Message{Room: ch.Room, From: author(user), Kind: ch.Kind, TargetID: ch.Message, Text: ch.Text,
		At: h.now(), ClientID: ch.ClientID}, nil
}

// sameEntry refuses stored, what the store answered for sent, when it is not the same request: a client id
// names one entry of its user's, and one used before for a message or another change is no repeat of this.
func sameEntry(sent, stored app.Message) error {
	if stored.Kind != sent.Kind || stored.TargetID != sent.TargetID {
		return app.Errorf(app.CodeConflict, "id %q names another message or change of yours: give each its own", sent.ClientID)
	}
	return nil
}

// message returns the message id of room, or a not_found error when there is none, or it was deleted.
func (h *Hub) message(ctx context.Context, room string, id int64) (app.Message, error) {
	if id < 1 {
		return app.Message{}, app.Errorf(app.CodeInvalid, "message must be a message id (a whole number from 1)")
	}
	msgs, err := h.opts.Store.Messages(ctx, room, app.MessageQuery{After: id - 1, Before: id + 1, Limit: 1})
	if err != nil {
		return app.Message{}, fmt.Errorf("chat: message %d of %s: %w", id, room, err)
	}
	if len(msgs) == 0 || msgs[0].Kind != "" {
		return app.Message{}, app.Errorf(app.CodeNotFound, "no message %d in #%s", id, room)
	}
	if msgs[0].Deleted {
		return app.Message{}, app.Errorf(app.CodeNotFound, "message %d of #%s was deleted", id, room)
	}
	return msgs[0], nil
}

// Apply makes a change on behalf of user, as the REST routes do, and returns the message in its new state,
// as user sees it. The change goes to every connection of the room, the user's own included.
func (h *Hub) Apply(ctx context.Context, user app.Identity, ch Change) (app.Message, error) {
	// The budget first, as for a post: a flood of changes must not buy the store's reads.
	if ok, wait := h.budgets.Take(user.UserID, h.opts.Now()); !ok {
		return app.Message{}, app.Limited(app.CodeRateLimited, wait, "over %g frames per second, all your connections together", h.opts.RateLimit)
	}
	entry, err := h.newChange(ctx, user, ch)
	if err != nil {
		return app.Message{}, err
	}
	res, err := h.commit(ctx, entry)
	if err == nil {
		err = res.Err
	}
	if err == nil {
		err = sameEntry(entry, res.Msg)
	}
	if err != nil {
		return app.Message{}, err
	}
	if res.Msg.Target == nil {
		return app.Message{}, fmt.Errorf("chat: %s of %d in %s: no message read back", ch.Kind, ch.Message, ch.Room)
	}
	return res.Msg.Target.ShownTo(user.UserID), nil
}

// change handles a change frame (edit, delete, react, unreact) of c: like a message, it is answered with
// an ack once stored and published, and the room's other connections get a change frame.
func (h *Hub) change(ctx context.Context, c *Client, in app.Inbound) error {
	ch := Change{Kind: in.Type, Room: in.Room, Text: in.Text, ClientID: in.ID}
	if in.Type == app.FrameReact || in.Type == app.FrameUnreact {
		ch.Text = in.Emoji
	}
	if in.Message == nil {
		return app.Errorf(app.CodeInvalid, "message is required: the id of the message to change")
	}
	ch.Message = *in.Message
	if ch.Room == "" {
		ch.Room = app.DefaultRoom
	}
	if err := checkRoom(ch.Room); err != nil {
		return err
	}
	if !c.inRoom(ch.Room) {
		return app.Errorf(app.CodeNotJoined, "not in room %q; join it first", ch.Room)
	}
	entry, err := h.newChange(ctx, c.User, ch)
	if err != nil {
		return err
	}
	c.expectAnswer()
	if entry.ClientID == "" {
		entry.ClientID = h.ownClientID() // found in the store by it, as a message is (see send)
	}
	answer := func(res commit.Result) {
		if res.Err != nil {
			h.log.Error("store change", "conn", c.ID, "room", entry.Room, "err", res.Err)
			c.answer(app.EncodeError(app.CodeInternal, "the change could not be stored; send it again", in.ID, 0))
			return
		}
		if err := sameEntry(entry, res.Msg); err != nil {
			c.answer(app.EncodeError(app.CodeConflict, err.Error(), in.ID, 0))
			return
		}
		c.answer(app.EncodeChangeAck(entry.Kind, in.ID, res.Object))
	}
	if err := h.pipe.Submit(ctx, &commit.Request{Msg: entry, Conn: c.ID, Answer: answer}); err != nil {
		c.answer(nil)
		return err
	}
	return nil
}
