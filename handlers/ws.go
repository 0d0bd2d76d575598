package handlers

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"golang.org/x/net/websocket"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/chat"
	"github.com/causerie/causerie/app/netconn"
	"github.com/causerie/causerie/middleware"
)

// Hub is what the WebSocket endpoint needs of the chat hub.
type Hub interface {
	Register(ctx context.Context, conn chat.Conn, s chat.Session) (*chat.Client, error)
	Unregister(c *chat.Client)
	Receive(ctx context.Context, c *chat.Client, data []byte)
	CountBadFrame(code string)
}

const (
	// maxFrameBytes caps one inbound frame; x/net/websocket's own default is 32 MiB.
	maxFrameBytes = 64 << 10
	// writeWait bounds one batch of writes, so a peer that stopped reading cannot hold its writer forever.
	writeWait = 10 * time.Second
	// closeWait bounds the close handshake: writing the close frame and waiting for the writer to finish.
	closeWait = time.Second
)

// Close codes the transport itself sends (RFC 6455 section 7.4.1).
const (
	closeUnsupportedData = 1003
	closeInvalidPayload  = 1007
	closeTooBig          = 1009
)

// WS serves the WebSocket endpoint. Authentication and the Origin check run as middleware before it,
// while a refusal can still be an HTTP status.
type WS struct {
	Hub Hub
	// MaxRooms caps the rooms a connection may ask for at connect.
	MaxRooms int
}

// IsUpgrade reports whether r asks for a WebSocket.
func IsUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get(echo.HeaderUpgrade), "websocket")
}

// Serve upgrades the request and runs the session until the connection ends: GET /ws.
func (h *WS) Serve(c echo.Context) error {
	if !IsUpgrade(c.Request()) {
		return app.Errorf(app.CodeInvalid, "this route takes a WebSocket upgrade")
	}
	// Checked here so that a bad handshake gets our JSON error; x/net/websocket would answer in plain text.
	if h := c.Request().Header; !strings.Contains(strings.ToLower(h.Get(echo.HeaderConnection)), "upgrade") ||
		h.Get("Sec-WebSocket-Key") == "" || h.Get("Sec-WebSocket-Version") != "13" {
		return app.Errorf(app.CodeInvalid, "not a WebSocket handshake: send Connection: Upgrade, Sec-WebSocket-Key and Sec-WebSocket-Version: 13 (RFC 6455)")
	}
	live := netconn.FromContext(c.Request().Context())
	if live == nil {
		return errors.New("ws: server not built with netconn.Listen and netconn.ConnContext")
	}
	joins, err := parseJoins(c.QueryParam("rooms"), c.QueryParam("since"), h.MaxRooms)
	if err != nil {
		return err
	}
	session := chat.Session{
		User:  middleware.Identity(c),
		Joins: joins,
		Batch: c.QueryParam("batch") == "1",
	}
	started := false
	websocket.Server{
		// Origin is checked by middleware.CheckOrigin; x/net's own check would refuse clients that send
		// no Origin at all (Postman, CLI tools).
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler: func(ws *websocket.Conn) {
			started = true
			c.Response().Status = http.StatusSwitchingProtocols
			h.start(ws, live, session)
		},
	}.ServeHTTP(lean{c.Response()}, handshakeOnly(c.Request()))
	if !started { // the library refused the handshake; the socket is ours to close
		_ = live.Close()
	}
	return nil
}

// start registers the connection and hands it to a reader goroutine of its own, then returns, which
// ends the HTTP handler.
//
// This is what keeps an idle connection small. The handler's goroutine runs deep in Echo's middleware
// and grows its stack registering (JSON, SQLite); a goroutine parked there would keep that stack for as
// long as the connection lives. The reader starts from a small stack that only ever holds a frame read.
// x/net/websocket closes the socket when its handler returns: lean hands it a connection whose Close does
// nothing, and the session closes the real one (wsConn.Abort) when it ends.
func (h *WS) start(ws *websocket.Conn, live *netconn.Conn, s chat.Session) {
	ws.MaxPayloadBytes = maxFrameBytes
	conn := &wsConn{ws: ws, live: live, done: make(chan struct{})}
	// Not the request's context: it ends when this handler returns, and the session goes on.
	client, err := h.Hub.Register(context.Background(), conn, s)
	if err != nil {
		conn.Close(chat.CloseGoingAway, "server shutting down")
		return
	}
	go h.session(ws, conn, client)
}

// session is the connection's reader; the hub starts a writer when there is something to write.
func (h *WS) session(ws *websocket.Conn, conn *wsConn, client *chat.Client) {
	defer h.Hub.Unregister(client)
	code, reason := h.read(context.Background(), ws, client)
	client.Close(code, reason)
	// The writer sends what is queued and the close frame, then closes the socket; wait for it, but not
	// for a peer that does not read.
	select {
	case <-conn.done:
	case <-time.After(closeWait):
		conn.Abort()
	}
}

// lean is the response writer x/net/websocket hijacks. It gives the library small buffers in place of
// net/http's 4 KiB ones, which would stay with the connection for its whole life: data frames do not go
// through the library's writer, and its reader needs no more to read frames. Its connection ignores Close.
type lean struct{ http.ResponseWriter }

// Buffer sizes for a hijacked connection: enough for a control frame; larger reads and writes go around.
const (
	leanReadBuffer  = 512
	leanWriteBuffer = 256
)

func (l lean) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(l.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("ws: hijack: %w", err)
	}
	r := brw.Reader
	if r.Buffered() == 0 { // a client may send its first frame before it reads our answer: keep those bytes
		r = bufio.NewReaderSize(nc, leanReadBuffer)
	}
	ko := keepOpen{nc}
	return ko, bufio.NewReadWriter(r, bufio.NewWriterSize(ko, leanWriteBuffer)), nil
}

func (l lean) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// handshakeOnly returns the part of r the handshake reads. x/net/websocket keeps the request it is given
// for the whole life of the connection: the full one, with every header and its context, costs an idle
// connection about 2 KiB, and its URL holds the token.
func handshakeOnly(r *http.Request) *http.Request {
	h := make(http.Header, 6)
	for _, k := range []string{"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol", "Origin"} {
		if v := r.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return &http.Request{Method: r.Method, URL: &url.URL{Path: r.URL.Path}, Host: r.Host, Header: h, TLS: r.TLS}
}

// keepOpen is the connection x/net/websocket writes its own frames to (pongs, and our pings and close
// frames): its Close does nothing (see start), and each write sets its own deadline, because the writer
// goroutine's deadline (extendDeadline) may have lapsed long before an idle peer's ping needs a pong.
type keepOpen struct{ net.Conn }

func (keepOpen) Close() error { return nil }

func (k keepOpen) Write(p []byte) (int, error) {
	if err := k.Conn.SetWriteDeadline(time.Now().Add(writeWait)); err != nil {
		return 0, err
	}
	return k.Conn.Write(p)
}

// read handles frames until the connection fails or must be closed, and returns the close code to send.
func (h *WS) read(ctx context.Context, ws *websocket.Conn, client *chat.Client) (int, string) {
	for {
		var f inbound
		err := receiver.Receive(ws, &f)
		switch {
		case errors.Is(err, websocket.ErrFrameTooLarge):
			h.Hub.CountBadFrame(app.CodeTooLarge)
			return closeTooBig, fmt.Sprintf("frame over %d bytes", maxFrameBytes)
		case err != nil:
			// EOF: the peer sent a close frame or hung up. Answer with a normal close either way.
			return chat.CloseNormal, ""
		case f.binary:
			h.Hub.CountBadFrame("binary")
			return closeUnsupportedData, "binary frames are not supported; send JSON text"
		case !utf8.Valid(f.data):
			h.Hub.CountBadFrame("invalid_utf8")
			return closeInvalidPayload, "text frame is not valid UTF-8"
		}
		h.Hub.Receive(ctx, client, f.data)
	}
}

// parseJoins reads the rooms to join at connect from the rooms and since query parameters: the rooms
// listed (general when none is), then those named in since; since gives each its last message seen.
func parseJoins(rooms, since string, max int) ([]chat.Join, error) {
	seen := map[string]*int64{}
	if since != "" {
		for _, item := range strings.Split(since, ",") {
			name, idText, ok := strings.Cut(strings.TrimSpace(item), ":")
			id, err := strconv.ParseInt(idText, 10, 64)
			if !ok || err != nil || id < 0 || !app.ValidRoom(name) {
				return nil, app.Errorf(app.CodeInvalid, "since must list room:id pairs such as general:123,x:45; got %q", item)
			}
			seen[name] = &id
		}
	}
	var names []string
	if rooms == "" && since == "" {
		names = []string{app.DefaultRoom}
	}
	for _, name := range strings.Split(rooms, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !app.ValidRoom(name) {
			return nil, app.Errorf(app.CodeInvalid, "room %q: names are 1 to %d characters of a-z, 0-9, - and _", name, app.MaxRoomName)
		}
		names = append(names, name)
	}
	for _, item := range strings.Split(since, ",") {
		if name, _, ok := strings.Cut(strings.TrimSpace(item), ":"); ok {
			names = append(names, name)
		}
	}
	joins := make([]chat.Join, 0, len(names))
	for _, name := range names {
		if slices.ContainsFunc(joins, func(j chat.Join) bool { return j.Room == name }) {
			continue
		}
		joins = append(joins, chat.Join{Room: name, Since: seen[name]})
	}
	if len(joins) > max {
		return nil, app.Errorf(app.CodeInvalid, "at most %d rooms per connection", max)
	}
	return joins, nil
}

type inbound struct {
	data   []byte
	binary bool
}

// receiver reads one whole frame and keeps its opcode, which websocket.Message hides.
var receiver = websocket.Codec{
	Unmarshal: func(data []byte, payloadType byte, v any) error {
		f := v.(*inbound)
		f.data, f.binary = data, payloadType == websocket.BinaryFrame
		return nil
	},
}

type controlFrame struct {
	opcode  byte
	payload []byte
}

// control writes ping and close frames: Codec.Send takes the connection's write lock and writes the
// opcode Marshal returns, which is the only way x/net/websocket offers to send a control frame.
var control = websocket.Codec{
	Marshal: func(v any) ([]byte, byte, error) {
		f := v.(controlFrame)
		return f.payload, f.opcode, nil
	},
}

// wsConn is chat.Conn over an x/net/websocket connection.
type wsConn struct {
	ws        *websocket.Conn
	live      *netconn.Conn
	refreshAt time.Time // when the write deadline needs pushing back; used by the writer only
	closeOnce sync.Once
	doneOnce  sync.Once
	done      chan struct{} // closed once the socket is closed
}

var _ chat.Conn = (*wsConn)(nil)

// WriteFrames encodes every frame into one buffer and writes it to the TCP connection in one call.
//
// Data frames bypass x/net/websocket's writer, which allocates twice and flushes once per frame: a server's
// text frame is only a 2-to-10-byte header (RFC 6455 section 5.2: FIN, opcode 1, no mask) before the
// payload. It stays safe beside the library's own writes (pongs, and our ping and close frames): those
// are flushed one whole frame per write too, and a net.Conn never interleaves two writes.
func (c *wsConn) WriteFrames(frames [][]byte) error {
	if err := c.extendDeadline(); err != nil {
		return err
	}
	bufp := frameBuffers.Get().(*[]byte)
	buf := (*bufp)[:0]
	for _, f := range frames {
		buf = appendTextFrame(buf, f)
	}
	_, err := c.live.Write(buf)
	if cap(buf) <= maxPooledBuffer {
		*bufp = buf
		frameBuffers.Put(bufp)
	}
	if err != nil {
		return fmt.Errorf("ws: write: %w", err)
	}
	return nil
}

// maxPooledBuffer keeps the rare huge batch from pinning its buffer in the pool.
const maxPooledBuffer = 256 << 10

var frameBuffers = sync.Pool{New: func() any { return new([]byte) }}

// appendTextFrame appends payload as one unmasked, final text frame.
func appendTextFrame(b, payload []byte) []byte {
	const finText = 0x80 | websocket.TextFrame
	switch n := len(payload); {
	case n < 126:
		b = append(b, finText, byte(n))
	case n <= 0xFFFF:
		b = append(b, finText, 126, byte(n>>8), byte(n))
	default:
		b = append(b, finText, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

func (c *wsConn) Ping() error {
	if err := c.extendDeadline(); err != nil {
		return err
	}
	if err := control.Send(c.ws, controlFrame{opcode: websocket.PingFrame}); err != nil {
		return fmt.Errorf("ws: ping: %w", err)
	}
	return nil
}

// extendDeadline keeps the write deadline between writeWait/2 and writeWait ahead. Setting it on every
// write costs a timer update each time (a tenth of the server's time under fan-out, in a profile);
// setting it only when half of it is gone costs one per writeWait/2 and bounds a stuck write all the same.
func (c *wsConn) extendDeadline() error {
	now := time.Now()
	if now.Before(c.refreshAt) {
		return nil
	}
	if err := c.live.SetWriteDeadline(now.Add(writeWait)); err != nil {
		return fmt.Errorf("ws: set write deadline: %w", err)
	}
	c.refreshAt = now.Add(writeWait / 2)
	return nil
}

// Close sends the close frame once and closes the socket. The short deadline also cuts short a write in
// progress, whose lock the close frame needs.
func (c *wsConn) Close(code int, reason string) {
	c.closeOnce.Do(func() {
		_ = c.live.SetWriteDeadline(time.Now().Add(closeWait))
		payload := binary.BigEndian.AppendUint16(nil, uint16(code))
		if len(reason) > 123 { // a control frame's payload is at most 125 bytes
			reason = reason[:123]
		}
		_ = control.Send(c.ws, controlFrame{opcode: websocket.CloseFrame, payload: append(payload, reason...)})
	})
	c.Abort()
}

// Abort closes the TCP connection under the WebSocket, which also ends the reader's Receive.
func (c *wsConn) Abort() {
	_ = c.live.Close()
	c.doneOnce.Do(func() { close(c.done) })
}

func (c *wsConn) LastRead() time.Time { return c.live.LastRead() }
