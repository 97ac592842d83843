package format

import (
	"encoding/binary"
	"fmt"

	"github.com/sealfs/sealfs/crypt"
)

// Version is the first byte of pack header and index plaintexts (trees
// have their own, TreeVersion).
const Version = 1

// Location says where a blob is stored: in which pack, at which offset, how
// long its sealed form is, and how long its plaintext is.
type Location struct {
	Type      crypt.ObjectType
	Pack      crypt.ID
	Offset    uint32
	Length    uint32 // sealed length in the pack
	RawLength uint32 // plaintext length, after decompression
}

// IndexEntry is one entry of an index object or a pack header: a blob and
// where it is stored.
type IndexEntry struct {
	ID crypt.ID
	Location
}

// Sizes of the binary encodings (docs/SPEC.md §6 "Packs", §7).
const (
	HeaderEntrySize = 1 + crypt.IDSize + 4 + 4 + 4
	IndexEntrySize  = 1 + crypt.IDSize + crypt.IDSize + 4 + 4 + 4
)

// ValidBlobType reports whether t is a type a writer is asked to store as
// a blob: data or tree (a data blob is stored as a segmented one).
func ValidBlobType(t crypt.ObjectType) bool {
	return t == crypt.TypeDataBlob || t == crypt.TypeTreeBlob
}

// validEntryType reports whether t is a type of index and pack-header
// entries: a blob type or a segmented data blob.
func validEntryType(t crypt.ObjectType) bool {
	return ValidBlobType(t) || t == crypt.TypeSegmentedBlob
}

// IsDataBlob reports whether an entry of type t holds file content: a data
// blob (format of version 1) or a segmented data blob (§6.2). Both are
// named by BlobID(TypeDataBlob, chunk).
func IsDataBlob(t crypt.ObjectType) bool {
	return t == crypt.TypeDataBlob || t == crypt.TypeSegmentedBlob
}

// AsRequested reports whether an entry of type entry serves a request for
// a blob of type want: the same type, or a segmented blob for a data blob.
func AsRequested(entry, want crypt.ObjectType) bool {
	return entry == want || (want == crypt.TypeDataBlob && entry == crypt.TypeSegmentedBlob)
}

// EncodeIndex encodes entries as an index plaintext:
// version (1) || u32 count || count × (type u8 || id [32] || pack [32] || offset u32 || length u32 || raw u32),
// integers big-endian.
func EncodeIndex(entries []IndexEntry) []byte { return encodeEntries(entries, true) }

// encodeEntries encodes version || u32 count || entries, with or without
// each entry's pack id (index objects have it, pack headers do not).
func encodeEntries(entries []IndexEntry, withPack bool) []byte {
	size := HeaderEntrySize
	if withPack {
		size = IndexEntrySize
	}
	b := make([]byte, 0, 5+len(entries)*size)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = appendEntry(b, e, withPack)
	}
	return b
}

// appendEntry encodes type || id || [pack id] || offset || length || raw length.
func appendEntry(b []byte, e IndexEntry, withPack bool) []byte {
	b = append(b, byte(e.Type))
	b = append(b, e.ID[:]...)
	if withPack {
		b = append(b, e.Pack[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, e.Offset)
	b = binary.BigEndian.AppendUint32(b, e.Length)
	return binary.BigEndian.AppendUint32(b, e.RawLength)
}

// DecodeIndex parses an index plaintext, rejecting anything non-canonical.
func DecodeIndex(b []byte) ([]IndexEntry, error) {
	n, err := indexHeader(b)
	if err != nil {
		return nil, err
	}
	entries := make([]IndexEntry, n)
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
		p = p[IndexEntrySize:]
	}
	return entries, nil
}

func (e *IndexEntry) validate() error {
	if !validEntryType(e.Type) {
		return fmt.Errorf("unknown blob type %d", e.Type)
	}
	if e.Type == crypt.TypeSegmentedBlob {
		if !validSegmented(e.Length, e.RawLength) {
			return fmt.Errorf("segmented blob %s has impossible sizes %d/%d", e.ID.Short(), e.Length, e.RawLength)
		}
		return nil
	}
	if e.Length < crypt.Overhead+1 || e.Length > MaxBlobSize+crypt.Overhead+1 || e.RawLength > MaxBlobSize {
		return fmt.Errorf("blob %s has impossible sizes %d/%d", e.ID.Short(), e.Length, e.RawLength)
	}
	return nil
}
