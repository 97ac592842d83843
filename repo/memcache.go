package repo

import (
	"sync"

	"github.com/sealfs/sealfs/crypt"
)

// memCache keeps recently verified data blobs in memory (never on disk),
// so that read-ahead and the reads that follow it decrypt each chunk once.
type memCache struct {
	mu  sync.Mutex
	lru *lru[[]byte]
}

func newMemCache(limit int64) *memCache { return &memCache{lru: newLRU[[]byte](limit, nil)} }

// get returns a verified blob, or nil; callers must not modify it.
func (c *memCache) get(id crypt.ID) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, _ := c.lru.get(id)
	return data
}

func (c *memCache) put(id crypt.ID, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.add(id, data, int64(len(data)))
}
