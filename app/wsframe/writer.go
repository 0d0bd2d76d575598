package wsframe

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"unicode/utf8"
)

// AppendText appends payload as one final, unmasked text frame: a server's frame is a 2-to-10-byte header
// before the payload (RFC 6455 section 5.2).
func AppendText(b, payload []byte) []byte {
	return append(appendHeader(b, finBit|OpText, len(payload)), payload...)
}

// AppendControl appends a control frame; payload must be at most MaxControlPayload bytes.
func AppendControl(b []byte, op byte, payload []byte) []byte {
	return append(appendHeader(b, finBit|op, len(payload)), payload...)
}

// AppendClose appends a close frame with code and reason, the reason cut to fit a control frame without
// splitting a character.
func AppendClose(b []byte, code int, reason string) []byte {
	limit := MaxControlPayload - 2
	if len(reason) > limit {
		for limit > 0 && !utf8.RuneStart(reason[limit]) {
			limit--
		}
		reason = reason[:limit]
	}
	b = appendHeader(b, finBit|OpClose, 2+len(reason))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
}

func appendHeader(b []byte, first byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, first, byte(n))
	case n <= 0xFFFF:
		return append(b, first, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, first, 127), uint64(n))
	}
}

// deflateTail is the empty block a sync flush ends with, which a sender strips from each compressed message
// (RFC 7692 section 7.2.1).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// CompressMin is the smallest payload AppendCompressed compresses. Below it deflate saves a few bytes at
// best, for a tenth of a microsecond per byte on a connection that gets every broadcast.
const CompressMin = 256

// deflaters keeps compressors for reuse. A flate.Writer holds about a megabyte, too much to make per
// message, and a sync.Pool would let the collector drop them every other cycle under load. A few cover the
// goroutines compressing at once; more than that are made for the moment and dropped.
var deflaters = make(chan *deflater, 8)

// maxKeptOutput bounds the output buffer a deflater keeps between uses.
const maxKeptOutput = 64 << 10

type deflater struct {
	w   *flate.Writer
	buf bytes.Buffer
}

func getDeflater() *deflater {
	select {
	case d := <-deflaters:
		return d
	default:
		w, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level: no error
		return &deflater{w: w}
	}
}

func putDeflater(d *deflater) {
	if d.buf.Cap() > maxKeptOutput {
		d.buf = bytes.Buffer{}
	}
	select {
	case deflaters <- d:
	default:
	}
}

// AppendCompressed appends payload as one final text frame compressed with permessage-deflate, without
// context takeover: each message is compressed on its own, so a connection keeps no compressor between
// messages, only the free list does. A payload under CompressMin, or one that would not shrink, goes as is
// (RSV1 is set per message).
func AppendCompressed(b, payload []byte) []byte {
	if len(payload) < CompressMin {
		return AppendText(b, payload)
	}
	d := getDeflater()
	defer putDeflater(d)
	d.buf.Reset()
	d.w.Reset(&d.buf)
	// Writes to a bytes.Buffer do not fail.
	_, _ = d.w.Write(payload)
	_ = d.w.Flush()
	z := bytes.TrimSuffix(d.buf.Bytes(), deflateTail)
	if len(z) >= len(payload) {
		return AppendText(b, payload)
	}
	return append(appendHeader(b, finBit|rsv1Bit|OpText, len(z)), z...)
}

// A Compressor compresses text frames with permessage-deflate and remembers its latest results. Without
// context takeover a payload compresses to the same bytes on every connection, so a broadcast, one payload
// queued to every connection, is compressed once instead of once per connection. It is safe for concurrent
// use; the zero value is not: use NewCompressor.
type Compressor struct {
	seed maphash.Seed
	// mu guards entries; it is held to look up and to copy a result, never to compress.
	mu      sync.Mutex
	entries [compressorEntries]remembered
}

type remembered struct {
	hash    uint64
	payload []byte // a copy: the caller's buffer may be reused
	frame   []byte
	// seen is the hash of the last payload that missed here. A payload is remembered the second time it
	// comes, so that frames sent once (acks, batches) cost a hash and do not push broadcasts out.
	seen uint64
}

// compressorEntries is how many recent payloads a Compressor remembers (a slot per hash); maxRemembered is
// the largest it remembers, which bounds its memory to a few megabytes.
const (
	compressorEntries = 64
	maxRemembered     = 16 << 10
)

// NewCompressor returns an empty Compressor.
func NewCompressor() *Compressor { return &Compressor{seed: maphash.MakeSeed()} }

// Append appends payload as one final text frame, compressed as AppendCompressed does.
func (c *Compressor) Append(b, payload []byte) []byte {
	if len(payload) < CompressMin || len(payload) > maxRemembered {
		return AppendCompressed(b, payload)
	}
	h := maphash.Bytes(c.seed, payload)
	e := &c.entries[h%compressorEntries]
	c.mu.Lock()
	if e.hash == h && bytes.Equal(e.payload, payload) {
		b = append(b, e.frame...)
		c.mu.Unlock()
		return b
	}
	second := e.seen == h
	e.seen = h
	c.mu.Unlock()
	start := len(b)
	b = AppendCompressed(b, payload)
	if second {
		c.mu.Lock()
		e.hash, e.payload, e.frame = h, append(e.payload[:0], payload...), append(e.frame[:0], b[start:]...)
		c.mu.Unlock()
	}
	return b
}
