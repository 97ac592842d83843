package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sealfs/sealfs/crypt"
)

// Snapshot is one committed state of the repository (docs/SPEC.md §8).
type Snapshot struct {
	ID      crypt.ID   `json:"-"`
	Version int        `json:"version"`
	Seq     uint64     `json:"seq"` // grows by one with every commit
	Time    time.Time  `json:"time"`
	Host    string     `json:"host"`
	Parent  crypt.ID   `json:"parent"` // the snapshot this one follows; zero for the first
	Tree    crypt.ID   `json:"tree"`   // root tree blob
	Indexes []crypt.ID `json:"indexes"`
	// Stats, for listings.
	Files uint64 `json:"files"`
	Bytes uint64 `json:"bytes"`
}

// EncodeSnapshot encodes a snapshot's plaintext: JSON (docs/SPEC.md §8).
func EncodeSnapshot(s *Snapshot) ([]byte, error) { return json.Marshal(s) }

// DecodeSnapshot parses a snapshot's plaintext, rejecting unknown fields,
// trailing data, another version, and a snapshot without a sequence number
// or root tree. The ID is not in the plaintext: it is the object's name.
func DecodeSnapshot(b []byte) (*Snapshot, error) {
	if len(b) > MaxSnapshotSize {
		return nil, fmt.Errorf("snapshot is %d bytes, over the limit", len(b))
	}
	var s Snapshot
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("failed to parse snapshot: %w", err)
	}
	if dec.More() {
		return nil, errors.New("failed to parse snapshot: trailing data")
	}
	if s.Version != FormatVersion {
		return nil, fmt.Errorf("snapshot has version %d", s.Version)
	}
	if s.Seq == 0 || s.Tree.IsZero() {
		return nil, errors.New("snapshot has no sequence number or root tree")
	}
	return &s, nil
}
