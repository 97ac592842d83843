package repo

import (
	"context"
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
//
// It keeps whole blobs only: what sequential reads and read-ahead fetch.
// The segments a partial read fetches are not written here: a random
// reader's segments are scattered over many blobs, a file per segment
// would cost a write and an inode per 4 KiB read, and a sparse file per
// blob could not be told from a whole one without more bookkeeping. Those
// segments stay in memory (memCache) while they are hot; a partial read
// of a blob cached whole reads its segments from here.
type blobCache struct {
	dir string

	mu  sync.Mutex
	lru *lru[crypt.ID, struct{}]
}

func newBlobCache(dir string, limit int64) (*blobCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &blobCache{dir: dir}
	c.lru = newLRU(limit, func(id crypt.ID, _ struct{}) { os.Remove(c.path(id)) })
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
		c.lru.add(f.id, struct{}{}, f.size)
	}
	return c, nil
}

func (c *blobCache) path(id crypt.ID) string { return filepath.Join(c.dir, id.String()) }

// get returns the cached sealed blob, or nil. A nil blobCache caches
// nothing (so do put and drop).
func (c *blobCache) get(id crypt.ID) []byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	_, ok := c.lru.get(id)
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

// source returns a reader of the ranges of a cached sealed blob, or nil
// when it is not cached. A nil blobCache caches nothing.
func (c *blobCache) source(id crypt.ID) blobSource {
	if c == nil || !c.has(id) {
		return nil
	}
	return func(_ context.Context, off, n int64) ([]byte, error) {
		f, err := os.Open(c.path(id))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.lru.get(id) // used
		c.mu.Unlock()
		return b, nil
	}
}

// has reports whether a blob is cached.
func (c *blobCache) has(id crypt.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.lru.items[id]
	return ok
}

// put stores a sealed blob that has just been verified.
func (c *blobCache) put(id crypt.ID, sealed []byte) { c.stage(id, sealed)(true) }

// stage writes a copy of a sealed blob that is about to be verified, and
// returns the function that then adds it to the cache (ok: it checked
// out) or removes it: a blob enters the cache only verified, and the
// caller may open it in its own storage once stage returns. A nil
// blobCache stages nothing.
func (c *blobCache) stage(id crypt.ID, sealed []byte) (keep func(ok bool)) {
	none := func(bool) {}
	if c == nil || c.has(id) || int64(len(sealed)) > c.lru.limit {
		return none
	}
	f, err := os.CreateTemp(c.dir, id.String()+".*.tmp")
	if err != nil {
		return none // a full cache disk only costs rereads
	}
	tmp := f.Name()
	_, err = f.Write(sealed)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return none
	}
	return func(ok bool) {
		if !ok || os.Rename(tmp, c.path(id)) != nil {
			os.Remove(tmp)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.lru.add(id, struct{}{}, int64(len(sealed)))
	}
}

// drop forgets a blob (it failed verification, or vanished).
func (c *blobCache) drop(id crypt.ID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.lru.remove(id)
	c.mu.Unlock()
	os.Remove(c.path(id))
}

// CacheStats describes the local cache of data blobs (Options.CacheSize).
type CacheStats struct {
	// Hits and Misses count the whole data blobs that reads and read-ahead
	// loaded since the repository was opened: without the remote (from
	// memory, the pack being written, or the cache on disk), and fetched
	// from the remote.
	Hits, Misses uint64
	// Bytes is what the cache on disk holds now, at most Limit.
	Bytes, Limit int64
}

// CacheStats returns the cache's use so far; all zero but the counts
// without a cache.
func (r *Repository) CacheStats() CacheStats {
	s := CacheStats{Hits: r.cacheHits.Load(), Misses: r.cacheMisses.Load()}
	if c := r.blobs; c != nil {
		c.mu.Lock()
		s.Bytes, s.Limit = c.lru.size, c.lru.limit
		c.mu.Unlock()
	}
	return s
}
