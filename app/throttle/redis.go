package throttle

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis counts in Redis, shared by every node that uses the same prefix.
type Redis struct {
	client *redis.Client
	prefix string
	window time.Duration
}

// NewRedis returns a Redis whose keys start with prefix and whose windows last window.
func NewRedis(client *redis.Client, prefix string, window time.Duration) *Redis {
	return &Redis{client: client, prefix: prefix + "throttle:", window: window}
}

// add increments a key and starts its window on the first event, in one round trip.
var add = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
`)

// Add counts one event for key, and returns the count in key's current window and the time left in it.
func (r *Redis) Add(ctx context.Context, key string) (int64, time.Duration, error) {
	res, err := add.Run(ctx, r.client, []string{r.prefix + key}, r.window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("throttle: add: %w", err)
	}
	return res[0], time.Duration(max(res[1], 0)) * time.Millisecond, nil
}

// undo decrements a key that exists and is above zero, leaving its window as it is.
var undo = redis.NewScript(`
if (tonumber(redis.call('GET', KEYS[1]) or '0')) > 0 then redis.call('DECR', KEYS[1]) end
return 0
`)

// Undo takes back one event of key's current window, if it has one.
func (r *Redis) Undo(ctx context.Context, key string) error {
	if err := undo.Run(ctx, r.client, []string{r.prefix + key}).Err(); err != nil {
		return fmt.Errorf("throttle: undo: %w", err)
	}
	return nil
}

// Reset forgets key's count.
func (r *Redis) Reset(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.prefix+key).Err(); err != nil {
		return fmt.Errorf("throttle: reset: %w", err)
	}
	return nil
}
