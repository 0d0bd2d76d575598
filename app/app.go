// Package app is Causerie's vocabulary: the users, messages and errors that every other package speaks in.
// It imports nothing of the project, so adapters (store, bus, handlers) can depend on it without depending
// on each other.
package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// DefaultRoom is the room a connection starts in when it names none.
const DefaultRoom = "general"

// UserChannel is the name the bus carries a user's own events under (their room list, their read state):
// "~" and the user id, which no room name can be.
func UserChannel(user int64) string { return "~" + strconv.FormatInt(user, 10) }

// ChannelUser returns the user of a name from UserChannel; ok is false for a room's name.
func ChannelUser(name string) (user int64, ok bool) {
	if len(name) < 2 || name[0] != '~' {
		return 0, false
	}
	user, err := strconv.ParseInt(name[1:], 10, 64)
	return user, err == nil
}

// MaxRoomName is the longest room name.
const MaxRoomName = 64

// ValidRoom reports whether name is 1 to MaxRoomName characters of a-z, 0-9, '-' and '_'.
func ValidRoom(name string) bool {
	if name == "" || len(name) > MaxRoomName {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// MessageQuery selects messages of one room with After < id < Before (a zero bound is no bound).
type MessageQuery struct {
	After, Before int64
	// Limit caps the result. Latest picks the newest Limit messages of the range instead of the oldest.
	Limit  int
	Latest bool
	// Log asks for every entry of the room's log, changes to messages included (each with its message in
	// its current state), as live delivery and resume give them; without it, what a history shows: the
	// messages and member events, in their current state.
	Log bool
}

// RoomInfo is a room as listed to clients.
type RoomInfo struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Online int    `json:"online"`
}

// The kinds of room: anyone may join a public room; only its members see a private room or a direct
// message (a DM, between two users).
const (
	RoomPublic  = "public"
	RoomPrivate = "private"
	RoomDM      = "dm"
)

// Room is a room as stored: its kind, its owner (who created it; 0 for general, DMs and rooms made before
// rooms had owners) and the id of its newest message.
type Room struct {
	Name   string
	Kind   string
	Owner  int64
	LastID int64
}

// MemberRoom is a room in a user's room list, with how many of its messages the user has not read.
type MemberRoom struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	LastID int64  `json:"last_id"`
	Unread int64  `json:"unread"`
	// ReadUpto is the id of the last entry of the room's log the user has read.
	ReadUpto int64 `json:"read_upto"`
	// With is, for a DM, the other user.
	With *Author `json:"with,omitempty"`
	// Owner is set when the user owns the room: they add and remove its members, and delete anyone's
	// messages in it.
	Owner bool `json:"owner,omitempty"`
}

// RoomList is a user's room list, by name. Version moves on with every change of the user's memberships:
// of two lists, the one of the larger version is the newer.
type RoomList struct {
	Rooms   []MemberRoom `json:"rooms"`
	Version int64        `json:"version"`
}

// RoomUser is a user in a room: presence reports, as these, the users who left with a node that stopped.
type RoomUser struct {
	Room string
	User Author
}

// Refreshed is what a node learns when it renews its presence: the users who left with nodes that
// stopped (Claimed counts those nodes), and whether it had itself been given up for dead (Lost).
type Refreshed struct {
	Gone    []RoomUser
	Claimed int
	Lost    bool
}

// User is a registered account. PasswordHash never leaves the server.
type User struct {
	ID           int64     `json:"id"`
	Email        string    `json:"email"`
	Name         string    `json:"name"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"-"`
}

// Identity is who a verified token speaks for.
type Identity struct {
	UserID int64
	Name   string
	// Session is the login the token belongs to (its jti), and Generation how many refreshes it is into
	// it: see Session.
	Session    string
	Generation int64
	ExpiresAt  time.Time
}

// Spent is what a user spends of the limits per user: connections open, and messages sent over some
// interval.
type Spent struct {
	Conns int
	Sent  int
}

// Session is one login. Every token issued for it names it; it ends at ExpiresAt, or when its user
// logs out (the store then forgets it). A refresh moves Generation on: the tokens of the generation
// before stay valid until PreviousUntil, those of earlier ones no longer.
type Session struct {
	ID            string
	UserID        int64
	Generation    int64
	PreviousUntil time.Time
	CreatedAt     time.Time
	ExpiresAt     time.Time
	// UserName is the user's name as the store has it, read with the session.
	UserName string
}

// Author is how a message names its sender on the wire.
type Author struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Message is one stored chat message. ID orders the messages of Room: a later message has a larger ID.
// ClientID is the sender's own id for the message, if it gave one.
type Message struct {
	ID       int64     `json:"id"`
	Room     string    `json:"room"`
	From     Author    `json:"from"`
	Text     string    `json:"text"`
	At       time.Time `json:"at"`
	ClientID string    `json:"-"`
	// Kind is empty for a message. A member event (MemberAdded, MemberRemoved, MemberLeft) has no text:
	// From is who did it and User whom it was done to.
	Kind string  `json:"kind,omitempty"`
	User *Author `json:"user,omitempty"`
	// A message's current state: when it was last edited, whether it was deleted (a tombstone: no text),
	// and its reactions.
	EditedAt  *time.Time `json:"edited_at,omitempty"`
	Deleted   bool       `json:"deleted,omitempty"`
	Reactions []Reaction `json:"reactions,omitempty"`
	// A change (ChangeEdit, ChangeDelete, ChangeReact, ChangeUnreact) is made by From to message TargetID,
	// with Text the new text (an edit) or the emoji (a reaction). Target is that message in its state
	// once the change is made, as the store read it.
	TargetID int64    `json:"-"`
	Target   *Message `json:"-"`
}

// Reaction is one emoji on a message: how many users reacted with it, which, and whether the user a
// message is shown to is one of them (Me, nil when the message goes to many users at once).
type Reaction struct {
	Emoji string  `json:"emoji"`
	Count int     `json:"count"`
	Users []int64 `json:"users"`
	Me    *bool   `json:"me,omitempty"`
}

// The kinds of change to a message, each an entry of the room's log.
const (
	ChangeEdit    = "edit"
	ChangeDelete  = "delete"
	ChangeReact   = "react"
	ChangeUnreact = "unreact"
)

// IsChange reports whether kind is a change to a message rather than a message or a member event.
func IsChange(kind string) bool {
	switch kind {
	case ChangeEdit, ChangeDelete, ChangeReact, ChangeUnreact:
		return true
	}
	return false
}

// Emoji are the reactions a message can get: a small set, the same for every client, so that a reaction
// is one of a few keys (in a URL too) and no text can pass for one.
var Emoji = []string{"👍", "👎", "❤️", "😂", "😮", "😢", "🎉", "🙏", "👀", "🔥", "✅", "👏"}

// ShownTo returns m as user sees it: each reaction says whether user is among its users, and so does
// the message a change carries.
func (m Message) ShownTo(user int64) Message {
	if len(m.Reactions) > 0 {
		rs := make([]Reaction, len(m.Reactions))
		for i, r := range m.Reactions {
			me := slices.Contains(r.Users, user)
			r.Me = &me
			rs[i] = r
		}
		m.Reactions = rs
	}
	if m.Target != nil {
		t := m.Target.ShownTo(user)
		m.Target = &t
	}
	return m
}

// The kinds of member event in a room's log.
const (
	MemberAdded   = "member_added"
	MemberRemoved = "member_removed"
	MemberLeft    = "member_left"
)

// Appended is the outcome of storing one message.
type Appended struct {
	Message Message
	// Created is false when the message carried a ClientID its author had already used: nothing was
	// stored, and Message is the earlier message with that id.
	Created bool
	// Err refuses the message, which was not stored: a member event whose change was already made (the
	// same user added twice at once, from two nodes say).
	Err error
}

// TimeLayout is how times go on the wire: RFC 3339 in UTC with milliseconds, always three digits.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON writes At and EditedAt with TimeLayout; encoding/json's own layout drops trailing zeros. A
// change is written as its own object: its id, room, kind (change), who made it, when, and the message it
// changed, in its new state.
func (m Message) MarshalJSON() ([]byte, error) {
	at := m.At.UTC().Format(TimeLayout)
	if IsChange(m.Kind) {
		return json.Marshal(struct {
			ID      int64    `json:"id"`
			Room    string   `json:"room"`
			Change  string   `json:"change"`
			From    Author   `json:"from"`
			At      string   `json:"at"`
			Message *Message `json:"message,omitempty"`
		}{m.ID, m.Room, m.Kind, m.From, at, m.Target})
	}
	type plain Message
	var edited *string
	if m.EditedAt != nil {
		e := m.EditedAt.UTC().Format(TimeLayout)
		edited = &e
	}
	return json.Marshal(struct {
		plain
		At       string  `json:"at"`
		EditedAt *string `json:"edited_at,omitempty"`
	}{plain(m), at, edited})
}

// Error is an error a client may see: Code is stable and machine-readable, Message is for people.
// Anything that is not an *Error reaches clients as CodeInternal with a generic message.
type Error struct {
	Code    string
	Message string
	// RetryAfter, when set, is how long the client should wait before trying again (over a limit).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Limited returns an *Error for a request over a limit, to be tried again after retry.
func Limited(code string, retry time.Duration, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), RetryAfter: retry}
}

// ErrorCode returns the code of the *Error in err's chain, or CodeInternal when there is none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
