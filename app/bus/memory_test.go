package bus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/bus/bustest"
)

func TestMemory(t *testing.T) {
	bustest.Run(t, func(t *testing.T) (bus.Bus, bus.Bus) {
		m := bus.NewMemory()
		t.Cleanup(func() { m.Close() })
		return m, m // one process: both "nodes" share the same bus
	})
}

func TestMemoryAfterClose(t *testing.T) {
	m := bus.NewMemory()
	r := &bustest.Recorder{}
	m.Subscribe(r)
	m.Close()
	if err := m.Publish(context.Background(), bus.Event{Room: "r"}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("publish after close: err %v, want ErrClosed", err)
	}
	if err := m.Ping(context.Background()); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("ping after close: err %v, want ErrClosed", err)
	}
}
