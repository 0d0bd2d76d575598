package chat

import (
	"context"
	"log/slog"
	"sync"

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
// transaction (one disk sync for many messages, however many rooms they are in), answers each sender as
// soon as the batch is durable, and queues the messages for one publisher goroutine, which hands them to
// the bus in commit order. So messages reach the bus, and every socket of this node, in id order per room,
// with no lock held across the disk sync, and a slow fan-out never delays the next commit.
type pipeline struct {
	store   MessageStore
	bus     bus.Bus
	log     *slog.Logger
	appends chan *appendReq
	outbox  chan bus.Event
	stopped chan struct{}
	mu      sync.RWMutex // guards closed against sends on a closed appends
	closed  bool
}

type appendReq struct {
	msg  app.Message
	skip string // the connection that gets an ack instead of the message
	done chan appendResult
}

type appendResult struct {
	msg     app.Message
	object  []byte // msg's JSON, for the ack
	created bool
	err     error
}

func newPipeline(s MessageStore, b bus.Bus, log *slog.Logger) *pipeline {
	p := &pipeline{
		store:   s,
		bus:     b,
		log:     log,
		appends: make(chan *appendReq, maxCommitBatch),
		outbox:  make(chan bus.Event, 4*maxCommitBatch),
		stopped: make(chan struct{}),
	}
	go p.commitLoop()
	go p.publishLoop()
	return p
}

// append stores m and returns it once durable; the bus gets it afterwards unless it was a repeat.
func (p *pipeline) append(ctx context.Context, m app.Message, skip string) (appendResult, error) {
	req := &appendReq{msg: m, skip: skip, done: make(chan appendResult, 1)}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return appendResult{}, errClosed
	}
	select {
	case p.appends <- req:
	case <-ctx.Done():
		p.mu.RUnlock()
		return appendResult{}, ctx.Err()
	}
	p.mu.RUnlock()
	res := <-req.done // the committer always answers
	return res, res.err
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
		stored, err := p.store.AppendMessages(context.Background(), msgs)
		for i, r := range batch {
			if err != nil {
				r.done <- appendResult{err: err}
				continue
			}
			res := appendResult{msg: stored[i].Message, created: stored[i].Created}
			var frame []byte
			frame, res.object, res.err = app.EncodeMessage(res.msg)
			r.done <- res
			if res.err == nil && res.created {
				p.outbox <- bus.Event{Room: res.msg.Room, Payload: frame, Skip: r.skip, ID: res.msg.ID}
			}
		}
	}
}

// publishLoop hands stored messages to the bus in the order they were committed. A bus failure is
// logged: the message is durable and acknowledged, and clients that missed it get it when they resume.
func (p *pipeline) publishLoop() {
	defer close(p.stopped)
	for ev := range p.outbox {
		if err := p.bus.Publish(context.Background(), ev); err != nil {
			p.log.Error("publish message", "room", ev.Room, "id", ev.ID, "err", err)
		}
	}
}

// close stops taking messages, lets those taken be stored and published, and returns when they are.
func (p *pipeline) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.appends)
	}
	p.mu.Unlock()
	<-p.stopped
}
