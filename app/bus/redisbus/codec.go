package redisbus

import (
	"encoding/binary"
	"errors"

	"github.com/causerie/causerie/app/bus"
)

// eventVersion opens every encoded event, so that a format change can be told from the old one.
const eventVersion = 1

// encodeEvent lays ev out as a version byte, the length-prefixed strings Room, Skip and Node, the varints
// SkipUser, ID and Sent, and the payload to the end: no JSON around JSON, one allocation.
func encodeEvent(ev bus.Event) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(ev.Room)+len(ev.Skip)+len(ev.Node)+3*binary.MaxVarintLen64+len(ev.Payload))
	b = append(b, eventVersion)
	for _, s := range [...]string{ev.Room, ev.Skip, ev.Node} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, ev.SkipUser)
	b = binary.AppendVarint(b, ev.ID)
	b = binary.AppendVarint(b, ev.Sent)
	return append(b, ev.Payload...)
}

var errMalformed = errors.New("bus: malformed event")

func decodeEvent(b []byte) (bus.Event, error) {
	if len(b) == 0 || b[0] != eventVersion {
		return bus.Event{}, errMalformed
	}
	b = b[1:]
	var strs [3]string
	for i := range strs {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return bus.Event{}, errMalformed
		}
		strs[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	var ints [3]int64
	for i := range ints {
		v, k := binary.Varint(b)
		if k <= 0 {
			return bus.Event{}, errMalformed
		}
		ints[i] = v
		b = b[k:]
	}
	ev := bus.Event{Room: strs[0], Skip: strs[1], Node: strs[2], SkipUser: ints[0], ID: ints[1], Sent: ints[2]}
	if len(b) > 0 {
		ev.Payload = b
	}
	return ev, nil
}
