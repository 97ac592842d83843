package repo

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"

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
func (r *Repository) readForgotten(ctx context.Context, e remote.Entry, forgot map[crypt.ID]uint64) error {
	f, err := r.loadForget(ctx, e.Name, e.Size)
	if err != nil {
		return err
	}
	return addForgotten(forgot, e.Name, f)
}

// addForgotten merges a record's entries into forgot (id -> sequence
// number); two records that give one snapshot different sequence numbers
// are an integrity error. (Several snapshots with one sequence number are
// a fork's, docs/SPEC.md §8.)
func addForgotten(forgot map[crypt.ID]uint64, name string, entries []format.Forgotten) error {
	for _, e := range entries {
		if seq, ok := forgot[e.ID]; ok && seq != e.Seq {
			return integrityError(name, "it records snapshot %s as number %d, another record as %d", e.ID.Short(), e.Seq, seq)
		}
		forgot[e.ID] = e.Seq
	}
	return nil
}

// verifyChain checks that the snapshots (sorted by sortSnapshots, the head
// last) and the forgotten ones form a tree of history (docs/SPEC.md §8,
// "The chain"): every sequence number from 1 to the head's is held by a
// snapshot, present or forgotten; each snapshot's parent is a known
// snapshot with the sequence number before (the zero id for the first);
// no forgotten snapshot is above the head, and the head is not forgotten;
// every fork the head records is known. Two snapshots with one sequence number are a fork, not an error.
// It returns one error for each break, naming what is missing.
func verifyChain(snaps []*Snapshot, forgot map[crypt.ID]uint64, folded uint64) []error {
	var errs []error
	known := make(map[crypt.ID]uint64, len(snaps)+len(forgot))
	held := map[uint64]bool{}
	for id, seq := range forgot {
		known[id] = seq
		held[seq] = true
	}
	for _, s := range snaps {
		if seq, ok := forgot[s.ID]; ok && seq != s.Seq {
			errs = append(errs, integrityError(format.SnapshotSeqName(s.Seq, s.ID), "it has sequence number %d, but a forget record gives it %d", s.Seq, seq))
		}
		known[s.ID] = s.Seq
		held[s.Seq] = true
	}
	seqs := make([]uint64, 0, len(held))
	for seq := range held {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	next := uint64(1)
	for _, seq := range seqs {
		if seq <= folded {
			continue
		}
		next = max(next, folded+1)
		if seq > next {
			what := fmt.Sprintf("snapshot %d is missing", next)
			if seq-next > 1 {
				what = fmt.Sprintf("snapshots %d to %d are missing", next, seq-1)
			}
			errs = append(errs, integrityError("snapshots/", "%s (deleted without a forget record; snapshot %d follows)", what, seq))
		}
		next = seq + 1
	}
	var head *Snapshot
	if len(snaps) > 0 {
		head = snaps[len(snaps)-1]
	}
	if n := len(seqs); n > 0 && (head == nil || seqs[n-1] > head.Seq) {
		errs = append(errs, integrityError("snapshots/", "snapshot %d is recorded as forgotten, but no later snapshot is left (the newest snapshots were deleted)", seqs[n-1]))
	} else if head != nil && isForgotten(forgot, head) {
		// The newest is never forgotten: a forgotten one (a fork of the
		// top number, still present or put back) is the newest only when
		// the snapshot that was newest is gone.
		errs = append(errs, integrityError(format.SnapshotSeqName(head.Seq, head.ID), "the newest snapshot, %d, is recorded as forgotten (the snapshot newer than it was deleted)", head.Seq))
	}
	for _, s := range snaps {
		if isStub(s) {
			continue // not opened: fillStubs verifies its parent
		}
		if err := checkParent(s, known, held); err != nil {
			errs = append(errs, err)
		}
	}
	if head != nil {
		errs = append(errs, checkRecordedForks(head, known, folded)...)
	}
	return errs
}

// checkParent verifies that the parent of snapshot s is a known snapshot
// (known: id -> sequence number, present or forgotten) of the number
// below; a number held by none (held) is reported as missing already.
func checkParent(s *Snapshot, known map[crypt.ID]uint64, held map[uint64]bool) error {
	name := format.SnapshotSeqName(s.Seq, s.ID)
	switch seq, ok := known[s.Parent]; {
	case s.Seq == 1:
		if !s.Parent.IsZero() {
			return integrityError(name, "it is snapshot 1, but its parent is %s", s.Parent.Short())
		}
	case !held[s.Seq-1]:
		// reported as missing
	case !ok:
		return integrityError(name, "its parent %s is missing (deleted without a forget record)", s.Parent.Short())
	case seq != s.Seq-1:
		return integrityError(name, "its parent is %s, which is snapshot %d, not %d", s.Parent.Short(), seq, s.Seq-1)
	}
	return nil
}

// isForgotten reports whether s is recorded as forgotten.
func isForgotten(forgot map[crypt.ID]uint64, s *Snapshot) bool {
	_, ok := forgot[s.ID]
	return ok
}

// Forgotten lists the snapshots removed on purpose, by sequence number
// (then id).
func (r *Repository) Forgotten() []format.Forgotten {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]format.Forgotten, 0, len(r.forgotten))
	for id, seq := range r.forgotten {
		out = append(out, format.Forgotten{Seq: seq, ID: id})
	}
	slices.SortFunc(out, format.CompareForgotten)
	return out
}

// SnapshotBySeq returns the snapshot with sequence number seq (a summary,
// opened if the open did not): when a fork gave it several, the one on the
// main line (or an error wrapping ErrAmbiguousSnapshot when none of them
// is). A forgotten snapshot, or one past the newest, is an error wrapping
// ErrNoSnapshot; one that should be there and is not is an integrity
// error.
func (r *Repository) SnapshotBySeq(ctx context.Context, seq uint64) (*Snapshot, error) {
	var s *Snapshot
	err := r.withReload(ctx, func() error {
		var err error
		s, err = r.snapshotBySeqLoaded(ctx, seq)
		return err
	})
	return s, err
}

// snapshotBySeqLoaded is SnapshotBySeq with the history and the list as
// they are.
func (r *Repository) snapshotBySeqLoaded(ctx context.Context, seq uint64) (*Snapshot, error) {
	r.mu.Lock()
	folded := r.unloadedFoldLocked()
	r.mu.Unlock()
	if seq <= folded {
		if err := r.loadHistory(ctx); err != nil {
			return nil, err
		}
	}
	s, err := r.snapshotBySeq(seq)
	if err != nil || !isStub(s) {
		return s, err
	}
	one := []*Snapshot{s}
	if err := r.fillStubs(ctx, one); err != nil {
		return nil, err
	}
	return one[0], nil
}

// snapshotBySeq is SnapshotBySeq, which may return a stub.
func (r *Repository) snapshotBySeq(seq uint64) (*Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []*Snapshot
	for _, s := range r.snapshots {
		if s.Seq == seq {
			found = append(found, s)
		}
	}
	if len(found) > 1 {
		forks := forksOf(r.snapshots, r.forgotten, r.unloadedFoldLocked())
		found = slices.DeleteFunc(found, func(s *Snapshot) bool { return slices.Contains(forks, s) })
		if len(found) != 1 {
			return nil, fmt.Errorf("%w: a fork left several snapshots with number %d (see: sealfs snapshots)", ErrAmbiguousSnapshot, seq)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	for id, fseq := range r.forgotten {
		if fseq == seq {
			return nil, fmt.Errorf("%w: snapshot %d (%s) was forgotten", ErrNoSnapshot, seq, id.Short())
		}
	}
	if n := len(r.snapshots); seq == 0 || n == 0 || seq > r.snapshots[n-1].Seq {
		return nil, fmt.Errorf("%w: there is no snapshot %d", ErrNoSnapshot, seq)
	}
	return nil, integrityError(fmt.Sprintf("snapshot %d", seq), "it is missing (deleted without a forget record)")
}

// Forget removes the snapshots with the given ids for good, provably: it
// first stores a forget record listing them (sealed, bound to this
// repository), then deletes them. The newest snapshot cannot be
// forgotten; a snapshot of a fork can. The indexes, packs and blobs they
// used stay (pruning them is another step). Interrupted, it leaves the
// record and some of the snapshots, which is a valid state; running it
// again finishes. It needs the writer lease. Commits wait only while the
// record is stored, not for the deletes.
func (r *Repository) Forget(ctx context.Context, ids []crypt.ID) error {
	drop, err := r.recordForgotten(ctx, ids)
	if err != nil {
		return err
	}
	var errs []error
	deleted := map[*Snapshot]bool{}
	r.mu.Lock()
	names := make([]string, len(drop))
	for i, s := range drop {
		names[i] = r.snapshotObjectLocked(s)
	}
	r.mu.Unlock()
	for i, s := range drop {
		if err := r.remote.Delete(ctx, names[i]); err != nil {
			errs = append(errs, fmt.Errorf("failed to delete snapshot %d (%s; it is recorded as forgotten; run again to finish): %w", s.Seq, s.ID.Short(), err))
			continue
		}
		deleted[s] = true
	}
	r.mu.Lock()
	r.snapshots = slices.DeleteFunc(slices.Clone(r.snapshots), func(s *Snapshot) bool { return deleted[s] })
	r.mu.Unlock()
	return errors.Join(errs...)
}

// recordForgotten stores the forget record of the snapshots ids names
// that no record names yet, and returns them all, for their deletes.
func (r *Repository) recordForgotten(ctx context.Context, ids []crypt.ID) ([]*Snapshot, error) {
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	// A stub's number is only its name's: it is opened (its sealed
	// number checked against the name) before a record states it.
	if err := r.fillStubsOf(ctx, ids); err != nil {
		return nil, err
	}
	drop, record, err := r.forgetPlanLocked(ids)
	if err != nil {
		return nil, err
	}
	// Stored without r.mu (commitMu keeps commits and other forgets out):
	// a remote that hangs must not hang what reads the repository's state
	// meanwhile, such as a mount's reads and status.
	if len(record) > 0 {
		if err := r.storeForgetRecord(ctx, record); err != nil {
			return nil, err
		}
	}
	return drop, nil
}

// fillStubsOf opens the snapshots of ids that are stubs (fillStubs).
func (r *Repository) fillStubsOf(ctx context.Context, ids []crypt.ID) error {
	// A folded snapshot is in the history segments.
	if err := r.loadHistory(ctx); err != nil {
		return err
	}
	want := make(map[crypt.ID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var stubs []*Snapshot
	r.mu.Lock()
	for _, s := range r.snapshots {
		if want[s.ID] && isStub(s) {
			stubs = append(stubs, s)
		}
	}
	r.mu.Unlock()
	return r.fillStubs(ctx, stubs)
}

// forgetPlanLocked returns the snapshots ids names, for their deletes,
// and the entries of the forget record to store first (those no record
// names yet). commitMu is held.
func (r *Repository) forgetPlanLocked(ids []crypt.ID) ([]*Snapshot, []format.Forgotten, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == nil {
		return nil, nil, ErrReadOnly
	}
	if err := r.lease.check(); err != nil {
		return nil, nil, err
	}
	if len(r.snapshots) == 0 {
		return nil, nil, fmt.Errorf("%w: the repository has no snapshots", ErrNoSnapshot)
	}
	newest := r.snapshots[len(r.snapshots)-1]
	byID := map[crypt.ID]*Snapshot{}
	for _, s := range r.snapshots {
		byID[s.ID] = s
	}
	drop := map[crypt.ID]*Snapshot{}
	var record []format.Forgotten
	for _, id := range ids {
		s, ok := byID[id]
		switch {
		case !ok:
			return nil, nil, fmt.Errorf("%w: there is no snapshot %s", ErrNoSnapshot, id.Short())
		case s == newest:
			return nil, nil, fmt.Errorf("cannot forget snapshot %d (%s): it is the newest", s.Seq, id.Short())
		}
		if _, dup := drop[id]; dup {
			continue
		}
		drop[id] = s
		if _, recorded := r.forgotten[id]; !recorded {
			record = append(record, format.Forgotten{Seq: s.Seq, ID: s.ID})
		}
	}
	out := make([]*Snapshot, 0, len(drop))
	for _, s := range drop {
		out = append(out, s)
	}
	return out, record, nil
}

// storeForgetRecord stores a forget record of record and adds its entries
// to the forgotten ones. The caller holds commitMu, not r.mu.
func (r *Repository) storeForgetRecord(ctx context.Context, record []format.Forgotten) error {
	slices.SortFunc(record, format.CompareForgotten)
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
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range record {
		r.forgotten[e.ID] = e.Seq
	}
	return nil
}
