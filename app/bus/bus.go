// Package bus carries encoded events between the hubs of every node. The in-process Memory bus serves a
// single node; the Redis bus (redisbus) serves several, and the hub never knows which it has: it links
// this package alone, no Redis client. A Relay publishes one node's events in order, and keeps what the
// bus failed to take.
package bus

import "context"

// Event is one frame for the connections in Room. Payload is the encoded frame, built once by the
// publisher and written as is to every socket. Skip names the connection that must not get it (the
// sender's, which gets an ack instead), SkipUser a user none of whose connections must (a typing user);
// zero values skip nobody. An event with no Room is for every hub rather than a room's connections: with
// no Payload it asks them to catch all their rooms up from the store; with one, the Payload says what
// (sessions that ended, whose connections every hub closes).
// ID is the message id for message frames and 0 for every other event: ids
// are numbered per room by the store, which is how a hub puts the messages of several nodes back in
// order and notices one it missed.
type Event struct {
	Room     string
	Payload  []byte
	Skip     string
	SkipUser int64
	ID       int64
	// Node is the publishing node. A hub delivers its own events to its connections itself and ignores
	// them when the bus brings them back.
	Node string
	// Sent is when the event was published, in Unix nanoseconds, for the bus lag metric.
	Sent int64
}

// Handler is what a hub gives the bus. Its methods must not block: they run on the bus's delivery path.
type Handler interface {
	// Event receives one event. Events from one publisher arrive in the order they were published.
	Event(ev Event)
	// Resync says that events may have been lost (the bus lost its connection and has it back): the
	// subscriber must catch up from the store.
	Resync()
}

// Bus publishes events to every subscribed hub, on this node and others.
type Bus interface {
	// Publish hands evs, in order, to every handler. It returns once the bus has accepted them; it does
	// not wait for delivery to sockets.
	Publish(ctx context.Context, evs ...Event) error
	// Subscribe registers h for every event published from now on, on any node.
	Subscribe(h Handler)
	// Close stops delivery.
	Close() error
}
