package repo

import (
	"container/list"
	"sync"

	"github.com/sealfs/sealfs/crypt"
)

// memCache keeps recently verified data blobs in memory (never on disk),
// so that read-ahead and the reads that follow it decrypt each chunk once.
type memCache struct {
	limit int64

	mu    sync.Mutex
	size  int64
	lru   *list.List // of *memEntry, most recent first
	items map[crypt.ID]*list.Element
}

type memEntry struct {
	id   crypt.ID
	data []byte
}

func newMemCache(limit int64) *memCache {
	return &memCache{limit: limit, lru: list.New(), items: map[crypt.ID]*list.Element{}}
}

// get returns a verified blob; callers must not modify it.
func (c *memCache) get(id crypt.ID) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*memEntry).data
	}
	return nil
}

func (c *memCache) put(id crypt.ID, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[id]; ok || int64(len(data)) > c.limit {
		return
	}
	c.items[id] = c.lru.PushFront(&memEntry{id, data})
	c.size += int64(len(data))
	for c.size > c.limit {
		el := c.lru.Back()
		e := el.Value.(*memEntry)
		c.lru.Remove(el)
		delete(c.items, e.id)
		c.size -= int64(len(e.data))
	}
}
