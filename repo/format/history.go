package format

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sealfs/sealfs/crypt"
)

// HistoryVersion is the version of a history segment's plaintext
// (docs/SPEC.md §8.3).
const HistoryVersion = 1

// EncodeHistory encodes a history segment's plaintext:
// version (1) || u32 n || n × (snapshot id [32] || u32 len || snapshot JSON),
// the snapshots strictly increasing by sequence number, then id bytewise.
// Each is a snapshot's summary: its JSON as EncodeSnapshot writes it,
// without index objects, history segments or cold index objects, and of
// version SnapshotForksVersion where it was of a later one (the fields
// left are those of that version).
func EncodeHistory(snaps []*Snapshot) ([]byte, error) {
	if len(snaps) == 0 || len(snaps) > MaxHistoryEntries {
		return nil, fmt.Errorf("a history segment holds 1 to %d snapshots, not %d", MaxHistoryEntries, len(snaps))
	}
	b := []byte{HistoryVersion}
	b = binary.BigEndian.AppendUint32(b, uint32(len(snaps)))
	for i, s := range snaps {
		sum := *s
		sum.Indexes, sum.History, sum.Cold = nil, nil, nil
		if sum.Version >= SnapshotHistoryVersion {
			sum.Version = SnapshotForksVersion
		}
		if s.ID.IsZero() || (i > 0 && compareHistory(snaps[i-1], s) >= 0) {
			return nil, fmt.Errorf("history segment entry %d is out of order, repeated or has no id", i)
		}
		js, err := EncodeSnapshot(&sum)
		if err != nil {
			return nil, err
		}
		b = append(b, s.ID[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(js)))
		b = append(b, js...)
		if len(b) > MaxHistorySize {
			return nil, fmt.Errorf("history segment over %d bytes", MaxHistorySize)
		}
	}
	return b, nil
}

// compareHistory orders a history segment's snapshots: by sequence
// number, then id bytewise.
func compareHistory(a, b *Snapshot) int {
	return compareSeqID(a.Seq, a.ID[:], b.Seq, b.ID[:])
}

// DecodeHistory parses a history segment's plaintext, rejecting anything
// non-canonical: another version, no entries or more than
// MaxHistoryEntries, a zero id, entries out of order or repeated, a
// snapshot DecodeSnapshot rejects, one with index objects, history
// segments or of version SnapshotHistoryVersion, a length past the end,
// trailing bytes. The snapshots come with their ids set.
func DecodeHistory(b []byte) ([]*Snapshot, error) {
	if len(b) > MaxHistorySize {
		return nil, fmt.Errorf("history segment is %d bytes, over the limit", len(b))
	}
	if len(b) < 5 || b[0] != HistoryVersion {
		return nil, errors.New("history segment has a bad header")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	// Each entry takes at least an id, a length and a few bytes of JSON.
	if n == 0 || n > MaxHistoryEntries || uint64(n)*(crypt.IDSize+4) > uint64(len(b)-5) {
		return nil, fmt.Errorf("history segment says %d entries but holds %d bytes", n, len(b)-5)
	}
	out := make([]*Snapshot, 0, n)
	p := b[5:]
	for i := range int(n) {
		if len(p) < crypt.IDSize+4 {
			return nil, fmt.Errorf("history segment entry %d is cut off", i)
		}
		var id crypt.ID
		copy(id[:], p)
		l := binary.BigEndian.Uint32(p[crypt.IDSize:])
		p = p[crypt.IDSize+4:]
		if uint64(l) > uint64(len(p)) {
			return nil, fmt.Errorf("history segment entry %d is cut off", i)
		}
		s, err := DecodeSnapshot(p[:l])
		if err != nil {
			return nil, fmt.Errorf("history segment entry %d: %w", i, err)
		}
		p = p[l:]
		s.ID = id
		switch {
		case id.IsZero():
			return nil, fmt.Errorf("history segment entry %d has no id", i)
		case len(s.Indexes) > 0 || s.Version >= SnapshotHistoryVersion:
			return nil, fmt.Errorf("history segment entry %d names index objects or history segments", i)
		case i > 0 && compareHistory(out[i-1], s) >= 0:
			return nil, fmt.Errorf("history segment entry %d is out of order or repeated", i)
		}
		out = append(out, s)
	}
	if len(p) != 0 {
		return nil, errors.New("history segment has trailing bytes")
	}
	return out, nil
}
