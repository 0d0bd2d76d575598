package wsframe

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/causerie/causerie/app"
)

// BenchmarkReadFrame reads one text frame per op from a connection that never runs dry, with this
// package's reader and, for comparison, with golang.org/x/net/websocket's, which it replaced.
func BenchmarkReadFrame(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"small", 60}, {"4KiB", 4 << 10}} {
		frame := clientFrame(finBit|OpText, []byte(strings.Repeat("a", size.n)))
		b.Run("wsframe/"+size.name, func(b *testing.B) {
			r := NewReader(bufio.NewReaderSize(&loop{data: frame}, 512), 64<<10, false)
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("xnet/"+size.name, func(b *testing.B) {
			ws := xnetServerConn(b, frame)
			var data []byte
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				if err := websocket.Message.Receive(ws, &data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// xnetServerConn returns x/net/websocket's server side of a connection whose client sends frame forever,
// with the 512-byte read buffer the server gave it.
func xnetServerConn(b *testing.B, frame []byte) *websocket.Conn {
	req := httptest.NewRequest(http.MethodGet, "/ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	got := make(chan *websocket.Conn, 1)
	done := make(chan struct{})
	b.Cleanup(func() { close(done) })
	w := hijacker{ResponseRecorder: httptest.NewRecorder(), conn: loopConn{loop: &loop{data: frame}}}
	go websocket.Server{
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler: func(ws *websocket.Conn) {
			ws.MaxPayloadBytes = 64 << 10
			got <- ws
			<-done
		},
	}.ServeHTTP(w, req)
	return <-got
}

type hijacker struct {
	*httptest.ResponseRecorder
	conn loopConn
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReaderSize(h.conn, 512), bufio.NewWriterSize(h.conn, 256)), nil
}

// loopConn is a net.Conn that reads a loop and drops what is written.
type loopConn struct {
	*loop
	net.Conn // nil: only the methods below are called
}

func (c loopConn) Read(p []byte) (int, error)     { return c.loop.Read(p) }
func (loopConn) Write(p []byte) (int, error)      { return len(p), nil }
func (loopConn) Close() error                     { return nil }
func (loopConn) SetDeadline(time.Time) error      { return nil }
func (loopConn) SetReadDeadline(time.Time) error  { return nil }
func (loopConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkCompressHistory compresses the history frame a client gets on joining a room: 50 messages of
// ordinary chat from four people. It reports the frame's bytes on the wire as sent and compressed.
func BenchmarkCompressHistory(b *testing.B) {
	lines := []string{
		"Bonjour à tous !", "quelqu'un a vu le dernier épisode ?", "oui, hier soir", "pas encore, pas de spoil svp",
		"on se retrouve à 18h pour la réunion ?", "ok pour moi", "je serai en retard de 10 minutes",
		"j'ai poussé la correction sur la branche main, vous pouvez relire ?", "merci, je regarde ça", "👍",
	}
	names := []string{"ada", "bob", "claire.dupont", "djamel"}
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	msgs := make([]app.Message, 50)
	for i := range msgs {
		msgs[i] = app.Message{ID: int64(1000 + i), Room: "general", From: app.Author{ID: int64(i%4 + 1), Name: names[i%4]},
			Text: lines[(i*7)%len(lines)], At: at.Add(time.Duration(i) * 37 * time.Second)}
	}
	frame, err := app.EncodeHistory("general", msgs)
	if err != nil {
		b.Fatal(err)
	}
	plain, compressed := len(AppendText(nil, frame)), len(AppendCompressed(nil, frame))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = AppendCompressed(buf[:0], frame)
	}
	b.ReportMetric(float64(plain), "plain-B")
	b.ReportMetric(float64(compressed), "deflate-B")
}

// BenchmarkBroadcastCompressed is one message of 1 KiB written to 1000 connections with compression on:
// each compressing it, or one Compressor for all.
func BenchmarkBroadcastCompressed(b *testing.B) {
	payload := []byte(`{"type":"message","id":1234,"room":"general","from":{"id":1,"name":"ada"},"text":"` +
		strings.Repeat("On se retrouve demain à la gare, vers neuf heures ? ", 18) + `","at":"2026-11-27T09:00:00Z"}`)
	var buf []byte
	b.Run("each", func(b *testing.B) {
		for b.Loop() {
			for range 1000 {
				buf = AppendCompressed(buf[:0], payload)
			}
		}
	})
	b.Run("shared", func(b *testing.B) {
		c := NewCompressor()
		for b.Loop() {
			payload[len(payload)-5]++ // a new message each time
			for range 1000 {
				buf = c.Append(buf[:0], payload)
			}
		}
	})
	// Writers on every processor at once, each writing the same messages in turn, with an ack of its own
	// (a frame sent once) after every tenth: per op, one delivery.
	b.Run("shared-parallel", func(b *testing.B) {
		c := NewCompressor()
		messages := make([][]byte, 16)
		for i := range messages {
			messages[i] = append([]byte(fmt.Sprintf("%d ", i)), payload...)
		}
		var writer atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			var buf []byte
			ack := append([]byte(fmt.Sprintf(`{"type":"ack","id":"w%d-`, writer.Add(1))), payload...)
			for i := 0; pb.Next(); i++ {
				buf = c.Append(buf[:0], messages[(i/1000)%len(messages)])
				if i%10 == 0 {
					ack[len(ack)-5]++
					buf = c.Append(buf[:0], ack)
				}
			}
		})
	})
}
