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
	// Root holds the root directory's own attributes (a tree lists the
	// entries of a directory, not the directory itself): always in a
	// snapshot of version SnapshotRootVersion, never in one of version 1,
	// and in one of version SnapshotForksVersion when the writer had them.
	Root *RootAttr `json:"root,omitempty"`
	// Forks are the ids of the snapshots off this one's line of history
	// (forks, docs/SPEC.md §8) that a writer had seen and not forgotten:
	// only in a snapshot of version SnapshotForksVersion, sorted bytewise.
	Forks []crypt.ID `json:"forks,omitempty"`
	// Prune marks the snapshot a prune stored to name its rewritten index
	// objects (docs/SPEC.md §8.2): its tree, root, files and bytes are its
	// parent's. Only in a snapshot of version SnapshotForksVersion.
	Prune bool `json:"prune,omitempty"`
	// History names the history segments (docs/SPEC.md §8.3) that hold
	// the snapshots 1 to History[len-1].Last, in order: only in a
	// snapshot of version SnapshotHistoryVersion, which always has some.
	History []HistoryRef `json:"history,omitempty"`
	// Cold names the "history" index objects (docs/SPEC.md §7, "Cold
	// index objects"): entries a merge moved out of the objects Indexes
	// names, of blobs only older snapshots are expected to need. A reader
	// loads them before the objects Indexes names (those win), and may put
	// that off until a lookup misses. Only in a snapshot of version
	// SnapshotColdVersion, which always has some.
	Cold []crypt.ID `json:"cold,omitempty"`
}

// SnapshotColdVersion is the version of a snapshot that names cold index
// objects (Cold); it has the fields of SnapshotHistoryVersion, History
// optional. A writer writes it only when it has cold index objects to
// name.
const SnapshotColdVersion = 5

// HistoryRef names a history segment and the sequence numbers it covers,
// First to Last.
type HistoryRef struct {
	ID    crypt.ID `json:"id"`
	First uint64   `json:"first"`
	Last  uint64   `json:"last"`
}

// SnapshotHistoryVersion is the version of a snapshot that stands on
// history segments (History); it has the fields of SnapshotForksVersion.
// A writer writes it only when it has history segments to name, and
// version SnapshotForksVersion otherwise.
const SnapshotHistoryVersion = 4

// Folded returns the newest sequence number s's history segments cover
// (0 for none): snapshots up to it are in the segments, not in
// snapshots/.
func (s *Snapshot) Folded() uint64 {
	if len(s.History) == 0 {
		return 0
	}
	return s.History[len(s.History)-1].Last
}

// checkHistory checks that history segments cover 1 to the last one's
// Last contiguously, below seq, with non-zero ids, each once.
func checkHistory(h []HistoryRef, seq uint64) error {
	if len(h) > MaxHistoryRefs {
		return fmt.Errorf("snapshot names %d history segments, over the limit", len(h))
	}
	next := uint64(1)
	ids := make(map[crypt.ID]bool, len(h))
	for _, r := range h {
		if r.ID.IsZero() || ids[r.ID] || r.First != next || r.Last < r.First || r.Last >= seq {
			return errors.New("snapshot's history segments are not contiguous from 1 below it, or repeated")
		}
		ids[r.ID] = true
		next = r.Last + 1
	}
	return nil
}

// SnapshotRootVersion is the version of a snapshot that carries the root
// directory's attributes (Root); a version 1 snapshot has none (a reader
// gives the root mode 0755, owner 0:0 and the snapshot's time).
const SnapshotRootVersion = 2

// SnapshotForksVersion is the version of a snapshot that may record forks
// (Forks), and whose root attributes are optional; writers write it.
const SnapshotForksVersion = 3

// RootAttr is the root directory's mode (permission bits with setuid,
// setgid and sticky), owner, times (nanoseconds since the epoch) and
// xattrs.
type RootAttr struct {
	Mode    uint32  `json:"mode"`
	UID     uint32  `json:"uid"`
	GID     uint32  `json:"gid"`
	MtimeNs int64   `json:"mtime_ns"`
	AtimeNs int64   `json:"atime_ns"`
	CtimeNs int64   `json:"ctime_ns"`
	Xattrs  []Xattr `json:"xattrs,omitempty"` // sorted by name, under a node's rules
}

// validate applies the rules of a directory entry's attributes.
func (a *RootAttr) validate() error {
	n := Node{Name: []byte("root"), Type: NodeDir, Mode: a.Mode, Xattrs: a.Xattrs}
	if err := n.validate(); err != nil {
		return fmt.Errorf("snapshot root: %w", err)
	}
	return nil
}

// EncodeSnapshot encodes a snapshot's plaintext: JSON (docs/SPEC.md §8).
// Root attributes a reader would reject are an error; Forks must be sorted.
func EncodeSnapshot(s *Snapshot) ([]byte, error) {
	if err := checkForks(s.Forks); err != nil {
		return nil, err
	}
	if err := checkHistory(s.History, s.Seq); err != nil {
		return nil, err
	}
	if s.Root != nil {
		if err := s.Root.validate(); err != nil {
			return nil, err
		}
	}
	return json.Marshal(s)
}

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
	switch {
	case s.Version == FormatVersion && s.Root == nil, s.Version == SnapshotRootVersion && s.Root != nil,
		s.Version == SnapshotForksVersion, s.Version == SnapshotHistoryVersion, s.Version == SnapshotColdVersion:
	case s.Version == FormatVersion || s.Version == SnapshotRootVersion:
		return nil, fmt.Errorf("snapshot of version %d with root attributes %v", s.Version, s.Root != nil)
	default:
		return nil, fmt.Errorf("snapshot has version %d", s.Version)
	}
	if s.Seq == 0 || s.Tree.IsZero() {
		return nil, errors.New("snapshot has no sequence number or root tree")
	}
	if s.Forks != nil && s.Version < SnapshotForksVersion {
		return nil, fmt.Errorf("snapshot of version %d records forks", s.Version)
	}
	if s.Prune && s.Version < SnapshotForksVersion {
		return nil, fmt.Errorf("snapshot of version %d is marked as a prune's", s.Version)
	}
	if s.History != nil && (s.Version < SnapshotHistoryVersion || len(s.History) == 0) || s.History == nil && s.Version == SnapshotHistoryVersion {
		return nil, fmt.Errorf("snapshot of version %d with history segments %v", s.Version, s.History != nil)
	}
	if (s.Cold != nil) != (s.Version == SnapshotColdVersion) || (s.Cold != nil && len(s.Cold) == 0) {
		return nil, fmt.Errorf("snapshot of version %d with cold index objects %v", s.Version, s.Cold != nil)
	}
	if len(s.Cold) > MaxColdIndexes {
		return nil, fmt.Errorf("snapshot names %d cold index objects, over the limit of %d", len(s.Cold), MaxColdIndexes)
	}
	if err := checkHistory(s.History, s.Seq); err != nil {
		return nil, err
	}
	if err := checkForks(s.Forks); err != nil {
		return nil, err
	}
	if s.Root != nil {
		if err := s.Root.validate(); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// checkForks checks that fork ids are non-zero and strictly increasing
// bytewise (so unique).
func checkForks(ids []crypt.ID) error {
	for i, f := range ids {
		if f.IsZero() || (i > 0 && bytes.Compare(ids[i-1][:], f[:]) >= 0) {
			return errors.New("snapshot's forks are not sorted, repeated or zero")
		}
	}
	return nil
}
