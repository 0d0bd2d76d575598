package bench

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// conn is one load-tool connection: a reader goroutine, and, for senders, writes from the sending loop.
type conn struct {
	ws     *websocket.Conn
	run    *run
	index  int
	sender int // this connection's sender number, -1 for a receiver
	ready  chan struct{}
	// last is the sequence number of the last message seen from each sender, to spot duplicates: a room
	// delivers each sender's messages in order.
	last []int64

	wmu sync.Mutex
}

func (c *conn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.TextMessage, frame)
}

var (
	prefixMessage = []byte(`{"type":"message"`)
	prefixAck     = []byte(`{"type":"ack"`)
	prefixError   = []byte(`{"type":"error"`)
	prefixHistory = []byte(`{"type":"history"`)
	textField     = []byte(`"text":"b `)
	codeField     = []byte(`"code":"`)
)

// read handles frames until the connection ends. A frame may hold several lines (batching, and the
// gorilla chat's joined messages).
func (c *conn) read() {
	var buf bytes.Buffer
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			c.ended(err)
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			c.ended(err)
			return
		}
		data := buf.Bytes()
		for len(data) > 0 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			c.line(line)
		}
	}
}

func (c *conn) ended(err error) {
	if c.run.closing.Load() {
		return
	}
	c.run.closed.Add(1)
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		c.run.countError("closed " + strconv.Itoa(ce.Code))
		return
	}
	c.run.countError("read")
}

func (c *conn) line(line []byte) {
	if c.run.cfg.Proto == ProtoGorilla {
		if bytes.HasPrefix(line, textField[len(`"text":"`):]) {
			c.message(line[2:])
		}
		return
	}
	switch {
	case bytes.HasPrefix(line, prefixMessage):
		if i := bytes.Index(line, textField); i >= 0 {
			c.message(line[i+len(textField):])
		}
	case bytes.HasPrefix(line, prefixAck):
		c.run.acked.Add(1)
		if i := bytes.Index(line, textField); i >= 0 {
			_, rest := field(line[i+len(textField):])
			_, rest = field(rest)
			if sent, _ := field(rest); sent > 0 {
				c.run.record(c.run.ack[:], c.index, sent)
			}
		}
	case bytes.HasPrefix(line, prefixError):
		code := "error"
		if i := bytes.Index(line, codeField); i >= 0 {
			rest := line[i+len(codeField):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				code = string(rest[:j])
			}
		}
		c.run.countError(code)
		if code == "rate_limited" && c.sender >= 0 {
			c.run.tr.refuse(c.sender)
		}
	case bytes.HasPrefix(line, prefixHistory):
		select {
		case <-c.ready:
		default:
			close(c.ready)
		}
	}
}

// message handles the text "SENDER SEQ SENT_UNIX_NANO ..." of a delivery.
func (c *conn) message(text []byte) {
	sender, text := field(text)
	seq, text := field(text)
	sent, _ := field(text)
	if sender < 0 || sender >= int64(len(c.last)) || int(sender) == c.sender {
		return // the gorilla chat echoes a sender's own messages
	}
	if seq <= c.last[sender] {
		c.run.dups.Add(1)
		return
	}
	c.last[sender] = seq
	c.run.tr.deliver(int(sender), seq)
	c.run.record(c.run.lat[:], c.index, sent)
}

// field parses a leading decimal number and returns it with the rest after one space; -1 when absent.
func field(b []byte) (int64, []byte) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 {
		return -1, b
	}
	if i < len(b) {
		i++
	}
	return n, b[i:]
}
