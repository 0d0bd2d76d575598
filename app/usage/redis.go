// Package usage tells each node of a deployment what its users spend on the other nodes, so that the
// limits per user (MAX_CONNS_PER_USER, RATE_LIMIT) hold for the deployment, not for each node: a user
// with sockets on three nodes gets one budget, not three.
//
// Each node sends, about once a second, its figures for the users whose figures changed, and gets back
// the other nodes' in the same round trip: a message never waits for Redis, and a limit may be overrun by
// what one interval lets through on each node. A process that writes twice between two reads of another
// is read once, its latest figures: its messages of the interval before are not charged there, so that
// a limit errs toward letting through, never toward refusing twice for one message.
//
// Each process has a heartbeat of its own, renewed by every exchange; the figures of a process whose
// heartbeat is older than the staleness given to NewRedis (it stopped, or restarted under a new process
// id) no longer count, and the next reader deletes them.
//
// Keys, under the prefix and "{usage}:": usage:<user id>, a hash of process -> "conns:sent:at" (at in
// Redis's clock, ms), which expires Keep after its last write; usage-processes, a sorted set of process
// -> heartbeat. A process is "<node>/<random>". The script touches keys it computes: the hash tag puts
// them all on one slot, so that on a Redis Cluster they live on the master that runs the script, which
// each call routes to by the key usage-processes.
package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/causerie/causerie/app"
)

// Redis exchanges figures through Redis. It is safe for concurrent use.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	process string
	stale   time.Duration
}

// NewRedis returns the exchange of this process of node over client; the figures of a process whose
// heartbeat is older than stale no longer count.
func NewRedis(client redis.UniversalClient, prefix, node string, stale time.Duration) *Redis {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return &Redis{client: client, prefix: prefix + "{usage}:", process: node + "/" + hex.EncodeToString(b[:]), stale: stale}
}

// Keep is how long a user's figures stay in Redis after they were last written: a process writes again,
// before then, the figures of every user it has connections of, even unchanged.
const Keep = 2 * time.Minute

// exchange renews this process's heartbeat, writes its figures for each user given, and returns the
// other processes' sums for those users: the connections of every live process, and the messages of
// figures written after since (this process's previous exchange, in Redis's clock), so that each
// interval is counted once. It returns Redis's clock first, the since of the next call.
var exchange = redis.NewScript(`
local P, me = ARGV[1], ARGV[2]
local stale, since, keep = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', P .. 'usage-processes', now, me)
redis.call('ZREMRANGEBYSCORE', P .. 'usage-processes', '-inf', '(' .. (now - stale))
local alive = {}
local function isAlive(p)
  if alive[p] == nil then
    local hb = redis.call('ZSCORE', P .. 'usage-processes', p)
    alive[p] = hb ~= false and hb ~= nil and tonumber(hb) >= now - stale
    if not alive[p] and hb then redis.call('ZREM', P .. 'usage-processes', p) end
  end
  return alive[p]
end
local out = {now}
for i = 6, #ARGV, 3 do
  local uid = ARGV[i]
  local key = P .. 'usage:' .. uid
  local conns, sent = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if conns > 0 or sent > 0 then
    redis.call('HSET', key, me, conns .. ':' .. sent .. ':' .. now)
    redis.call('PEXPIRE', key, keep)
  elseif conns == 0 then
    redis.call('HDEL', key, me)
  end
  local c, s = 0, 0
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    if all[j] ~= me then
      local fc, fs, at = string.match(all[j + 1], '^(%d+):(%d+):(%d+)$')
      if at and isAlive(all[j]) then
        c = c + tonumber(fc)
        if tonumber(at) > since then s = s + tonumber(fs) end
      else
        redis.call('HDEL', key, all[j])
      end
    end
  end
  if c > 0 or s > 0 then
    out[#out + 1] = uid
    out[#out + 1] = c
    out[#out + 1] = s
  end
end
return out
`)

// Exchange renews this process's heartbeat, records mine, this process's figures per user (Sent: the
// messages since the last exchange; a user with zeros has none here any more; Conns -1 only asks about
// the user and changes nothing), and returns the other
// processes' sums for the same users, those with nothing elsewhere left out. since is what the previous
// call returned (0 at first); the returned time is the since of the next call. Call it more often than
// the staleness, even with nothing to say, or the others stop counting this process's figures.
func (r *Redis) Exchange(ctx context.Context, mine map[int64]app.Spent, since int64) (map[int64]app.Spent, int64, error) {
	args := make([]any, 0, 5+3*len(mine))
	args = append(args, r.prefix, r.process, r.stale.Milliseconds(), since, Keep.Milliseconds())
	for uid, s := range mine {
		args = append(args, strconv.FormatInt(uid, 10), s.Conns, s.Sent)
	}
	res, err := exchange.Run(ctx, r.client, []string{r.prefix + "usage-processes"}, args...).Int64Slice()
	if err != nil {
		return nil, since, fmt.Errorf("usage: exchange: %w", err)
	}
	if len(res) == 0 || (len(res)-1)%3 != 0 {
		return nil, since, fmt.Errorf("usage: exchange: %d values, want 1 + 3 per user", len(res))
	}
	others := make(map[int64]app.Spent, (len(res)-1)/3)
	for i := 1; i < len(res); i += 3 {
		others[res[i]] = app.Spent{Conns: int(res[i+1]), Sent: int(res[i+2])}
	}
	return others, res[0], nil
}
