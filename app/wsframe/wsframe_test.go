package wsframe

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// clientFrame encodes a masked frame as a client sends it.
func clientFrame(first byte, payload []byte) []byte {
	b := appendHeader(nil, first, len(payload))
	b[1] |= maskBit
	key := [4]byte{0xa1, 0xb2, 0xc3, 0xd4}
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	unmask(key, b[start:])
	return b
}

func newTestReader(max int, deflate bool, frames ...[]byte) *Reader {
	return NewReader(bufio.NewReaderSize(bytes.NewReader(bytes.Join(frames, nil)), 512), max, deflate)
}

// compressed is payload as a client compresses it with permessage-deflate.
func compressed(t testing.TB, payload []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	if _, err := w.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), deflateTail)
}

func TestReaderMessagesAndControlFrames(t *testing.T) {
	r := newTestReader(64, false,
		clientFrame(finBit|OpText, []byte("hello")),
		clientFrame(OpText, []byte("caf\xc3")),
		clientFrame(finBit|OpPing, []byte("between")),
		clientFrame(finBit|OpContinuation, []byte("\xa9!")),
		clientFrame(finBit|OpClose, append(binary.BigEndian.AppendUint16(nil, 4000), "bye"...)),
	)
	want := []Frame{
		{Op: OpText, Payload: []byte("hello")},
		{Op: OpPing, Payload: []byte("between")},
		{Op: OpText, Payload: []byte("café!")},
		{Op: OpClose, Code: 4000, Payload: []byte("bye")},
	}
	for i, w := range want {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Op != w.Op || f.Code != w.Code || !bytes.Equal(f.Payload, w.Payload) {
			t.Errorf("frame %d = %+v %q, want %+v %q", i, f, f.Payload, w, w.Payload)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("at the end: %v, want EOF", err)
	}
}

func TestReaderRefusals(t *testing.T) {
	bomb := compressed(t, bytes.Repeat([]byte("a"), 1<<20))
	truncated := compressed(t, []byte(strings.Repeat("quelques mots, puis d'autres, ", 40)))
	truncated = truncated[:len(truncated)/2]
	cases := []struct {
		name    string
		deflate bool
		frames  [][]byte
		code    int
		reason  string
	}{
		{"message over the limit in fragments", false, [][]byte{clientFrame(OpText, make([]byte, 2000)), clientFrame(finBit|OpContinuation, make([]byte, 2100))}, CloseTooBig, "message over"},
		{"RSV1 without deflate", false, [][]byte{clientFrame(finBit|rsv1Bit|OpText, []byte("x"))}, CloseProtocolError, "no extension"},
		{"RSV1 on a continuation", true, [][]byte{clientFrame(rsv1Bit|OpText, compressed(t, []byte("x"))), clientFrame(finBit|rsv1Bit|OpContinuation, nil)}, CloseProtocolError, "outside the first frame"},
		{"RSV1 on a ping", true, [][]byte{clientFrame(finBit|rsv1Bit|OpPing, nil)}, CloseProtocolError, "outside the first frame"},
		{"deflate bomb", true, [][]byte{clientFrame(finBit|rsv1Bit|OpText, bomb)}, CloseTooBig, "once inflated"},
		{"corrupt deflate data", true, [][]byte{clientFrame(finBit|rsv1Bit|OpText, []byte{0xff, 0xff, 0xff})}, CloseInvalidPayload, "inflate"},
		{"truncated deflate data", true, [][]byte{clientFrame(finBit|rsv1Bit|OpText, truncated)}, CloseInvalidPayload, "inflate"},
		{"compressed invalid UTF-8", true, [][]byte{clientFrame(finBit|rsv1Bit|OpText, compressed(t, []byte("\xff")))}, CloseInvalidPayload, "UTF-8"},
		{"invalid UTF-8 early in a frame that never ends", false, [][]byte{clientFrame(finBit|OpText, []byte("ok\xc0 and more"))[:9]}, CloseInvalidPayload, "UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if len(bomb) >= 4096 {
				t.Fatalf("the bomb is %d bytes compressed: the wire limit would refuse it first", len(bomb))
			}
			r := newTestReader(4096, tc.deflate, tc.frames...)
			_, err := r.Next()
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("got %v, want close %d (%s)", err, tc.code, tc.reason)
			}
		})
	}
}

func TestReaderInflates(t *testing.T) {
	text := []byte(strings.Repeat("compressible text, ", 100))
	z := compressed(t, text)
	r := newTestReader(4096, true,
		clientFrame(rsv1Bit|OpText, z[:10]),
		clientFrame(finBit|OpPing, nil),
		clientFrame(finBit|OpContinuation, z[10:]),
		clientFrame(finBit|OpText, []byte("not compressed")),
		clientFrame(finBit|rsv1Bit|OpText, compressed(t, text)),
	)
	for i, want := range []string{"", string(text), "not compressed", string(text)} {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if string(f.Payload) != want {
			t.Errorf("frame %d: %d bytes %.40q, want %d bytes", i, len(f.Payload), f.Payload, len(want))
		}
	}
}

// A server's compressed frame inflates back to what was sent; small payloads go as they are.
func TestAppendCompressed(t *testing.T) {
	for _, payload := range [][]byte{[]byte(`{"type":"pong"}`), bytes.Repeat([]byte(`{"type":"message","text":"bonjour"}`), 40)} {
		frame := AppendCompressed(nil, payload)
		rsv1 := frame[0]&rsv1Bit != 0
		if rsv1 != (len(payload) >= CompressMin) {
			t.Errorf("%d bytes: RSV1 %v", len(payload), rsv1)
		}
		// Read it back with the server's reader, which takes masked frames: mask it first.
		r := newTestReader(1<<16, true, clientFrame(frame[0], payloadOf(frame)))
		f, err := r.Next()
		if err != nil || !bytes.Equal(f.Payload, payload) {
			t.Errorf("%d bytes: read back %d bytes, %v", len(payload), len(f.Payload), err)
		}
		if rsv1 && len(frame) > len(payload)/4 {
			t.Errorf("compressed %d bytes into a frame of %d", len(payload), len(frame))
		}
	}
}

func payloadOf(frame []byte) []byte {
	switch n := frame[1] & 0x7f; n {
	case 126:
		return frame[4:]
	case 127:
		return frame[10:]
	default:
		return frame[2:]
	}
}

func TestAppendClose(t *testing.T) {
	reason := strings.Repeat("é", 100) // 200 bytes: cut to 122, a whole number of characters
	f := AppendClose(nil, 1001, reason)
	if len(f) != 2+2+122 || f[1] != 124 || binary.BigEndian.Uint16(f[2:]) != 1001 {
		t.Errorf("close frame %x", f[:6])
	}
}

func TestNegotiateDeflate(t *testing.T) {
	const plain, window = deflateResponse, deflateResponse + "; server_max_window_bits=15"
	cases := []struct {
		header []string
		want   string // empty: refused
	}{
		{nil, ""},
		{[]string{"permessage-deflate"}, plain},
		{[]string{"permessage-deflate; client_max_window_bits"}, plain}, // Chromium's offer
		{[]string{"x-webkit-deflate-frame", "permessage-deflate; client_no_context_takeover; server_no_context_takeover"}, plain},
		{[]string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, plain},
		{[]string{"permessage-deflate; server_max_window_bits=10"}, ""},
		{[]string{"permessage-deflate; server_max_window_bits=15"}, window},
		{[]string{`permessage-deflate; client_max_window_bits="12"`}, plain},
		{[]string{"permessage-deflate; client_max_window_bits=7"}, ""},
		{[]string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, ""},
		{[]string{"permessage-deflate; unknown"}, ""},
		{[]string{"x-webkit-deflate-frame"}, ""},
	}
	for _, tc := range cases {
		got, ok := NegotiateDeflate(tc.header)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("NegotiateDeflate(%q) = %q, %v; want %q", tc.header, got, ok, tc.want)
		}
	}
}

func TestReaderAllocatesNothingPerSmallMessage(t *testing.T) {
	frame := clientFrame(finBit|OpText, []byte(`{"type":"message","text":"bonjour","id":"c-1"}`))
	src := &loop{data: frame}
	r := NewReader(bufio.NewReaderSize(src, 512), 64<<10, false)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = r.Next() }); n != 0 {
		t.Errorf("%v allocations per message, want 0", n)
	}
}

// loop reads data over and over.
type loop struct {
	data []byte
	off  int
}

func (l *loop) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

// A Compressor gives what AppendCompressed gives, for a payload seen before and for a buffer that was
// reused with other bytes since.
func TestCompressorRemembersByContent(t *testing.T) {
	c := NewCompressor()
	buf := []byte(strings.Repeat(`{"type":"message","text":"bonjour"}`, 20))
	first := c.Append(nil, buf)
	if again := c.Append(nil, buf); !bytes.Equal(again, first) || !bytes.Equal(first, AppendCompressed(nil, buf)) {
		t.Fatal("the same payload compressed differently")
	}
	copy(buf, `{"type":"message","text":"au revoir"}`) // the caller reuses its buffer
	if got := c.Append(nil, buf); !bytes.Equal(got, AppendCompressed(nil, buf)) {
		t.Error("a reused buffer got the frame of its former content")
	}
	for i := range 200 { // more payloads than slots: each still comes out right
		p := []byte(fmt.Sprintf("%d %s", i, strings.Repeat("x", 300)))
		if got := c.Append(nil, p); !bytes.Equal(got, AppendCompressed(nil, p)) {
			t.Fatalf("payload %d compressed wrong", i)
		}
	}
}
