package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// History is a tree (docs/SPEC.md §8, "The chain"): two writers that
// both stored a snapshot with one sequence number (a dead writer's upload
// that landed late) make a fork. The head is the newest snapshot; the main
// line is the head and its ancestors; every other snapshot is on a fork.

// compareSnapshots orders snapshots by sequence number, then time, then
// id bytewise: the last of a sorted list is the head, the same for every
// client.
func compareSnapshots(a, b *Snapshot) int {
	switch {
	case a.Seq != b.Seq:
		if a.Seq < b.Seq {
			return -1
		}
		return 1
	case !a.Time.Equal(b.Time):
		return a.Time.Compare(b.Time)
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

// sortSnapshots sorts snapshots oldest first, the head last.
func sortSnapshots(snaps []*Snapshot) { slices.SortFunc(snaps, compareSnapshots) }

// forksOf returns the snapshots of snaps (sorted, the head last) that are
// not on the main line. The main line is followed from the head through
// the parents; below a forgotten snapshot (whose parent is not known) a
// sequence number held by one known snapshot is taken as the main line's,
// and where several share it every present one counts as a fork (so a
// writer records them all: more kept, nothing lost).
//
// folded is the newest number of the head's history segments when they are
// not in snaps (unloadedFoldLocked), else 0: a snapshot of snaps at or
// below it is one that landed after the fold, beside the main line's
// (which a fold only folds alone at its number): a fork.
func forksOf(snaps []*Snapshot, forgot map[crypt.ID]uint64, folded uint64) []*Snapshot {
	if len(snaps) == 0 {
		return nil
	}
	byID := make(map[crypt.ID]*Snapshot, len(snaps))
	bySeq := map[uint64][]crypt.ID{} // every known snapshot, present or forgotten
	for _, s := range snaps {
		byID[s.ID] = s
		bySeq[s.Seq] = append(bySeq[s.Seq], s.ID)
	}
	for id, seq := range forgot {
		if byID[id] == nil {
			bySeq[seq] = append(bySeq[seq], id)
		}
	}
	head := snaps[len(snaps)-1]
	main := map[crypt.ID]bool{}
	cur, ok := head.ID, true
	// Below the oldest snapshot of snaps (sorted) no snapshot is to mark:
	// the walk ends there (a commit does it over a long history).
	for seq := head.Seq; seq >= snaps[0].Seq && seq > 0; seq-- {
		if ids := bySeq[seq]; !ok && len(ids) == 1 {
			cur, ok = ids[0], true
		}
		if !ok {
			continue
		}
		main[cur] = true
		if s := byID[cur]; s != nil && !isStub(s) {
			cur = s.Parent
		} else {
			// Forgotten, or not opened (a stub: the numbers below it are
			// held by one snapshot each, listing.go): its parent is not
			// known.
			ok = false
		}
	}
	var out []*Snapshot
	for _, s := range snaps {
		if !main[s.ID] || s.Seq <= folded {
			out = append(out, s)
		}
	}
	return out
}

// Forks returns the snapshots that are not on the main line (the newest
// snapshot and its ancestors), oldest first: what a fork left, readable
// and restorable like any other snapshot.
func (r *Repository) Forks() []*Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return forksOf(r.snapshots, r.forgotten, r.unloadedFoldLocked())
}

// UnrecordedForks returns the fork snapshots the newest snapshot does not
// record in its forks (docs/SPEC.md §8): those no writer has seen yet. The
// next commit records them.
func (r *Repository) UnrecordedForks() []*Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unrecordedForksLocked()
}

func (r *Repository) unrecordedForksLocked() []*Snapshot {
	return unrecordedForks(r.snapshots, r.forgotten, r.unloadedFoldLocked())
}

// unrecordedForks returns the fork snapshots of snaps (sorted, the head
// last) that the head does not record: the only ones whose blobs may be
// missing from the head's index objects.
func unrecordedForks(snaps []*Snapshot, forgot map[crypt.ID]uint64, folded uint64) []*Snapshot {
	forks := forksOf(snaps, forgot, folded)
	if len(forks) == 0 {
		return nil
	}
	head := snaps[len(snaps)-1]
	return slices.DeleteFunc(forks, func(s *Snapshot) bool { return slices.Contains(head.Forks, s.ID) })
}

// recordForksLocked sets what a snapshot s following parent records of
// the forks: the parent's forks that are not forgotten, and every fork
// snapshot present. (Their index objects are in s.Indexes:
// indexListsLocked.) r.mu is held.
func (r *Repository) recordForksLocked(s, parent *Snapshot) {
	s.Forks = nil
	if parent == nil {
		return
	}
	ids := map[crypt.ID]bool{}
	for _, f := range parent.Forks {
		if _, gone := r.forgotten[f]; !gone {
			ids[f] = true
		}
	}
	for _, f := range forksOf(r.snapshots, r.forgotten, r.unloadedFoldLocked()) {
		ids[f.ID] = true
	}
	for id := range ids {
		s.Forks = append(s.Forks, id)
	}
	slices.SortFunc(s.Forks, func(a, b crypt.ID) int { return bytes.Compare(a[:], b[:]) })
}

// forkIndexesLocked returns the index objects of the fork snapshots that
// parent does not name, oldest fork first, each once: those a snapshot
// following parent names first (before the parent's, so that where both
// sides stored a blob the main line's location is the one read). Only
// index objects loadForkIndexes read are named: a missing or damaged one
// stays the fork's problem (reading it fails), never the newest
// snapshot's. r.mu is held.
func (r *Repository) forkIndexesLocked(parent *Snapshot) []crypt.ID {
	named := map[crypt.ID]bool{}
	for _, x := range parent.Indexes {
		named[x] = true
	}
	var out []crypt.ID
	for _, f := range forksOf(r.snapshots, r.forgotten, r.unloadedFoldLocked()) {
		// A fork's cold index objects are named in the main list: forks
		// are rare, and its own entries win (listed after them).
		for _, x := range slices.Concat(f.Cold, f.Indexes) {
			if !named[x] && r.loaded[x] {
				named[x] = true
				out = append(out, x)
			}
		}
	}
	return out
}

// loadForkIndexes loads the index objects of the fork snapshots that the
// newest snapshot does not name, before a commit names them
// (forkIndexesLocked). A fork whose index objects are missing or damaged
// is skipped; a remote that fails is an error (the commit is retried).
// commitMu is held.
func (r *Repository) loadForkIndexes(ctx context.Context) error {
	for _, f := range r.UnrecordedForks() {
		if err := r.LoadIndexesOf(ctx, f); err != nil && !errors.Is(err, ErrIntegrity) {
			return fmt.Errorf("failed to read the indexes of fork snapshot %d (%s): %w", f.Seq, f.ID.Short(), err)
		}
	}
	return nil
}

// LoadIndexesOf makes the blobs of snapshot s readable. The newest
// snapshot's index objects list the blobs of every snapshot but a fork
// snapshot that no writer has recorded yet (docs/SPEC.md §8): for one of
// those it loads the index objects s names that are not loaded; a missing
// one is an integrity error naming it (returned once the others are
// loaded). For any snapshot but the newest it loads the newest one's cold
// index objects (cold.go); it loads nothing else (the index objects an
// older snapshot names may be gone, merged or rewritten).
func (r *Repository) LoadIndexesOf(ctx context.Context, s *Snapshot) error {
	if l := r.Latest(); l != nil && l.ID != s.ID {
		// Old history: its trees may be listed in the cold index
		// objects only (cold.go).
		if err := r.loadCold(ctx); err != nil {
			return err
		}
	}
	r.mu.Lock()
	var missing []crypt.ID
	if slices.ContainsFunc(r.unrecordedForksLocked(), func(f *Snapshot) bool { return f.ID == s.ID }) {
		for _, x := range slices.Concat(s.Cold, s.Indexes) {
			if !r.loaded[x] {
				missing = append(missing, x)
			}
		}
	}
	idx := r.index.Load()
	r.mu.Unlock()
	var first error
	for _, x := range missing {
		counts := map[crypt.ID]int{}
		if err := r.loadIndex(ctx, x, idx, counts); err != nil {
			// The others still load: a fork names its parent's index
			// objects too, which a prune may have rewritten meanwhile,
			// while its own blobs are in an object of its own.
			if first == nil {
				first = err
			}
			continue
		}
		r.mu.Lock()
		if r.index.Load() == idx {
			r.loaded[x] = true
			r.indexEntries[x] = counts[x]
		}
		r.mu.Unlock()
	}
	return first
}

// checkRecordedForks verifies that every fork the head records is present
// or forgotten, and not alone at its number: deleting a fork snapshot, or
// the main line's snapshot beside it, is detected once a writer has
// recorded it.
//
// A fork at or below folded (the head's history, not loaded) shares its
// number with a folded snapshot, which the history segments hold.
func checkRecordedForks(head *Snapshot, known map[crypt.ID]uint64, folded uint64) []error {
	var errs []error
	bySeq := map[uint64]int{}
	for _, seq := range known {
		bySeq[seq]++
	}
	for _, f := range head.Forks {
		seq, ok := known[f]
		switch {
		case !ok:
			errs = append(errs, integrityError(format.SnapshotName(f), "the newest snapshot %s records it as a fork, but it is missing (deleted without a forget record)", head.ID.Short()))
		case bySeq[seq] < 2 && seq > folded:
			// A fork shares its number with the main line's snapshot,
			// which goes only with a forget record.
			errs = append(errs, integrityError(format.SnapshotSeqName(seq, f), "the newest snapshot %s records it as a fork, but it is the only snapshot %d: the main line's was deleted without a forget record", head.ID.Short(), seq))
		}
	}
	return errs
}
