package redisbus_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/causerie/causerie/app/bus"
	"github.com/causerie/causerie/app/bus/bustest"
	"github.com/causerie/causerie/app/bus/redisbus"
)

// The bus's contract holds on a Redis Cluster of three masters, over sharded channels.
func TestRedisCluster(t *testing.T) {
	url := bustest.RedisCluster(t)
	var n atomic.Int32
	bustest.Run(t, func(t *testing.T) (bus.Bus, bus.Bus) {
		a, b := openBuses(t, url, fmt.Sprintf("t%d:", n.Add(1)))
		return a, b
	})
}

// openCluster starts a Redis Cluster and opens two buses on it, a and b, channels under "c:"; rec
// records what b receives.
func openCluster(t *testing.T) (url string, a, b *redisbus.Bus, rec *bustest.Recorder) {
	t.Helper()
	url = bustest.RedisCluster(t)
	a, b = openBuses(t, url, "c:")
	rec = &bustest.Recorder{}
	b.Subscribe(rec)
	return url, a, b, rec
}

// roomsOfPartition returns count rooms that fall into the same partition, heard through one connection.
func roomsOfPartition(p, count int) []string {
	var rooms []string
	for i := 0; len(rooms) < count; i++ {
		if room := fmt.Sprintf("r%d", i); redisbus.Partition(room) == p {
			rooms = append(rooms, room)
		}
	}
	return rooms
}

// On a Redis Cluster too, a node hears only the rooms it wants; the rooms' partitions spread its
// subscriptions over every master, and an event goes to its channel's master alone.
func TestRedisClusterCarriesOnlyWantedRooms(t *testing.T) {
	url, a, b, rec := openCluster(t)
	ctx := context.Background()
	publish := func(room, payload string) {
		t.Helper()
		if err := a.Publish(ctx, bus.Event{Room: room, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}

	// ici and ailleurs share a partition, so a connection and a master: what b would hear of ailleurs
	// would come before ici's.
	rooms := roomsOfPartition(0, 3)
	ici, ailleurs, la := rooms[0], rooms[1], rooms[2]
	bustest.WantRoom(t, ici, rec, b)
	publish(ailleurs, "not for b")
	publish(ici, "for b")
	if got := rec.Wait(t, 1)[0]; string(got.Payload) != "for b" {
		t.Fatalf("b got %q first, want ici's event", got.Payload)
	}
	publish("", "for every node")
	if got := rec.Wait(t, 2)[1]; string(got.Payload) != "for every node" {
		t.Fatalf("b got %q, want the event of no room", got.Payload)
	}

	bustest.WantRoom(t, la, rec, b)
	b.Want(ici, false)
	seen := 2
	deadline := time.Now().Add(10 * time.Second)
	for {
		publish(ici, "after leaving")
		publish(la, "marker")
		if next := rec.Wait(t, seen+1)[seen]; string(next.Payload) == "marker" {
			break
		}
		seen += 2
		rec.Wait(t, seen)
		if time.Now().After(deadline) {
			t.Fatalf("b still hears %s after giving it up", ici)
		}
	}

	// A room in every partition: b then has subscriber connections on every master.
	for p := range redisbus.Partitions {
		bustest.WantRoom(t, roomsOfPartition(p, 1)[0], rec, b)
	}
	cluster := bustest.ClusterClient(t, url)
	perMaster := eachMaster(t, cluster, func(ctx context.Context, m *redis.Client) (int64, error) {
		list, err := m.ClientList(ctx).Result()
		n := int64(0)
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " name=c:b ") && shardSubscriber.MatchString(line) {
				n++
			}
		}
		return n, err
	})
	if len(perMaster) != 3 || slices.Contains(perMaster, 0) {
		t.Errorf("node b's subscriber connections per master: %v, want some on each of 3", perMaster)
	}
	// SPUBLISH reaches the master of the channel's slot only: the others count no subscriber of it.
	channel := "c:room{0}:" + la
	heard := eachMaster(t, cluster, func(ctx context.Context, m *redis.Client) (int64, error) {
		counts, err := m.PubSubShardNumSub(ctx, channel).Result()
		return counts[channel], err
	})
	if slices.Max(heard) != 1 || heard[0]+heard[1]+heard[2] != 1 {
		t.Errorf("subscribers of %s per master: %v, want 1 in all", channel, heard)
	}
}

// shardSubscriber matches the CLIENT LIST line of a connection subscribed to sharded channels.
var shardSubscriber = regexp.MustCompile(` ssub=[1-9]`)

// eachMaster returns what f counts on each master of cluster.
func eachMaster(t *testing.T, cluster *redis.ClusterClient, f func(context.Context, *redis.Client) (int64, error)) []int64 {
	t.Helper()
	var mu sync.Mutex
	var counts []int64
	err := cluster.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		n, err := f(ctx, m)
		mu.Lock()
		counts = append(counts, n)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// A node whose subscriber connections are all cut, on every master, subscribes again by itself, tells
// the hub to resync, and hears its rooms again.
func TestRedisClusterResubscribes(t *testing.T) {
	url, a, b, rec := openCluster(t)
	rooms := []string{roomsOfPartition(0, 1)[0], roomsOfPartition(redisbus.Partitions-1, 1)[0]}
	for _, room := range rooms {
		bustest.WantRoom(t, room, rec, b)
	}
	ctx := context.Background()
	killed := eachMaster(t, bustest.ClusterClient(t, url), func(ctx context.Context, m *redis.Client) (int64, error) {
		return m.ClientKillByFilter(ctx, "USER", "default", "SKIPME", "yes").Result()
	})
	if total := killed[0] + killed[1] + killed[2]; total < 4 {
		t.Fatalf("connections killed per master: %v, want at least the 4 subscriptions of a and b", killed)
	}
	deadline := time.Now().Add(15 * time.Second)
	for rec.Resyncs() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no resync after the subscriptions were cut")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, room := range rooms {
		// Until the room's subscription is back, its events may be missed: the hub catches up from the
		// store, told by Subscribed. Published until one arrives.
		for {
			if err := a.Publish(ctx, bus.Event{Room: room, ID: int64(i + 1), Payload: []byte(room)}); err == nil {
				if got := rec.Events(); len(got) > 0 && string(got[len(got)-1].Payload) == room {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is not heard again", room)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// When a partition's slot moves to another master, Redis ends its subscriptions there: the node
// subscribes where the slot is now, and hears the partition's rooms again.
func TestRedisClusterFollowsAMovedSlot(t *testing.T) {
	url, a, b, rec := openCluster(t)
	room := roomsOfPartition(3, 1)[0]
	bustest.WantRoom(t, room, rec, b)

	ctx := context.Background()
	cluster := bustest.ClusterClient(t, url)
	channel := "c:room{3}:" + room
	slot, err := cluster.ClusterKeySlot(ctx, channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	from, err := cluster.MasterForKey(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}
	var masters []*redis.Client
	var mu sync.Mutex
	if err := cluster.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
		mu.Lock()
		masters = append(masters, m)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	to := masters[0]
	if to.Options().Addr == from.Options().Addr {
		to = masters[1]
	}
	fromID, toID := from.ClusterMyID(ctx).Val(), to.ClusterMyID(ctx).Val()
	// The slot holds no key: it moves without MIGRATE.
	for _, step := range []struct {
		on   *redis.Client
		args []any
	}{
		{to, []any{"CLUSTER", "SETSLOT", slot, "IMPORTING", fromID}},
		{from, []any{"CLUSTER", "SETSLOT", slot, "MIGRATING", toID}},
		{to, []any{"CLUSTER", "SETSLOT", slot, "NODE", toID}},
		{from, []any{"CLUSTER", "SETSLOT", slot, "NODE", toID}},
	} {
		if err := step.on.Do(ctx, step.args...).Err(); err != nil {
			t.Fatalf("%v: %v", step.args, err)
		}
	}

	deadline := time.Now().Add(15 * time.Second)
	for i := 1; ; i++ {
		if err := a.Publish(ctx, bus.Event{Room: room, ID: int64(i), Payload: []byte("after the move")}); err != nil {
			t.Logf("publish: %v", err)
		}
		if len(rec.Events()) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not heard after its slot moved", room)
		}
		time.Sleep(50 * time.Millisecond)
	}
	counts, err := to.PubSubShardNumSub(ctx, channel).Result()
	if err != nil || counts[channel] != 1 {
		t.Errorf("subscribers of %s on the slot's new master: %v (err %v), want 1", channel, counts, err)
	}
}
