// Package bus carries encoded events between the hubs of every node. The in-process Memory bus serves a
// single node; a networked bus (Redis) implements the same interface so the hub never knows which it has.
package bus

import "context"

// Event is one frame for the connections in Room. Payload is the encoded frame, built once by the
// publisher and written as is to every socket. Skip names the connection that must not get it (the
// sender's, which gets an ack instead), SkipUser a user none of whose connections must (a typing user);
// zero values skip nobody. ID is the message id for message frames and 0 for every other event: a client
// catching up on a room uses it to drop what its backlog already held.
type Event struct {
	Room     string
	Payload  []byte
	Skip     string
	SkipUser int64
	ID       int64
}

// Handler receives events. It must not block: it runs on the bus's delivery path.
type Handler func(Event)

// Bus publishes events to every subscribed hub, on this node and others.
type Bus interface {
	// Publish hands ev to every handler. It returns once the bus has accepted ev; it does not wait for
	// delivery to sockets.
	Publish(ctx context.Context, ev Event) error
	// Subscribe registers h for every event published from now on, on any node.
	Subscribe(h Handler)
	// Close stops delivery.
	Close() error
}
