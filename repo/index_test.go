package repo

import (
	mrand "math/rand/v2"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// TestIndexPrefixChains: blobs whose ids share their first 8 bytes (the
// index's map key) are told apart, a later entry of a blob replaces the
// earlier one, in newIndexOf's order (tables of index objects in any
// order of their entries), by add, and by a table added after that, and
// each and Len see every blob once.
func TestIndexPrefixChains(t *testing.T) {
	id := func(b0, b9 byte) crypt.ID { return crypt.ID{0: b0, 9: b9} }
	loc := func(pack byte, off uint32) Location {
		return Location{Type: crypt.TypeDataBlob, Pack: crypt.ID{pack}, Offset: off, Length: 100, RawLength: 50}
	}
	lists := [][]format.IndexEntry{
		{{ID: id(1, 1), Location: loc(7, 1)}, {ID: id(1, 2), Location: loc(7, 2)}, {ID: id(2, 1), Location: loc(8, 3)}},
		{{ID: id(1, 1), Location: loc(9, 4)}, {ID: id(1, 3), Location: loc(7, 5)}},
	}
	var tables []*format.IndexTable
	var objects []crypt.ID
	for i, l := range lists {
		objects = append(objects, crypt.ID{0xee, byte(i)})
		tb, err := format.OpenIndexTable(format.EncodeIndex(l))
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, tb)
	}
	x := newIndexOf(objects, tables)
	want := map[crypt.ID]Location{id(1, 1): loc(9, 4), id(1, 2): loc(7, 2), id(2, 1): loc(8, 3), id(1, 3): loc(7, 5)}
	check := func(what string) {
		t.Helper()
		if x.Len() != len(want) {
			t.Fatalf("%s: %d blobs, want %d", what, x.Len(), len(want))
		}
		for k, l := range want {
			if got, ok := x.Lookup(k); !ok || got != l {
				t.Fatalf("%s: %x at %+v (%v), want %+v", what, k[:10], got, ok, l)
			}
		}
		if _, ok := x.Lookup(id(1, 5)); ok {
			t.Fatalf("%s: a blob of a shared prefix that is not there was found", what)
		}
		seen := map[crypt.ID]bool{}
		x.each(func(k crypt.ID, l Location) {
			if seen[k] || want[k] != l {
				t.Fatalf("%s: each gave %x at %+v", what, k[:10], l)
			}
			seen[k] = true
		})
		if len(seen) != len(want) {
			t.Fatalf("%s: each gave %d blobs", what, len(seen))
		}
	}
	check("built")
	x.add(id(1, 2), loc(3, 9))
	x.add(id(1, 4), loc(3, 10))
	want[id(1, 2)], want[id(1, 4)] = loc(3, 9), loc(3, 10)
	check("added")
	// An index object loaded after entries were added one at a time (a
	// fork's, read by a writer) is newer than they are.
	late, err := format.OpenIndexTable(format.EncodeIndex([]format.IndexEntry{{ID: id(2, 9), Location: loc(4, 1)}, {ID: id(1, 2), Location: loc(4, 2)}}))
	if err != nil {
		t.Fatal(err)
	}
	x.addTable(crypt.ID{0xee, 9}, late)
	want[id(2, 9)], want[id(1, 2)] = loc(4, 1), loc(4, 2)
	check("a table after added entries")
	if x.table(objects[1]) != tables[1] || x.table(crypt.ID{0xee, 9}) != nil {
		t.Fatal("table: a table loaded whole is not found by its object, or one merged into the added entries is")
	}
}

// BenchmarkIndexLookup: a lookup in the tables of index objects as a
// snapshot names them after consolidation (halving sizes, 2^18 entries
// down to one; a hit is found in any, a miss searches them all), beside
// the same blobs added one at a time (the map a writer's new blobs go
// to, which an open built for every blob before session 8).
func BenchmarkIndexLookup(b *testing.B) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	var ids []crypt.ID
	var tables []*format.IndexTable
	var objs []crypt.ID
	size := 1 << 18
	for k := 0; size >= 1; k++ {
		var es []format.IndexEntry
		for range size {
			var id crypt.ID
			for j := range id {
				id[j] = byte(rng.Uint32())
			}
			ids = append(ids, id)
			es = append(es, format.IndexEntry{ID: id, Location: Location{Type: crypt.TypeDataBlob, Pack: crypt.ID{byte(k)}, Length: 100, RawLength: 50}})
		}
		t, err := format.OpenIndexTable(format.EncodeIndex(format.SortIndexEntries(es)))
		if err != nil {
			b.Fatal(err)
		}
		tables = append(tables, t)
		objs = append(objs, crypt.ID{byte(k)})
		size /= 2
	}
	x := newIndexOf(objs, tables)
	m := newIndex()
	for _, t := range tables {
		for i := range t.Len() {
			e := t.Entry(i)
			m.add(e.ID, e.Location)
		}
	}
	b.Logf("%d blobs in %d tables", len(ids), len(tables))
	for _, c := range []struct {
		name string
		x    *Index
	}{{"tables", x}, {"map", m}} {
		b.Run(c.name+"/hit", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, ok := c.x.Lookup(ids[(i*7919)%len(ids)]); !ok {
					b.Fatal("miss")
				}
			}
		})
		b.Run(c.name+"/miss", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				id := ids[(i*7919)%len(ids)]
				id[31] ^= 1
				if _, ok := c.x.Lookup(id); ok {
					b.Fatal("hit")
				}
			}
		})
	}
}

// TestIndexConcurrent: lookups and each run while entries and tables are
// added (a writer storing blobs while the mount reads; a fork's index
// objects loaded meanwhile): every blob added is found from then on, with
// its newest location (run with -race).
func TestIndexConcurrent(t *testing.T) {
	entry := func(i int, pack byte) format.IndexEntry {
		return format.IndexEntry{ID: crypt.ID{byte(i), byte(i >> 8), 7}, Location: Location{Type: crypt.TypeDataBlob, Pack: crypt.ID{pack}, Length: 100, RawLength: 50}}
	}
	var base []format.IndexEntry
	for i := range 500 {
		base = append(base, entry(i, 1))
	}
	tb, err := format.OpenIndexTable(format.EncodeIndex(format.SortIndexEntries(base)))
	if err != nil {
		t.Fatal(err)
	}
	x := newIndexOf([]crypt.ID{{1}}, []*format.IndexTable{tb})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				e := base[n%len(base)]
				if _, ok := x.Lookup(e.ID); !ok {
					t.Errorf("blob %d of the table not found", n%len(base))
					return
				}
				if n%100 == 0 {
					x.each(func(crypt.ID, Location) {})
				}
			}
		}()
	}
	for i := 500; i < 1500; i++ {
		e := entry(i, 2)
		x.add(e.ID, e.Location)
		if l, ok := x.Lookup(e.ID); !ok || l != e.Location {
			t.Fatalf("blob %d just added: %+v %v", i, l, ok)
		}
		if i%250 == 0 {
			late, err := format.OpenIndexTable(format.EncodeIndex([]format.IndexEntry{entry(i, 3)}))
			if err != nil {
				t.Fatal(err)
			}
			x.addTable(crypt.ID{byte(i)}, late)
			if l, ok := x.Lookup(entry(i, 3).ID); !ok || l.Pack != (crypt.ID{3}) {
				t.Fatalf("blob %d of a table added later: %+v %v", i, l, ok)
			}
		}
	}
	close(done)
	wg.Wait()
	if n := x.Len(); n != 1500 {
		t.Fatalf("%d blobs, want 1500", n)
	}
}
