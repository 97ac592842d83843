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
	p.entries = append(p.entries, format.IndexEntry{ID: id, Location: l})
	return l, nil
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
