package format

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sealfs/sealfs/crypt"
)

// Forgotten is a snapshot removed on purpose, as a forget record lists it
// (docs/SPEC.md §8.1).
type Forgotten struct {
	Seq uint64
	ID  crypt.ID
}

// Forget record versions: version 1 lists one snapshot per sequence
// number; version 2, which writers write, may list several (the snapshots
// of a fork, docs/SPEC.md §8).
const (
	forgetV1      = 1
	ForgetVersion = 2
	// ForgetEntrySize is the size of one entry of a forget record.
	ForgetEntrySize = 8 + crypt.IDSize
)

// EncodeForget encodes a forget record's plaintext (version 2):
// version (2) || u32 count || count × (seq u64 || snapshot id [32]),
// entries strictly increasing by sequence number, then id bytewise.
func EncodeForget(entries []Forgotten) []byte {
	return encodeForget(ForgetVersion, entries)
}

func encodeForget(version byte, entries []Forgotten) []byte {
	b := make([]byte, 0, 5+len(entries)*ForgetEntrySize)
	b = append(b, version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint64(b, e.Seq)
		b = append(b, e.ID[:]...)
	}
	return b
}

// CompareForgotten orders forget record entries: by sequence number, then
// id bytewise.
func CompareForgotten(a, b Forgotten) int {
	return compareSeqID(a.Seq, a.ID[:], b.Seq, b.ID[:])
}

// compareSeqID orders by sequence number, then id bytewise: the order of
// forget record entries and of history segment snapshots.
func compareSeqID(aSeq uint64, aID []byte, bSeq uint64, bID []byte) int {
	if c := cmp.Compare(aSeq, bSeq); c != 0 {
		return c
	}
	return bytes.Compare(aID, bID)
}

// DecodeForget parses a forget record's plaintext of version 1 or 2,
// rejecting anything non-canonical: no entries, entries out of order or
// repeated (in version 1, two entries with one sequence number), a zero
// sequence number or id, trailing bytes.
func DecodeForget(b []byte) ([]Forgotten, error) {
	if len(b) < 5 || (b[0] != forgetV1 && b[0] != ForgetVersion) {
		return nil, errors.New("forget record has a bad header")
	}
	version := b[0]
	n := binary.BigEndian.Uint32(b[1:5])
	if n == 0 || n > MaxForgetEntries || uint64(len(b)-5) != uint64(n)*ForgetEntrySize {
		return nil, fmt.Errorf("forget record says %d entries but holds %d bytes", n, len(b)-5)
	}
	entries := make([]Forgotten, n)
	p := b[5:]
	for i := range entries {
		e := &entries[i]
		e.Seq = binary.BigEndian.Uint64(p[:8])
		copy(e.ID[:], p[8:ForgetEntrySize])
		if e.Seq == 0 || e.ID.IsZero() {
			return nil, fmt.Errorf("forget record entry %d has no sequence number or id", i)
		}
		if i > 0 {
			prev := entries[i-1]
			if (version == forgetV1 && e.Seq <= prev.Seq) || CompareForgotten(prev, *e) >= 0 {
				return nil, fmt.Errorf("forget record entry %d is out of order", i)
			}
		}
		p = p[ForgetEntrySize:]
	}
	return entries, nil
}
