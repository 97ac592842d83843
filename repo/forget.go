package repo

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// loadForget reads and opens the forget record name of the listed size.
func (r *Repository) loadForget(ctx context.Context, name string, size int64) ([]format.Forgotten, error) {
	id, err := crypt.ParseID(path.Base(name))
	if err != nil || name != format.ForgetName(id) {
		return nil, integrityError(name, "not a forget record name")
	}
	sealed, err := readObject(ctx, r.remote, name, size, format.MaxForgetObject)
	if err != nil {
		return nil, err
	}
	pt, err := r.keys.Open(crypt.TypeForget, id, sealed)
	if err != nil {
		return nil, integrityError(name, "%v (changed, or from another repository)", err)
	}
	entries, err := format.DecodeForget(pt)
	if err != nil {
		return nil, integrityError(name, "%v", err)
	}
	return entries, nil
}

// readForgotten loads the forget record listed as e and merges its entries
// into forgot.
func (r *Repository) readForgotten(ctx context.Context, e remote.Entry, forgot map[uint64]crypt.ID) error {
	f, err := r.loadForget(ctx, e.Name, e.Size)
	if err != nil {
		return err
	}
	return addForgotten(forgot, e.Name, f)
}

// addForgotten merges a record's entries into forgot; two records that name
// different snapshots for one sequence number are an integrity error.
func addForgotten(forgot map[uint64]crypt.ID, name string, entries []format.Forgotten) error {
	for _, e := range entries {
		if id, ok := forgot[e.Seq]; ok && id != e.ID {
			return integrityError(name, "it records snapshot %d as %s, another record as %s", e.Seq, e.ID.Short(), id.Short())
		}
		forgot[e.Seq] = e.ID
	}
	return nil
}

// verifyChain checks that the snapshots (sorted by sequence number) and the
// forgotten ones form one chain: every sequence number from 1 to the newest
// is held by exactly one snapshot, or recorded as forgotten, and each
// snapshot's parent is the one before it. The newest snapshot is never
// forgotten. It returns one error for each break, naming what is missing.
func verifyChain(snaps []*Snapshot, forgot map[uint64]crypt.ID) []error {
	var errs []error
	known := make(map[uint64]crypt.ID, len(snaps)+len(forgot))
	for seq, id := range forgot {
		known[seq] = id
	}
	for i, s := range snaps {
		if i > 0 && snaps[i-1].Seq == s.Seq {
			errs = append(errs, integrityError(format.SnapshotName(s.ID), "it has sequence number %d, as %s has: a snapshot was replayed or duplicated", s.Seq, format.SnapshotName(snaps[i-1].ID)))
			continue
		}
		if id, ok := forgot[s.Seq]; ok && id != s.ID {
			errs = append(errs, integrityError(format.SnapshotName(s.ID), "it has sequence number %d, which a forget record gives to snapshot %s", s.Seq, id.Short()))
		}
		known[s.Seq] = s.ID
	}
	seqs := make([]uint64, 0, len(known))
	for seq := range known {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	next := uint64(1)
	for _, seq := range seqs {
		if seq > next {
			what := fmt.Sprintf("snapshot %d is missing", next)
			if seq-next > 1 {
				what = fmt.Sprintf("snapshots %d to %d are missing", next, seq-1)
			}
			errs = append(errs, integrityError("snapshots/", "%s (deleted without a forget record; snapshot %d follows)", what, seq))
		}
		next = seq + 1
	}
	var newest uint64
	if len(snaps) > 0 {
		newest = snaps[len(snaps)-1].Seq
	}
	if len(seqs) > 0 && seqs[len(seqs)-1] > newest {
		errs = append(errs, integrityError("snapshots/", "snapshot %d is recorded as forgotten, but no later snapshot is left (the newest snapshots were deleted)", seqs[len(seqs)-1]))
	}
	for _, s := range snaps {
		var want crypt.ID
		if s.Seq > 1 {
			prev, ok := known[s.Seq-1]
			if !ok {
				continue // reported as missing
			}
			want = prev
		}
		if s.Parent != want {
			errs = append(errs, integrityError(format.SnapshotName(s.ID), "its parent is %s, but snapshot %d is %s", s.Parent.Short(), s.Seq-1, want.Short()))
		}
	}
	return errs
}

// Forgotten lists the snapshots removed on purpose, by sequence number.
func (r *Repository) Forgotten() []format.Forgotten {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]format.Forgotten, 0, len(r.forgotten))
	for seq, id := range r.forgotten {
		out = append(out, format.Forgotten{Seq: seq, ID: id})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// SnapshotBySeq returns the snapshot with sequence number seq. A forgotten
// snapshot, or one past the newest, is an error wrapping ErrNoSnapshot; one
// that should be there and is not is an integrity error.
func (r *Repository) SnapshotBySeq(seq uint64) (*Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.snapshots {
		if s.Seq == seq {
			return s, nil
		}
	}
	if id, ok := r.forgotten[seq]; ok {
		return nil, fmt.Errorf("%w: snapshot %d (%s) was forgotten", ErrNoSnapshot, seq, id.Short())
	}
	if n := len(r.snapshots); seq == 0 || n == 0 || seq > r.snapshots[n-1].Seq {
		return nil, fmt.Errorf("%w: there is no snapshot %d", ErrNoSnapshot, seq)
	}
	return nil, integrityError(fmt.Sprintf("snapshot %d", seq), "it is missing (deleted without a forget record)")
}

// Forget removes the snapshots with the given sequence numbers for good,
// provably: it first stores a forget record listing them (sealed, bound to
// this repository), then deletes them. The newest snapshot cannot be
// forgotten. The indexes, packs and blobs they used stay (pruning them is
// another step). Interrupted, it leaves the record and some of the
// snapshots, which is a valid state; running it again finishes. It needs
// the writer lease. Commits wait only while the record is stored, not for
// the deletes.
func (r *Repository) Forget(ctx context.Context, seqs []uint64) error {
	drop, err := r.recordForgotten(ctx, seqs)
	if err != nil {
		return err
	}
	var errs []error
	deleted := map[*Snapshot]bool{}
	for _, s := range drop {
		if err := r.remote.Delete(ctx, format.SnapshotName(s.ID)); err != nil {
			errs = append(errs, fmt.Errorf("failed to delete snapshot %d (it is recorded as forgotten; run again to finish): %w", s.Seq, err))
			continue
		}
		deleted[s] = true
	}
	r.mu.Lock()
	r.snapshots = slices.DeleteFunc(slices.Clone(r.snapshots), func(s *Snapshot) bool { return deleted[s] })
	r.mu.Unlock()
	return errors.Join(errs...)
}

// recordForgotten stores the forget record of the snapshots seqs names
// that no record names yet, and returns them all, for their deletes.
func (r *Repository) recordForgotten(ctx context.Context, seqs []uint64) ([]*Snapshot, error) {
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == nil {
		return nil, ErrReadOnly
	}
	if err := r.lease.check(); err != nil {
		return nil, err
	}
	if len(r.snapshots) == 0 {
		return nil, fmt.Errorf("%w: the repository has no snapshots", ErrNoSnapshot)
	}
	newest := r.snapshots[len(r.snapshots)-1]
	bySeq := map[uint64]*Snapshot{}
	for _, s := range r.snapshots {
		bySeq[s.Seq] = s
	}
	drop := map[uint64]*Snapshot{}
	var record []format.Forgotten
	for _, seq := range seqs {
		s, ok := bySeq[seq]
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: there is no snapshot %d", ErrNoSnapshot, seq)
		case s == newest:
			return nil, fmt.Errorf("cannot forget snapshot %d: it is the newest", seq)
		}
		if _, dup := drop[seq]; dup {
			continue
		}
		drop[seq] = s
		if _, recorded := r.forgotten[seq]; !recorded {
			record = append(record, format.Forgotten{Seq: seq, ID: s.ID})
		}
	}
	if len(record) > 0 {
		if err := r.storeForgetRecord(ctx, record); err != nil {
			return nil, err
		}
	}
	out := make([]*Snapshot, 0, len(drop))
	for _, s := range drop {
		out = append(out, s)
	}
	return out, nil
}

// storeForgetRecord stores a forget record of record and adds its entries
// to the forgotten ones. The caller holds r.mu.
func (r *Repository) storeForgetRecord(ctx context.Context, record []format.Forgotten) error {
	sort.Slice(record, func(i, j int) bool { return record[i].Seq < record[j].Seq })
	id, err := crypt.NewRandomID()
	if err != nil {
		return err
	}
	sealed, err := r.keys.Seal(nil, crypt.TypeForget, id, format.EncodeForget(record))
	if err != nil {
		return err
	}
	if err := r.remote.Put(ctx, format.ForgetName(id), sealed); err != nil {
		return fmt.Errorf("failed to store the forget record (nothing was deleted): %w", err)
	}
	for _, e := range record {
		r.forgotten[e.Seq] = e.ID
	}
	return nil
}
