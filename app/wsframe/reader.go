// Package wsframe reads and writes WebSocket frames (RFC 6455) on the server's side of a connection, after
// the opening handshake, with the permessage-deflate extension (RFC 7692) when it was negotiated.
//
// golang.org/x/net/websocket does the handshake; it reads one frame at a time and knows nothing of
// fragmentation, reserved bits or close codes, so everything after the handshake is done here. Nothing in
// this package knows about chat: it turns bytes into whole text messages and control frames, and back.
package wsframe

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// Close codes this package decides on (RFC 6455 section 7.4.1).
const (
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	// CloseNoStatus is what a close frame without a code reports; it is never sent.
	CloseNoStatus       = 1005
	CloseInvalidPayload = 1007
	CloseTooBig         = 1009
)

// MaxControlPayload is the largest payload of a control frame (RFC 6455 section 5.5).
const MaxControlPayload = 125

// keepBuffer is the largest message buffer a Reader keeps between messages: ordinary messages reuse it and
// allocate nothing, and a rare large one does not pin its memory for the connection's life. The buffer of
// inflated messages is kept up to minBuffer only: compressed messages are the large ones.
const keepBuffer = 4 << 10

// minBuffer is the smallest buffer a Reader allocates, so that the messages after a first small one reuse
// it; readChunk is how much a frame's payload may grow a buffer before its bytes arrive, so that a header
// that claims a large payload costs little until the payload comes.
const (
	minBuffer = 512
	readChunk = 4 << 10
)

const (
	finBit  = 0x80
	rsv1Bit = 0x40
	rsvBits = 0x70
	maskBit = 0x80
)

// A CloseError is a reason the connection must close, with the code to send the peer.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("websocket: close %d: %s", e.Code, e.Reason) }

func closeErr(code int, format string, args ...any) *CloseError {
	return &CloseError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Frame is what Next returns: a whole text message, or a control frame.
type Frame struct {
	// Op is OpText, OpPing, OpPong or OpClose.
	Op byte
	// Payload is the message's text, a ping's or pong's payload, or a close frame's reason. It is valid
	// until the next call to Next.
	Payload []byte
	// Code is a close frame's status code, CloseNoStatus when it has none.
	Code int
}

// Reader reads the frames of one client connection. It is used by one goroutine.
type Reader struct {
	src     *bufio.Reader
	max     int
	deflate bool

	head [8]byte
	ctl  [MaxControlPayload]byte
	// msg holds the message being assembled, unmasked; for a compressed message, its compressed bytes.
	msg []byte
	// open is set between the first and the last frame of a fragmented message.
	open, compressed bool
	// checked is how much of msg is known to be valid UTF-8 whole characters.
	checked int
	out     []byte       // the inflated message, when compressed
	zsrc    bytes.Reader // reads msg into the inflater
}

// NewReader returns a Reader of src that refuses messages over max bytes (counted on the wire, and again
// after inflating). With deflate, the first frame of a message may have RSV1 set: permessage-deflate.
func NewReader(src *bufio.Reader, max int, deflate bool) *Reader {
	return &Reader{src: src, max: max, deflate: deflate}
}

// Next returns the next whole text message or control frame. A fragmented message comes back once, whole;
// control frames between its fragments come back as they arrive. An error is a *CloseError when the peer
// broke the protocol (the connection must close with its code); otherwise the connection failed.
func (r *Reader) Next() (Frame, error) {
	if !r.open {
		r.reset()
	}
	for {
		fin, op, n, key, err := r.header()
		if err != nil {
			return Frame{}, err
		}
		if op >= OpClose {
			return r.control(op, n, key)
		}
		if err := r.payload(n, key); err != nil {
			return Frame{}, err
		}
		if !fin {
			r.open = true
			continue
		}
		r.open = false
		if r.compressed {
			return r.inflate()
		}
		if err := r.checkUTF8(true); err != nil { // payload checked all but an unfinished last character
			return Frame{}, err
		}
		return Frame{Op: OpText, Payload: r.msg}, nil
	}
}

// payload appends a data frame's n bytes to msg, unmasked, as they arrive: the buffer grows with the bytes
// received, not with the length the header claims, and text is checked as it comes, so a message whose
// first bytes cannot be UTF-8 is refused without waiting for the rest of its frame.
func (r *Reader) payload(n int, key [4]byte) error {
	for pos := 0; pos < n; {
		r.msg = reserve(r.msg, min(n-pos, max(len(r.msg), readChunk)), r.max)
		room := r.msg[len(r.msg):cap(r.msg)]
		room = room[:min(len(room), n-pos)]
		m, err := r.src.Read(room)
		unmask(rotate(key, pos), room[:m])
		r.msg = r.msg[:len(r.msg)+m]
		pos += m
		if !r.compressed && m > 0 {
			if err := r.checkUTF8(false); err != nil {
				return err
			}
		}
		if err != nil && pos < n {
			return cut(err)
		}
	}
	return nil
}

// cut reports the end of the stream inside a frame or a message as io.ErrUnexpectedEOF: only between
// messages is it a clean io.EOF.
func cut(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// rotate returns the masking key as it applies from byte pos of a payload on.
func rotate(key [4]byte, pos int) [4]byte {
	s := pos & 3
	return [4]byte{key[s], key[(s+1)&3], key[(s+2)&3], key[(s+3)&3]}
}

// reset starts a new message, keeping a small buffer.
func (r *Reader) reset() {
	if cap(r.msg) > keepBuffer {
		r.msg = nil
	}
	if cap(r.out) > minBuffer {
		r.out = nil
	}
	r.msg, r.out = r.msg[:0], r.out[:0]
	r.compressed, r.checked = false, 0
}

// header reads and checks one frame header, and reports its final bit, opcode, payload length and
// masking key. Every refusal that the header decides is made here, before any payload is read.
func (r *Reader) header() (fin bool, op byte, n int, key [4]byte, err error) {
	b := r.head[:2]
	if _, err = io.ReadFull(r.src, b); err != nil {
		if r.open { // the stream ended between the fragments of a message
			err = cut(err)
		}
		return false, 0, 0, key, err
	}
	fin, op, rsv := b[0]&finBit != 0, b[0]&0x0f, b[0]&rsvBits
	masked, length := b[1]&maskBit != 0, uint64(b[1]&0x7f)
	control := op >= OpClose
	switch {
	case op > OpBinary && op < OpClose || op > OpPong:
		return false, 0, 0, key, closeErr(CloseProtocolError, "reserved opcode %#x", op)
	case rsv&^rsv1Bit != 0:
		return false, 0, 0, key, closeErr(CloseProtocolError, "reserved bits set without an extension")
	case rsv != 0 && !r.deflate:
		return false, 0, 0, key, closeErr(CloseProtocolError, "RSV1 set, and no extension was negotiated")
	case rsv != 0 && (op == OpContinuation || control):
		return false, 0, 0, key, closeErr(CloseProtocolError, "RSV1 set outside the first frame of a compressed message")
	case control && !fin:
		return false, 0, 0, key, closeErr(CloseProtocolError, "fragmented control frame")
	case control && length > MaxControlPayload:
		return false, 0, 0, key, closeErr(CloseProtocolError, "control frame over %d bytes", MaxControlPayload)
	case !masked:
		return false, 0, 0, key, closeErr(CloseProtocolError, "client frames must be masked")
	case op == OpContinuation && !r.open:
		return false, 0, 0, key, closeErr(CloseProtocolError, "continuation frame without a message to continue")
	case (op == OpText || op == OpBinary) && r.open:
		return false, 0, 0, key, closeErr(CloseProtocolError, "new message before the fragmented one ended")
	case op == OpBinary:
		return false, 0, 0, key, closeErr(CloseUnsupportedData, "binary frames are not supported; send JSON text")
	}
	switch length {
	case 126:
		if _, err = io.ReadFull(r.src, r.head[:2]); err != nil {
			return false, 0, 0, key, cut(err)
		}
		length = uint64(binary.BigEndian.Uint16(r.head[:2]))
	case 127:
		if _, err = io.ReadFull(r.src, r.head[:8]); err != nil {
			return false, 0, 0, key, cut(err)
		}
		length = binary.BigEndian.Uint64(r.head[:8])
		if length>>63 != 0 {
			return false, 0, 0, key, closeErr(CloseProtocolError, "payload length with its most significant bit set")
		}
	}
	if !control && length > uint64(r.max-len(r.msg)) {
		return false, 0, 0, key, closeErr(CloseTooBig, "message over %d bytes", r.max)
	}
	// Read into the Reader, not into key: a local array given to io.ReadFull would escape to the heap.
	if _, err = io.ReadFull(r.src, r.head[:4]); err != nil {
		return false, 0, 0, key, cut(err)
	}
	key = [4]byte(r.head[:4])
	if op == OpText {
		r.compressed = rsv != 0
	}
	return fin, op, int(length), key, nil
}

// control reads a control frame's payload.
func (r *Reader) control(op byte, n int, key [4]byte) (Frame, error) {
	p := r.ctl[:n]
	if _, err := io.ReadFull(r.src, p); err != nil {
		return Frame{}, cut(err)
	}
	unmask(key, p)
	if op != OpClose {
		return Frame{Op: op, Payload: p}, nil
	}
	switch {
	case n == 0:
		return Frame{Op: OpClose, Code: CloseNoStatus}, nil
	case n == 1:
		return Frame{}, closeErr(CloseProtocolError, "close frame with a one-byte payload")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !ValidCloseCode(code) {
		return Frame{}, closeErr(CloseProtocolError, "close code %d may not be sent", code)
	}
	if !utf8.Valid(p[2:]) {
		return Frame{}, closeErr(CloseInvalidPayload, "close reason is not valid UTF-8")
	}
	return Frame{Op: OpClose, Code: code, Payload: p[2:]}, nil
}

// ValidCloseCode reports whether a peer may send code in a close frame: the codes of RFC 6455 section
// 7.4.1 that are meant to be sent, those IANA registered since (1012 to 1014), and 3000 to 4999 for
// libraries and applications.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	}
	return code >= 3000 && code <= 4999
}

// checkUTF8 checks what msg gained since the last call. A character may straddle two fragments, so an
// unfinished one at the end waits for the next fragment, as long as it can still be completed; at the end
// of the message (fin) nothing may be left unfinished.
func (r *Reader) checkUTF8(fin bool) error {
	b := r.msg[r.checked:]
	end := len(b)
	// An unfinished character starts at most three bytes from the end.
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if c := b[i]; c < utf8.RuneSelf {
			break
		} else if c >= 0xC0 { // a leading byte: FullRune is false only for a prefix that can be completed
			if !utf8.FullRune(b[i:]) {
				end = i
			}
			break
		}
	}
	if !utf8.Valid(b[:end]) || fin && end < len(b) {
		return closeErr(CloseInvalidPayload, "text is not valid UTF-8")
	}
	r.checked += end
	return nil
}

// deflateEnd is put back at the end of a compressed message: the empty block that a sender strips (RFC
// 7692 section 7.2.1), then an empty final block, so that the stream has an end: data that stops before
// it is truncated, not finished.
var deflateEnd = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// inflaters holds decompressors for reuse; each is an io.ReadCloser from flate.NewReader, which also
// implements flate.Resetter.
var inflaters sync.Pool

// noInput is what a pooled inflater reads from, so that it does not keep a connection's Reader alive.
var noInput = new(bytes.Reader)

// inflate decompresses the message in msg into out, at most max bytes of it, and checks its text.
func (r *Reader) inflate() (Frame, error) {
	r.msg = append(reserve(r.msg, len(deflateEnd), r.max+len(deflateEnd)), deflateEnd...)
	r.zsrc.Reset(r.msg)
	fr, _ := inflaters.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(&r.zsrc)
	} else if err := fr.(flate.Resetter).Reset(&r.zsrc, nil); err != nil {
		return Frame{}, fmt.Errorf("websocket: reset inflater: %w", err)
	}
	defer func() {
		_ = fr.(flate.Resetter).Reset(noInput, nil)
		inflaters.Put(fr)
	}()
	out := r.out[:0]
	for {
		out = reserve(out, 1, r.max+1)
		n, err := fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > r.max {
			return Frame{}, closeErr(CloseTooBig, "message over %d bytes once inflated", r.max)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Frame{}, closeErr(CloseInvalidPayload, "compressed message does not inflate: %v", err)
		}
	}
	r.out = out
	if !utf8.Valid(out) {
		return Frame{}, closeErr(CloseInvalidPayload, "text is not valid UTF-8")
	}
	return Frame{Op: OpText, Payload: out}, nil
}

// reserve makes room in b for n more bytes. A new array is at least minBuffer long and doubles as a
// message grows, but is never longer than limit unless len(b)+n is.
func reserve(b []byte, n, limit int) []byte {
	if len(b)+n <= cap(b) {
		return b
	}
	nb := make([]byte, len(b), max(len(b)+n, min(max(2*cap(b), minBuffer), limit)))
	copy(nb, b)
	return nb
}

// unmask applies the client's masking key to p, eight bytes at a time.
func unmask(key [4]byte, p []byte) {
	if len(p) >= 8 {
		k := uint64(binary.LittleEndian.Uint32(key[:]))
		k |= k << 32
		for len(p) >= 8 {
			binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k)
			p = p[8:]
		}
	}
	for i := range p {
		p[i] ^= key[i&3]
	}
}
