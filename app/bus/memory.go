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
// so events published one after another are delivered in that order.
type Memory struct {
	mu       sync.RWMutex
	handlers []Handler
	closed   bool
}

// NewMemory returns an empty in-process bus.
func NewMemory() *Memory { return &Memory{} }

// Publish delivers ev to every handler before it returns.
func (m *Memory) Publish(_ context.Context, ev Event) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	for _, h := range m.handlers {
		h(ev)
	}
	return nil
}

// Subscribe adds h.
func (m *Memory) Subscribe(h Handler) {
	m.mu.Lock()
	m.handlers = append(m.handlers, h)
	m.mu.Unlock()
}

// Close stops delivery; later publishes fail with ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}
