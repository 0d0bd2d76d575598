package redisbus

import (
	"errors"
	"reflect"
	"testing"

	"github.com/causerie/causerie/app/bus"
)

// FuzzDecodeEvent feeds decodeEvent any bytes, as a Redis channel may carry them. It must not panic; an
// error is errMalformed; and what it decodes encodes back to bytes that decode to the same event (the
// bytes themselves may differ: a varint may be written longer than it needs).
func FuzzDecodeEvent(f *testing.F) {
	f.Add(encodeEvent(bus.Event{Room: "général", Payload: []byte(`{"type":"message"}`), Skip: "n-1", SkipUser: -3, ID: 1 << 40, Node: "node-2", Sent: 42}))
	f.Add(encodeEvent(bus.Event{}))
	f.Add([]byte{})
	f.Add([]byte{eventVersion, 200})
	f.Add([]byte{eventVersion + 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("decodeEvent(%x): err = %v, want errMalformed", b, err)
			}
			return
		}
		again, err := decodeEvent(encodeEvent(ev))
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("decodeEvent(%x) = %+v, which encodes back to %+v, %v", b, ev, again, err)
		}
	})
}

// FuzzEventRoundTrip checks that any event decodes back from its encoding unchanged; an empty payload
// comes back nil.
func FuzzEventRoundTrip(f *testing.F) {
	f.Add("général", []byte(`{"type":"message"}`), "n-1", int64(-3), int64(1<<40), "node-2", int64(42))
	f.Add("", []byte(nil), "", int64(0), int64(0), "", int64(0))
	f.Add("typing", []byte(`{"type":"typing"}`), "", int64(7), int64(0), "n", int64(-1))
	f.Add("x", []byte{0x80, 0xff, 0}, "\x00\x01", int64(-1<<63), int64(1<<63-1), "\xff", int64(1<<63-1))
	f.Fuzz(func(t *testing.T, room string, payload []byte, skip string, skipUser, id int64, node string, sent int64) {
		ev := bus.Event{Room: room, Payload: payload, Skip: skip, SkipUser: skipUser, ID: id, Node: node, Sent: sent}
		got, err := decodeEvent(encodeEvent(ev))
		want := ev
		if len(want.Payload) == 0 {
			want.Payload = nil
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeEvent(encodeEvent(%+v)) = %+v, %v", ev, got, err)
		}
	})
}
