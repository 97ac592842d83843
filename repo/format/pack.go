package format

import (
	"encoding/binary"
	"fmt"

	"github.com/sealfs/sealfs/crypt"
)

// A pack is sealed blobs back to back, then the sealed pack header, then the
// header's sealed length as a big-endian u32 (docs/SPEC.md §6):
//
//	pack = blob_0 || ... || blob_n-1 || Seal(pack header, pack id, header) || u32 len
//
// The header plaintext lists the blobs:
// version (1) || u32 count || count × (type u8 || id [32] || offset u32 || length u32 || raw u32).

// PackTrailerSize is the length of the u32 that ends a pack: the length of
// the sealed header before it.
const PackTrailerSize = 4

// EncodePackHeader encodes the header plaintext of a pack holding entries
// (their Pack fields are not encoded).
func EncodePackHeader(entries []IndexEntry) []byte { return encodeEntries(entries, false) }

// DecodePackHeader parses a pack header plaintext of pack packID whose blob
// area is blobArea bytes long. Blobs must be in order, back to back, and
// exactly fill the area.
func DecodePackHeader(b []byte, packID crypt.ID, blobArea int64) ([]IndexEntry, error) {
	if len(b) < 5 || b[0] != Version {
		return nil, fmt.Errorf("pack header has a bad header")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if n == 0 || n > MaxPackHeaderEntries || uint64(len(b)-5) != uint64(n)*HeaderEntrySize {
		return nil, fmt.Errorf("pack header says %d entries but holds %d bytes", n, len(b)-5)
	}
	entries := make([]IndexEntry, n)
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
		p = p[HeaderEntrySize:]
	}
	if next != blobArea {
		return nil, fmt.Errorf("pack header covers %d bytes of a %d-byte blob area", next, blobArea)
	}
	return entries, nil
}
