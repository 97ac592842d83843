package repo

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/sealfs/sealfs/crypt"
)

// blobFormatVersion is the first byte of pack header and index plaintexts.
const blobFormatVersion = 1

// Location says where a blob is stored: in which pack, at which offset, how
// long its sealed form is, and how long its plaintext is.
type Location struct {
	Type      crypt.ObjectType
	Pack      crypt.ID
	Offset    uint32
	Length    uint32 // sealed length in the pack
	RawLength uint32 // plaintext length, after decompression
}

// indexEntry is one entry of an index object.
type indexEntry struct {
	ID crypt.ID
	Location
}

// Sizes of the binary encodings (docs/SPEC.md, "Index objects", "Packs").
const (
	headerEntrySize = 1 + crypt.IDSize + 4 + 4 + 4
	indexEntrySize  = 1 + crypt.IDSize + crypt.IDSize + 4 + 4 + 4
	// maxIndexEntries bounds an index object when parsing.
	maxIndexEntries = 1 << 22
	// maxBlobSize bounds a blob's plaintext (and so its sealed length).
	maxBlobSize = 64 << 20
)

func validBlobType(t crypt.ObjectType) bool {
	return t == crypt.TypeDataBlob || t == crypt.TypeTreeBlob
}

// encodeIndex encodes entries as an index plaintext:
// version (1) || u32 count || count × (type u8 || id [32] || pack [32] || offset u32 || length u32 || raw u32),
// integers big-endian.
func encodeIndex(entries []indexEntry) []byte { return encodeEntries(entries, true) }

// encodeEntries encodes version || u32 count || entries, with or without
// each entry's pack id (index objects have it, pack headers do not).
func encodeEntries(entries []indexEntry, withPack bool) []byte {
	size := headerEntrySize
	if withPack {
		size = indexEntrySize
	}
	b := make([]byte, 0, 5+len(entries)*size)
	b = append(b, blobFormatVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = appendEntry(b, e, withPack)
	}
	return b
}

// appendEntry encodes type || id || [pack id] || offset || length || raw length.
func appendEntry(b []byte, e indexEntry, withPack bool) []byte {
	b = append(b, byte(e.Type))
	b = append(b, e.ID[:]...)
	if withPack {
		b = append(b, e.Pack[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, e.Offset)
	b = binary.BigEndian.AppendUint32(b, e.Length)
	return binary.BigEndian.AppendUint32(b, e.RawLength)
}

// decodeIndex parses an index plaintext, rejecting anything non-canonical.
func decodeIndex(b []byte) ([]indexEntry, error) {
	if len(b) < 5 || b[0] != blobFormatVersion {
		return nil, fmt.Errorf("index has a bad header")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if n > maxIndexEntries || uint64(len(b)-5) != uint64(n)*indexEntrySize {
		return nil, fmt.Errorf("index says %d entries but holds %d bytes", n, len(b)-5)
	}
	entries := make([]indexEntry, n)
	p := b[5:]
	for i := range entries {
		e := &entries[i]
		e.Type = crypt.ObjectType(p[0])
		copy(e.ID[:], p[1:33])
		copy(e.Pack[:], p[33:65])
		e.Offset = binary.BigEndian.Uint32(p[65:69])
		e.Length = binary.BigEndian.Uint32(p[69:73])
		e.RawLength = binary.BigEndian.Uint32(p[73:77])
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("index entry %d: %w", i, err)
		}
		p = p[indexEntrySize:]
	}
	return entries, nil
}

func (e *indexEntry) validate() error {
	if !validBlobType(e.Type) {
		return fmt.Errorf("unknown blob type %d", e.Type)
	}
	if e.Length < crypt.Overhead+1 || e.Length > maxBlobSize+crypt.Overhead+1 || e.RawLength > maxBlobSize {
		return fmt.Errorf("blob %s has impossible sizes %d/%d", e.ID.Short(), e.Length, e.RawLength)
	}
	return nil
}

// Index maps blob ids to their locations. It is safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	entries map[crypt.ID]Location
}

func newIndex() *Index { return &Index{entries: map[crypt.ID]Location{}} }

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
