// Package netconn wraps the listener's TCP connections with two things golang.org/x/net/websocket lacks.
//
// Liveness: x/net/websocket answers pings itself and throws pongs away, so a handler cannot see that a peer
// answered. The bytes of a pong still cross the net.Conn, though: noting the time of every read gives the
// hub a "last heard from" for each WebSocket, pongs included.
//
// Corking: x/net/websocket flushes every frame on its own, one write system call each. Between Cork and
// Uncork the connection keeps what is written and sends it in one call, so a writer that drains a queue
// of many frames pays for one.
//
// The wrapped connection reaches handlers through the request context (http.Server.ConnContext).
package netconn

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a net.Conn that remembers when it last read a byte and can cork its writes.
type Conn struct {
	net.Conn
	lastRead atomic.Int64 // unix nanoseconds

	// wmu guards corked and pending; writes happen under x/net/websocket's own write lock anyway.
	wmu     sync.Mutex
	corked  bool
	pending []byte
}

// Read reads from the connection and records the time when it got data.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// LastRead is when the connection last read a byte (or was accepted).
func (c *Conn) LastRead() time.Time { return time.Unix(0, c.lastRead.Load()) }

// Write writes p, or keeps it until Uncork while the connection is corked.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	if c.corked {
		c.pending = append(c.pending, p...)
		c.wmu.Unlock()
		return len(p), nil
	}
	c.wmu.Unlock()
	return c.Conn.Write(p)
}

// Cork makes writes wait for Uncork.
func (c *Conn) Cork() {
	c.wmu.Lock()
	c.corked = true
	c.wmu.Unlock()
}

// Uncork writes what was kept since Cork in one call and stops keeping. The buffer is released, so an
// idle connection holds none.
func (c *Conn) Uncork() error {
	c.wmu.Lock()
	pending := c.pending
	c.corked, c.pending = false, nil
	c.wmu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	_, err := c.Conn.Write(pending)
	return err
}

type listener struct{ net.Listener }

// Listen wraps ln so that every accepted connection is a *Conn.
func Listen(ln net.Listener) net.Listener { return listener{ln} }

func (l listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &Conn{Conn: nc}
	c.lastRead.Store(time.Now().UnixNano())
	return c, nil
}

type contextKey struct{}

// ConnContext is an http.Server.ConnContext that makes the *Conn available to handlers.
func ConnContext(ctx context.Context, nc net.Conn) context.Context {
	if c, ok := nc.(*Conn); ok {
		return context.WithValue(ctx, contextKey{}, c)
	}
	return ctx
}

// FromContext returns the request's *Conn, or nil when the server was not set up with Listen and
// ConnContext.
func FromContext(ctx context.Context) *Conn {
	c, _ := ctx.Value(contextKey{}).(*Conn)
	return c
}
