// Package commit stores messages in batches, one transaction for all that wait, and publishes them in
// the order of their ids.
package commit

import (
	"context"
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

// ErrClosed is returned to senders once the pipeline has stopped taking messages.
var ErrClosed = app.Errorf(app.CodeUnavailable, "the server is shutting down; send the message again after reconnecting")

// Pipeline stores messages in batches and publishes them in the order of their ids.
//
// Every sender hands its message to one committer goroutine, which stores all that are waiting in one
// transaction (one disk sync for many messages, however many rooms they are in) and queues them for one
// publisher goroutine, which publishes them in commit order (Config.Publish): the hub delivers each to
// this node's sockets through its room's sequencer and hands it to the relay for the other nodes, and
// answers the sender once the sequencer has delivered it here, after every earlier message of its room.
// So an ack never overtakes an earlier message on its
// connection, and a client that resumes from the id of its last ack misses nothing; a WebSocket reader
// never waits for the disk and goes on with its next frames, which is what lets batches grow; no lock is
// held across the disk sync; and neither a slow fan-out nor the bus delays the next commit. A message of a
// connection is marked before it is stored (Config.Mark), so that a catch-up that reads it from the store
// before its event comes leaves it to the event, which answers its sender.
type Pipeline struct {
	Config
	appends chan *Request
	outbox  chan published
	stopped chan struct{}
	// quit tells submitters waiting on a full appends to give up, so that Close can take mu.
	quit     chan struct{}
	quitOnce sync.Once
	mu       sync.RWMutex // guards closed against sends on a closed appends
	closed   bool
}

// Config is what a Pipeline stores to and publishes with.
type Config struct {
	Store Store
	// Mark marks a message of a connection of this node (Request.Conn) as on its way (delta +1) before
	// it is stored, and takes the mark back (-1) when it fails to be; its event takes it otherwise.
	Mark func(m app.Message, delta int)
	// Publish delivers ev here and hands it to the other nodes; landed is as for Mark, or nil. done answers
	// the sender, once ev is delivered here.
	Publish func(ev bus.Event, landed *app.Message, done func())
	// Commit records one transaction of n messages; it must not block.
	Commit func(took time.Duration, n int)
}

// Store is the storage a Pipeline needs: see chat.MessageStore.
type Store interface {
	AppendMessages(ctx context.Context, msgs []app.Message) ([]app.Appended, error)
}

// Request is one message to store.
type Request struct {
	Msg app.Message
	// Conn names the connection of this node that sent Msg, which its event skips; empty for a REST post.
	Conn string
	// Answer receives the result once the message is delivered on this node, or has failed.
	Answer func(Result)
}

// published is a stored message on its way to the bus, with the sender waiting for its answer.
type published struct {
	req *Request
	res Result
	ev  bus.Event // zero ID: nothing to publish (a repeat, or a failure)
}

// Result is what became of a Request: the message stored (Created false for a repeat of a client id,
// which returns the earlier message), and its JSON for the ack; or Err.
type Result struct {
	Msg     app.Message
	Object  []byte
	Created bool
	Err     error
}

// New returns a pipeline; Run carries its messages.
func New(cfg Config) *Pipeline {
	p := &Pipeline{
		Config:  cfg,
		appends: make(chan *Request, maxCommitBatch),
		outbox:  make(chan published, 4*maxCommitBatch),
		stopped: make(chan struct{}),
		quit:    make(chan struct{}),
	}
	return p
}

// Submit queues req; it blocks only while the committer is a full batch behind.
func (p *Pipeline) Submit(ctx context.Context, req *Request) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	select {
	case p.appends <- req:
		return nil
	case <-p.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run stores and publishes what Submit queues until Close.
func (p *Pipeline) Run() {
	go p.commitLoop()
	p.publishLoop()
}

func (p *Pipeline) commitLoop() {
	defer close(p.outbox)
	batch := make([]*Request, 0, maxCommitBatch)
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
			msgs = append(msgs, r.Msg)
		}
		// Marked before they can be read from the store: a catch-up leaves them to their events, which
		// clear the marks.
		for _, r := range batch {
			if r.Conn != "" {
				p.Mark(r.Msg, +1)
			}
		}
		results := p.store(msgs)
		pubs := make([]published, len(results))
		for i, out := range results {
			r := batch[i]
			pub := published{req: r, res: Result{Err: out.err}}
			if out.err == nil {
				pub.res.Msg, pub.res.Created = out.Message, out.Created
				var frame []byte
				frame, pub.res.Object, pub.res.Err = app.EncodeMessage(out.Message)
				// A repeat (or a message that failed to encode) goes out as a bare event: its sender is
				// answered once the message is delivered here, and the other nodes are told it exists, in
				// case the node that stored it first stopped before publishing it.
				pub.ev = bus.Event{Room: out.Message.Room, ID: out.Message.ID}
				if out.Created && pub.res.Err == nil {
					pub.ev.Payload, pub.ev.Skip = frame, r.Conn
				}
			}
			if out.err != nil && r.Conn != "" {
				p.Mark(r.Msg, -1) // not stored: no event will clear it
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
func (p *Pipeline) store(msgs []app.Message) []stored {
	out := make([]stored, len(msgs))
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	all, err := p.Store.AppendMessages(ctx, msgs)
	p.Commit(time.Since(start), len(msgs))
	if err == nil {
		for i := range all {
			out[i].Appended, out[i].err = all[i], all[i].Err
		}
		return out
	}
	if len(msgs) == 1 {
		out[0].err = err
		return out
	}
	for i := range msgs {
		one, err := p.Store.AppendMessages(ctx, msgs[i:i+1])
		if err != nil {
			out[i].err = err
			continue
		}
		out[i].Appended, out[i].err = one[0], one[0].Err
	}
	return out
}

// publishLoop publishes stored messages in the order they were committed; each sender is answered once
// its message has been delivered on this node, after every earlier message of the room.
func (p *Pipeline) publishLoop() {
	defer close(p.stopped)
	for pub := range p.outbox {
		if pub.ev.ID == 0 {
			pub.req.Answer(pub.res)
			continue
		}
		var landed *app.Message
		if pub.req.Conn != "" {
			landed = &pub.req.Msg
		}
		p.Publish(pub.ev, landed, func() { pub.req.Answer(pub.res) })
	}
}

// Close stops taking messages, lets those taken be stored and published, and returns when they are or
// when ctx ends.
func (p *Pipeline) Close(ctx context.Context) {
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
