package handlers

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/net/websocket"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/budget"
	"github.com/causerie/causerie/app/chat"
	"github.com/causerie/causerie/app/netconn"
	"github.com/causerie/causerie/app/wsframe"
	"github.com/causerie/causerie/middleware"
)

// Hub is what the WebSocket endpoint needs of the chat hub.
type Hub interface {
	Register(ctx context.Context, conn chat.Conn, s chat.Session) (*chat.Client, error)
	Unregister(c *chat.Client)
	Receive(ctx context.Context, c *chat.Client, data []byte)
	CountBadFrame(code string)
	// Admit counts a connection of a user against the cap per user, on every node; Release takes it back.
	Admit(ctx context.Context, user int64) error
	Release(user int64)
}

const (
	// maxMessageBytes caps one inbound message, all its fragments together; x/net/websocket's own default
	// was 32 MiB per frame. MAX_MESSAGE_BYTES, at most 60 KiB, caps the text inside it.
	maxMessageBytes = 64 << 10
	// closeWait bounds the close handshake: writing the close frame and waiting for the writer to finish.
	closeWait = time.Second
)

// WS serves the WebSocket endpoint. Authentication and the Origin check run as middleware before it,
// while a refusal can still be an HTTP status.
type WS struct {
	Hub Hub
	// MaxRooms caps the rooms a connection may ask for at connect.
	MaxRooms int
	// Compressor, when set, accepts permessage-deflate from clients that offer it and compresses their
	// frames; nil turns compression off.
	Compressor *wsframe.Compressor
	// WriteWait bounds one batch of writes, so that a peer that stopped reading cannot hold its writer
	// for ever (WS_WRITE_TIMEOUT; 0 is 10s).
	WriteWait time.Duration
	// MaxConnsPerIP caps this node's WebSockets from one client address; 0 is no cap. The cap per user
	// is the hub's (Admit), as it holds across nodes.
	MaxConnsPerIP int

	addrs admission
}

// admission counts this node's WebSockets per client address.
type admission struct {
	mu    sync.Mutex
	addrs map[string]int
}

// admit counts a connection from addr, or refuses it with a too_many_connections error when the address
// is at its cap. A connection admitted is released with release.
func (a *admission) admit(addr string, maxAddr int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.addrs == nil {
		a.addrs = map[string]int{}
	}
	if maxAddr > 0 && a.addrs[addr] >= maxAddr {
		return app.Limited(app.CodeTooManyConns, budget.ConnRetry, "%d connections are open from your address, the most it may (MAX_CONNS_PER_IP)", maxAddr)
	}
	a.addrs[addr]++
	return nil
}

func (a *admission) release(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.addrs[addr]--; a.addrs[addr] <= 0 {
		delete(a.addrs, addr) // an idle server keeps no entry per past address
	}
}

func (h *WS) writeWait() time.Duration { return cmp.Or(h.WriteWait, 10*time.Second) }

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
	}
	batch := c.QueryParam("batch") == "1"
	addr := addrKey(c.RealIP())
	if err := h.addrs.admit(addr, h.MaxConnsPerIP); err != nil {
		return err
	}
	if err := h.Hub.Admit(c.Request().Context(), session.User.UserID); err != nil {
		h.addrs.release(addr)
		return err
	}
	release := func() {
		h.Hub.Release(session.User.UserID)
		h.addrs.release(addr)
	}
	handedOff := false // to start, which releases the connection when it ends
	defer func() {
		if !handedOff { // the handshake was refused, or panicked (Echo's recovery would swallow it)
			release()
		}
	}()
	var extensions string
	deflate := false
	if h.Compressor != nil {
		extensions, deflate = wsframe.NegotiateDeflate(c.Request().Header.Values("Sec-WebSocket-Extensions"))
	}
	w := &lean{ResponseWriter: c.Response(), writeWait: h.writeWait()}
	started := false
	websocket.Server{
		// Origin is checked by middleware.CheckOrigin; x/net's own check would refuse clients that send
		// no Origin at all (Postman, CLI tools).
		Handshake: func(cfg *websocket.Config, _ *http.Request) error {
			if deflate {
				cfg.Header = http.Header{"Sec-Websocket-Extensions": {extensions}}
			}
			return nil
		},
		// Past the handshake, x/net/websocket is done with: frames are read and written by wsframe, on
		// the hijacked connection.
		Handler: func(*websocket.Conn) {
			started, handedOff = true, true
			c.Response().Status = http.StatusSwitchingProtocols
			h.start(w.reader, live, deflate, batch, session, release)
		},
	}.ServeHTTP(w, c.Request())
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
func (h *WS) start(br *bufio.Reader, live *netconn.Conn, deflate, batch bool, s chat.Session, release func()) {
	conn := &wsConn{live: live, batch: batch, writeWait: h.writeWait(), closed: make(chan struct{})}
	if deflate {
		conn.deflate = h.Compressor
	}
	// Not the request's context: it ends when this handler returns, and the session goes on.
	client, err := h.Hub.Register(context.Background(), conn, s)
	if err != nil {
		conn.Close(app.CloseGoingAway, "server shutting down")
		conn.Abort()
		release()
		return
	}
	go h.session(wsframe.NewReader(br, maxMessageBytes, deflate), conn, client, release)
}

// session is the connection's reader; the hub starts a writer when there is something to write.
func (h *WS) session(r *wsframe.Reader, conn *wsConn, client *chat.Client, release func()) {
	defer release()
	defer h.Hub.Unregister(client)
	code, reason := h.read(context.Background(), r, conn, client)
	client.Close(code, reason)
	// The writer sends what is queued and the close frame; wait for it, but not for a peer that does not
	// read. Then let the peer answer and hang up (wsConn.Close), and close the socket.
	select {
	case <-conn.closed:
		conn.linger()
	case <-time.After(closeWait):
	}
	conn.Abort()
}

// lean is the response writer x/net/websocket hijacks. It gives the library small buffers in place of
// net/http's 4 KiB ones, which would stay with the connection for its whole life, and keeps the reader
// for wsframe: a client may send its first frame before it reads our answer, and those bytes are in it.
// Its connection ignores Close.
type lean struct {
	http.ResponseWriter
	reader    *bufio.Reader
	writeWait time.Duration // of the handshake's answer
}

// Buffer sizes for a hijacked connection: the read buffer holds a frame header and a small frame; larger
// payloads are read around it. The write buffer only ever holds the handshake's answer.
const (
	leanReadBuffer  = 512
	leanWriteBuffer = 256
)

func (l *lean) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(l.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("ws: hijack: %w", err)
	}
	l.reader = brw.Reader
	if l.reader.Buffered() == 0 {
		l.reader = bufio.NewReaderSize(nc, leanReadBuffer)
	}
	ko := keepOpen{nc, l.writeWait}
	return ko, bufio.NewReadWriter(l.reader, bufio.NewWriterSize(ko, leanWriteBuffer)), nil
}

func (l *lean) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// keepOpen is the connection x/net/websocket writes the handshake's answer to: its Close does nothing (see
// start), and its writes have a deadline.
type keepOpen struct {
	net.Conn
	wait time.Duration
}

func (keepOpen) Close() error { return nil }

func (k keepOpen) Write(p []byte) (int, error) {
	if err := k.Conn.SetWriteDeadline(time.Now().Add(k.wait)); err != nil {
		return 0, err
	}
	return k.Conn.Write(p)
}

// read handles messages and control frames until the connection fails or must be closed, and returns the
// close code to send. A ping is answered at once, even between the fragments of a message, by the
// client's writer, which writes every frame.
func (h *WS) read(ctx context.Context, r *wsframe.Reader, conn *wsConn, client *chat.Client) (int, string) {
	for {
		f, err := r.Next()
		var ce *wsframe.CloseError
		switch {
		case errors.As(err, &ce):
			h.Hub.CountBadFrame(badFrameLabel(ce.Code))
			return ce.Code, ce.Reason
		case err != nil:
			// The peer hung up, or the socket was closed under us: a normal close, if it still hears it.
			return app.CloseNormal, ""
		}
		switch f.Op {
		case wsframe.OpText:
			// Once the client is closing (the peer's close frame, an expired token, shutdown), messages
			// are read only to find the peer's close frame: their acks could not follow the close.
			if !client.Closing() {
				h.Hub.Receive(ctx, client, f.Payload)
			}
		case wsframe.OpPing:
			client.Pong(f.Payload)
		case wsframe.OpClose:
			// Echo the peer's code (RFC 6455 section 5.5.1); a close without one is answered with 1000.
			if f.Code == wsframe.CloseNoStatus {
				return app.CloseNormal, ""
			}
			return f.Code, ""
		}
	}
}

// badFrameLabel names the causerie_bad_frames_total series of a close the transport decided.
func badFrameLabel(code int) string {
	switch code {
	case wsframe.CloseTooBig:
		return app.CodeTooLarge
	case wsframe.CloseUnsupportedData:
		return "binary"
	case wsframe.CloseInvalidPayload:
		return "invalid_utf8"
	}
	return "protocol_error"
}

// parseJoins reads the rooms to join at connect from the rooms and since query parameters: the rooms
// listed (general when none is), then those named in since; since gives each its last message seen.
func parseJoins(rooms, since string, max int) ([]chat.Join, error) {
	var names []string
	for _, name := range strings.Split(rooms, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !app.ValidRoom(name) {
			return nil, app.Errorf(app.CodeInvalid, "room %q: names are 1 to %d characters of a-z, 0-9, - and _", name, app.MaxRoomName)
		}
		names = append(names, name)
	}
	if len(names) == 0 { // rooms absent, empty or blank (rooms=, rooms=%20): the default room
		names = []string{app.DefaultRoom}
	}
	seen := map[string]*int64{}
	if since != "" {
		for _, item := range strings.Split(since, ",") {
			item = strings.TrimSpace(item)
			name, idText, ok := strings.Cut(item, ":")
			if !ok { // a bare id, as the course's clients send it: the default room's
				name, idText = app.DefaultRoom, item
			}
			id, err := strconv.ParseInt(idText, 10, 64)
			if err != nil || id < 0 || !app.ValidRoom(name) {
				return nil, app.Errorf(app.CodeInvalid, "since must list room:id pairs such as general:123,x:45 (or one id, for %s); got %q", app.DefaultRoom, item)
			}
			seen[name] = &id
			names = append(names, name) // joined too
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

// wsConn is chat.Conn over the hijacked connection, with frames written by wsframe.
type wsConn struct {
	live      *netconn.Conn
	deflate   *wsframe.Compressor // nil: frames go uncompressed
	batch     bool                // ?batch=1: frames written together go in one, newline-separated
	refreshAt time.Time           // when the write deadline needs pushing back; used by the writer only
	writeWait time.Duration       // see WS.WriteWait

	// closing is set once the close frame is on its way. Only the writer writes frames, the close frame last.
	closing atomic.Bool

	closeOnce sync.Once
	closed    chan struct{} // closed once the close frame was written (or failed to be), or the socket closed
}

var _ chat.Conn = (*wsConn)(nil)

// WriteFrames encodes every frame into one buffer and writes it to the TCP connection in one call.
func (c *wsConn) WriteFrames(frames [][]byte) error {
	if err := c.extendDeadline(); err != nil {
		return err
	}
	if c.batch && len(frames) > 1 {
		linesp := batchBuffers.Get().(*[]byte)
		defer batchBuffers.Put(linesp)
		frames = joinLines(frames, linesp)
	}
	bufp := frameBuffers.Get().(*[]byte)
	buf := (*bufp)[:0]
	for _, f := range frames {
		if c.deflate != nil {
			buf = c.deflate.Append(buf, f)
		} else {
			buf = wsframe.AppendText(buf, f)
		}
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

// maxBatchBytes caps one batched frame, as a client may cap what it reads in one frame (the server takes
// 64 KiB); a frame bigger than that on its own still goes alone.
const maxBatchBytes = 64 << 10

var batchBuffers = sync.Pool{New: func() any { return new([]byte) }}

// joinLines joins frames by newlines, in *bufp, into as few frames of at most maxBatchBytes as they fit.
func joinLines(frames [][]byte, bufp *[]byte) [][]byte {
	buf := (*bufp)[:0]
	var out [][]byte
	start := 0
	for _, f := range frames {
		if len(buf) > start && len(buf)-start+1+len(f) > maxBatchBytes {
			out = append(out, buf[start:])
			start = len(buf)
		}
		if len(buf) > start {
			buf = append(buf, '\n')
		}
		buf = append(buf, f...)
	}
	*bufp = buf
	return append(out, buf[start:])
}

// maxPooledBuffer keeps the rare huge batch from pinning its buffer in the pool.
const maxPooledBuffer = 256 << 10

var frameBuffers = sync.Pool{New: func() any { return new([]byte) }}

func (c *wsConn) Ping() error { return c.control(wsframe.OpPing, nil) }

func (c *wsConn) Pong(payload []byte) error { return c.control(wsframe.OpPong, payload) }

// control writes one control frame.
func (c *wsConn) control(op byte, payload []byte) error {
	if err := c.extendDeadline(); err != nil {
		return err
	}
	var stack [2 + wsframe.MaxControlPayload]byte
	if _, err := c.live.Write(wsframe.AppendControl(stack[:0], op, payload)); err != nil {
		return fmt.Errorf("ws: write control frame: %w", err)
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
	if err := c.live.SetWriteDeadline(now.Add(c.writeWait)); err != nil {
		return fmt.Errorf("ws: set write deadline: %w", err)
	}
	c.refreshAt = now.Add(c.writeWait / 2)
	return nil
}

// Close sends the close frame once, then half-closes the connection: the peer gets the frame and the end
// of the stream, while its own close frame, or whatever it was still sending, can arrive. Closing at once
// with unread bytes would make the kernel reset the connection, and the peer could lose the close frame.
// The reader, still reading, gets the peer's answer within closeWait; the session then closes the socket.
func (c *wsConn) Close(code int, reason string) {
	if c.closing.CompareAndSwap(false, true) {
		var stack [2 + wsframe.MaxControlPayload]byte
		_ = c.live.SetWriteDeadline(time.Now().Add(closeWait))
		_, _ = c.live.Write(wsframe.AppendClose(stack[:0], code, reason))
		_ = c.live.CloseWrite()
		_ = c.live.SetReadDeadline(time.Now().Add(closeWait))
	}
	c.closeOnce.Do(func() { close(c.closed) })
}

// linger reads and drops what the peer still sends, until it hangs up or the read deadline Close set.
func (c *wsConn) linger() {
	_, _ = io.Copy(io.Discard, c.live)
}

// Abort closes the TCP connection, which also ends the reader's read.
func (c *wsConn) Abort() {
	_ = c.live.Close()
	c.closeOnce.Do(func() { close(c.closed) })
}

func (c *wsConn) LastRead() time.Time { return c.live.LastRead() }
