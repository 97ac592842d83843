package repo

import (
	"sync"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// Index maps blob ids to their locations. It is safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	entries map[crypt.ID]Location
}

func newIndex() *Index { return &Index{entries: map[crypt.ID]Location{}} }

// newIndexOf makes an index of the entries of several index objects, in
// order (a later entry of a blob wins), sized for them at once.
func newIndexOf(lists [][]format.IndexEntry) *Index {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	x := &Index{entries: make(map[crypt.ID]Location, n)}
	for _, l := range lists {
		for _, e := range l {
			x.entries[e.ID] = e.Location
		}
	}
	return x
}

// Lookup returns where blob id is stored.
func (x *Index) Lookup(id crypt.ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.entries[id]
	return l, ok
}

// Len returns the number of blobs in the index.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}

func (x *Index) add(id crypt.ID, l Location) {
	x.mu.Lock()
	x.entries[id] = l
	x.mu.Unlock()
}

// each calls fn for every blob, under the read lock.
func (x *Index) each(fn func(crypt.ID, Location)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for id, l := range x.entries {
		fn(id, l)
	}
}
