package chat

import "sync"

// shardCount spreads a room's members over independent locks, so that joins and leaves in a room of
// many thousands touch one small slice instead of copying the whole member list, and a broadcast holds
// each lock only while it walks that shard.
const shardCount = 32

// members is the set of clients in one room. It is safe for concurrent use.
type members struct {
	shards [shardCount]shard
}

type shard struct {
	mu    sync.RWMutex
	list  []*Client
	index map[*Client]int
}

func (m *members) shard(c *Client) *shard { return &m.shards[c.seq%shardCount] }

// add inserts c and reports whether it was absent.
func (m *members) add(c *Client) bool {
	s := m.shard(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.index[c]; ok {
		return false
	}
	if s.index == nil {
		s.index = make(map[*Client]int)
	}
	s.index[c] = len(s.list)
	s.list = append(s.list, c)
	return true
}

// remove deletes c and reports whether it was present.
func (m *members) remove(c *Client) bool {
	s := m.shard(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[c]
	if !ok {
		return false
	}
	last := len(s.list) - 1
	s.list[i] = s.list[last]
	s.index[s.list[i]] = i
	s.list[last] = nil
	s.list = s.list[:last]
	delete(s.index, c)
	return true
}

// each calls fn for every member. fn runs under a shard's read lock: it must not block or change the set.
func (m *members) each(fn func(*Client)) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		for _, c := range s.list {
			fn(c)
		}
		s.mu.RUnlock()
	}
}
