package chat

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

// maxCommitBatch caps the messages stored in one transaction.
const maxCommitBatch = 256

// commitTimeout bounds storing one batch, retries included: a hung database must not hold the committer
// for ever. Its senders get an error frame and may send again.
const commitTimeout = 10 * time.Second

// errClosed is returned to senders once the hub has stopped taking messages.
var errClosed = app.Errorf(app.CodeUnavailable, "the server is shutting down; send the message again after reconnecting")

// pipeline stores messages in batches and publishes them in the order of their ids.
//
// Every sender hands its message to one committer goroutine, which stores all that are waiting in one
// transaction (one disk sync for many messages, however many rooms they are in) and queues them for one
// publisher goroutine, which publishes them in commit order: it delivers each to this node's sockets
// through its room's sequencer, hands it to the relay for the other nodes, and answers the sender once the
// sequencer has delivered it here, after every earlier message of its room: it queues the ack (or error)
// frame of a WebSocket sender, or wakes a REST sender. So an ack never overtakes an earlier message on its
// connection, and a client that resumes from the id of its last ack misses nothing; a WebSocket reader
// never waits for the disk and goes on with its next frames, which is what lets batches grow; no lock is
// held across the disk sync; and neither a slow fan-out nor the bus delays the next commit. A message of a
// connection is marked in its room's sequencer before it is stored (inflight), so that a catch-up that
// reads it from the store before its event comes leaves it to the event, which answers its sender.
type pipeline struct {
	db MessageStore
	// hub marks each message of a connection before it is stored (fly), then publishes it (publish),
	// which answers its sender once it is delivered here.
	hub     *Hub
	log     *slog.Logger
	appends chan *appendReq
	outbox  chan published
	stopped chan struct{}
	// quit tells submitters waiting on a full appends to give up, so that close can take mu.
	quit     chan struct{}
	quitOnce sync.Once
	mu       sync.RWMutex // guards closed against sends on a closed appends
	closed   bool
}

// appendReq is one message to store. A WebSocket sender (from) gets an ack or error frame queued; a REST
// sender waits on done.
type appendReq struct {
	msg app.Message
	// ackID is the client id the sender gave, echoed in its ack: msg.ClientID may be one of ours.
	ackID string
	from  *Client
	done  chan appendResult
}

// published is a stored message on its way to the bus, with the sender waiting for its answer.
type published struct {
	req *appendReq
	res appendResult
	ev  bus.Event // zero ID: nothing to publish (a repeat, or a failure)
}

type appendResult struct {
	msg     app.Message
	object  []byte // msg's JSON, for the ack
	created bool
	err     error
}

// newPipeline returns a pipeline whose loops the hub's Run starts.
func newPipeline(s MessageStore, h *Hub) *pipeline {
	p := &pipeline{
		db:      s,
		hub:     h,
		log:     h.log,
		appends: make(chan *appendReq, maxCommitBatch),
		outbox:  make(chan published, 4*maxCommitBatch),
		stopped: make(chan struct{}),
		quit:    make(chan struct{}),
	}
	return p
}

// submit queues req; it blocks only while the committer is a full batch behind.
func (p *pipeline) submit(ctx context.Context, req *appendReq) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errClosed
	}
	select {
	case p.appends <- req:
		return nil
	case <-p.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pipeline) commitLoop() {
	defer close(p.outbox)
	batch := make([]*appendReq, 0, maxCommitBatch)
	msgs := make([]app.Message, 0, maxCommitBatch)
	for first := range p.appends {
		batch, msgs = append(batch[:0], first), msgs[:0]
	more:
		for len(batch) < maxCommitBatch {
			select {
			case r, ok := <-p.appends:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		for _, r := range batch {
			msgs = append(msgs, r.msg)
		}
		// Marked before they can be read from the store: a catch-up leaves them to their events (see
		// sequence.Room.Fly), which clear the marks.
		for _, r := range batch {
			if r.from != nil {
				p.hub.fly(r.msg, +1)
			}
		}
		results := p.store(msgs)
		pubs := make([]published, len(results))
		for i, out := range results {
			r := batch[i]
			pub := published{req: r, res: appendResult{err: out.err}}
			if out.err == nil {
				pub.res.msg, pub.res.created = out.Message, out.Created
				var frame []byte
				frame, pub.res.object, pub.res.err = app.EncodeMessage(out.Message)
				// A repeat (or a message that failed to encode) goes out as a bare event: its sender is
				// answered once the message is delivered here, and the other nodes are told it exists, in
				// case the node that stored it first stopped before publishing it.
				pub.ev = bus.Event{Room: out.Message.Room, ID: out.Message.ID}
				if out.Created && pub.res.err == nil {
					pub.ev.Payload = frame
					if r.from != nil {
						pub.ev.Skip = r.from.ID
					}
				}
			}
			if out.err != nil && r.from != nil {
				p.hub.fly(r.msg, -1) // not stored: no event will clear it
			}
			pubs[i] = pub
		}
		for _, pub := range pubs {
			p.outbox <- pub
		}
	}
}

type stored struct {
	app.Appended
	err error
}

// store stores msgs in one transaction. If that fails, it stores them one by one, so that one bad message
// (its author deleted, say) fails alone and not the messages of everyone else in the batch.
func (p *pipeline) store(msgs []app.Message) []stored {
	out := make([]stored, len(msgs))
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	all, err := p.db.AppendMessages(ctx, msgs)
	p.hub.opts.Timings.Commit(time.Since(start), len(msgs))
	if err == nil {
		for i := range all {
			out[i].Appended = all[i]
		}
		return out
	}
	if len(msgs) == 1 {
		out[0].err = err
		return out
	}
	for i := range msgs {
		one, err := p.db.AppendMessages(ctx, msgs[i:i+1])
		if err != nil {
			out[i].err = err
			continue
		}
		out[i].Appended = one[0]
	}
	return out
}

// publishLoop publishes stored messages in the order they were committed; each sender is answered once
// its message has been delivered on this node, after every earlier message of the room.
func (p *pipeline) publishLoop() {
	defer close(p.stopped)
	for pub := range p.outbox {
		if pub.ev.ID == 0 {
			p.answer(pub.req, pub.res)
			continue
		}
		var landed *app.Message
		if pub.req.from != nil {
			landed = &pub.req.msg
		}
		p.hub.publishStored(pub.ev, landed, func() { p.answer(pub.req, pub.res) })
	}
}

func (p *pipeline) answer(req *appendReq, res appendResult) {
	if req.from == nil {
		req.done <- res
		return
	}
	if res.err != nil {
		p.log.Error("store message", "conn", req.from.ID, "room", req.msg.Room, "err", res.err)
		req.from.answer(app.EncodeError(app.CodeInternal, "the message could not be stored; send it again", req.ackID, 0))
		return
	}
	req.from.answer(app.EncodeMessageAck(req.ackID, res.object))
}

// close stops taking messages, lets those taken be stored and published, and returns when they are or
// when ctx ends.
func (p *pipeline) close(ctx context.Context) {
	p.quitOnce.Do(func() { close(p.quit) })
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.appends)
	}
	p.mu.Unlock()
	select {
	case <-p.stopped:
	case <-ctx.Done():
	}
}
