package wsframe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"unicode/utf8"
)

// FuzzReader reads any bytes as a client's frames. Whatever they are, the reader ends in messages and
// control frames that respect the limits, then a close code it may send or the end of the input; and its
// buffers never grow past the message limit.
func FuzzReader(f *testing.F) {
	f.Add(true, bytes.Join([][]byte{
		clientFrame(finBit|OpText, []byte("hello")),
		clientFrame(OpText, []byte("caf\xc3")),
		clientFrame(finBit|OpPing, []byte("between")),
		clientFrame(finBit|OpContinuation, []byte("\xa9!")),
	}, nil))
	f.Add(true, clientFrame(finBit|rsv1Bit|OpText, []byte{0x2a, 0xc9, 0xc8, 0x2c, 0x56, 0x48, 0xcb, 0x2f, 0x4a, 0x05, 0x00}))
	f.Add(false, clientFrame(finBit|OpClose, []byte{0x03, 0xe8, 'o', 'k'}))
	f.Add(false, []byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	const max = 1024
	f.Fuzz(func(t *testing.T, deflate bool, data []byte) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(data), 512), max, deflate)
		for {
			fr, err := r.Next()
			if cap(r.msg) > max+len(deflateEnd) || cap(r.out) > max+1 {
				t.Fatalf("buffers grew to %d and %d bytes, past the limit of %d", cap(r.msg), cap(r.out), max)
			}
			var ce *CloseError
			switch {
			case errors.As(err, &ce):
				switch ce.Code {
				case CloseProtocolError, CloseUnsupportedData, CloseInvalidPayload, CloseTooBig:
				default:
					t.Fatalf("close code %d", ce.Code)
				}
				return
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return
			case err != nil:
				t.Fatalf("error %v is neither a close nor the end of the input", err)
			}
			switch fr.Op {
			case OpText:
				if len(fr.Payload) > max || !utf8.Valid(fr.Payload) {
					t.Fatalf("text of %d bytes, valid UTF-8: %v", len(fr.Payload), utf8.Valid(fr.Payload))
				}
			case OpPing, OpPong:
				if len(fr.Payload) > MaxControlPayload {
					t.Fatalf("control payload of %d bytes", len(fr.Payload))
				}
			case OpClose:
				if fr.Code != CloseNoStatus && !ValidCloseCode(fr.Code) || !utf8.Valid(fr.Payload) {
					t.Fatalf("close %d %q", fr.Code, fr.Payload)
				}
			default:
				t.Fatalf("opcode %#x", fr.Op)
			}
		}
	})
}
