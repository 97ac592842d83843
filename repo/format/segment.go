package format

import (
	"encoding/binary"
	"fmt"

	"github.com/sealfs/sealfs/crypt"
)

// A segmented data blob (docs/SPEC.md §6.2) is a chunk sealed as segments
// of SegmentSize raw bytes (the last one shorter), each its own seal,
// after a sealed table of their sealed lengths:
//
//	blob = SealSegment(table index, table) || SealSegment(0, flag || payload) || ...
//	table = n × u32 sealed length of segment i (big-endian)
//
// n follows from the raw length the index gives, so a reader knows the
// table's length before it reads it.

// SegmentSize is the raw length of every segment but the last.
const SegmentSize = 64 << 10

// MaxSegments is the number of segments of the largest blob.
const MaxSegments = MaxBlobSize / SegmentSize

// Bounds of one sealed segment: the flag byte, at least one payload byte,
// and never more than the raw segment (compression is kept only when it
// saves).
const (
	minSealedSegment = crypt.Overhead + 2
	segmentOverhead  = crypt.Overhead + 1
)

// MaxSealedBlob bounds the sealed length of any blob in a pack: a
// segmented blob of MaxBlobSize raw bytes stored raw.
const MaxSealedBlob = MaxBlobSize + crypt.Overhead + 4*MaxSegments + MaxSegments*segmentOverhead

// SegmentCount returns the number of segments of a segmented blob of raw
// length raw (at least 1).
func SegmentCount(raw uint32) int { return int((uint64(raw) + SegmentSize - 1) / SegmentSize) }

// SegmentTableLen returns the sealed length of the table of a segmented
// blob of raw length raw.
func SegmentTableLen(raw uint32) int { return crypt.Overhead + 4*SegmentCount(raw) }

// SegmentRawLen returns the raw length of segment i of a blob of raw
// length raw.
func SegmentRawLen(raw uint32, i int) int {
	return int(min(uint64(raw)-uint64(i)*SegmentSize, SegmentSize))
}

// validSegmented checks the sizes of a segmented blob's index entry: the
// table and n segments, each within its bounds.
func validSegmented(length, raw uint32) bool {
	if raw == 0 || raw > MaxBlobSize {
		return false
	}
	n := uint64(SegmentCount(raw))
	table := uint64(SegmentTableLen(raw))
	return uint64(length) >= table+n*minSealedSegment && uint64(length) <= table+n*segmentOverhead+uint64(raw)
}

// EncodeSegmentTable encodes the sealed lengths of a blob's segments as
// its table plaintext.
func EncodeSegmentTable(sealedLens []uint32) []byte {
	b := make([]byte, 0, 4*len(sealedLens))
	for _, n := range sealedLens {
		b = binary.BigEndian.AppendUint32(b, n)
	}
	return b
}

// SegmentTable says where each segment of a segmented blob lies: segment
// i is the bytes [Bounds[i], Bounds[i+1]) of the sealed blob.
type SegmentTable struct {
	Bounds []uint32
}

// Count returns the number of segments.
func (t SegmentTable) Count() int { return len(t.Bounds) - 1 }

// DecodeSegmentTable parses the table plaintext of a segmented blob whose
// index entry gives raw length raw and sealed length length. Every
// segment's sealed length must be within its bounds, and the segments
// must exactly fill the blob after the table.
func DecodeSegmentTable(b []byte, raw, length uint32) (SegmentTable, error) {
	if !validSegmented(length, raw) {
		return SegmentTable{}, fmt.Errorf("segmented blob has impossible sizes %d/%d", length, raw)
	}
	n := SegmentCount(raw)
	if len(b) != 4*n {
		return SegmentTable{}, fmt.Errorf("segment table is %d bytes, want %d for %d segments", len(b), 4*n, n)
	}
	bounds := make([]uint32, n+1)
	next := uint64(SegmentTableLen(raw))
	bounds[0] = uint32(next)
	for i := range n {
		s := binary.BigEndian.Uint32(b[4*i:])
		if s < minSealedSegment || int64(s) > int64(segmentOverhead+SegmentRawLen(raw, i)) {
			return SegmentTable{}, fmt.Errorf("segment %d of %d has an impossible sealed length %d", i, n, s)
		}
		next += uint64(s)
		if next > uint64(length) {
			return SegmentTable{}, fmt.Errorf("segments run past the blob's %d bytes", length)
		}
		bounds[i+1] = uint32(next)
	}
	if next != uint64(length) {
		return SegmentTable{}, fmt.Errorf("segments cover %d of the blob's %d bytes", next, length)
	}
	return SegmentTable{Bounds: bounds}, nil
}

// ForcedSegmentTable returns the table of a segmented blob whose sealed
// length is the largest its raw length allows: then every segment is
// stored raw and its sealed length is 29 bytes over its raw length, so
// the index entry alone fixes where each lies (the sealed table can say
// nothing else, and a reader still opens it). ok is false for any other
// length.
func ForcedSegmentTable(raw, length uint32) (t SegmentTable, ok bool) {
	if !validSegmented(length, raw) {
		return SegmentTable{}, false
	}
	n := SegmentCount(raw)
	if uint64(length) != uint64(SegmentTableLen(raw))+uint64(n)*segmentOverhead+uint64(raw) {
		return SegmentTable{}, false
	}
	bounds := make([]uint32, n+1)
	bounds[0] = uint32(SegmentTableLen(raw))
	for i := range n {
		bounds[i+1] = bounds[i] + uint32(segmentOverhead+SegmentRawLen(raw, i))
	}
	return SegmentTable{Bounds: bounds}, true
}
