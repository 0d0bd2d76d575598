package redisbus_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/bus/bustest"
	"github.com/causerie/causerie/app/bus/redisbus"
)

// openRedis opens two buses ("nodes") on a channel of the test's own.
func openRedis(t *testing.T) (*redisbus.Bus, *redisbus.Bus) {
	t.Helper()
	url, prefix := bustest.Redis(t)
	return openBuses(t, url, prefix)
}

// openBuses opens two buses ("nodes") on the Redis at url, their channels under prefix.
func openBuses(t *testing.T, url, prefix string) (*redisbus.Bus, *redisbus.Bus) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes [2]*redisbus.Bus
	for i, name := range []string{"a", "b"} {
		n, err := redisbus.New(context.Background(), redisbus.Config{URL: url, Prefix: prefix, Node: name}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	return nodes[0], nodes[1]
}

func TestRedis(t *testing.T) {
	bustest.Redis(t) // skips here, not in each subtest, when TEST_REDIS_URL is unset: SKIP, not PASS
	bustest.Run(t, func(t *testing.T) (bus.Bus, bus.Bus) {
		a, b := openRedis(t)
		return a, b
	})
}

// A node whose subscription is cut (a Redis restart, a network blip) subscribes again by itself, tells
// the hub to resync, and receives what is published afterwards.
func TestRedisResubscribesAndAsksForResync(t *testing.T) {
	a, b := openRedis(t)
	rec := &bustest.Recorder{}
	b.Subscribe(rec)
	bustest.WantRoom(t, "r", rec, b) // the new subscription must take the room again

	ctx := context.Background()
	admin := b.Client().(*redis.Client)
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	name := admin.Options().ClientName
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name="+name+" ") && subscriber.MatchString(line) {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed != 1 {
		t.Fatalf("killed %d subscriber connections of node b, want 1:\n%s", killed, list)
	}

	deadline := time.Now().Add(15 * time.Second)
	for rec.Resyncs() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no resync after the subscription was cut")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.Publish(ctx, bus.Event{Room: "r", ID: 1, Payload: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if got := rec.Wait(t, 1)[0]; string(got.Payload) != "after" {
		t.Errorf("got %+v after the reconnect", got)
	}
}

func TestRedisPingAndBadURL(t *testing.T) {
	a, _ := openRedis(t)
	if err := a.Ping(context.Background()); err != nil {
		t.Errorf("ping: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, url := range []string{"http://nope", "redis+cluster://127.0.0.1:1?no_such_option=1"} {
		_, err := redisbus.New(context.Background(), redisbus.Config{URL: url}, log)
		if err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("bad URL %s: err = %v, want one naming REDIS_URL", url, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := redisbus.New(ctx, redisbus.Config{URL: "redis://127.0.0.1:1/0"}, log); err == nil {
		t.Error("no error for a Redis that is not there")
	}
}

// A subscription whose connection goes silent without closing (a partition, a frozen host: nothing comes
// back, not even an error) is noticed by its unanswered ping, replaced, and followed by a resync.
func TestRedisReplacesSilentSubscription(t *testing.T) {
	url, prefix := bustest.Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFreezingProxy(t, opts.Addr)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := redisbus.New(context.Background(), redisbus.Config{URL: "redis://" + proxy.addr() + "/" + strconv.Itoa(opts.DB), Prefix: prefix, Node: "b"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	a, err := redisbus.New(context.Background(), redisbus.Config{URL: url, Prefix: prefix, Node: "a"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	rec := &bustest.Recorder{}
	b.Subscribe(rec)
	bustest.WantRoom(t, "r", rec, b) // the new subscription must take the room again

	proxy.freeze() // the connections open now stay open, and carry nothing more
	deadline := time.Now().Add(15 * time.Second)
	for rec.Resyncs() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no resync: the silent subscription was not noticed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.Publish(context.Background(), bus.Event{Room: "r", ID: 1, Payload: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if got := rec.Wait(t, 1)[0]; string(got.Payload) != "after" {
		t.Errorf("got %+v after the new subscription", got)
	}
}

// freezingProxy forwards TCP connections to target until freeze, after which the connections already
// open carry nothing in either direction (while staying open) and new ones are forwarded normally.
type freezingProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen map[net.Conn]bool
	conns  []net.Conn
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, frozen: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

func (p *freezingProxy) addr() string { return p.ln.Addr().String() }

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		p.frozen[c] = true
	}
}

// pipe copies from src to dst until src is frozen, then reads and drops.
func (p *freezingProxy) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		frozen := p.frozen[src] || p.frozen[dst]
		p.mu.Unlock()
		if !frozen {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

// subscriber matches the CLIENT LIST line of a connection subscribed to channels: the events of no room,
// and each room wanted.
var subscriber = regexp.MustCompile(` sub=[1-9]`)

// A node hears a room's events only while it wants the room, and every node hears the events of no room:
// it decodes nothing of the rooms it does not serve.
func TestRedisCarriesOnlyWantedRooms(t *testing.T) {
	a, b := openRedis(t)
	rec := &bustest.Recorder{}
	b.Subscribe(rec)
	bustest.WantRoom(t, "ici", rec, b)
	ctx := context.Background()
	publish := func(room, payload string) {
		t.Helper()
		if err := a.Publish(ctx, bus.Event{Room: room, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	publish("ailleurs", "not for b")
	publish("ici", "for b")
	publish("", "for every node")
	got := rec.Wait(t, 2)
	if string(got[0].Payload) != "for b" || string(got[1].Payload) != "for every node" {
		t.Errorf("b got %q and %q", got[0].Payload, got[1].Payload)
	}

	b.Want("ici", false)
	// Redis hands a subscriber the events of one publisher in order, whatever their channels: once a round
	// brings the marker of no room first, the room is given up.
	seen := 2
	deadline := time.Now().Add(10 * time.Second)
	for {
		publish("ici", "after leaving")
		publish("", "marker")
		next := rec.Wait(t, seen+1)[seen]
		if string(next.Payload) == "marker" {
			break
		}
		seen += 2 // the room's event, then the marker
		rec.Wait(t, seen)
		if time.Now().After(deadline) {
			t.Fatal("b still hears ici after giving it up")
		}
	}
}
