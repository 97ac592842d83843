package repo

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// CommitInfo describes a snapshot being committed.
type CommitInfo struct {
	Host         string
	Files, Bytes uint64
	// Root, if set, is stored as the root directory's attributes.
	Root *format.RootAttr
}

// Commit makes a snapshot of the tree root: it uploads the pack being
// built and waits until every pack is stored, then uploads an index object
// for the new packs, then the snapshot, whose sequence number is one above
// the newest. A crash between any two steps leaves only unreferenced
// objects behind, never a broken snapshot.
//
// A failed step is retried by the next Commit without losing anything: a
// pack whose upload failed is uploaded again with the same bytes, an index
// that was stored stays named by every later snapshot until one of them is
// stored, and a snapshot whose upload failed is uploaded again with the
// same bytes (same id, same sequence number) before anything newer, so an
// upload that failed but landed never gives two snapshots one sequence
// number (docs/SPEC.md, "Commit").
//
// Commits run one at a time (commitMu); they hold r.mu only between remote
// requests, so that blobs are saved and read while a commit uploads.
func (r *Repository) Commit(ctx context.Context, root crypt.ID, info CommitInfo) (*Snapshot, error) {
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	if err := r.checkLease(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	retry := r.unstored
	r.mu.Unlock()
	if retry != nil {
		if err := r.storeSnapshot(ctx, retry); err != nil {
			return nil, err
		}
	}
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	if err := r.storeIndexes(ctx); err != nil {
		return nil, err
	}
	if err := r.loadForkIndexes(ctx); err != nil {
		return nil, err
	}
	if err := r.consolidateIndexes(ctx, r.Latest(), root); err != nil {
		return nil, err
	}
	if _, ok := r.Index().Lookup(root); !ok {
		return nil, fmt.Errorf("root tree %s is not stored", root.Short())
	}
	r.mu.Lock()
	var parent *Snapshot
	if len(r.snapshots) > 0 {
		parent = r.snapshots[len(r.snapshots)-1]
	}
	if retry != nil && parent.Tree == root && sameRoot(parent.Root, info.Root) && len(r.unnamed) == 0 && len(r.merges) == 0 {
		r.mu.Unlock()
		return parent, nil // the retried snapshot is this commit
	}
	r.mu.Unlock()
	fold, err := r.planFold(ctx, parent)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	u, err := r.sealSnapshotLocked(root, info, parent, fold)
	if err == nil {
		err = r.rememberUnstoredLocked(u)
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := r.storeSnapshot(ctx, u); err != nil {
		return nil, err
	}
	return u.snap, nil
}

// checkLease fails unless this client holds a valid writer lease.
func (r *Repository) checkLease() error {
	r.mu.Lock()
	h := r.lease
	r.mu.Unlock()
	if h == nil {
		return ErrReadOnly
	}
	return h.check()
}

// sameRoot reports whether two snapshots' root attributes are the same.
func sameRoot(a, b *format.RootAttr) bool {
	return reflect.DeepEqual(a, b)
}

// storeIndexes seals the blobs of the packs stored since the last index
// into index objects, and uploads every index not stored yet, oldest
// first. A stored index stays unnamed until a stored snapshot names it.
// commitMu is held.
func (r *Repository) storeIndexes(ctx context.Context) error {
	r.mu.Lock()
	err := r.sealIndexesLocked()
	unsent := append([]sealedObject(nil), r.unsentIndexes...)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	for _, x := range unsent {
		if err := r.remote.Put(ctx, format.IndexName(x.id), x.sealed); err != nil {
			return fmt.Errorf("failed to upload index: %w", err)
		}
		r.mu.Lock()
		switch {
		case x.cold:
		case x.covers != nil:
			r.merges = append(r.merges, indexMerge{id: x.id, covers: x.covers, cold: x.coldID, coldCovers: x.coldCovers})
		default:
			r.unnamed = append(r.unnamed, x.id)
		}
		r.indexEntries[x.id] = x.entries
		r.unsentIndexes = r.unsentIndexes[1:] // only commits change it
		r.mu.Unlock()
	}
	return nil
}

// sealIndexesLocked seals the pending index entries into index objects
// waiting for upload. r.mu is held.
func (r *Repository) sealIndexesLocked() error {
	objs, err := r.sealIndexes(r.pending)
	if err != nil {
		return err
	}
	r.unsentIndexes = append(r.unsentIndexes, objs...)
	r.pending = nil
	return nil
}

// rememberUnstoredLocked saves a sealed snapshot in the local state before
// its upload: after a crash, the next run stores these same bytes (or
// drops them if another writer went on meanwhile). r.mu is held.
func (r *Repository) rememberUnstoredLocked(u *unstoredSnapshot) error {
	r.state.Unstored = &unstoredState{ID: u.snap.ID, Sealed: u.sealed}
	if err := r.state.save(r.stateDir); err != nil {
		r.state.Unstored = nil
		return err
	}
	r.unstored = u
	return nil
}

// sealSnapshotLocked makes the snapshot of the tree root that follows
// parent (nil for the first): it names the fork snapshots' indexes the
// parent lacks, the parent's indexes and every unnamed one, merged as
// consolidateIndexes stored (indexListsLocked), and records the forks
// (recordForksLocked). It is sealed under a fresh id, not stored. r.mu is
// held.
func (r *Repository) sealSnapshotLocked(root crypt.ID, info CommitInfo, parent *Snapshot, fold *foldPlan) (*unstoredSnapshot, error) {
	s := &Snapshot{Version: format.SnapshotForksVersion, Seq: 1, Time: time.Now().UTC(), Host: info.Host, Tree: root, Files: info.Files, Bytes: info.Bytes, Root: info.Root}
	if s.Host == "" {
		s.Host, _ = os.Hostname()
	}
	if parent != nil {
		s.Seq, s.Parent = parent.Seq+1, parent.ID
	}
	s.Indexes, s.Cold = r.indexListsLocked(parent)
	r.recordForksLocked(s, parent)
	r.historyLocked(s, parent, fold)
	u, err := r.sealSnapshot(s)
	if err == nil && fold != nil {
		r.fold = &pendingFold{snap: s.ID, plan: fold}
	}
	return u, err
}

// historyLocked sets the history segments snapshot s, following parent,
// stands on: the fold's, or the parent's (docs/SPEC.md §8.3), and the
// version that names them. r.mu is held.
func (r *Repository) historyLocked(s, parent *Snapshot, fold *foldPlan) {
	switch {
	case fold != nil:
		s.History = slices.Clone(fold.history)
	case parent != nil:
		s.History = slices.Clone(parent.History)
	}
	if len(s.History) > 0 {
		s.Version = format.SnapshotHistoryVersion
	} else {
		s.History = nil
	}
	// Cold index objects (docs/SPEC.md §7) come with the next version.
	if len(s.Cold) > 0 {
		s.Version = format.SnapshotColdVersion
	} else {
		s.Cold = nil
	}
}

// sealSnapshot seals s under a fresh id (which it sets); it is not stored.
func (r *Repository) sealSnapshot(s *Snapshot) (*unstoredSnapshot, error) {
	var err error
	if s.ID, err = crypt.NewRandomID(); err != nil {
		return nil, err
	}
	pt, err := format.EncodeSnapshot(s)
	if err != nil {
		return nil, err
	}
	sealed, err := r.keys.Seal(nil, crypt.TypeSnapshot, s.ID, pt)
	if err != nil {
		return nil, err
	}
	return &unstoredSnapshot{snap: s, sealed: sealed}, nil
}

// sealedObject is an index object sealed and not yet stored: its number
// of entries, and for a merge the run of index objects it replaces.
//
// A merge that moved entries cold names its cold index object (coldID)
// and the run of the cold list that replaces (coldCovers); the cold
// object itself (cold) is stored just before it and named through it.
type sealedObject struct {
	id         crypt.ID
	sealed     []byte
	entries    int
	covers     []crypt.ID
	cold       bool
	coldID     crypt.ID
	coldCovers []crypt.ID
}

// unstoredSnapshot is a sealed snapshot whose upload has not succeeded yet.
type unstoredSnapshot struct {
	snap   *Snapshot
	sealed []byte
}

// storeSnapshot uploads a sealed snapshot (r.unstored) and, once it is
// stored, makes it the newest: the indexes it names are no longer unnamed.
// commitMu is held.
func (r *Repository) storeSnapshot(ctx context.Context, u *unstoredSnapshot) error {
	// Checked again after the uploads before it, which may have taken long.
	if err := r.checkLease(); err != nil {
		return err
	}
	// Under its version 1 name if an older sealfs began the upload (it
	// is listed so, cut off): never one id under two names.
	r.mu.Lock()
	name := r.snapshotObjectLocked(u.snap)
	r.mu.Unlock()
	if err := r.remote.Put(ctx, name, u.sealed); err != nil {
		return fmt.Errorf("failed to upload snapshot %d: %w", u.snap.Seq, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	named := map[crypt.ID]bool{}
	for _, x := range u.snap.Indexes {
		named[x] = true
	}
	// Index objects a stored merge the snapshot names replaces are named
	// through it (newest first: a merge may cover an earlier one); merges
	// it does not name are garbage (their run changed).
	for i := len(r.merges) - 1; i >= 0; i-- {
		if m := r.merges[i]; named[m.id] {
			for _, x := range m.covers {
				named[x] = true
			}
		}
	}
	r.merges = nil
	keep := r.unnamed[:0]
	for _, x := range r.unnamed {
		if !named[x] {
			keep = append(keep, x)
		}
	}
	r.unnamed = keep
	r.keepIndexEntriesLocked(u.snap.Indexes, u.snap.Cold)
	if n := len(r.snapshots); n > 0 {
		// Only the newest snapshot's index list is needed.
		r.snapshots[n-1] = summaryOf(r.snapshots[n-1])
	}
	r.snapshots = append(r.snapshots, u.snap)
	r.unstored = nil
	r.state.Unstored = nil
	if err := r.rememberHead(u.snap, true); err != nil {
		return err
	}
	r.mu.Unlock()
	r.finishFold(ctx, u.snap)
	r.mu.Lock()
	return nil
}
