package repo

import (
	"container/list"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/sealfs/sealfs/crypt"
)

// blobCache keeps sealed blobs fetched from the remote in a local directory
// so that rereads cost no request. Blobs stay sealed (no plaintext at rest)
// and are verified again at every read. It holds at most limit bytes,
// dropping the least recently used first.
type blobCache struct {
	dir   string
	limit int64

	mu    sync.Mutex
	size  int64
	lru   *list.List // of *cacheEntry, most recent first
	items map[crypt.ID]*list.Element
}

type cacheEntry struct {
	id   crypt.ID
	size int64
}

func newBlobCache(dir string, limit int64) (*blobCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &blobCache{dir: dir, limit: limit, lru: list.New(), items: map[crypt.ID]*list.Element{}}
	// Pick up what an earlier run cached, oldest first.
	entries, _ := os.ReadDir(dir)
	type found struct {
		id   crypt.ID
		size int64
		mod  int64
	}
	var fs []found
	for _, e := range entries {
		id, err := crypt.ParseID(e.Name())
		info, ierr := e.Info()
		if err != nil || ierr != nil {
			os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		fs = append(fs, found{id, info.Size(), info.ModTime().UnixNano()})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].mod < fs[j].mod })
	for _, f := range fs {
		c.items[f.id] = c.lru.PushFront(&cacheEntry{f.id, f.size})
		c.size += f.size
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

func (c *blobCache) path(id crypt.ID) string { return filepath.Join(c.dir, id.String()) }

// get returns the cached sealed blob, or nil.
func (c *blobCache) get(id crypt.ID) []byte {
	c.mu.Lock()
	el, ok := c.items[id]
	if ok {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	b, err := os.ReadFile(c.path(id))
	if err != nil {
		c.drop(id)
		return nil
	}
	return b
}

// put stores a sealed blob that has just been verified.
func (c *blobCache) put(id crypt.ID, sealed []byte) {
	if int64(len(sealed)) > c.limit {
		return
	}
	c.mu.Lock()
	_, ok := c.items[id]
	c.mu.Unlock()
	if ok {
		return
	}
	tmp := c.path(id) + ".tmp"
	if err := os.WriteFile(tmp, sealed, 0o600); err != nil {
		os.Remove(tmp)
		return // a full cache disk only costs rereads
	}
	if err := os.Rename(tmp, c.path(id)); err != nil {
		os.Remove(tmp)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[id]; ok {
		return
	}
	c.items[id] = c.lru.PushFront(&cacheEntry{id, int64(len(sealed))})
	c.size += int64(len(sealed))
	c.evictLocked()
}

// drop forgets a blob (it failed verification, or vanished).
func (c *blobCache) drop(id crypt.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.size -= el.Value.(*cacheEntry).size
		c.lru.Remove(el)
		delete(c.items, id)
	}
	os.Remove(c.path(id))
}

func (c *blobCache) evictLocked() {
	for c.size > c.limit && c.lru.Len() > 0 {
		el := c.lru.Back()
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.items, e.id)
		c.size -= e.size
		os.Remove(c.path(e.id))
	}
}
