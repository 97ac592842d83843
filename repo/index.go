package repo

import (
	"encoding/binary"
	"slices"
	"sync"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// Index maps blob ids to their locations. It is safe for concurrent use.
//
// It is built for an open, which loads tens of thousands of entries: the
// index objects loaded whole are kept as tables (format.IndexTable: their
// entries sorted by blob id, searched in place, no map built at open),
// searched newest first, since a later object's entry of a blob wins
// (docs/SPEC.md §7). Entries added one at a time (a writer's new blobs)
// are newer than every table: they are kept in slices, in the order they
// were added, found through a map from the first 8 bytes of a blob id
// (blob ids are HMAC outputs: uniformly spread) to the newest entry with
// that prefix, and a chain to the others; the pack ids, which many
// entries share, are kept once.
type Index struct {
	mu      sync.RWMutex
	tables  []*format.IndexTable // oldest first
	objects []crypt.ID           // the index object of each table
	slot    map[uint64]int32     // id prefix -> its newest entry
	ids     []crypt.ID
	locs    []packedLocation
	next    []int32 // the previous entry with the same prefix, or -1
	packs   []crypt.ID
	packN   map[crypt.ID]uint32 // pack id -> its position in packs
	// lastPack is the pack of the last entry added: the entries of an
	// index object come by pack.
	lastPack uint32
	// cold is set once the cold index objects (docs/SPEC.md §7) are in
	// tables (addCold).
	cold bool
}

// coldLoaded reports whether the cold index objects are in x.
func (x *Index) coldLoaded() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.cold
}

// addCold puts the tables of the cold index objects ids (in order) before
// every table of x: an entry of x wins over theirs (docs/SPEC.md §7, "Cold
// index objects").
func (x *Index) addCold(ids []crypt.ID, tables []*format.IndexTable) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cold {
		return
	}
	x.tables = append(slices.Clone(tables), x.tables...)
	x.objects = append(slices.Clone(ids), x.objects...)
	x.cold = true
}

// packedLocation is a Location with its pack id by position in
// Index.packs.
type packedLocation struct {
	pack                      uint32
	offset, length, rawLength uint32
	typ                       crypt.ObjectType
}

func newIndex() *Index { return newIndexSized(0) }

func newIndexSized(n int) *Index {
	return &Index{slot: make(map[uint64]int32, n), ids: make([]crypt.ID, 0, n), locs: make([]packedLocation, 0, n),
		next: make([]int32, 0, n), packN: map[crypt.ID]uint32{}}
}

// newIndexOf makes an index of the tables of index objects ids, in order
// (a later entry of a blob wins).
func newIndexOf(ids []crypt.ID, tables []*format.IndexTable) *Index {
	x := newIndex()
	x.tables, x.objects = tables, ids
	return x
}

// table returns the table of index object id, when the index holds it
// whole. Index objects never change (docs/SPEC.md §9: sealed once under a
// fresh id), so another index of the same repository can share it.
func (x *Index) table(id crypt.ID) *format.IndexTable {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for i, o := range x.objects {
		if o == id {
			return x.tables[i]
		}
	}
	return nil
}

// addTable adds the table of an index object loaded after those already
// in the index: its entries replace theirs. Once entries were added one at
// a time (which are newer than every table), its entries are added so too.
func (x *Index) addTable(id crypt.ID, t *format.IndexTable) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.ids) == 0 {
		x.tables = append(x.tables, t)
		x.objects = append(x.objects, id)
		return
	}
	for i := range t.Len() {
		e := t.Entry(i)
		x.addLocked(e.ID, e.Location)
	}
}

func prefix(id crypt.ID) uint64 { return binary.LittleEndian.Uint64(id[:8]) }

// findLocked returns the position of blob id's entry among those added one
// at a time, or -1.
func (x *Index) findLocked(id crypt.ID) int32 {
	p, ok := x.slot[prefix(id)]
	if !ok {
		return -1
	}
	for ; p >= 0; p = x.next[p] {
		if x.ids[p] == id {
			return p
		}
	}
	return -1
}

func (x *Index) locationLocked(p int32) Location {
	l := x.locs[p]
	return Location{Type: l.typ, Pack: x.packs[l.pack], Offset: l.offset, Length: l.length, RawLength: l.rawLength}
}

// Lookup returns where blob id is stored.
func (x *Index) Lookup(id crypt.ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if p := x.findLocked(id); p >= 0 {
		return x.locationLocked(p), true
	}
	return x.findTablesLocked(id, len(x.tables))
}

// findTablesLocked looks blob id up in the tables before the n-th, newest
// first.
func (x *Index) findTablesLocked(id crypt.ID, n int) (Location, bool) {
	for i := n - 1; i >= 0; i-- {
		if e, ok := x.tables[i].Find(id); ok {
			return e.Location, true
		}
	}
	return Location{}, false
}

// Len returns the number of blobs in the index.
func (x *Index) Len() int {
	n := 0
	x.each(func(crypt.ID, Location) { n++ })
	return n
}

func (x *Index) add(id crypt.ID, l Location) {
	x.mu.Lock()
	x.addLocked(id, l)
	x.mu.Unlock()
}

// addLocked sets blob id's location, replacing the one it had.
func (x *Index) addLocked(id crypt.ID, l Location) {
	pk := x.lastPack
	if int(pk) >= len(x.packs) || x.packs[pk] != l.Pack {
		var ok bool
		if pk, ok = x.packN[l.Pack]; !ok {
			pk = uint32(len(x.packs))
			x.packs = append(x.packs, l.Pack)
			x.packN[l.Pack] = pk
		}
		x.lastPack = pk
	}
	loc := packedLocation{pack: pk, offset: l.Offset, length: l.Length, rawLength: l.RawLength, typ: l.Type}
	key := prefix(id)
	head, ok := x.slot[key]
	if !ok {
		head = -1
	}
	for p := head; p >= 0; p = x.next[p] {
		if x.ids[p] == id {
			x.locs[p] = loc
			return
		}
	}
	x.slot[key] = int32(len(x.ids))
	x.ids = append(x.ids, id)
	x.locs = append(x.locs, loc)
	x.next = append(x.next, head)
}

// each calls fn for every blob once, with the location Lookup gives,
// under the read lock.
func (x *Index) each(fn func(crypt.ID, Location)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for p, id := range x.ids {
		fn(id, x.locationLocked(int32(p)))
	}
	for i := len(x.tables) - 1; i >= 0; i-- {
		t := x.tables[i]
		for j := range t.Len() {
			e := t.Entry(j)
			if !x.shadowedLocked(e.ID, i) {
				fn(e.ID, e.Location)
			}
		}
	}
}

// shadowedLocked reports whether an entry of blob id newer than table i's
// is in the index.
func (x *Index) shadowedLocked(id crypt.ID, i int) bool {
	if x.findLocked(id) >= 0 {
		return true
	}
	for _, t := range x.tables[i+1:] {
		if _, ok := t.Find(id); ok {
			return true
		}
	}
	return false
}
