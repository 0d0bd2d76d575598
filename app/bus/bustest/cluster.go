package bustest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster starts a Redis Cluster of three masters, from redis-server on free loopback ports,
// keeping nothing on disk, stopped when t ends, and returns its URL (redis+cluster://, every master a
// seed). It skips t when redis-server is not installed.
func RedisCluster(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not in PATH: the Redis Cluster tests skipped")
	}
	const masters = 3
	dir := t.TempDir()
	addrs, busPorts := make([]string, masters), make([]int, masters)
	for i := range addrs {
		port, busPort := FreePort(t), FreePort(t)
		addrs[i], busPorts[i] = "127.0.0.1:"+strconv.Itoa(port), busPort
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(busPort),
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)),
			"--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no", "--dir", dir)
		if err := cmd.Start(); err != nil {
			t.Fatalf("bustest: start redis-server: %v", err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clients := make([]*redis.Client, masters)
	for i, addr := range addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: addr})
		defer clients[i].Close()
		for clients[i].Ping(ctx).Err() != nil {
			if ctx.Err() != nil {
				t.Fatalf("bustest: redis-server at %s did not answer", addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The slots in three ranges, one per master, then the masters made to meet: what
	// redis-cli --cluster create does, without needing redis-cli.
	const slots = 16384
	for i, c := range clients {
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", i*slots/masters, (i+1)*slots/masters-1).Err(); err != nil {
			t.Fatalf("bustest: assign slots to %s: %v", addrs[i], err)
		}
	}
	for i, addr := range addrs[1:] {
		host, port, _ := net.SplitHostPort(addr)
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, busPorts[i+1]).Err(); err != nil {
			t.Fatalf("bustest: introduce %s: %v", addr, err)
		}
	}
	for i, c := range clients {
		for {
			info, _ := c.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("bustest: the cluster is not ready at %s:\n%s", addrs[i], info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return "redis+cluster://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
}

// ClusterClient returns a client of the cluster at url, as RedisCluster returns it, closed when t ends.
func ClusterClient(t testing.TB, url string) *redis.ClusterClient {
	t.Helper()
	opts, err := redis.ParseClusterURL(strings.Replace(url, "redis+cluster://", "redis://", 1))
	if err != nil {
		t.Fatalf("bustest: %s: %v", url, err)
	}
	c := redis.NewClusterClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// FreePort returns a loopback port that was free a moment ago, for a server a test starts.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
