package bus

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("bus: closed")

var _ Bus = (*Memory)(nil)

// Memory is the in-process bus: Publish calls every handler synchronously, in the publisher's goroutine,
// so events published one after another are delivered in that order. It never loses an event, so it
// never asks for a resync.
type Memory struct {
	mu       sync.RWMutex
	handlers []Handler
	closed   bool
}

// NewMemory returns an empty in-process bus.
func NewMemory() *Memory { return &Memory{} }

// Publish delivers evs to every handler before it returns.
func (m *Memory) Publish(_ context.Context, evs ...Event) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	for _, ev := range evs {
		for _, h := range m.handlers {
			h.Event(ev)
		}
	}
	return nil
}

// Subscribe adds h.
func (m *Memory) Subscribe(h Handler) {
	m.mu.Lock()
	m.handlers = append(m.handlers, h)
	m.mu.Unlock()
}

// Ping reports whether the bus takes events: it always does until Close.
func (m *Memory) Ping(context.Context) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Close stops delivery; later publishes fail with ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}
