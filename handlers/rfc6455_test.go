package handlers_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/causerie/causerie/app/servertest"
)

// Frame builders for the cases below.
var (
	text = servertest.Text
	frag = func(op byte, fin bool, s string) []byte { return servertest.ClientFrame(fin, 0, op, []byte(s)) }
	ping = func(s string) []byte { return servertest.ClientFrame(true, 0, 0x9, []byte(s)) }
	pong = func(s string) []byte { return servertest.ClientFrame(true, 0, 0xA, []byte(s)) }
	rsv  = func(bits, op byte, s string) []byte { return servertest.ClientFrame(true, bits, op, []byte(s)) }
)

func closeFrame(code int, reason string) []byte {
	return servertest.ClientFrame(true, 0, 0x8, append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...))
}

// header is a masked frame header alone, claiming n bytes of payload that never come.
func header(first byte, n uint64) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{first, 0x80 | 127}, n), 1, 2, 3, 4)
}

// partial is the start of a masked frame that claims n bytes of payload and holds only payload.
func partial(first byte, n int, payload string) []byte {
	full := servertest.ClientFrame(true, 0, first&0x0f, []byte(payload+strings.Repeat(" ", n-len(payload))))
	full[0] = first
	return full[:len(full)-(n-len(payload))]
}

// bytewise splits frames into one-byte writes, as a slow network would deliver them.
func bytewise(frames ...[]byte) [][]byte {
	var out [][]byte
	for _, b := range bytes.Join(frames, nil) {
		out = append(out, []byte{b})
	}
	return out
}

// rfcCase is a client's sequence of frames and what the server must do with it.
type rfcCase struct {
	name string
	send [][]byte
	// delivered are the messages the server acknowledges to the sender and broadcasts, in order; the acks
	// come before the close frame, even when the message is still being stored as the connection closes.
	delivered []string
	// refused are the codes of the error frames the server answers with, the connection staying up.
	refused []string
	// pongs are the payloads of the pings sent, in order. The server answers the last, and may leave out
	// any other that a later one overtook before its pong went out (RFC 6455 section 5.5.3).
	pongs []string
	// close is the close code the server ends the connection with; 0 when it stays open.
	close int
	// deflate offers permessage-deflate, which the test server accepts.
	deflate bool
}

// rfc6455Cases follow the sections of the Autobahn TestSuite (1 framing, 2 pings and pongs, 3 reserved
// bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 12 and 13 permessage-deflate), numbered as
// its cases where one matches.
// A message here is plain text, which the server takes as the text of a chat message.
func rfc6455Cases() []rfcCase {
	frags := func(op0 byte, parts ...string) [][]byte { // one message in fragments
		var out [][]byte
		for i, p := range parts {
			op := byte(0)
			if i == 0 {
				op = op0
			}
			out = append(out, frag(op, i == len(parts)-1, p))
		}
		return out
	}
	utf8Hello := "Hello-µ@ßöäüàá-UTF-8!!"
	kosme := "κόσμε"
	var cases = []rfcCase{
		{name: "1.1.1 empty text", send: [][]byte{text("")}, refused: []string{"empty_text"}},
		{name: "1.1.2 text of 125 bytes", send: [][]byte{text(strings.Repeat("*", 125))}, delivered: []string{strings.Repeat("*", 125)}},
		{name: "1.1.3 text of 126 bytes", send: [][]byte{text(strings.Repeat("*", 126))}, delivered: []string{strings.Repeat("*", 126)}},
		{name: "1.1.4 text of 127 bytes", send: [][]byte{text(strings.Repeat("*", 127))}, delivered: []string{strings.Repeat("*", 127)}},
		{name: "1.1.5 text of 128 bytes", send: [][]byte{text(strings.Repeat("*", 128))}, delivered: []string{strings.Repeat("*", 128)}},
		{name: "1.1.6 text of 60,000 bytes", send: [][]byte{text(strings.Repeat("*", 60000))}, delivered: []string{strings.Repeat("*", 60000)}},
		{name: "1.1.7 text of 60,000 bytes in 997-byte writes", send: chunks(text(strings.Repeat("#", 60000)), 997), delivered: []string{strings.Repeat("#", 60000)}},
		{name: "1.1.8 text of 64 KiB, over MAX_MESSAGE_BYTES", send: [][]byte{text(strings.Repeat("*", 64<<10))}, refused: []string{"too_long"}},
		{name: "1.1.9 text of 64 KiB + 1", send: [][]byte{text(strings.Repeat("*", 64<<10+1))}, close: 1009},
		{name: "1.1.10 length of 2^62, decided from the header", send: [][]byte{header(0x81, 1<<62)}, close: 1009},
		{name: "1.1.11 length with its top bit set", send: [][]byte{header(0x81, 1<<63)}, close: 1002},
		{name: "1.1.12 unmasked text", send: [][]byte{{0x81, 0x02, 'h', 'i'}}, close: 1002},
		{name: "1.2.1 binary", send: [][]byte{servertest.ClientFrame(true, 0, 0x2, []byte{1, 2, 3})}, close: 1003},
		{name: "1.2.2 empty binary", send: [][]byte{servertest.ClientFrame(true, 0, 0x2, nil)}, close: 1003},

		{name: "2.1 ping without payload", send: [][]byte{ping("")}, pongs: []string{""}},
		{name: "2.2 ping with text", send: [][]byte{ping("Hello, world!")}, pongs: []string{"Hello, world!"}},
		{name: "2.3 ping with binary payload", send: [][]byte{ping("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")}, pongs: []string{"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"}},
		{name: "2.4 ping of 125 bytes", send: [][]byte{ping(strings.Repeat("\xfe", 125))}, pongs: []string{strings.Repeat("\xfe", 125)}},
		{name: "2.5 ping of 126 bytes", send: [][]byte{ping(strings.Repeat("\xfe", 126))}, close: 1002},
		{name: "2.5b ping of 100,000 bytes", send: [][]byte{ping(strings.Repeat("p", 100000))}, close: 1002},
		{name: "2.6 ping of 125 bytes in one-byte writes", send: bytewise(ping(strings.Repeat("x", 125))), pongs: []string{strings.Repeat("x", 125)}},
		{name: "2.7 unsolicited pong", send: [][]byte{pong(""), ping("after")}, pongs: []string{"after"}},
		{name: "2.8 unsolicited pong with payload", send: [][]byte{pong("unsolicited"), ping("after")}, pongs: []string{"after"}},
		{name: "2.9 pong then ping", send: [][]byte{pong("sent"), ping("ping payload")}, pongs: []string{"ping payload"}},
		{name: "2.10 ten pings", send: tenPings(), pongs: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},

		{name: "3.1 RSV1 without an extension", send: [][]byte{rsv(0x40, 0x1, "Hello")}, close: 1002},
		{name: "3.2 RSV2 after a valid message", send: [][]byte{text("valid before rsv2"), rsv(0x20, 0x1, "Hello"), ping("never")}, delivered: []string{"valid before rsv2"}, close: 1002},
		{name: "3.3 RSV3 after a valid message", send: [][]byte{text("valid before rsv3"), rsv(0x10, 0x1, "Hello"), ping("never")}, delivered: []string{"valid before rsv3"}, close: 1002},
		{name: "3.4 RSV1|RSV3 in one-byte writes", send: bytewise(text("valid before rsv5"), rsv(0x50, 0x1, "Hello")), delivered: []string{"valid before rsv5"}, close: 1002},
		{name: "3.5 RSV on binary", send: [][]byte{rsv(0x60, 0x2, "\x00\xff")}, close: 1002},
		{name: "3.6 RSV on ping", send: [][]byte{rsv(0x70, 0x9, "Hello")}, close: 1002},
		{name: "3.7 RSV on close", send: [][]byte{rsv(0x70, 0x8, "\x03\xe8")}, close: 1002},

		{name: "4.1.1 opcode 3", send: [][]byte{rsv(0, 0x3, "")}, close: 1002},
		{name: "4.1.2 opcode 4 with payload", send: [][]byte{rsv(0, 0x4, "reserved")}, close: 1002},
		{name: "4.1.3 opcode 5 after a valid message", send: [][]byte{text("valid before opcode 5"), rsv(0, 0x5, ""), ping("never")}, delivered: []string{"valid before opcode 5"}, close: 1002},
		{name: "4.1.4 opcode 6", send: [][]byte{rsv(0, 0x6, "reserved")}, close: 1002},
		{name: "4.1.5 opcode 7", send: [][]byte{rsv(0, 0x7, "reserved")}, close: 1002},
		{name: "4.2.1 opcode 0xB", send: [][]byte{rsv(0, 0xB, "")}, close: 1002},
		{name: "4.2.2 opcode 0xC", send: [][]byte{rsv(0, 0xC, "reserved")}, close: 1002},
		{name: "4.2.3 opcode 0xD after a valid message", send: [][]byte{text("valid before opcode 0xd"), rsv(0, 0xD, "")}, delivered: []string{"valid before opcode 0xd"}, close: 1002},
		{name: "4.2.4 opcode 0xE", send: [][]byte{rsv(0, 0xE, "reserved")}, close: 1002},
		{name: "4.2.5 opcode 0xF", send: [][]byte{rsv(0, 0xF, "reserved")}, close: 1002},

		{name: "5.1 fragmented ping", send: [][]byte{frag(0x9, false, "frag1"), frag(0, true, "frag2")}, close: 1002},
		{name: "5.2 fragmented pong", send: [][]byte{frag(0xA, false, "frag1"), frag(0, true, "frag2")}, close: 1002},
		{name: "5.3 text in two fragments", send: frags(0x1, "fragment1", "fragment2"), delivered: []string{"fragment1fragment2"}},
		{name: "5.4 text in two fragments, one-byte writes", send: bytewise(frags(0x1, "fragment1", "fragment2")...), delivered: []string{"fragment1fragment2"}},
		{name: "5.7 pong between two fragments", send: [][]byte{frag(0x1, false, "fragment1"), pong("between"), frag(0, true, "fragment2")}, delivered: []string{"fragment1fragment2"}},
		{name: "5.6 ping between two fragments", send: [][]byte{frag(0x1, false, "fragment1"), ping("between"), frag(0, true, "fragment2")}, pongs: []string{"between"}, delivered: []string{"fragment1fragment2"}},
		{name: "5.9 continuation without a start", send: [][]byte{frag(0, true, "nothing to continue"), text("after")}, close: 1002},
		{name: "5.10 unfinished continuation without a start", send: [][]byte{frag(0, false, "fragment1"), frag(0, true, "fragment2")}, close: 1002},
		{name: "5.15 a message, then a continuation without a start", send: [][]byte{frag(0x1, false, "f1"), frag(0, true, "f2"), frag(0, false, "f3"), frag(0x1, true, "f4")}, delivered: []string{"f1f2"}, close: 1002},
		{name: "5.17 a new text frame inside a fragmented message", send: [][]byte{frag(0x1, false, "f1"), frag(0x1, true, "f2")}, close: 1002},
		{name: "5.18 a binary frame inside a fragmented text message", send: [][]byte{frag(0x1, false, "f1"), frag(0x2, true, "f2")}, close: 1002},
		{name: "5.19 pings between five fragments", send: [][]byte{frag(0x1, false, "f1"), ping("p1"), frag(0, false, "f2"), frag(0, false, "f3"), frag(0, false, "f4"), ping("p2"), frag(0, true, "f5")}, pongs: []string{"p1", "p2"}, delivered: []string{"f1f2f3f4f5"}},
		{name: "5.20 a fragmented message over 64 KiB", send: [][]byte{frag(0x1, false, strings.Repeat("a", 40000)), frag(0, true, strings.Repeat("b", 40000))}, close: 1009},

		{name: "6.1.2 three empty fragments", send: frags(0x1, "", "", ""), refused: []string{"empty_text"}},
		{name: "6.1.3 empty, text, empty", send: frags(0x1, "", "middle", ""), delivered: []string{"middle"}},
		{name: "6.2.1 valid UTF-8", send: [][]byte{text(utf8Hello)}, delivered: []string{utf8Hello}},
		{name: "6.2.3 valid UTF-8, one fragment per byte", send: frags(0x1, strings.Split(utf8Hello, "")...), delivered: []string{utf8Hello}},
		{name: "6.2.4 κόσμε split inside characters", send: frags(0x1, kosme[:3], kosme[3:7], kosme[7:]), delivered: []string{kosme}},
		{name: "6.2.5 a two-byte character across fragments", send: frags(0x1, "caf\xc3", "\xa9"), delivered: []string{"café"}},
		{name: "6.2.6 a four-byte character across three fragments", send: frags(0x1, "\xf0\x9f", "\x98", "\x80!"), delivered: []string{"😀!"}},
		{name: "6.3.1 invalid UTF-8", send: [][]byte{text(kosme + "\xed\xa0\x80edited")}, close: 1007},
		{name: "6.3.2 invalid UTF-8, one fragment per byte", send: frags(0x1, strings.Split(kosme+"\xed\xa0\x80edited", "")...), close: 1007},
		{name: "6.4.1 fail fast: invalid in the first fragment", send: [][]byte{frag(0x1, false, kosme+"\xf4\x90\x80\x80")}, close: 1007},
		{name: "6.4.2 fail fast: a prefix that cannot be completed", send: [][]byte{frag(0x1, false, kosme+"\xf4\x90")}, close: 1007},
		{name: "6.4.3 fail fast: E0 then 80 in the next fragment", send: [][]byte{frag(0x1, false, "\xe0"), frag(0, false, "\x80")}, close: 1007},
		{name: "6.4.3 fail fast inside a frame that is still coming", send: [][]byte{partial(0x81, 100, "κόσμε\xf4\x90\x80\x80")}, close: 1007},
		{name: "6.5 a character cut by the end of the message", send: [][]byte{text("caf\xc3")}, close: 1007},
		{name: "6.6 a character cut by the end of a fragmented message", send: frags(0x1, "caf", "\xc3"), close: 1007},
		{name: "6.7 overlong encoding", send: [][]byte{text("\xc0\xaf")}, close: 1007},
		{name: "6.8 the largest code point and beyond", send: [][]byte{text("\xf4\x90\x80\x80")}, close: 1007},

		{name: "7.1.1 close 1000", send: [][]byte{closeFrame(1000, "")}, close: 1000},
		{name: "7.1.2 close twice", send: [][]byte{closeFrame(1000, ""), closeFrame(1000, "")}, close: 1000},
		{name: "7.1.3 text after close", send: [][]byte{closeFrame(1000, ""), text("after the close")}, close: 1000},
		{name: "7.1.4 ping after close", send: [][]byte{closeFrame(1000, ""), ping("after the close")}, close: 1000},
		{name: "7.1.6b a message, then close at once", send: [][]byte{append(text("bye"), closeFrame(1000, "")...)}, delivered: []string{"bye"}, close: 1000},
		{name: "7.1.6 a large message, then close", send: [][]byte{text(strings.Repeat("BAsd7&jh23", 5000)), closeFrame(1000, "")}, delivered: []string{strings.Repeat("BAsd7&jh23", 5000)}, close: 1000},
		{name: "7.1.5 close inside a fragmented message", send: [][]byte{frag(0x1, false, "fragment1"), closeFrame(1000, ""), frag(0, true, "fragment2")}, close: 1000},
		{name: "7.3.1 close without payload", send: [][]byte{servertest.ClientFrame(true, 0, 0x8, nil)}, close: 1000},
		{name: "7.3.2 close with a one-byte payload", send: [][]byte{servertest.ClientFrame(true, 0, 0x8, []byte{0x03})}, close: 1002},
		{name: "7.3.4 close with a reason", send: [][]byte{closeFrame(1000, "Hello World!")}, close: 1000},
		{name: "7.3.5 close with a 123-byte reason", send: [][]byte{closeFrame(1000, strings.Repeat("*", 123))}, close: 1000},
		{name: "7.3.6 close with a 124-byte reason", send: [][]byte{closeFrame(1000, strings.Repeat("*", 124))}, close: 1002},
		{name: "7.5.1 close reason not UTF-8", send: [][]byte{closeFrame(1000, kosme+"\xed\xa0\x80")}, close: 1007},
	}
	zText := strings.Repeat("Compressible text, again and again. ", 40)
	z := servertest.Deflate([]byte(zText))
	cases = append(cases, []rfcCase{
		{name: "12.1 compressed message", deflate: true, send: [][]byte{rsv(0x40, 0x1, string(z))}, delivered: []string{zText}},
		{name: "12.2 uncompressed message on a compressed connection", deflate: true, send: [][]byte{text("as is")}, delivered: []string{"as is"}},
		{name: "12.3 compressed message in fragments, ping between", deflate: true, send: [][]byte{servertest.ClientFrame(false, 0x40, 0x1, z[:20]), ping("between"), frag(0, true, string(z[20:]))}, pongs: []string{"between"}, delivered: []string{zText}},
		{name: "12.4 RSV1 on a continuation", deflate: true, send: [][]byte{servertest.ClientFrame(false, 0x40, 0x1, z[:20]), servertest.ClientFrame(true, 0x40, 0, z[20:])}, close: 1002},
		{name: "12.5 RSV1 on a ping", deflate: true, send: [][]byte{rsv(0x40, 0x9, "")}, close: 1002},
		{name: "12.6 inflates past 64 KiB", deflate: true, send: [][]byte{rsv(0x40, 0x1, string(servertest.Deflate(bytes.Repeat([]byte("a"), 65<<10))))}, close: 1009},
		{name: "12.7 corrupt compressed data", deflate: true, send: [][]byte{rsv(0x40, 0x1, "\xff\xff\xff")}, close: 1007},
		{name: "12.8 truncated compressed data", deflate: true, send: [][]byte{rsv(0x40, 0x1, string(z[:len(z)/2]))}, close: 1007},
		{name: "12.9 compressed invalid UTF-8", deflate: true, send: [][]byte{rsv(0x40, 0x1, string(servertest.Deflate([]byte("caf\xc3"))))}, close: 1007},
	}...)
	for _, code := range []int{1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4100, 4999} {
		cases = append(cases, rfcCase{name: fmt.Sprintf("7.7 close %d is echoed", code), send: [][]byte{closeFrame(code, "")}, close: code})
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, rfcCase{name: fmt.Sprintf("7.9 close %d is refused", code), send: [][]byte{closeFrame(code, "")}, close: 1002})
	}
	return cases
}

func tenPings() [][]byte {
	var out [][]byte
	for i := range 10 {
		out = append(out, ping(fmt.Sprint(i)))
	}
	return out
}

// chunks cuts b into writes of n bytes.
func chunks(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// TestRFC6455 sends each case from a raw client over loopback and checks the server's answer to the
// frame: acks, error frames, pongs and close code. Another user's connection checks that exactly the
// delivered messages were broadcast, whole, and the room's history that exactly they were stored.
func TestRFC6455(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, map[string]string{"MAX_MESSAGE_BYTES": "60000", "RATE_LIMIT": "0", "WS_COMPRESSION": "1"})
	ada, bob := s.Register(t, "ada@example.com"), s.Register(t, "bob@example.com")
	observer := s.Connect(t, bob)
	var stored []string
	for _, tc := range rfc6455Cases() {
		t.Run(tc.name, func(t *testing.T) {
			var offer http.Header
			if tc.deflate {
				offer = http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}}
			}
			c := s.DialRaw(t, "/ws?token="+ada.Token, offer)
			c.Opened()
			for _, b := range tc.send {
				if err := c.TryWrite(b); err != nil && tc.close == 0 {
					t.Fatalf("write: %v", err)
				}
			}
			got := answers(t, c, tc)
			want := rfcCase{delivered: tc.delivered, refused: tc.refused, pongs: tc.pongs, close: tc.close}
			if !equalAnswers(got, want) {
				t.Errorf("server answered %s\nwant %s", describe(got), describe(want))
			}
			for _, text := range tc.delivered {
				if m := observer.Read(); m["type"] != "message" || m["text"] != text {
					t.Fatalf("observer got %.200v, want the message %.60q", m, text)
				}
				stored = append(stored, text)
			}
		})
	}
	// Nothing else was broadcast or stored: the next message the observer gets is this one.
	last := s.Connect(t, ada)
	last.SendText("the end")
	if m := observer.Read(); m["text"] != "the end" {
		t.Errorf("observer got %.200v, want the last message", m)
	}
	stored = append(stored, "the end")
	_, body := s.Do(t, "GET", fmt.Sprintf("/api/rooms/general/messages?limit=%d", len(stored)+10), ada.Token, nil)
	var texts []string
	for _, m := range body["messages"].([]any) {
		texts = append(texts, m.(map[string]any)["text"].(string))
	}
	if !slices.Equal(texts, stored) {
		t.Errorf("history holds %d messages, want the %d delivered", len(texts), len(stored))
	}
}

// answers reads the server's frames until the close frame, or, when tc expects the connection to stay
// open, until it has answered everything tc expects and a ping of the test's own after that.
func answers(t *testing.T, c *servertest.Raw, tc rfcCase) rfcCase {
	t.Helper()
	var got rfcCase
	barrier := false
	for {
		if tc.close == 0 && !barrier && len(got.delivered) >= len(tc.delivered) &&
			len(got.refused) >= len(tc.refused) && lastPong(got.pongs) == lastPong(tc.pongs) {
			c.Write(ping("end of case"))
			barrier = true
		}
		f, err := c.ReadFrame(servertest.Timeout)
		if err != nil {
			t.Fatalf("read: %v (so far %s)", err, describe(got))
		}
		switch f.Op {
		case 0x1:
			var m struct {
				Type, Code string
				Message    json.RawMessage
			}
			if err := json.Unmarshal(f.Payload, &m); err != nil {
				t.Fatalf("text frame %q: %v", f.Payload, err)
			}
			switch m.Type {
			case "ack":
				var msg struct{ Text string }
				if err := json.Unmarshal(m.Message, &msg); err != nil {
					t.Fatalf("ack %q: %v", f.Payload, err)
				}
				got.delivered = append(got.delivered, msg.Text)
			case "error":
				got.refused = append(got.refused, m.Code)
			case "joined", "left", "presence", "message":
			default:
				t.Fatalf("unexpected frame %q", f.Payload)
			}
		case 0xA:
			if barrier && string(f.Payload) == "end of case" {
				return got
			}
			got.pongs = append(got.pongs, string(f.Payload))
		case 0x8:
			if len(f.Payload) < 2 {
				t.Fatalf("close frame without a code: %q", f.Payload)
			}
			got.close = int(binary.BigEndian.Uint16(f.Payload))
			if _, err := c.ReadFrame(servertest.Timeout); !errors.Is(err, io.EOF) {
				t.Errorf("after the close frame: %v, want the connection closed", err)
			}
			return got
		default:
			t.Fatalf("unexpected opcode %#x", f.Op)
		}
	}
}

// equalAnswers compares what the server answered, got, with what a case wants.
func equalAnswers(got, want rfcCase) bool {
	return slices.Equal(got.delivered, want.delivered) && slices.Equal(got.refused, want.refused) &&
		answersPings(got.pongs, want.pongs) && got.close == want.close
}

// answersPings reports whether pongs answer the pings: the last of them, and others in order.
func answersPings(pongs, pings []string) bool {
	if lastPong(pongs) != lastPong(pings) || len(pongs) == 0 && len(pings) > 0 {
		return false
	}
	i := 0
	for _, p := range pongs {
		for i < len(pings) && pings[i] != p {
			i++
		}
		if i == len(pings) {
			return false
		}
		i++
	}
	return true
}

func lastPong(p []string) string {
	if len(p) == 0 {
		return "\x00none"
	}
	return p[len(p)-1]
}

func describe(c rfcCase) string {
	short := func(ss []string) []string {
		var out []string
		for _, s := range ss {
			if len(s) > 40 {
				s = fmt.Sprintf("%s… (%d bytes)", s[:40], len(s))
			}
			out = append(out, fmt.Sprintf("%q", s))
		}
		return out
	}
	return fmt.Sprintf("delivered %v, refused %v, pongs %v, close %d", short(c.delivered), c.refused, short(c.pongs), c.close)
}
