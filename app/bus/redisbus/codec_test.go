package redisbus

import (
	"errors"
	"fmt"
	"testing"

	"github.com/causerie/causerie/app/bus"
)

func TestEventCodec(t *testing.T) {
	ev := bus.Event{Room: "général", Payload: []byte(`{"type":"message"}`), Skip: "n-1", SkipUser: -3, ID: 1 << 40, Node: "node-2", Sent: 42}
	got, err := decodeEvent(encodeEvent(ev))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(ev) {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, ev)
	}
	good := encodeEvent(ev)
	for name, b := range map[string][]byte{
		"empty":               nil,
		"another version":     append([]byte{eventVersion + 1}, good[1:]...),
		"length past the end": {eventVersion, 200},
		"cut in the varints":  good[:1+1+len("général")+1+len("n-1")+1+len("node-2")],
	} {
		if _, err := decodeEvent(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err = %v, want errMalformed", name, err)
		}
	}
}
