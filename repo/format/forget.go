package format

import (
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

const (
	forgetVersion = 1
	// ForgetEntrySize is the size of one entry of a forget record.
	ForgetEntrySize = 8 + crypt.IDSize
)

// EncodeForget encodes a forget record's plaintext:
// version (1) || u32 count || count × (seq u64 || snapshot id [32]),
// sequence numbers strictly increasing.
func EncodeForget(entries []Forgotten) []byte {
	b := make([]byte, 0, 5+len(entries)*ForgetEntrySize)
	b = append(b, forgetVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint64(b, e.Seq)
		b = append(b, e.ID[:]...)
	}
	return b
}

// DecodeForget parses a forget record's plaintext, rejecting anything
// non-canonical: no entries, unordered or repeated sequence numbers, a zero
// sequence number or id, trailing bytes.
func DecodeForget(b []byte) ([]Forgotten, error) {
	if len(b) < 5 || b[0] != forgetVersion {
		return nil, errors.New("forget record has a bad header")
	}
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
		if i > 0 && e.Seq <= entries[i-1].Seq {
			return nil, fmt.Errorf("forget record entry %d is out of order", i)
		}
		p = p[ForgetEntrySize:]
	}
	return entries, nil
}
