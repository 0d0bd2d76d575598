// Package redispresence keeps, in Redis, who is in which room on every node of a deployment.
//
// Each node records its own users and refreshes a heartbeat; a user is present in a room while some node
// whose heartbeat is younger than the TTL has them there. A node that stops (crash, kill -9, lost
// network) stops refreshing: its users drop out of every listing at once when the TTL passes, and the
// first live node to refresh after that claims the dead node and reports which users left, so that
// their "left" events go out exactly once. Each operation is one Lua script, so it is atomic in Redis
// and takes one round trip; the scripts read Redis's own clock, so nodes' clocks need not agree.
//
// Keys, under the prefix and "{presence}:": nodes (sorted set of node -> heartbeat, ms), presence:<room>
// (sorted set of "<user id>|<node>"), node:<node> (set of "<room>|<user id>", what a node must clean
// up), names (hash of user id -> name), rooms (set of rooms with someone in them). The scripts touch
// keys they compute: the hash tag puts every key on one slot, so that on a Redis Cluster they all live
// on the master that runs the script, which each call routes to by the key nodes.
package redispresence

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/causerie/causerie/app"
)

// Directory is the presence directory of one node, in Redis. It is safe for concurrent use.
type Directory struct {
	client redis.UniversalClient
	prefix string
	node   string
	ttl    time.Duration
}

// New returns the directory for node over client; ttl is how long a node's users outlive its last
// heartbeat.
func New(client redis.UniversalClient, prefix, node string, ttl time.Duration) *Directory {
	return &Directory{client: client, prefix: prefix + "{presence}:", node: node, ttl: ttl}
}

// The Lua helpers every script shares. now() is Redis's clock in ms; alive(node) reads the heartbeat.
const luaPrelude = `
local P = ARGV[1]
local node = ARGV[2]
local ttl = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = {}
local function isAlive(n)
  if alive[n] == nil then
    local hb = redis.call('ZSCORE', P .. 'nodes', n)
    alive[n] = hb ~= false and hb ~= nil and tonumber(hb) >= now - ttl
  end
  return alive[n]
end
-- present reports whether user uid is in room on a live node other than except.
local function present(room, uid, except)
  local entries = redis.call('ZRANGEBYLEX', P .. 'presence:' .. room, '[' .. uid .. '|', '[' .. uid .. '|\255')
  for _, e in ipairs(entries) do
    local n = string.sub(e, #uid + 2)
    if n ~= except and isAlive(n) then return true end
  end
  return false
end
local function forget(room)
  if redis.call('ZCARD', P .. 'presence:' .. room) == 0 then
    redis.call('SREM', P .. 'rooms', room)
  end
end
-- reap removes every entry of node n and returns {room, uid, name} for each user no longer present, once
-- per script: a user on two nodes claimed together leaves once.
local reported = {}
local function reap(n, out)
  local set = P .. 'node:' .. n
  for _, e in ipairs(redis.call('SMEMBERS', set)) do
    local sep = string.find(e, '|', 1, true)
    local room, uid = string.sub(e, 1, sep - 1), string.sub(e, sep + 1)
    redis.call('ZREM', P .. 'presence:' .. room, uid .. '|' .. n)
    if not present(room, uid, n) and not reported[e] then
      reported[e] = true
      table.insert(out, room)
      table.insert(out, uid)
      table.insert(out, redis.call('HGET', P .. 'names', uid) or '')
    end
    forget(room)
  end
  redis.call('DEL', set)
end
-- users returns the live users of room, once each.
local function users(room)
  local seen, list = {}, {}
  for _, e in ipairs(redis.call('ZRANGE', P .. 'presence:' .. room, 0, -1)) do
    local sep = string.find(e, '|', 1, true)
    local uid = string.sub(e, 1, sep - 1)
    if not seen[uid] and isAlive(string.sub(e, sep + 1)) then
      seen[uid] = true
      table.insert(list, uid)
    end
  end
  return list
end
`

// enter: ARGV[4] room, ARGV[5] uid, ARGV[6] name. Returns 1 when the user was on no live node before.
var enterScript = redis.NewScript(luaPrelude + `
local room, uid = ARGV[4], ARGV[5]
local first = present(room, uid, node) and 0 or 1
redis.call('ZADD', P .. 'presence:' .. room, 0, uid .. '|' .. node)
redis.call('SADD', P .. 'node:' .. node, room .. '|' .. uid)
redis.call('HSET', P .. 'names', uid, ARGV[6])
redis.call('SADD', P .. 'rooms', room)
return first
`)

// leave: ARGV[4] room, ARGV[5] uid. Returns 1 when the user is now on no live node.
var leaveScript = redis.NewScript(luaPrelude + `
local room, uid = ARGV[4], ARGV[5]
redis.call('ZREM', P .. 'presence:' .. room, uid .. '|' .. node)
redis.call('SREM', P .. 'node:' .. node, room .. '|' .. uid)
forget(room)
return present(room, uid, node) and 0 or 1
`)

// list: ARGV[4] room. Returns {uid, name, ...}.
var listScript = redis.NewScript(luaPrelude + `
local out = {}
for _, uid in ipairs(users(ARGV[4])) do
  table.insert(out, uid)
  table.insert(out, redis.call('HGET', P .. 'names', uid) or '')
end
return out
`)

// online: returns {room, count, ...} for every room with a live user.
var onlineScript = redis.NewScript(luaPrelude + `
local out = {}
for _, room in ipairs(redis.call('SMEMBERS', P .. 'rooms')) do
  local n = #users(room)
  if n > 0 then
    table.insert(out, room)
    table.insert(out, n)
  end
end
return out
`)

// refresh: ARGV[4] is 1 at start, when what this node left behind in an earlier life is reaped too.
// Returns {lost, claimed, room, uid, name, ...}: lost is 1 when another node had reaped this one (it
// missed its heartbeats), whose users must then be entered again; claimed counts the stopped nodes.
var refreshScript = redis.NewScript(luaPrelude + `
local out = {0, 0}
if ARGV[4] == '1' then
  redis.call('ZREM', P .. 'nodes', node)
  reap(node, out)
end
if redis.call('ZADD', P .. 'nodes', now, node) == 1 and ARGV[4] ~= '1' then
  out[1] = 1
end
for _, n in ipairs(redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', '(' .. (now - ttl))) do
  redis.call('ZREM', P .. 'nodes', n)
  out[2] = out[2] + 1
  reap(n, out)
end
return out
`)

// reassert: ARGV[4...] are "room|uid|name", every user this node has in every room. Makes this node's
// entries exactly those, and returns {room, uid, name} for each added user who was on no live node.
var reassertScript = redis.NewScript(luaPrelude + `
local out = {}
local set = P .. 'node:' .. node
local want = {}
for i = 4, #ARGV do
  local e = ARGV[i]
  local s1 = string.find(e, '|', 1, true)
  local s2 = string.find(e, '|', s1 + 1, true)
  local room, uid, name = string.sub(e, 1, s1 - 1), string.sub(e, s1 + 1, s2 - 1), string.sub(e, s2 + 1)
  local key = room .. '|' .. uid
  want[key] = true
  if redis.call('SISMEMBER', set, key) == 0 then
    if not present(room, uid, node) then
      table.insert(out, room)
      table.insert(out, uid)
      table.insert(out, name)
    end
    redis.call('ZADD', P .. 'presence:' .. room, 0, uid .. '|' .. node)
    redis.call('SADD', set, key)
    redis.call('HSET', P .. 'names', uid, name)
    redis.call('SADD', P .. 'rooms', room)
  end
end
for _, e in ipairs(redis.call('SMEMBERS', set)) do
  if not want[e] then
    local sep = string.find(e, '|', 1, true)
    local room, uid = string.sub(e, 1, sep - 1), string.sub(e, sep + 1)
    redis.call('ZREM', P .. 'presence:' .. room, uid .. '|' .. node)
    redis.call('SREM', set, e)
    forget(room)
  end
end
redis.call('ZADD', P .. 'nodes', now, node)
return out
`)

// keys routes a script, on a Redis Cluster, to the master of the presence slot.
func (r *Directory) keys() []string { return []string{r.prefix + "nodes"} }

func (r *Directory) args(extra ...any) []any {
	return append([]any{r.prefix, r.node, r.ttl.Milliseconds()}, extra...)
}

// Enter records that who is in room on this node, and reports whether they were in it on no node before.
func (r *Directory) Enter(ctx context.Context, room string, who app.Author) (bool, error) {
	n, err := enterScript.Run(ctx, r.client, r.keys(), r.args(room, who.ID, who.Name)...).Int()
	if err != nil {
		return false, fmt.Errorf("presence: enter %s: %w", room, err)
	}
	return n == 1, nil
}

// Leave records that who left room on this node, and reports whether they are now in it on no node.
func (r *Directory) Leave(ctx context.Context, room string, who app.Author) (bool, error) {
	n, err := leaveScript.Run(ctx, r.client, r.keys(), r.args(room, who.ID)...).Int()
	if err != nil {
		return false, fmt.Errorf("presence: leave %s: %w", room, err)
	}
	return n == 1, nil
}

// List returns the users in room on any live node.
func (r *Directory) List(ctx context.Context, room string) ([]app.Author, error) {
	flat, err := listScript.Run(ctx, r.client, r.keys(), r.args(room)...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("presence: list %s: %w", room, err)
	}
	list := make([]app.Author, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		id, err := strconv.ParseInt(flat[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("presence: list %s: bad user id %q", room, flat[i])
		}
		list = append(list, app.Author{ID: id, Name: flat[i+1]})
	}
	return list, nil
}

// Online returns the number of users present in each room that has any, on any live node.
func (r *Directory) Online(ctx context.Context) (map[string]int, error) {
	flat, err := onlineScript.Run(ctx, r.client, r.keys(), r.args()...).Slice()
	if err != nil {
		return nil, fmt.Errorf("presence: online: %w", err)
	}
	out := make(map[string]int, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		room, _ := flat[i].(string)
		n, _ := flat[i+1].(int64)
		out[room] = int(n)
	}
	return out, nil
}

// Refresh renews this node's heartbeat and claims the nodes whose heartbeat is older than the TTL,
// returning the users who left with them and how many nodes it claimed. At start (start true) it first
// clears what this node id left behind in an earlier process. lost reports that this node had itself been
// claimed, having missed its heartbeats for a TTL (a long pause, a partition): its users are no longer
// recorded and must be entered again.
func (r *Directory) Refresh(ctx context.Context, start bool) (app.Refreshed, error) {
	flag := "0"
	if start {
		flag = "1"
	}
	flat, err := refreshScript.Run(ctx, r.client, r.keys(), r.args(flag)...).Slice()
	if err != nil {
		return app.Refreshed{}, fmt.Errorf("presence: refresh: %w", err)
	}
	if len(flat) < 2 {
		return app.Refreshed{}, fmt.Errorf("presence: refresh: short reply %v", flat)
	}
	claimed, _ := flat[1].(int64)
	gone := make([]string, len(flat)-2)
	for i, v := range flat[2:] {
		gone[i], _ = v.(string)
	}
	return app.Refreshed{Lost: flat[0] == int64(1), Claimed: int(claimed), Gone: roomUsers(gone)}, nil
}

// Reassert makes this node's entries exactly here (every user it has, per room), after the directory and
// this node disagreed: a failed call, or this node given up for dead. It returns the users it added who
// were in their room on no node, whose joined events are due.
func (r *Directory) Reassert(ctx context.Context, here []app.RoomUser) ([]app.RoomUser, error) {
	entries := make([]any, len(here))
	for i, e := range here {
		entries[i] = e.Room + "|" + strconv.FormatInt(e.User.ID, 10) + "|" + e.User.Name
	}
	flat, err := reassertScript.Run(ctx, r.client, r.keys(), r.args(entries...)...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("presence: reassert: %w", err)
	}
	return roomUsers(flat), nil
}

// roomUsers reads {room, uid, name, ...}.
func roomUsers(flat []string) []app.RoomUser {
	var out []app.RoomUser
	for i := 0; i+2 < len(flat); i += 3 {
		id, err := strconv.ParseInt(flat[i+1], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, app.RoomUser{Room: flat[i], User: app.Author{ID: id, Name: flat[i+2]}})
	}
	return out
}
