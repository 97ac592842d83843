package repo

import (
	"encoding/binary"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// packBuilder gathers sealed blobs for one pack: the blobs sealed back to
// back, then the sealed header, then its length (docs/SPEC.md §6,
// format.EncodePackHeader).
type packBuilder struct {
	id      crypt.ID
	buf     []byte
	entries []format.IndexEntry
	// finished: the header is sealed and buf is the whole pack. Its bytes
	// never change after that: an upload that failed is retried with the
	// same bytes, so that a failed attempt that lands late (after the
	// client timed out and retried) stores the very same object.
	finished bool
}

// newPackBuilder starts a pack in buf, emptied, or in a new buffer of
// capacity bytes when buf is smaller.
func newPackBuilder(capacity int, buf []byte) (*packBuilder, error) {
	id, err := crypt.NewRandomID()
	if err != nil {
		return nil, err
	}
	if cap(buf) < capacity {
		buf = make([]byte, 0, capacity)
	}
	return &packBuilder{id: id, buf: buf[:0]}, nil
}

// add appends a sealed blob and returns where it lies in the pack.
func (p *packBuilder) add(b sealedBlob) Location {
	off := len(p.buf)
	p.buf = append(p.buf, b.sealed...)
	l := Location{Type: b.t, Pack: p.id, Offset: uint32(off), Length: uint32(len(b.sealed)), RawLength: uint32(b.raw)}
	p.entries = append(p.entries, format.IndexEntry{ID: b.id, Location: l})
	return l
}

// finish appends the sealed header and its length and returns the pack
// bytes; once finished, it returns the same bytes again.
func (p *packBuilder) finish(keys *crypt.Keys) ([]byte, error) {
	if p.finished {
		return p.buf, nil
	}
	hdr := format.EncodePackHeader(p.entries)
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
