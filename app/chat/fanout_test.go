package chat

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/store"
)

// discardConn is a transport that writes nowhere. It exists for the fan-out benchmark only, which measures
// the hub's side of a delivery (queueing, waking writers), not a socket's; the tests in handlers/ run the
// real transport over real sockets.
type discardConn struct{ frames atomic.Int64 }

func (d *discardConn) WriteFrames(frames [][]byte) error {
	d.frames.Add(int64(len(frames)))
	return nil
}
func (d *discardConn) Ping() error         { return nil }
func (d *discardConn) Pong([]byte) error   { return nil }
func (d *discardConn) Close(int, string)   {}
func (d *discardConn) Abort()              {}
func (d *discardConn) LastRead() time.Time { return time.Now() }

// BenchmarkBroadcast1000 delivers one encoded message to the 1000 members of a room: one op is one
// message, 1000 deliveries. The frame is encoded once, before the loop, as the pipeline does.
func BenchmarkBroadcast1000(b *testing.B) {
	const members = 1000
	db, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "c.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	h, err := New(Options{Store: db, Bus: bus.NewMemory()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Shutdown(context.Background(), app.CloseGoingAway, "") })
	conn := &discardConn{}
	var r *room
	for i := range members {
		c := &Client{ID: string(rune('a' + i%26)), seq: uint64(i), conn: conn, hub: h, maxQueue: 1 << 20,
			User: app.Identity{UserID: int64(i + 1)}}
		r, _ = h.enterRoom(c, "general")
		b.Cleanup(c.finish) // as Unregister does: its writer goes
	}
	frame, _, err := app.EncodeMessage(app.Message{ID: 1, Room: "general", From: app.Author{ID: 1, Name: "ada"}, Text: "Bonjour"})
	if err != nil {
		b.Fatal(err)
	}
	ev := bus.Event{Room: "general", Payload: frame, ID: 1}
	h.stats.Deliveries.Store(0)
	b.ReportAllocs()
	for b.Loop() {
		h.fanOut(r, ev)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members), "ns/delivery")
	if h.stats.Deliveries.Load() != int64(b.N*members) {
		b.Fatalf("%d deliveries, want %d", h.stats.Deliveries.Load(), b.N*members)
	}
}
