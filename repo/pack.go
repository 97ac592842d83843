package repo

import (
	"encoding/binary"
	"fmt"

	"github.com/sealfs/sealfs/crypt"
)

// A pack is sealed blobs back to back, then the sealed pack header, then the
// header's sealed length as a big-endian u32:
//
//	pack = blob_0 || ... || blob_n-1 || Seal(pack header, pack id, header) || u32 len
//
// The header plaintext lists the blobs:
// version (1) || u32 count || count × (type u8 || id [32] || offset u32 || length u32 || raw u32).

// maxPackHeaderEntries bounds a pack header when parsing.
const maxPackHeaderEntries = 1 << 20

// packBuilder gathers sealed blobs for one pack.
type packBuilder struct {
	id      crypt.ID
	buf     []byte
	entries []indexEntry
	// finished: the header is sealed and buf is the whole pack. Its bytes
	// never change after that: an upload that failed is retried with the
	// same bytes, so that a failed attempt that lands late (after the
	// client timed out and retried) stores the very same object.
	finished bool
}

func newPackBuilder(capacity int) (*packBuilder, error) {
	id, err := crypt.NewRandomID()
	if err != nil {
		return nil, err
	}
	return &packBuilder{id: id, buf: make([]byte, 0, capacity)}, nil
}

// add seals plaintext (already prefixed with its compression byte) as blob id
// of type t; raw is the length of the blob before compression.
func (p *packBuilder) add(keys *crypt.Keys, t crypt.ObjectType, id crypt.ID, plaintext []byte, raw int) (Location, error) {
	off := len(p.buf)
	var err error
	p.buf, err = keys.Seal(p.buf, t, id, plaintext)
	if err != nil {
		return Location{}, err
	}
	l := Location{Type: t, Pack: p.id, Offset: uint32(off), Length: uint32(len(p.buf) - off), RawLength: uint32(raw)}
	p.entries = append(p.entries, indexEntry{ID: id, Location: l})
	return l, nil
}

// finish appends the sealed header and its length and returns the pack
// bytes; once finished, it returns the same bytes again.
func (p *packBuilder) finish(keys *crypt.Keys) ([]byte, error) {
	if p.finished {
		return p.buf, nil
	}
	hdr := encodePackHeader(p.entries)
	start := len(p.buf)
	var err error
	p.buf, err = keys.Seal(p.buf, crypt.TypePackHeader, p.id, hdr)
	if err != nil {
		return nil, err
	}
	p.buf = binary.BigEndian.AppendUint32(p.buf, uint32(len(p.buf)-start))
	p.finished = true
	return p.buf, nil
}

func encodePackHeader(entries []indexEntry) []byte { return encodeEntries(entries, false) }

// decodePackHeader parses a pack header plaintext of pack packID whose blob
// area is blobArea bytes long. Blobs must be in order, back to back, and
// exactly fill the area.
func decodePackHeader(b []byte, packID crypt.ID, blobArea int64) ([]indexEntry, error) {
	if len(b) < 5 || b[0] != blobFormatVersion {
		return nil, fmt.Errorf("pack header has a bad header")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if n == 0 || n > maxPackHeaderEntries || uint64(len(b)-5) != uint64(n)*headerEntrySize {
		return nil, fmt.Errorf("pack header says %d entries but holds %d bytes", n, len(b)-5)
	}
	entries := make([]indexEntry, n)
	p := b[5:]
	var next int64
	for i := range entries {
		e := &entries[i]
		e.Type = crypt.ObjectType(p[0])
		copy(e.ID[:], p[1:33])
		e.Pack = packID
		e.Offset = binary.BigEndian.Uint32(p[33:37])
		e.Length = binary.BigEndian.Uint32(p[37:41])
		e.RawLength = binary.BigEndian.Uint32(p[41:45])
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("pack header entry %d: %w", i, err)
		}
		if int64(e.Offset) != next {
			return nil, fmt.Errorf("pack header entry %d starts at %d, want %d", i, e.Offset, next)
		}
		next += int64(e.Length)
		p = p[headerEntrySize:]
	}
	if next != blobArea {
		return nil, fmt.Errorf("pack header covers %d bytes of a %d-byte blob area", next, blobArea)
	}
	return entries, nil
}
