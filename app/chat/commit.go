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

// errClosed is returned to senders once the hub has stopped taking messages.
var errClosed = app.Errorf(app.CodeInternal, "the server is shutting down; send the message again after reconnecting")

// pipeline stores messages in batches and publishes them in the order of their ids.
//
// Every sender hands its message to one committer goroutine, which stores all that are waiting in one
// transaction (one disk sync for many messages, however many rooms they are in) and queues them for one
// publisher goroutine, which hands them to the bus in commit order and only then answers each sender: it
// queues the ack (or error) frame of a WebSocket sender, or wakes a REST sender. So messages reach the
// bus, and every socket of this node, in id order per room; an ack never overtakes an earlier message on
// its connection, so a client that resumes from the id of its last ack misses nothing; a WebSocket reader
// never waits for the disk and goes on with its next frames, which is what lets batches grow; no lock is
// held across the disk sync; and a slow fan-out never delays the next commit.
type pipeline struct {
	db MessageStore
	// committed tells the hub that a message is stored and on its way; publish then delivers it here
	// and hands it to the bus, and done answers its sender.
	committed func(room string, id int64)
	publish   func(ev bus.Event, done func())
	commitMu  *sync.Mutex
	timings   Timings
	log       *slog.Logger
	appends   chan *appendReq
	outbox    chan published
	stopped   chan struct{}
	// quit tells submitters waiting on a full appends to give up, so that close can take mu.
	quit     chan struct{}
	quitOnce sync.Once
	mu       sync.RWMutex // guards closed against sends on a closed appends
	closed   bool
}

// appendReq is one message to store. A WebSocket sender (from) gets an ack or error frame queued; a REST
// sender waits on done.
type appendReq struct {
	msg  app.Message
	from *Client
	done chan appendResult
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

func newPipeline(s MessageStore, h *Hub) *pipeline {
	p := &pipeline{
		db:        s,
		committed: h.committed,
		publish:   h.publish,
		commitMu:  &h.commitMu,
		timings:   h.opts.Timings,
		log:       h.log,
		appends:   make(chan *appendReq, maxCommitBatch),
		outbox:    make(chan published, 4*maxCommitBatch),
		stopped:   make(chan struct{}),
		quit:      make(chan struct{}),
	}
	go p.commitLoop()
	go p.publishLoop()
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
		// Under commitMu, so that a catch-up reading the store sees these messages only once they are
		// marked as on their way from here (see catchUp).
		p.commitMu.Lock()
		results := p.store(msgs)
		for _, out := range results {
			if out.err == nil && out.Created {
				p.committed(out.Message.Room, out.Message.ID)
			}
		}
		p.commitMu.Unlock()
		for i, out := range results {
			r := batch[i]
			pub := published{req: r, res: appendResult{err: out.err}}
			if out.err == nil {
				pub.res.msg, pub.res.created = out.Message, out.Created
				var frame []byte
				frame, pub.res.object, pub.res.err = app.EncodeMessage(out.Message)
				if out.Created {
					// Without a payload (it failed to encode) the event only clears the mark.
					pub.ev = bus.Event{Room: out.Message.Room, Payload: frame, ID: out.Message.ID}
					if r.from != nil {
						pub.ev.Skip = r.from.ID
					}
				}
			}
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
	all, err := p.db.AppendMessages(context.Background(), msgs)
	p.timings.Commit(time.Since(start), len(msgs))
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
		one, err := p.db.AppendMessages(context.Background(), msgs[i:i+1])
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
		p.publish(pub.ev, func() { p.answer(pub.req, pub.res) })
	}
}

func (p *pipeline) answer(req *appendReq, res appendResult) {
	if req.from == nil {
		req.done <- res
		return
	}
	if res.err != nil {
		p.log.Error("store message", "conn", req.from.ID, "room", req.msg.Room, "err", res.err)
		req.from.enqueue(app.EncodeError(app.CodeInternal, "the message could not be stored; send it again", req.msg.ClientID))
		return
	}
	req.from.enqueue(app.EncodeMessageAck(req.msg.ClientID, res.object))
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
