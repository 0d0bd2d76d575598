package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvRedisURL names the environment variable holding the URL of the Redis that tests may use, e.g.
// redis://127.0.0.1:6379/0. Tests only ever touch keys and channels under a prefix of their own.
const EnvRedisURL = "TEST_REDIS_URL"

// Redis returns the URL in TEST_REDIS_URL and a prefix of t's own for keys and channels; t's cleanup
// deletes the keys under it. Redis skips t when the variable is unset.
func Redis(t testing.TB) (url, prefix string) {
	t.Helper()
	url = os.Getenv(EnvRedisURL)
	if url == "" {
		t.Skip(EnvRedisURL + " is not set: Redis tests skipped")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("bustest: %s: %v", EnvRedisURL, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix = "causerie-test-" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		client := redis.NewClient(opts)
		defer client.Close()
		// Not t.Context(): it is already done when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("bustest: delete the keys under %s: %v", prefix, err)
		}
	})
	return url, prefix
}

// Client returns a client of the Redis in TEST_REDIS_URL, closed when t ends, and a key prefix of t's own
// (see Redis). It skips t when the variable is unset.
func Client(t testing.TB) (*redis.Client, string) {
	t.Helper()
	url, prefix := Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("bustest: %s: %v", EnvRedisURL, err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	return client, prefix
}
