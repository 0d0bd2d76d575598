package handlers

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/chat"
	"github.com/causerie/causerie/middleware"
)

// RoomHub is what the room routes need of the hub.
type RoomHub interface {
	Rooms(ctx context.Context, user int64) ([]app.RoomInfo, error)
	CreateRoom(ctx context.Context, user app.Identity, name string, private bool) (app.Room, error)
	// Open returns the room if user may see it, or the not_found error of a room that does not exist.
	Open(ctx context.Context, user int64, name string) (app.Room, error)
	Post(ctx context.Context, user app.Identity, room, text, clientID string) (app.Message, bool, error)
	Members(ctx context.Context, user int64, room string, after int64, limit int) ([]app.Author, error)
	AddMember(ctx context.Context, actor app.Identity, room, name string) (app.Message, bool, error)
	RemoveMember(ctx context.Context, actor app.Identity, room, name string) (app.Message, error)
	OpenDM(ctx context.Context, actor app.Identity, name string) (app.MemberRoom, bool, error)
	// Apply makes a change to a message and returns the message in its new state.
	Apply(ctx context.Context, user app.Identity, ch chat.Change) (app.Message, error)
	MemberRooms(ctx context.Context, user int64) (app.RoomList, error)
}

// MessageReader reads stored messages.
type MessageReader interface {
	Messages(ctx context.Context, room string, q app.MessageQuery) ([]app.Message, error)
}

// Paging limits of the history route.
const (
	defaultPage = 50
	maxPage     = 200
)

// Rooms serves the room routes.
type Rooms struct {
	Hub      RoomHub
	Messages MessageReader
}

// Pages of GET /api/rooms, and of a room's members: one user could otherwise make the list of rooms as
// long as it likes, and general's members are everyone.
const (
	defaultRoomPage = 100
	maxRoomPage     = 500
)

type roomPage struct {
	Rooms []app.RoomInfo `json:"rooms"`
	// Total is how many rooms there are in all; Next, when set, is the after of the next page.
	Total int    `json:"total"`
	Next  string `json:"next,omitempty"`
}

// List returns a page of the rooms the caller may see (every public room, and the private rooms and DMs
// they are a member of), by name, with their users online: GET /api/rooms?limit=&after=.
func (r *Rooms) List(c echo.Context) error {
	limit, err := intParam(c, "limit", defaultRoomPage, 1, maxRoomPage)
	if err != nil {
		return err
	}
	after := c.QueryParam("after")
	if after != "" && !app.ValidRoom(after) {
		return app.Errorf(app.CodeInvalid, "after must be a room name, the next of the previous page")
	}
	rooms, err := r.Hub.Rooms(c.Request().Context(), middleware.Identity(c).UserID)
	if err != nil {
		return err
	}
	page := roomPage{Total: len(rooms)}
	start, _ := slices.BinarySearchFunc(rooms, after, func(ri app.RoomInfo, name string) int {
		return strings.Compare(ri.Name, name)
	})
	if start < len(rooms) && rooms[start].Name == after {
		start++
	}
	end := min(start+limit, len(rooms))
	page.Rooms = rooms[start:end]
	if end < len(rooms) {
		page.Next = rooms[end-1].Name
	}
	return c.JSON(http.StatusOK, page)
}

type createBody struct {
	Name    string `json:"name"`
	Private bool   `json:"private"`
}

// Create makes a room owned by the caller, public unless private is set: POST /api/rooms.
func (r *Rooms) Create(c echo.Context) error {
	var in createBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	room, err := r.Hub.CreateRoom(c.Request().Context(), middleware.Identity(c), in.Name, in.Private)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, app.MemberRoom{Name: room.Name, Kind: room.Kind, Owner: true})
}

// History returns a page of a room's messages, oldest first: GET /api/rooms/:room/messages.
func (r *Rooms) History(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	if _, err := r.Hub.Open(c.Request().Context(), middleware.Identity(c).UserID, room); err != nil {
		return err
	}
	q := app.MessageQuery{Limit: defaultPage}
	if q.Limit, err = intParam(c, "limit", defaultPage, 1, maxPage); err != nil {
		return err
	}
	if q.Before, err = idParam(c, "before"); err != nil {
		return err
	}
	if q.After, err = idParam(c, "after"); err != nil {
		return err
	}
	// Without after, the page ends at before (or now): the newest messages of the range.
	q.Latest = q.After == 0
	msgs, err := r.Messages.Messages(c.Request().Context(), room, q)
	if err != nil {
		return err
	}
	if msgs == nil {
		msgs = []app.Message{}
	}
	viewer := middleware.Identity(c).UserID
	for i := range msgs {
		msgs[i] = msgs[i].ShownTo(viewer)
	}
	return c.JSON(http.StatusOK, map[string][]app.Message{"messages": msgs})
}

type postBody struct {
	Text string `json:"text"`
	ID   string `json:"id"`
}

// Publish stores and delivers a message as the token's user: POST /api/rooms/:room/messages.
func (r *Rooms) Publish(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	var in postBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	m, created, err := r.Hub.Post(c.Request().Context(), middleware.Identity(c), room, in.Text, in.ID)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	return c.JSON(status, m)
}

// Members lists a page of a room's members, by name, for a user who may see it:
// GET /api/rooms/:room/members?limit=&after=.
func (r *Rooms) Members(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	limit, err := intParam(c, "limit", defaultRoomPage, 1, maxRoomPage)
	if err != nil {
		return err
	}
	after, err := strconv.ParseInt(cmp.Or(c.QueryParam("after"), "0"), 10, 64)
	if err != nil || after < 0 {
		return app.Errorf(app.CodeInvalid, "after must be a user id, the next of the previous page")
	}
	// One more than the page tells whether there is a next one.
	members, err := r.Hub.Members(c.Request().Context(), middleware.Identity(c).UserID, room, after, limit+1)
	if err != nil {
		return err
	}
	page := memberPage{Members: members}
	if len(members) > limit {
		page.Members = members[:limit]
		page.Next = members[limit-1].ID
	}
	if page.Members == nil {
		page.Members = []app.Author{}
	}
	return c.JSON(http.StatusOK, page)
}

type memberPage struct {
	Members []app.Author `json:"members"`
	// Next, when set, is the after of the next page.
	Next int64 `json:"next,omitempty"`
}

// AddMember makes a user a member of a private room, as its owner: PUT /api/rooms/:room/members/:name.
// 201 with the member_added event, or 204 for a member already.
func (r *Rooms) AddMember(c echo.Context) error {
	room, name, err := memberParams(c)
	if err != nil {
		return err
	}
	ev, created, err := r.Hub.AddMember(c.Request().Context(), middleware.Identity(c), room, name)
	if err != nil {
		return err
	}
	if !created {
		return c.NoContent(http.StatusNoContent)
	}
	return c.JSON(http.StatusCreated, ev)
}

// RemoveMember ends a membership of a private room: its owner removes others, a member itself.
// DELETE /api/rooms/:room/members/:name answers the member_removed or member_left event.
func (r *Rooms) RemoveMember(c echo.Context) error {
	room, name, err := memberParams(c)
	if err != nil {
		return err
	}
	ev, err := r.Hub.RemoveMember(c.Request().Context(), middleware.Identity(c), room, name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ev)
}

// Mine returns the caller's room list, the same on every device: GET /api/me/rooms.
func (r *Rooms) Mine(c echo.Context) error {
	list, err := r.Hub.MemberRooms(c.Request().Context(), middleware.Identity(c).UserID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list)
}

type editBody struct {
	Text string `json:"text"`
	ID   string `json:"id"`
}

// Edit replaces the text of one's own message: PATCH /api/rooms/:room/messages/:id.
func (r *Rooms) Edit(c echo.Context) error {
	var in editBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	return r.apply(c, app.ChangeEdit, in.Text, in.ID)
}

// Delete makes a message a tombstone, as its author or the room's owner: DELETE
// /api/rooms/:room/messages/:id.
func (r *Rooms) Delete(c echo.Context) error { return r.apply(c, app.ChangeDelete, "", "") }

// React adds the caller's reaction to a message: PUT /api/rooms/:room/messages/:id/reactions/:emoji.
func (r *Rooms) React(c echo.Context) error { return r.reaction(c, app.ChangeReact) }

// Unreact takes it back: DELETE /api/rooms/:room/messages/:id/reactions/:emoji.
func (r *Rooms) Unreact(c echo.Context) error { return r.reaction(c, app.ChangeUnreact) }

func (r *Rooms) reaction(c echo.Context, kind string) error {
	emoji, err := pathParam(c, "emoji")
	if err != nil {
		return err
	}
	return r.apply(c, kind, emoji, "")
}

// apply makes a change to the message of the path and answers the message in its new state.
func (r *Rooms) apply(c echo.Context, kind, text, clientID string) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return app.Errorf(app.CodeInvalid, "the message id in the path must be a whole number from 1")
	}
	m, err := r.Hub.Apply(c.Request().Context(), middleware.Identity(c), chat.Change{Kind: kind, Room: room, Message: id, Text: text, ClientID: clientID})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

type dmBody struct {
	User string `json:"user"`
}

// OpenDM returns the DM with another user, by name, made by the first call from either side:
// POST /api/dms, 201 when it made it, 200 when it existed.
func (r *Rooms) OpenDM(c echo.Context) error {
	var in dmBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.User == "" {
		return app.Errorf(app.CodeInvalid, "user is required: the name of the other user")
	}
	room, created, err := r.Hub.OpenDM(c.Request().Context(), middleware.Identity(c), in.User)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, room)
}

// memberParams returns the room and the user name of a member route.
func memberParams(c echo.Context) (room, name string, err error) {
	if room, err = roomParam(c); err != nil {
		return "", "", err
	}
	if name, err = pathParam(c, "name"); err != nil {
		return "", "", err
	}
	return room, name, nil
}

// pathParam returns the path parameter name, decoded: Echo routes the decoded path, and the raw one only
// when the two differ beyond what encoding the decoded one would give (a "/" or a "%" in it), and only
// then is the parameter still to decode.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	var err error
	if c.Request().URL.RawPath != "" {
		v, err = url.PathUnescape(v)
	}
	if err != nil || v == "" {
		return "", app.Errorf(app.CodeInvalid, "the %s in the path must be percent-encoded UTF-8", name)
	}
	return v, nil
}

func roomParam(c echo.Context) (string, error) {
	room := c.Param("room")
	if !app.ValidRoom(room) {
		return "", app.Errorf(app.CodeInvalid, "room %q: names are 1 to %d characters of a-z, 0-9, - and _", room, app.MaxRoomName)
	}
	return room, nil
}

func intParam(c echo.Context, name string, def, min, max int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, app.Errorf(app.CodeInvalid, "%s must be a whole number from %d to %d", name, min, max)
	}
	return n, nil
}

func idParam(c echo.Context, name string) (int64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, app.Errorf(app.CodeInvalid, "%s must be a message id (a whole number from 1)", name)
	}
	return id, nil
}
