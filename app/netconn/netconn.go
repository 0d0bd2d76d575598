// Package netconn wraps the listener's TCP connections so that each records when it last read a byte.
//
// Noting the time of every read gives the hub a "last heard from" for each WebSocket at no cost per frame,
// and counts a peer that is slowly sending a large frame as alive: a stamp per whole frame would not. The
// wrapped connection reaches handlers through the request context (http.Server.ConnContext).
package netconn

import (
	"context"
	"net"
	"sync/atomic"
	"time"
)

// Conn is a net.Conn that remembers when it last read a byte.
type Conn struct {
	net.Conn
	lastRead atomic.Int64 // unix nanoseconds
}

// Read reads from the connection and records the time when it got data.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// CloseWrite shuts down the writing side of a TCP connection; on any other connection it does nothing.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// LastRead is when the connection last read a byte (or was accepted).
func (c *Conn) LastRead() time.Time { return time.Unix(0, c.lastRead.Load()) }

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
