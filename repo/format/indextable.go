package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/sealfs/sealfs/crypt"
)

// IndexTable is an index object's entries as a reader searches them: one
// entry per blob, sorted by blob id, kept in their encoded form (§7) and
// found by binary search, so that opening a repository builds no map of
// its blobs. An index object whose entries are strictly increasing by blob
// id (as writers write them since session 8) is searched in place;
// any other (an older writer's) is sorted once, its later entry of a blob
// winning, as a reader of it in order would take it.
type IndexTable struct {
	b []byte // n × IndexEntrySize, strictly increasing by blob id
	n int
	// fan[i]: the first entry whose id's first 32 bits, shifted right by
	// shift, are ≥ i; 256 to 65,536 buckets of about 8 entries (blob ids
	// are HMAC outputs, uniformly spread), and one past the last.
	fan   []uint32
	shift uint
}

// OpenIndexTable parses an index plaintext as DecodeIndex does, rejecting
// the same input, and returns its table. When the entries are strictly
// increasing the table uses pt's bytes, which the caller then leaves
// alone.
func OpenIndexTable(pt []byte) (*IndexTable, error) {
	n, err := indexHeader(pt)
	if err != nil {
		return nil, err
	}
	t := &IndexTable{b: pt[5:], n: n}
	sorted := true
	for i := range n {
		p := t.b[i*IndexEntrySize:]
		if err := checkIndexEntry(p); err != nil {
			return nil, fmt.Errorf("index entry %d: %w", i, err)
		}
		if i > 0 && sorted && bytes.Compare(p[1:33], t.b[(i-1)*IndexEntrySize+1:][:crypt.IDSize]) <= 0 {
			sorted = false
		}
	}
	if !sorted {
		entries, err := DecodeIndex(pt)
		if err != nil {
			return nil, err
		}
		entries = SortIndexEntries(entries)
		t.n = len(entries)
		t.b = EncodeIndex(entries)[5:]
	}
	t.fill()
	return t, nil
}

// indexHeader checks an index plaintext's version and length, and returns
// its number of entries.
func indexHeader(b []byte) (int, error) {
	if len(b) < 5 || b[0] != Version {
		return 0, fmt.Errorf("index has a bad header")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if n > MaxIndexEntries || uint64(len(b)-5) != uint64(n)*IndexEntrySize {
		return 0, fmt.Errorf("index says %d entries but holds %d bytes", n, len(b)-5)
	}
	return int(n), nil
}

// checkIndexEntry validates one encoded index entry without decoding it
// into a value.
func checkIndexEntry(p []byte) error {
	e := IndexEntry{Location: Location{Type: crypt.ObjectType(p[0]), Length: binary.BigEndian.Uint32(p[69:73]),
		RawLength: binary.BigEndian.Uint32(p[73:77])}}
	copy(e.ID[:], p[1:33])
	return e.validate()
}

// fill computes the fan-out table: for each bucket of ids (by their
// first bits), where its entries start.
func (t *IndexTable) fill() {
	bits := 8
	for bits < 16 && t.n>>bits > 8 {
		bits++
	}
	t.shift = uint(32 - bits)
	t.fan = make([]uint32, 1<<bits+1)
	i := 0
	for c := range 1 << bits {
		for i < t.n && t.bucket(t.b[i*IndexEntrySize+1:]) < uint32(c) {
			i++
		}
		t.fan[c] = uint32(i)
	}
	t.fan[1<<bits] = uint32(t.n)
}

// bucket is the fan-out bucket of the id that starts id.
func (t *IndexTable) bucket(id []byte) uint32 { return binary.BigEndian.Uint32(id) >> t.shift }

// SortIndexEntries returns entries sorted by blob id with one entry a
// blob, the later of several winning (as a reader of them in order takes
// them): the order writers write an index object's entries in (§7). It
// sorts entries in place.
func SortIndexEntries(entries []IndexEntry) []IndexEntry {
	slices.SortStableFunc(entries, func(a, b IndexEntry) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	out := entries[:0]
	for i, e := range entries {
		if i+1 < len(entries) && entries[i+1].ID == e.ID {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Len returns the number of entries (blobs) of the table.
func (t *IndexTable) Len() int { return t.n }

// Entry returns entry i, in blob id order.
func (t *IndexTable) Entry(i int) IndexEntry {
	p := t.b[i*IndexEntrySize:][:IndexEntrySize]
	var e IndexEntry
	e.Type = crypt.ObjectType(p[0])
	copy(e.ID[:], p[1:33])
	copy(e.Pack[:], p[33:65])
	e.Offset = binary.BigEndian.Uint32(p[65:69])
	e.Length = binary.BigEndian.Uint32(p[69:73])
	e.RawLength = binary.BigEndian.Uint32(p[73:77])
	return e
}

// Find returns blob id's entry.
func (t *IndexTable) Find(id crypt.ID) (IndexEntry, bool) {
	c := t.bucket(id[:])
	lo, hi := int(t.fan[c]), int(t.fan[c+1])
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := bytes.Compare(id[:], t.b[m*IndexEntrySize+1:][:crypt.IDSize]); {
		case c == 0:
			return t.Entry(m), true
		case c > 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return IndexEntry{}, false
}
