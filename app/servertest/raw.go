package servertest

import (
	"bufio"
	"bytes"
	"compress/flate"
	be "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Raw is a WebSocket client that writes frames byte by byte as a test builds them, conforming or not, and
// reads the server's frames as they come: what no client library lets a test do.
type Raw struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	// Response is the handshake's answer.
	Response *http.Response
}

// RawFrame is one frame the server sent.
type RawFrame struct {
	Fin     bool
	RSV     byte // the three reserved bits, as in the first byte (0x70 mask); 0x40: it was compressed
	Op      byte
	Payload []byte // inflated, when it was compressed
	Wire    int    // the payload's bytes on the wire
}

// DialRaw opens a connection to path, does the opening handshake with the extra header lines given, and
// fails the test unless the server switches protocols.
func (s *Server) DialRaw(t testing.TB, path string, header http.Header) *Raw {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "http://"), Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	for k, v := range header {
		req.Header[k] = v
	}
	_ = conn.SetDeadline(time.Now().Add(Timeout))
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	return &Raw{t: t, conn: conn, r: r, Response: resp}
}

// ClientFrame encodes a masked client frame. rsv is OR-ed into the first byte (0x40 is RSV1).
func ClientFrame(fin bool, rsv, op byte, payload []byte) []byte {
	first := rsv | op
	if fin {
		first |= 0x80
	}
	b := []byte{first}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = be.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// Text encodes a final, masked text frame.
func Text(s string) []byte { return ClientFrame(true, 0, 0x1, []byte(s)) }

// Write sends bytes as they are.
func (c *Raw) Write(chunks ...[]byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(Timeout))
	for _, b := range chunks {
		if _, err := c.conn.Write(b); err != nil {
			c.t.Fatalf("raw write: %v", err)
		}
	}
}

// TryWrite sends bytes and returns the error, for a server that may have closed already.
func (c *Raw) TryWrite(b []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(Timeout))
	_, err := c.conn.Write(b)
	return err
}

// ReadFrame returns the server's next frame, or the error that ended the wait.
func (c *Raw) ReadFrame(wait time.Duration) (RawFrame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return RawFrame{}, err
	}
	if h[1]&0x80 != 0 {
		return RawFrame{}, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return RawFrame{}, err
		}
		n = uint64(be.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return RawFrame{}, err
		}
		n = be.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return RawFrame{}, err
	}
	f := RawFrame{Fin: h[0]&0x80 != 0, RSV: h[0] & 0x70, Op: h[0] & 0x0f, Payload: p, Wire: len(p)}
	if f.RSV&0x40 != 0 { // permessage-deflate: the stripped tail, then an empty final block, ends it
		z := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
		var err error
		if f.Payload, err = io.ReadAll(z); err != nil {
			return RawFrame{}, fmt.Errorf("inflate a server frame: %w", err)
		}
	}
	return f, nil
}

// Deflate compresses payload as a permessage-deflate sender does, for a frame with RSV1 set.
func Deflate(payload []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(payload)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// Next returns the server's next frame, failing the test after Timeout.
func (c *Raw) Next() RawFrame {
	c.t.Helper()
	f, err := c.ReadFrame(Timeout)
	if err != nil {
		c.t.Fatalf("raw read: %v", err)
	}
	return f
}

// Opened reads the frames a connection opens with, up to the history of its one room.
func (c *Raw) Opened() {
	c.t.Helper()
	for {
		f := c.Next()
		var m struct{ Type string }
		if f.Op != 0x1 || json.Unmarshal(f.Payload, &m) != nil || !openingFrame(m.Type) {
			c.t.Fatalf("got opcode %#x %q, want the opening frames", f.Op, f.Payload)
		}
		if m.Type == "history" {
			return
		}
	}
}

func openingFrame(typ string) bool {
	switch typ {
	case "welcome", "presence", "history", "joined", "left":
		return true
	}
	return false
}
