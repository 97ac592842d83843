package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

func tableEntry(id crypt.ID, pack byte, off uint32) IndexEntry {
	return IndexEntry{ID: id, Location: Location{Type: crypt.TypeDataBlob, Pack: crypt.ID{pack}, Offset: off, Length: 100, RawLength: 70}}
}

// TestIndexTable: a table gives every blob of an index object, whatever
// the order its writer wrote the entries in (sorted, as writers write
// them now; in any order, as older writers did; with a blob twice, the
// later entry winning), and misses every blob it does not hold: before
// the first, after the last, between two, and beside entries that share
// its first byte (the fan-out's bucket).
func TestIndexTable(t *testing.T) {
	id := func(b0, b31 byte) crypt.ID { return crypt.ID{0: b0, 31: b31} }
	sorted := []IndexEntry{tableEntry(id(0, 1), 1, 1), tableEntry(id(7, 1), 1, 2), tableEntry(id(7, 3), 2, 3),
		tableEntry(id(7, 5), 2, 4), tableEntry(id(255, 9), 3, 5)}
	unsorted := []IndexEntry{sorted[3], sorted[0], sorted[4], sorted[2], sorted[1]}
	// An older writer's object with a blob twice: the later entry wins.
	dup := []IndexEntry{tableEntry(id(7, 3), 9, 9), sorted[1], sorted[0], sorted[4], sorted[2], sorted[3]}
	// Entries in order but one blob twice (not strictly increasing).
	twice := []IndexEntry{sorted[0], sorted[1], tableEntry(id(7, 3), 9, 9), sorted[2], sorted[3], sorted[4]}
	misses := []crypt.ID{{}, id(0, 0), id(0, 2), id(7, 0), id(7, 2), id(7, 4), id(7, 6), id(8, 1), id(255, 8), id(255, 10), {0: 255, 1: 1}}
	for _, c := range []struct {
		name    string
		entries []IndexEntry
	}{{"sorted", sorted}, {"unsorted", unsorted}, {"a blob twice", dup}, {"in order, a blob twice", twice}} {
		pt := EncodeIndex(c.entries)
		tb, err := OpenIndexTable(pt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if tb.Len() != len(sorted) {
			t.Fatalf("%s: %d entries, want %d", c.name, tb.Len(), len(sorted))
		}
		for i, e := range sorted {
			if got := tb.Entry(i); got != e {
				t.Fatalf("%s: entry %d is %+v, want %+v", c.name, i, got, e)
			}
			if got, ok := tb.Find(e.ID); !ok || got != e {
				t.Fatalf("%s: found %+v (%v) for blob %x, want %+v", c.name, got, ok, e.ID[:1], e)
			}
		}
		for _, m := range misses {
			if got, ok := tb.Find(m); ok {
				t.Fatalf("%s: blob %x..%x, not in the object, found at %+v", c.name, m[:2], m[31], got)
			}
		}
		if !bytes.Equal(pt, EncodeIndex(c.entries)) {
			t.Fatalf("%s: opening the table changed the plaintext", c.name)
		}
	}
	empty, err := OpenIndexTable(EncodeIndex(nil))
	if err != nil || empty.Len() != 0 {
		t.Fatalf("empty index: %v, %v", empty, err)
	}
	if _, ok := empty.Find(id(0, 1)); ok {
		t.Fatal("an empty index found a blob")
	}
}

// TestIndexTableLarge: a table of many entries (a wider fan-out) finds
// each of them, and misses ids beside each.
func TestIndexTableLarge(t *testing.T) {
	for _, n := range []int{2047, 2048, 20000, 700000} {
		var entries []IndexEntry
		for i := range n {
			id := crypt.ID(sha256.Sum256(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(n)), uint64(i))))
			entries = append(entries, tableEntry(id, byte(i), uint32(i)))
		}
		tb, err := OpenIndexTable(EncodeIndex(SortIndexEntries(entries)))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if got, ok := tb.Find(e.ID); !ok || got != e {
				t.Fatalf("%d entries: blob %x found as %+v (%v), want %+v", n, e.ID[:4], got, ok, e)
			}
			miss := e.ID
			miss[31] ^= 1
			if _, ok := tb.Find(miss); ok {
				t.Fatalf("%d entries: blob %x found, not in the object", n, miss[:4])
			}
		}
	}
}

// TestIndexTableRejects: a table rejects what DecodeIndex rejects, in
// either order of entries (a bad entry is never left unchecked because
// the object needs no sorting).
func TestIndexTableRejects(t *testing.T) {
	good := []IndexEntry{tableEntry(crypt.ID{1}, 1, 1), tableEntry(crypt.ID{2}, 1, 2)}
	for _, order := range [][]IndexEntry{good, {good[1], good[0]}} {
		for name, change := range map[string]func(b []byte){
			"bad type":     func(b []byte) { b[5] = 77 },
			"short blob":   func(b []byte) { b[5+69], b[5+70], b[5+71], b[5+72] = 0, 0, 0, 1 },
			"bad version":  func(b []byte) { b[0] = 2 },
			"bad count":    func(b []byte) { b[4]++ },
			"last type":    func(b []byte) { b[5+IndexEntrySize] = 0 },
			"trailing end": nil,
		} {
			b := EncodeIndex(order)
			if change == nil {
				b = append(b, 0)
			} else {
				change(b)
			}
			if _, err := DecodeIndex(b); err == nil {
				t.Fatalf("%s: DecodeIndex accepts it", name)
			}
			if _, err := OpenIndexTable(b); err == nil {
				t.Fatalf("%s: OpenIndexTable accepts what DecodeIndex rejects", name)
			}
		}
	}
}

// TestSortIndexEntries: sorted by id, one a blob, the later entry of a
// blob kept.
func TestSortIndexEntries(t *testing.T) {
	a, b := crypt.ID{1}, crypt.ID{2}
	got := SortIndexEntries([]IndexEntry{tableEntry(b, 1, 1), tableEntry(a, 1, 2), tableEntry(b, 1, 3), tableEntry(a, 1, 4), tableEntry(b, 1, 5)})
	want := []IndexEntry{tableEntry(a, 1, 4), tableEntry(b, 1, 5)}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("sorted to %+v, want %+v", got, want)
	}
}
