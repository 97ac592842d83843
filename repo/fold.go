package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// Folding (docs/SPEC.md §8.3): so that snapshots/ holds a bounded number
// of objects however long the history, a commit folds the older snapshots
// into a history segment, names it in the snapshot it stores, and once that
// snapshot is stored deletes the folded snapshot objects. An open lists
// snapshots/ and reads no segment: the head says which sequence numbers
// its segments cover (Snapshot.Folded). A caller that needs the whole
// history (Snapshots, SnapshotBySeq of an old number, forget, prune,
// check) loads the segments first (loadHistory).

// foldKeep is how many snapshots below the newest a fold leaves in
// snapshots/: a commit folds once more than 2 × foldKeep sequence numbers
// are unfolded, so an open lists at most about 2 × foldKeep snapshot
// objects. 16 since session 9 (64 before): every open lists snapshots/,
// and a listing costs by name (docs/BENCHMARKS.md, OpenHistory). A
// variable for tests.
var foldKeep uint64 = 16

// historyMergeFactor and maxHistoryRefs bound the history segments a
// snapshot names, as mergeFactor and maxNamedIndexes bound its index
// objects: a segment joins the newest run while it covers at most
// historyMergeFactor times the run's sequence numbers, or while the list
// would be longer than maxHistoryRefs.
const (
	historyMergeFactor = 2
	maxHistoryRefs     = 24
)

// readHistory reads the history segments refs names and returns their
// snapshots (summaries, oldest first). A segment that is missing, does not
// open under its id, or holds a snapshot outside its range is an integrity
// error naming it.
func (r *Repository) readHistory(ctx context.Context, refs []format.HistoryRef) ([]*Snapshot, error) {
	var out []*Snapshot
	for _, ref := range refs {
		name := format.HistoryName(ref.ID)
		sealed, err := readObject(ctx, r.remote, name, -1, format.MaxHistoryObject)
		if errors.Is(err, remote.ErrNotFound) {
			return nil, integrityError(name, "the history segment of snapshots %d to %d is missing (deleted)", ref.First, ref.Last)
		}
		if err != nil {
			return nil, err
		}
		pt, err := r.keys.Open(crypt.TypeHistory, ref.ID, sealed)
		if err != nil {
			return nil, integrityError(name, "%v (changed, or from another repository)", err)
		}
		snaps, err := format.DecodeHistory(pt)
		if err != nil {
			return nil, integrityError(name, "%v", err)
		}
		for _, s := range snaps {
			if s.Seq < ref.First || s.Seq > ref.Last {
				return nil, integrityError(name, "it holds snapshot %d, but is named as the history of snapshots %d to %d", s.Seq, ref.First, ref.Last)
			}
		}
		out = append(out, snaps...)
	}
	return out, nil
}

// joinHistory joins the snapshots listed (sorted, the head last) and those
// of the head's history segments (folded): a listed snapshot that a
// segment holds too is a leftover of a fold (its object not yet deleted)
// and is returned apart, by its object's name (nameOf); a folded snapshot
// recorded as forgotten is left out (a forget record holds its number).
// So is a listed snapshot at or below upTo (the head's folded number) that
// is recorded as forgotten: its forget's leftover (an object the provider
// kept and put back, or whose delete did not happen before the fold),
// never a fork, which only a snapshot no record names can be; it is
// returned apart too, for the next writer to delete.
// The result is sorted.
func joinHistory(listed, folded []*Snapshot, forgot map[crypt.ID]uint64, upTo uint64, nameOf func(*Snapshot) string) (joined []*Snapshot, leftovers []string) {
	in := make(map[crypt.ID]bool, len(folded))
	for _, s := range folded {
		in[s.ID] = true
	}
	for _, s := range listed {
		if in[s.ID] || s.Seq <= upTo && isForgotten(forgot, s) {
			leftovers = append(leftovers, nameOf(s))
			continue
		}
		joined = append(joined, s)
	}
	for _, s := range folded {
		if _, gone := forgot[s.ID]; !gone {
			joined = append(joined, s)
		}
	}
	sortSnapshots(joined)
	return joined, leftovers
}

// loadHistory puts the snapshots of the newest snapshot's history
// segments into the list of snapshots, once per open, verifying the whole
// chain as an open does (verifyChain, now over every snapshot).
//
// A client that does not write may hold a newest snapshot that is no
// longer the newest: another writer's fold since merged its segments into
// a new one and deleted them. So when a segment is missing or does not
// open, it loads the newest snapshot again (as relocate does for a pack
// a prune deleted) and, when that is another one, reads its segments; the
// same newest snapshot means the damage is real.
func (r *Repository) loadHistory(ctx context.Context) error {
	return r.withReload(ctx, func() error { return r.loadHistoryOnce(ctx) })
}

// withReload runs load, which reads the old history (segments, snapshots
// the open listed and did not open), and for a client that does not write
// runs it once more when it failed on an object that is missing or does
// not open and the newest snapshot, loaded again, is another one: another
// writer's fold since folded the snapshots this client listed and deleted
// their objects, or merged the segments it knew and deleted them.
func (r *Repository) withReload(ctx context.Context, load func() error) error {
	var head crypt.ID
	if s := r.Latest(); s != nil {
		head = s.ID
	}
	err := load()
	if err == nil || !errors.Is(err, ErrIntegrity) && !errors.Is(err, remote.ErrNotFound) || !r.reloadForHistory(ctx, head) {
		return err
	}
	return load()
}

// reloadForHistory loads the newest snapshot again for a client that does
// not write, at most once per minReload, and reports whether it is now
// another one than head.
func (r *Repository) reloadForHistory(ctx context.Context, head crypt.ID) bool {
	changed := func() bool {
		s := r.Latest()
		return s != nil && s.ID != head
	}
	r.mu.Lock()
	writing := r.lease != nil
	r.mu.Unlock()
	if writing {
		return false // a writer's newest snapshot is the newest
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if changed() {
		return true // reloaded meanwhile
	}
	if time.Since(r.reloadedAt) < minReload {
		return false
	}
	// The remote's own state, never a local copy kept for offline starts.
	err := r.Refresh(remote.WithoutLocalCopies(ctx))
	r.reloadedAt = time.Now()
	return err == nil && changed()
}

// loadHistoryOnce is loadHistory for the newest snapshot now.
func (r *Repository) loadHistoryOnce(ctx context.Context) error {
	r.mu.Lock()
	if r.historyLoaded || len(r.snapshots) == 0 {
		r.mu.Unlock()
		return nil
	}
	head := r.snapshots[len(r.snapshots)-1]
	refs := head.History
	r.mu.Unlock()
	folded, err := r.readHistory(ctx, refs)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.historyLoaded || len(r.snapshots) == 0 || r.snapshots[len(r.snapshots)-1] != head {
		return nil // another call, or a Refresh or commit, came first
	}
	joined, leftovers := joinHistory(r.snapshots, folded, r.forgotten, head.Folded(), r.snapshotObjectLocked)
	if errs := verifyChain(joined, r.forgotten, 0); len(errs) > 0 {
		return errors.Join(errs...)
	}
	r.snapshots = joined
	r.historyLoaded = true
	for _, s := range folded {
		r.folded[s.ID] = true
	}
	r.leftovers = appendNew(r.leftovers, leftovers...)
	return nil
}

// forgottenCopy returns a copy of the forgotten snapshots (r.mu not held).
func (r *Repository) forgottenCopy() map[crypt.ID]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[crypt.ID]uint64, len(r.forgotten))
	for id, seq := range r.forgotten {
		m[id] = seq
	}
	return m
}

// appendNew appends to list the names it does not hold yet.
func appendNew(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

// unloadedFoldLocked is the newest sequence number the head's history
// segments cover while they are not loaded (the snapshots up to it are not
// in r.snapshots, but for forks that landed after the fold), or 0. r.mu is
// held.
func (r *Repository) unloadedFoldLocked() uint64 {
	if r.historyLoaded || len(r.snapshots) == 0 {
		return 0
	}
	return r.snapshots[len(r.snapshots)-1].Folded()
}

// sortOutFolded takes out of snaps (sorted, the head last, as an open
// lists them) the snapshots at or below the head's folded number that its
// history segments hold: leftovers of a fold whose deletes did not finish.
// The others there are fork snapshots that landed after the fold. It reads
// the segments only when there is such a snapshot (after a crash, or a
// late fork: rare), and returns the leftovers' names.
func (r *Repository) sortOutFolded(ctx context.Context, snaps []*Snapshot, forgot map[crypt.ID]uint64) ([]*Snapshot, []string, error) {
	if len(snaps) == 0 {
		return snaps, nil, nil
	}
	head := snaps[len(snaps)-1]
	folded := head.Folded()
	if folded == 0 || snaps[0].Seq > folded {
		return snaps, nil, nil
	}
	var refs []format.HistoryRef
	for _, ref := range head.History {
		if slices.ContainsFunc(snaps, func(s *Snapshot) bool { return s.Seq >= ref.First && s.Seq <= ref.Last }) {
			refs = append(refs, ref)
		}
	}
	inSegs, err := r.readHistory(ctx, refs)
	if err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	joined, leftovers := joinHistory(snaps, inSegs, forgot, folded, r.snapshotObjectLocked)
	r.mu.Unlock()
	// Only the listed ones that no segment holds stay: the segments are
	// not loaded.
	listed := make(map[crypt.ID]bool, len(snaps))
	for _, s := range snaps {
		listed[s.ID] = true
	}
	for _, s := range inSegs {
		delete(listed, s.ID)
	}
	joined = slices.DeleteFunc(joined, func(s *Snapshot) bool { return !listed[s.ID] })
	// A fork that landed after the fold is opened: its parent and
	// indexes are needed.
	for i, s := range joined {
		if s.Seq <= folded && isStub(s) {
			r.mu.Lock()
			name := r.snapshotObjectLocked(s)
			r.mu.Unlock()
			full, err := r.loadSnapshot(ctx, name, -1)
			if err != nil {
				return nil, nil, err
			}
			joined[i] = full
		}
	}
	return joined, leftovers, nil
}

// foldPlan is a fold a commit makes: the history segments the snapshot it
// stores names, and what is deleted once that snapshot is stored.
type foldPlan struct {
	history []format.HistoryRef
	folded  []*Snapshot // the snapshots folded now (to drop from the list)
	deletes []string    // folded snapshot objects and replaced segments
}

// planFold folds, when more than 2 × foldKeep sequence numbers above the
// parent's history would be unfolded, the snapshots from there to the
// parent's number − foldKeep into a new history segment (stored here), and
// merges segments as index objects are merged: it returns the history the
// next snapshot names and what to delete once it is stored, or nil for no
// fold. A number held by several known snapshots (a fork) ends the range
// before it: those stay in snapshots/. commitMu is held.
func (r *Repository) planFold(ctx context.Context, parent *Snapshot) (*foldPlan, error) {
	if parent == nil {
		return nil, nil
	}
	from := parent.Folded() + 1
	if parent.Seq+1-from <= 2*foldKeep {
		return nil, nil
	}
	to := parent.Seq - foldKeep
	r.mu.Lock()
	// A fork snapshot is not folded: it stays in snapshots/, as one that
	// landed after the fold does (sortOutFolded), and the main line's
	// snapshot of its number is folded.
	fork := map[crypt.ID]bool{}
	for _, f := range forksOf(r.snapshots, r.forgotten, r.unloadedFoldLocked()) {
		fork[f.ID] = true
	}
	main := map[uint64]int{} // the main line's snapshots present, by number
	for _, s := range r.snapshots {
		if s.Seq >= from && !r.folded[s.ID] && !fork[s.ID] && !isForgotten(r.forgotten, s) {
			main[s.Seq]++
		}
	}
	forgot := map[uint64]bool{}
	for _, seq := range r.forgotten {
		forgot[seq] = true
	}
	for seq := from; seq <= to; seq++ {
		if main[seq] > 1 || main[seq] == 0 && !forgot[seq] {
			// Never (forksOf leaves one on the main line, or none
			// where a forget record holds the number), or a number
			// no one holds, which verifyChain reports.
			to = seq - 1
			break
		}
	}
	var take []*Snapshot
	var drop []string
	for _, s := range r.snapshots {
		if s.Seq < from || s.Seq > to || r.folded[s.ID] {
			continue
		}
		if _, gone := r.forgotten[s.ID]; gone {
			drop = append(drop, r.snapshotObjectLocked(s)) // finish its forget
			continue
		}
		if fork[s.ID] {
			continue
		}
		take = append(take, s)
		drop = append(drop, r.snapshotObjectLocked(s))
	}
	r.mu.Unlock()
	if to < from || len(take) == 0 {
		return nil, nil
	}
	if err := r.fillStubs(ctx, take); err != nil {
		return nil, err
	}
	id, err := r.storeHistory(ctx, take)
	if errors.Is(err, errHistoryTooLarge) {
		return nil, nil // (snapshots with huge root xattrs) they stay unfolded
	}
	if err != nil {
		return nil, err
	}
	p := &foldPlan{history: append(slices.Clone(parent.History), format.HistoryRef{ID: id, First: from, Last: to}), folded: take, deletes: drop}
	if err := r.mergeHistory(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

// mergeHistory merges the newest run of p's history segments (planMerge's
// rule, on the sequence numbers each covers) into one new segment.
func (r *Repository) mergeHistory(ctx context.Context, p *foldPlan) error {
	counts := make([]int, len(p.history))
	for i, ref := range p.history {
		counts[i] = int(ref.Last - ref.First + 1)
	}
	start := planRun(counts, historyMergeFactor, maxHistoryRefs, format.MaxHistoryEntries)
	if start >= len(p.history)-1 {
		return nil
	}
	run := p.history[start:]
	snaps, err := r.readHistory(ctx, run)
	if err != nil {
		return err
	}
	forgot := r.forgottenCopy()
	snaps = slices.DeleteFunc(snaps, func(s *Snapshot) bool { _, gone := forgot[s.ID]; return gone })
	if len(snaps) == 0 {
		return nil // all forgotten: the segments stay as they are
	}
	id, err := r.storeHistory(ctx, snaps)
	if err != nil {
		if errors.Is(err, errHistoryTooLarge) {
			return nil
		}
		return err
	}
	merged := format.HistoryRef{ID: id, First: run[0].First, Last: run[len(run)-1].Last}
	for _, ref := range run {
		p.deletes = append(p.deletes, format.HistoryName(ref.ID))
	}
	p.history = append(p.history[:start:start], merged)
	return nil
}

// errHistoryTooLarge: the snapshots do not fit in one history segment.
var errHistoryTooLarge = errors.New("history segment too large")

// storeHistory seals snaps into a history segment under a fresh id and
// uploads it. A failed upload fails the commit; the next one folds again
// under another id (a segment that landed anyway is named by no snapshot:
// prune removes it).
func (r *Repository) storeHistory(ctx context.Context, snaps []*Snapshot) (crypt.ID, error) {
	pt, err := format.EncodeHistory(snaps)
	if err != nil {
		return crypt.ID{}, fmt.Errorf("%w: %v", errHistoryTooLarge, err)
	}
	id, err := crypt.NewRandomID()
	if err != nil {
		return id, err
	}
	sealed, err := r.keys.Seal(nil, crypt.TypeHistory, id, pt)
	if err != nil {
		return id, err
	}
	if err := r.remote.Put(ctx, format.HistoryName(id), sealed); err != nil {
		return id, fmt.Errorf("failed to upload history segment: %w", err)
	}
	return id, nil
}

// finishFold runs after a snapshot is stored: when it is the one a fold
// was planned for (r.fold), the folded snapshots leave the list, and so
// do those of the history segments if they were loaded (the next caller
// that needs them reads the segments again: a long-running writer holds
// a bounded list), and their objects and the replaced segments are
// deleted, with the leftovers an open found.
// A delete that fails is tried again after the next commit; the lease is
// checked before each. commitMu is held.
func (r *Repository) finishFold(ctx context.Context, stored *Snapshot) {
	r.mu.Lock()
	p := r.fold
	if p != nil && p.snap == stored.ID {
		r.fold = nil
		for _, s := range p.plan.folded {
			r.folded[s.ID] = true
		}
		r.snapshots = slices.DeleteFunc(r.snapshots, func(s *Snapshot) bool { return r.folded[s.ID] })
		clear(r.folded)
		r.historyLoaded = false
		r.leftovers = appendNew(r.leftovers, p.plan.deletes...)
	}
	// A fold's snapshot stored by a later run (its writer died before
	// the upload): the snapshots it folded are still in the list, as
	// listed at open. They are leftovers now.
	var listed []*Snapshot
	if folded := stored.Folded(); folded > 0 && !r.historyLoaded {
		listed = slices.Clone(r.snapshots)
		if len(listed) == 0 || listed[0].Seq > folded {
			listed = nil
		}
	}
	r.mu.Unlock()
	if listed != nil {
		if kept, leftovers, err := r.sortOutFolded(ctx, listed, r.forgottenCopy()); err == nil {
			r.mu.Lock()
			if n := len(r.snapshots); n > 0 && r.snapshots[n-1] == stored {
				r.snapshots = kept
				r.leftovers = appendNew(r.leftovers, leftovers...)
			}
			r.mu.Unlock()
		}
	}
	r.mu.Lock()
	todo := slices.Clone(r.leftovers)
	r.mu.Unlock()
	for _, name := range todo {
		if r.checkLease() != nil || r.remote.Delete(ctx, name) != nil {
			return
		}
		r.mu.Lock()
		r.leftovers = slices.DeleteFunc(r.leftovers, func(n string) bool { return n == name })
		r.mu.Unlock()
	}
}

// pendingFold is a fold whose snapshot is sealed and not yet stored.
type pendingFold struct {
	snap crypt.ID
	plan *foldPlan
}
