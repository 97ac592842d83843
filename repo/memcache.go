package repo

import (
	"sync"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// memCacheBytes bounds the in-memory cache of verified content: whole
// chunks that sequential reads and their read-ahead load (all but
// segCacheBytes of it), and segments that partial reads open. With the
// read-ahead window (at most half of the chunks' part) this is most of
// what reads keep in memory. It is small because the Go heap grows to
// about twice what is live before it is collected, and a daemon should
// stay within 64 MiB: 4 MiB read ahead keep 4 parallel fetches busy even
// on a remote 40 ms away (a cold read over --remote-shape
// latency=40ms,down=100Mbit ran at 80-88 % of the link with 4 MiB as
// with 8).
const memCacheBytes = 12 << 20

// segCacheBytes is the part of memCacheBytes for segments: enough for the
// small reads in a row of a few random readers (a page, a header). Reads
// at random over a large file seldom come back to a segment before it
// would be dropped anyway, and the kernel's page cache keeps what they
// read; a larger cache would only be live heap for the garbage collector
// to scan and double.
const segCacheBytes = 4 << 20

// tableCacheBytes bounds the cache of segment tables: some 10,000 tables
// of 512 KiB chunks, which cover 5 GiB of files read at random.
const tableCacheBytes = 1 << 20

// memKey names what memCache holds: a whole verified chunk (seg is
// wholeChunk) or one opened segment of a segmented blob.
type memKey struct {
	id  crypt.ID
	seg int32
}

// wholeChunk is the seg of a memKey naming a whole chunk.
const wholeChunk = -1

// memCache keeps verified content in memory (never on disk), least
// recently used dropped first, so that read-ahead and the reads that
// follow it decrypt each chunk once, and rereads of a segment cost
// nothing. Chunks and segments have budgets of their own, so that a
// random reader does not push out what a sequential one read ahead. A
// nil memCache keeps nothing.
type memCache struct {
	mu     sync.Mutex
	chunks *lru[memKey, []byte]
	segs   *lru[memKey, []byte]
}

// newMemCache makes a cache of limit bytes, segs of them for segments.
func newMemCache(limit, segs int64) *memCache {
	return &memCache{chunks: newLRU[memKey, []byte](limit-segs, nil), segs: newLRU[memKey, []byte](segs, nil)}
}

// lru returns the part of the cache that holds k.
func (c *memCache) lru(k memKey) *lru[memKey, []byte] {
	if k.seg == wholeChunk {
		return c.chunks
	}
	return c.segs
}

// get returns verified content, or nil; callers must not modify it.
func (c *memCache) get(k memKey) []byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	data, _ := c.lru(k).get(k)
	return data
}

// put keeps verified content.
func (c *memCache) put(k memKey, data []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru(k).add(k, data, int64(len(data)))
}

// cachedTable is the decoded table of a segmented blob at loc.
type cachedTable struct {
	loc   Location
	table format.SegmentTable
}

// tableCache keeps the verified tables of segmented blobs read in part,
// so that a partial read of a blob whose table is known costs one range
// request. A nil tableCache keeps nothing.
type tableCache struct {
	mu  sync.Mutex
	lru *lru[crypt.ID, cachedTable]
}

func newTableCache(limit int64) *tableCache {
	return &tableCache{lru: newLRU[crypt.ID, cachedTable](limit, nil)}
}

// get returns the table of blob id, if it is known for the blob at l (a
// blob stored again elsewhere may have other segment lengths).
func (c *tableCache) get(id crypt.ID, l Location) (format.SegmentTable, bool) {
	if c == nil {
		return format.SegmentTable{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.lru.get(id)
	if !ok || t.loc != l {
		return format.SegmentTable{}, false
	}
	return t.table, true
}

// put keeps the verified table of blob id at l.
func (c *tableCache) put(id crypt.ID, l Location, t format.SegmentTable) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.remove(id)
	c.lru.add(id, cachedTable{l, t}, int64(64+4*len(t.Bounds)))
}
