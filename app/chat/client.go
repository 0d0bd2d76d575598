package chat

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/bus"
)

// Conn is the transport under a client, implemented over WebSocket by the handlers package. The hub calls
// WriteFrames, Ping, Pong and Close from the client's writer goroutine only, and Abort from any goroutine:
// one goroutine writes, so no frame can cut into another or follow the close frame.
type Conn interface {
	// WriteFrames writes the payloads, in order, bounded by a write deadline: each as one text frame, or,
	// where the client asked for batches, joined by newlines into as few as fit.
	WriteFrames(frames [][]byte) error
	// Ping writes a ping control frame.
	Ping() error
	// Pong writes a pong control frame with payload, at most 125 bytes.
	Pong(payload []byte) error
	// Close writes a close frame with code and reason and ends the connection; the transport may give the
	// peer a moment to answer before it closes the socket.
	Close(code int, reason string)
	// Abort closes the connection at once, without a close frame, unblocking any write in progress.
	// It is safe to call more than once and together with Close.
	Abort()
	// LastRead is when a byte last arrived from the peer (pong frames included).
	LastRead() time.Time
}

// Client is one connection as the hub sees it: an identity and a bounded outbound queue.
//
// Nobody waits on a client: enqueue appends to the queue and returns; a writer goroutine, started when the
// queue goes from empty to non-empty and gone when it is drained again, writes everything queued in one
// batch. An idle client holds no goroutine but its reader. A client whose queue would grow past its byte
// limit is aborted and counted, never waited for.
type Client struct {
	// ID is unique across nodes; Skip in a bus event names it.
	ID   string
	User app.Identity

	seq      uint64
	conn     Conn
	hub      *Hub
	maxQueue int
	// pings is the connection's budget of pings, made at the first ping; quietUntil is when a frame over
	// the user's budget gets an error frame again. Only the reader goroutine uses them.
	pings      *rate.Limiter
	quietUntil time.Time
	expiry     *time.Timer

	mu     sync.Mutex
	queue  [][]byte
	spare  [][]byte // the previous batch's array, emptied, for the next queue
	queued int      // bytes in queue
	ping   bool
	// pong is set, with the payload to answer, while a ping from the peer waits for its pong.
	pong     bool
	pongData []byte
	// writing is set while a writer goroutine exists; parked while it waits on wake for work; active
	// when something was queued since the last idle sweep; retire tells a parked writer to exit.
	writing, parked, active, retire bool
	wake                            chan struct{}
	// closeCode is set once the client is closing. The close frame then waits for the answers to the
	// client's own messages (up to answerWait after closeAt), and what comes meanwhile is still queued, in
	// order, so that an ack never arrives without the messages before it. closeTaken is set once the writer
	// has taken the close to write it, and nothing is queued after that; dropped when dropLocked cut the
	// connection, so the writer has nothing left to write.
	closeCode   int
	closeReason string
	closeAt     time.Time
	closeTaken  bool
	dropped     bool
	// awaiting counts the messages taken from this client whose ack or error is still to come.
	awaiting int
	// inWrite is set while the writer writes a batch it took.
	inWrite bool
	// busy is set when the writer's last write carried more than one frame: messages come faster than
	// it writes them, and its next write waits WriteDelay for more.
	busy bool
	// gone is set once the client is unregistered (finish).
	gone  bool
	rooms map[string]struct{}
	// held keeps the live events of rooms whose backlog is being read, until the backlog is queued.
	held      map[string][]bus.Event
	heldBytes int
	// floor is, for a room whose backlog was just queued, the last message id the backlog held. A message
	// is committed before it is published, so the backlog may hold one whose event is still on its way;
	// such an event is dropped. The floor goes once a newer message arrives: on one node messages are
	// published in id order, so nothing older can follow.
	floor map[string]int64
}

// enqueue queues frame for writing and reports whether it was accepted. A full queue aborts the client.
func (c *Client) enqueue(frames ...[]byte) bool {
	c.mu.Lock()
	ok := true
	for _, f := range frames {
		if ok = c.pushLocked(f); !ok {
			break
		}
	}
	c.mu.Unlock()
	return ok
}

// offer queues a bus event's frame, or holds it while the event's room is catching up.
func (c *Client) offer(ev bus.Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeTaken || c.dropped {
		return false
	}
	if held, ok := c.held[ev.Room]; ok {
		// Held events count against the queue's limit like queued ones.
		if c.queued+c.heldBytes+len(ev.Payload) > c.maxQueue {
			c.dropLocked()
			return false
		}
		c.heldBytes += len(ev.Payload)
		c.held[ev.Room] = append(held, ev)
		return true
	}
	if floor, ok := c.floor[ev.Room]; ok && ev.ID != 0 {
		if ev.ID <= floor {
			return false
		}
		delete(c.floor, ev.Room)
	}
	return c.pushLocked(ev.Payload)
}

// release queues backlog, then the events held for room since join that are not message events already
// in the backlog (id at most lastID), and stops holding. It queues nothing, and reports false, when the
// client is no longer in the room: a removal evicted it meanwhile.
func (c *Client) release(room string, backlog [][]byte, lastID int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := c.unholdLocked(room)
	if _, joined := c.rooms[room]; !joined {
		return false
	}
	if lastID > 0 {
		if c.floor == nil {
			c.floor = make(map[string]int64)
		}
		c.floor[room] = lastID
	}
	for _, f := range backlog {
		if !c.pushLocked(f) {
			return true
		}
	}
	for _, ev := range held {
		if ev.ID != 0 {
			if ev.ID <= lastID {
				continue
			}
			delete(c.floor, room)
		}
		if !c.pushLocked(ev.Payload) {
			return true
		}
	}
	return true
}

// flush stops holding the events of channel, which has no backlog (the user's own), and queues them.
func (c *Client) flush(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range c.unholdLocked(channel) {
		if !c.pushLocked(ev.Payload) {
			return
		}
	}
}

// unholdLocked stops holding room's events and returns them. c.mu must be held.
func (c *Client) unholdLocked(room string) []bus.Event {
	held := c.held[room]
	delete(c.held, room)
	if len(c.held) == 0 {
		c.held = nil // an idle connection keeps no empty map
	}
	for _, ev := range held {
		c.heldBytes -= len(ev.Payload)
	}
	return held
}

// expectAnswer counts a message taken from c whose ack or error the pipeline will give with answer.
func (c *Client) expectAnswer() {
	c.mu.Lock()
	c.awaiting++
	c.mu.Unlock()
}

// answer queues the ack or error of a message c sent, or, with a nil frame, says that none will come.
// While c is closing the answer is still queued: the close frame waits for it, so that a client that
// sends a message and closes learns that it was stored, instead of sending it again.
func (c *Client) answer(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.awaiting--
	if frame != nil && c.pushLocked(frame) || c.closeCode == 0 || c.closeTaken || c.dropped {
		return
	}
	c.startWriterLocked() // the writer may be holding the close frame for this answer
}

// Closing reports whether the client is closing: the transport hands it no more messages.
func (c *Client) Closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode != 0
}

// pushLocked appends frame to the queue and starts the writer. Over the byte limit it drops the client
// instead. c.mu must be held.
func (c *Client) pushLocked(frame []byte) bool {
	if c.closeTaken || c.dropped {
		return false
	}
	if c.queued+c.heldBytes+len(frame) > c.maxQueue {
		c.dropLocked()
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.startWriterLocked()
	return true
}

// dropLocked closes a client that fell too far behind. c.mu must be held.
func (c *Client) dropLocked() {
	c.closeCode, c.closeReason = app.CloseSlowClient, "slow client: outbound queue full"
	c.queue, c.queued = nil, 0
	c.held, c.heldBytes = nil, 0
	c.hub.stats.SlowClientsDropped.Add(1) // logged by the writer, which holds no lock then
	if c.inWrite {
		// The writer is in the middle of a batch to a peer that does not keep up: a close frame cannot
		// follow it in time, so the connection is cut. Closing a socket does not wait for the peer.
		c.dropped = true
		c.conn.Abort()
		return
	}
	c.startWriterLocked() // the writer sends the close frame and exits
}

// Pong asks the writer to answer a ping from the peer with payload. A ping that comes before the pong of the
// previous one went out replaces it: RFC 6455 section 5.5.3 lets an endpoint answer the most recent only.
func (c *Client) Pong(payload []byte) {
	if !c.pingAllowed() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeTaken || c.dropped { // until the close frame is written, pings are answered (RFC 6455 5.5.2)
		return
	}
	c.pong, c.pongData = true, append(c.pongData[:0], payload...)
	c.startWriterLocked()
}

// pingAllowed spends one of the connection's pings; past its budget a ping is dropped, not answered.
// Only the reader goroutine calls it.
func (c *Client) pingAllowed() bool {
	if c.pings == nil {
		c.pings = rate.NewLimiter(pingsPerSecond, pingBurst)
	}
	return c.pings.Allow()
}

// requestPing asks the writer to send a ping frame.
func (c *Client) requestPing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return
	}
	c.ping = true
	c.startWriterLocked()
}

// Close writes what is queued, and, while the answers to the client's last messages are still to come (up
// to answerWait), what comes meanwhile; then a close frame with code; then it closes the connection. Later
// calls do nothing.
func (c *Client) Close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return
	}
	c.closeCode, c.closeReason, c.closeAt = code, reason, time.Now()
	c.startWriterLocked()
}

// answerWait bounds how long the close frame waits for the answers to the client's last messages. It is
// shorter than the transport gives the writer to send the close frame (a second, handlers.closeWait).
const answerWait = 500 * time.Millisecond

// awaitingLocked reports whether the close frame must wait for answers still to come. c.mu must be held.
func (c *Client) awaitingLocked() bool {
	return c.awaiting > 0 && time.Since(c.closeAt) < answerWait
}

// finish ends the client once it is unregistered: what is still queued is dropped, a parked writer
// exits, and none starts again, whatever a delivery in flight still queues.
func (c *Client) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone = true
	c.queue, c.queued = nil, 0
	if c.parked {
		c.parked, c.retire = false, true
		c.wake <- struct{}{} // never blocks: a parked writer has drained the one-slot channel
	}
}

// startWriterLocked makes sure a writer will see what was just queued: it wakes the parked writer, or
// starts one. c.mu must be held.
func (c *Client) startWriterLocked() {
	if c.gone {
		return
	}
	c.active = true
	switch {
	case !c.writing:
		c.writing = true
		if c.wake == nil {
			c.wake = make(chan struct{}, 1)
		}
		go c.writeLoop()
	case c.parked:
		c.parked = false
		c.wake <- struct{}{} // never blocks: a parked writer has drained the one-slot channel
	}
}

// retireIfIdle tells a writer that has been parked since the previous call to exit, so that a connection
// idle for a sweep period holds no goroutine, while a busy one keeps its writer instead of starting one
// per message (starting a goroutine for every delivery cost a tenth of a core under fan-out).
func (c *Client) retireIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parked && !c.active {
		c.parked, c.retire = false, true
		c.wake <- struct{}{}
	}
	c.active = false
}

// writeLoop writes what is queued, in batches, and parks between them until retireIfIdle sends it away.
// It is the only caller of conn's write methods while it runs.
func (c *Client) writeLoop() {
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.ping && !c.pong && (c.closeCode == 0 || c.awaitingLocked()) {
			if c.retire || c.gone {
				c.writing, c.retire = false, false
				c.mu.Unlock()
				return
			}
			c.parked = true
			var timeout <-chan time.Time
			if c.closeCode != 0 { // waiting for answers, not for ever
				timeout = time.After(time.Until(c.closeAt.Add(answerWait)))
			}
			c.mu.Unlock()
			select {
			case <-c.wake:
				c.mu.Lock()
			case <-timeout:
				c.mu.Lock()
				if !c.parked { // woken at the same moment: take the token, or the next wake would block
					<-c.wake
				}
				c.parked = false
			}
		}
		if d := c.hub.opts.WriteDelay; d > 0 && c.busy && c.closeCode == 0 && !c.pong {
			// What else comes meanwhile goes in this write too: fewer, fuller writes (WS_WRITE_DELAY). Only
			// when busy: a connection that gets one message at a time would wait for nothing, and a timer
			// per write costs more than the write it saves.
			c.mu.Unlock()
			time.Sleep(d)
			c.mu.Lock()
		}
		batch, ping, code, reason, dropped := c.queue, c.ping, c.closeCode, c.closeReason, c.dropped
		if code != 0 && !c.awaitingLocked() {
			c.closeTaken = true
		} else {
			code = 0 // answers are still to come: write what is here, then wait for them
		}
		pong, pongData := c.pong, c.pongData
		c.queue, c.queued, c.ping, c.pong, c.pongData = c.spare, 0, false, false, nil
		c.spare = nil
		c.inWrite, c.busy = !dropped, len(batch) > 1
		c.mu.Unlock()

		if dropped {
			c.logDropped()
			return // dropLocked closes the connection.
		}
		err := c.write(batch, ping, pong, pongData)
		c.mu.Lock()
		c.inWrite = false
		if err != nil {
			if c.closeCode == 0 {
				c.closeCode = app.CloseInternal
			}
			c.closeTaken, c.queue, c.queued = true, nil, 0
			cut := c.dropped // the write failed because dropLocked cut the connection under it
			c.mu.Unlock()
			if cut {
				c.logDropped()
			}
			c.conn.Abort()
			return
		}
		c.mu.Unlock()
		if code != 0 {
			if code == app.CloseSlowClient {
				c.logDropped()
			}
			c.conn.Close(code, reason)
			return
		}
		// Keep the batch's array for the next one: no allocation per delivery once the queue has grown.
		clear(batch)
		c.mu.Lock()
		if c.spare == nil && cap(batch) <= maxSpare {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
	}
}

// logDropped logs that c was dropped for not reading what it was sent (dropLocked).
func (c *Client) logDropped() {
	c.hub.log.Warn("dropping slow client", "conn", c.ID, "user", c.User.UserID)
}

// write writes a pong when one is due (first: the peer may be timing it), the batch, then a ping.
func (c *Client) write(batch [][]byte, ping, pong bool, pongData []byte) error {
	if pong {
		if err := c.conn.Pong(pongData); err != nil {
			return err
		}
	}
	var err error
	if len(batch) > 0 {
		err = c.conn.WriteFrames(batch)
	}
	if err == nil && ping {
		err = c.conn.Ping()
	}
	return err
}

// maxSpare bounds the queue array a client keeps between batches.
const maxSpare = 64

// join records room as joined and starts holding its events; it reports false when the client is
// already in it, and fails when that would exceed max rooms.
func (c *Client) join(room string, max int) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.rooms[room]; ok {
		return false, nil
	}
	if len(c.rooms) >= max {
		return false, app.Errorf(app.CodeTooMany, "a connection may be in at most %d rooms", max)
	}
	c.rooms[room] = struct{}{}
	c.holdLocked(room)
	return true, nil
}

// hold starts holding the events of room (a room, or the user's channel) until release.
func (c *Client) hold(room string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holdLocked(room)
}

func (c *Client) holdLocked(room string) {
	if c.held == nil { // made on first use: most connections join once, at connect
		c.held = make(map[string][]bus.Event)
	}
	c.held[room] = []bus.Event{}
}

// leave forgets room and reports whether the client was in it.
func (c *Client) leave(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.rooms[room]; !ok {
		return false
	}
	delete(c.rooms, room)
	c.unholdLocked(room)
	delete(c.floor, room)
	return true
}

// inRoom reports whether the client has joined room.
func (c *Client) inRoom(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.rooms[room]
	return ok
}

// roomNames returns the rooms the client is in.
func (c *Client) roomNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.rooms))
	for r := range c.rooms {
		names = append(names, r)
	}
	return names
}

// Pings, JSON or control frames, have a small budget of their own per connection, outside the user's: a
// client keeping its connection alive pings every few seconds at most, and one pinging in a loop would
// otherwise get all the pongs it asks for.
const (
	pingsPerSecond = 2
	pingBurst      = 20
)
