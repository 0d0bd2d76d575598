package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"
)

// Frame types on the WebSocket, both directions.
const (
	FrameWelcome = "welcome"
	FrameMessage = "message"
	FrameAck     = "ack"
	FrameError   = "error"
	FramePing    = "ping"
	FramePong    = "pong"
	FrameJoin    = "join"
	FrameLeave   = "leave"
	FrameTyping  = "typing"
	FrameAuth    = "auth"
	FrameHistory = "history"
	FrameResumed = "resumed"
	FramePresent = "presence"
	FrameJoined  = "joined"
	FrameLeft    = "left"
	FrameMember  = "member"
	// FrameChange carries a change to a message (an edit, a deletion, a reaction) with the message in its
	// new state; FrameEdit, FrameDelete, FrameReact and FrameUnreact ask for one.
	FrameChange  = "change"
	FrameEdit    = "edit"
	FrameDelete  = "delete"
	FrameReact   = "react"
	FrameUnreact = "unreact"
	// FrameRead says how far the user has read a room: from a client, to store it; from the server, to
	// every connection of the user, with the room's unread count.
	FrameRead = "read"
	// FrameRooms carries the user's room list, to every connection of the user, whenever it changes.
	FrameRooms = "rooms"
)

// MaxClientIDBytes caps the id a client may attach to a message.
const MaxClientIDBytes = 64

// Inbound is a frame from a client. A text frame that does not start with '{' is a message whose Text is
// the whole frame: that is what Postman and the course's page send.
type Inbound struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	ID    string `json:"id"`
	Room  string `json:"room"`
	Since *int64 `json:"since"`
	Token string `json:"token"`
	Upto  *int64 `json:"upto"`
	// Message names the message a change frame is about; Emoji is a reaction's.
	Message *int64 `json:"message"`
	Emoji   string `json:"emoji"`
}

// DecodeInbound parses one text frame. Errors are *Error with a frame error code.
func DecodeInbound(data []byte) (Inbound, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Inbound{Type: FrameMessage, Text: string(data)}, nil
	}
	var in Inbound
	if err := json.Unmarshal(trimmed, &in); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			// The object parsed: keep its id, if it has one, so the error frame can name it.
			var withID struct{ ID string }
			if json.Unmarshal(trimmed, &withID) != nil || len(withID.ID) > MaxClientIDBytes {
				withID.ID = "" // an error frame echoes no id the client may not send
			}
			return Inbound{ID: withID.ID}, Errorf(CodeInvalid, "field %q must be a %s", typeErr.Field, jsonKind(typeErr.Type.Kind()))
		}
		return Inbound{}, Errorf(CodeBadJSON, "frame is not a valid JSON object: %v", err)
	}
	if len(in.ID) > MaxClientIDBytes {
		return Inbound{}, Errorf(CodeInvalid, "id must be at most %d bytes", MaxClientIDBytes)
	}
	return in, nil
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Int64, reflect.Pointer:
		return "number"
	}
	return k.String()
}

// PongFrame is the answer to a ping frame; it never changes, so it is encoded once.
var PongFrame = []byte(`{"type":"pong"}`)

// EncodeMessage returns the message frame for m and m's JSON object alone, which EncodeAck reuses so
// that a message is marshalled once however many frames carry it.
func EncodeMessage(m Message) (frame, object []byte, err error) {
	object, err = json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encode message: %w", err)
	}
	prefix := messagePrefix
	switch {
	case IsChange(m.Kind):
		prefix = changePrefix
	case m.Kind != "":
		prefix = memberPrefix
	}
	frame = make([]byte, 0, len(object)+len(prefix))
	frame = append(frame, prefix...)
	frame = append(frame, object[1:]...)
	return frame, object, nil
}

// The openings of a message's frame and a member event's.
const (
	messagePrefix = `{"type":"message",`
	memberPrefix  = `{"type":"` + FrameMember + `",`
	changePrefix  = `{"type":"` + FrameChange + `",`
)

// DecodeMemberEvent returns the member event that frame, from EncodeMessage, carries; ok is false for
// any other frame, which it tells from the frame's first bytes without parsing it.
func DecodeMemberEvent(frame []byte) (ev Message, ok bool) {
	if !bytes.HasPrefix(frame, []byte(memberPrefix)) {
		return Message{}, false
	}
	if err := json.Unmarshal(frame, &ev); err != nil || ev.User == nil {
		return Message{}, false
	}
	return ev, true
}

// EncodeMessageAck returns the ack frame for a message the client sent with clientID; object is the
// message JSON from EncodeMessage.
func EncodeMessageAck(clientID string, object []byte) []byte {
	return encodeEntryAck(FrameMessage, "message", clientID, object)
}

// encodeEntryAck returns the ack of an entry of a room's log the client sent with clientID (a message, a
// change): for names the frame it answers, and key holds object, the entry's JSON from EncodeMessage.
func encodeEntryAck(forType, key, clientID string, object []byte) []byte {
	b := make([]byte, 0, len(object)+len(clientID)+64)
	b = append(b, `{"type":"ack","for":"`...)
	b = append(b, forType...)
	b = append(b, `",`...)
	if clientID != "" {
		b = append(b, `"id":`...)
		q, _ := json.Marshal(clientID) // a string always marshals
		b = append(b, q...)
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, `":`...)
	b = append(b, object...)
	return append(b, '}')
}

// EncodeChangeAck returns the ack frame for a change (edit, delete, react, unreact) the client asked for
// with clientID; object is the change's JSON from EncodeMessage.
func EncodeChangeAck(kind, clientID string, object []byte) []byte {
	return encodeEntryAck(kind, "change", clientID, object)
}

// EncodeError returns an error frame; clientID, when set, names the client frame it answers, and retry,
// when over a limit, says how long to wait (retry_after_ms).
func EncodeError(code, message, clientID string, retry time.Duration) []byte {
	var retryMs int64
	if retry > 0 {
		retryMs = max(retry.Milliseconds(), 1)
	}
	// Structs of strings and numbers always marshal, so the error is impossible here and below.
	b, _ := json.Marshal(struct {
		Type       string `json:"type"`
		Code       string `json:"code"`
		Message    string `json:"message"`
		ID         string `json:"id,omitempty"`
		RetryAfter int64  `json:"retry_after_ms,omitempty"`
	}{FrameError, code, message, clientID, retryMs})
	return b
}

// EncodeWelcome returns the first frame a connection gets: whom it speaks for, its rooms, the user's room
// list (left out when it could not be read, so that no client takes an empty list for the truth), and
// the longest text it may send, in UTF-8 bytes (MAX_MESSAGE_BYTES), so that a client can say so before
// sending.
func EncodeWelcome(user Author, rooms []string, list *RoomList, maxMessageBytes int) []byte {
	w := struct {
		Type            string       `json:"type"`
		User            Author       `json:"user"`
		Rooms           []string     `json:"rooms"`
		RoomList        []MemberRoom `json:"room_list,omitempty"`
		RoomListVersion *int64       `json:"room_list_version,omitempty"`
		MaxMessageBytes int          `json:"max_message_bytes"`
	}{Type: FrameWelcome, User: user, Rooms: rooms, MaxMessageBytes: maxMessageBytes}
	if list != nil {
		w.RoomList, w.RoomListVersion = list.Rooms, &list.Version
	}
	b, _ := json.Marshal(w)
	return b
}

// EncodeRooms returns the frame of a user's room list.
func EncodeRooms(list RoomList) []byte {
	if list.Rooms == nil {
		list.Rooms = []MemberRoom{}
	}
	b, _ := json.Marshal(struct {
		Type string `json:"type"`
		RoomList
	}{FrameRooms, list})
	return b
}

// EncodeRead returns the frame that says the user has read room up to message upto, which leaves unread
// messages.
func EncodeRead(room string, upto, unread int64) []byte {
	b, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Room   string `json:"room"`
		Upto   int64  `json:"upto"`
		Unread int64  `json:"unread"`
	}{FrameRead, room, upto, unread})
	return b
}

// Ack is the answer to a join, leave or auth frame; For names the frame type.
type Ack struct {
	For       string     `json:"for"`
	ID        string     `json:"id,omitempty"`
	Room      string     `json:"room,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// EncodeAck returns the ack frame for a.
func EncodeAck(a Ack) []byte {
	b, _ := json.Marshal(struct {
		Type string `json:"type"`
		Ack
	}{FrameAck, a})
	return b
}

// EncodeHistory returns the history frame of room; msgs are oldest first.
func EncodeHistory(room string, msgs []Message) ([]byte, error) {
	if msgs == nil {
		msgs = []Message{}
	}
	b, err := json.Marshal(struct {
		Type     string    `json:"type"`
		Room     string    `json:"room"`
		Messages []Message `json:"messages"`
	}{FrameHistory, room, msgs})
	if err != nil {
		return nil, fmt.Errorf("encode history: %w", err)
	}
	return b, nil
}

// EncodeResumed returns the frame that ends a replay.
func EncodeResumed(room string, complete bool) []byte {
	b, _ := json.Marshal(struct {
		Type     string `json:"type"`
		Room     string `json:"room"`
		Complete bool   `json:"complete"`
	}{FrameResumed, room, complete})
	return b
}

// EncodePresence returns the list of users in room.
func EncodePresence(room string, users []Author) []byte {
	if users == nil {
		users = []Author{}
	}
	b, _ := json.Marshal(struct {
		Type  string   `json:"type"`
		Room  string   `json:"room"`
		Users []Author `json:"users"`
	}{FramePresent, room, users})
	return b
}

// EncodeUserEvent returns a joined, left or typing frame about user in room.
func EncodeUserEvent(kind, room string, user Author) []byte {
	b, _ := json.Marshal(struct {
		Type string `json:"type"`
		Room string `json:"room"`
		User Author `json:"user"`
	}{kind, room, user})
	return b
}

// endedSessions is the payload of the bus event that tells every node that sessions ended.
type endedSessions struct {
	Ended []string `json:"ended"`
}

// EncodeEndedSessions returns the payload of a room-less bus event that tells every node the sessions ids
// ended; DecodeEndedSessions reads it back.
func EncodeEndedSessions(ids []string) []byte {
	payload, _ := json.Marshal(endedSessions{Ended: ids}) // a struct of strings always encodes
	return payload
}

// DecodeEndedSessions returns the sessions of an EncodeEndedSessions payload, none if it is not one.
func DecodeEndedSessions(payload []byte) []string {
	var e endedSessions
	if json.Unmarshal(payload, &e) != nil {
		return nil
	}
	return e.Ended
}
