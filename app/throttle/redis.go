package throttle

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis counts in Redis, shared by every node that uses the same prefix.
type Redis struct {
	client redis.UniversalClient
	prefix string
	window time.Duration
}

// NewRedis returns a Redis whose keys start with prefix and whose windows last window.
func NewRedis(client redis.UniversalClient, prefix string, window time.Duration) *Redis {
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

// try counts an attempt of a key unless the key waits out a delay, which it returns (ms) instead; a
// key's count ends a window after its first attempt. See delay for the waits.
var try = redis.NewScript(`
local free, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1]).ok == 'string' then redis.call('DEL', KEYS[1]) end -- a count of Add, before Try
local wait = tonumber(redis.call('HGET', KEYS[1], 'until') or '0') - now
if wait > 0 then return wait end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n == 1 then redis.call('PEXPIRE', KEYS[1], window) end
if n >= free then
  local d = math.floor(window / 15)
  for i = free + 1, n do
    if d >= window then break end
    d = d * 2
  end
  redis.call('HSET', KEYS[1], 'until', now + math.min(d, window))
end
return 0
`)

// Try counts an attempt for key, or returns how long key must still wait, without counting it, when an
// attempt before set a delay: as Memory.Try, for every node.
func (r *Redis) Try(ctx context.Context, key string, free int) (time.Duration, error) {
	wait, err := try.Run(ctx, r.client, []string{r.prefix + key}, free, r.window.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("throttle: try: %w", err)
	}
	return time.Duration(wait) * time.Millisecond, nil
}

// undo decrements a key that exists and is above zero, leaving its window as it is.
var undo = redis.NewScript(`
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  if (tonumber(redis.call('HGET', KEYS[1], 'n') or '0')) > 0 then redis.call('HINCRBY', KEYS[1], 'n', -1) end
  redis.call('HDEL', KEYS[1], 'until')
elseif (tonumber(redis.call('GET', KEYS[1]) or '0')) > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
`)

// Undo takes back one event of key's current window (of Add or Try), if it has one, with the wait it set.
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
