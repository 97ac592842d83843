package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// Opening a repository reads what it needs for the newest snapshot only
// (docs/SPEC.md §8, "The chain", and §9, "Open"): one listing of
// snapshots/ gives every snapshot's sequence number and id (from its
// name, SnapshotSeqName) and the forget records; the chain is verified on
// those, and only the snapshots at the newest sequence number (and at a
// fork's) are opened. The others are stubs (isStub) until a caller needs
// their content (Snapshots, SnapshotBySeq): then each is opened once, and
// its summary kept in the summary cache (summaries.go) for later runs.

// listedSnapshot is a snapshot object in the listing.
type listedSnapshot struct {
	name string
	size int64
	seq  uint64 // 0: a version 1 name, which does not say
	id   crypt.ID
}

// loadSnapshots lists the snapshots and forget records, reads every forget
// record (from the summary cache when this client read it before), and
// opens the snapshots the chain and the head need (see above); the others
// come as stubs. The snapshots come sorted by sortSnapshots (the head
// last), the forgotten ones by id.
func (r *Repository) loadSnapshots(ctx context.Context) ([]*Snapshot, map[crypt.ID]uint64, error) {
	r.mu.Lock()
	u := r.unstored
	r.mu.Unlock()
	objs, forgot, err := r.listSnapshots(ctx)
	if err != nil {
		return nil, nil, err
	}
	legacy, err := r.legacySeqs(ctx, objs, u)
	if err != nil {
		return nil, nil, err
	}
	snaps, err := r.openNeeded(ctx, objs, forgot, u)
	if err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	r.legacy = legacy
	r.mu.Unlock()
	if n := len(snaps); n > 0 && isStub(snaps[n-1]) {
		// The newest was left out (our own cut-off upload): the one
		// before is the head, and is needed whole.
		name := format.SnapshotSeqName(snaps[n-1].Seq, snaps[n-1].ID)
		if legacy[snaps[n-1].ID] {
			name = format.SnapshotName(snaps[n-1].ID)
		}
		s, err := r.loadSnapshot(ctx, name, -1)
		if err != nil {
			return nil, nil, err
		}
		snaps[n-1] = s
	}
	return snaps, forgot, nil
}

// listSnapshots lists snapshots/: the snapshot objects by name (each id
// under one name only), and the forget records' entries.
func (r *Repository) listSnapshots(ctx context.Context) ([]listedSnapshot, map[crypt.ID]uint64, error) {
	var entries []remote.Entry
	if err := r.remote.List(ctx, format.SnapshotsDir, func(e remote.Entry) error { entries = append(entries, e); return nil }); err != nil {
		return nil, nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	listed := make(map[string]bool, len(entries))
	forgot := map[crypt.ID]uint64{}
	var objs []listedSnapshot
	ids := make(map[crypt.ID]string, len(entries))
	var cache map[string][]format.Forgotten
	dirty := false
	for _, e := range entries {
		listed[e.Name] = true
		if format.IsForgetName(e.Name) {
			if cache == nil {
				cache = r.loadForgetCache()
			}
			f, ok := cache[e.Name]
			if !ok {
				var err error
				if f, err = r.loadForget(ctx, e.Name, e.Size); err != nil {
					return nil, nil, err
				}
				cache[e.Name], dirty = f, true
			}
			if err := addForgotten(forgot, e.Name, f); err != nil {
				return nil, nil, err
			}
			continue
		}
		seq, id, ok := format.ParseSnapshotName(e.Name)
		if !ok {
			return nil, nil, integrityError(e.Name, "not a snapshot name")
		}
		if other, dup := ids[id]; dup {
			return nil, nil, integrityError(e.Name, "snapshot %s is listed twice, also as %s: a snapshot was copied or renamed", id.Short(), other)
		}
		ids[id] = e.Name
		objs = append(objs, listedSnapshot{name: e.Name, size: e.Size, seq: seq, id: id})
	}
	if cache != nil && (keepListed(cache, listed) || dirty) {
		r.saveCacheFile(forgetFile, cache)
	}
	return objs, forgot, nil
}

// legacySeqs fills in the sequence numbers of the snapshots of a version 1
// name, which say it only inside (from the summary cache, or opening
// them), and returns their ids. One that does not open and is our own
// upload, cut off (u), keeps the sequence number 0: it is left out.
func (r *Repository) legacySeqs(ctx context.Context, objs []listedSnapshot, u *unstoredSnapshot) (map[crypt.ID]bool, error) {
	legacy := map[crypt.ID]bool{}
	var sums map[string]*cachedSnapshot
	dirty := false
	for i, o := range objs {
		if o.seq != 0 {
			continue
		}
		legacy[o.id] = true
		if sums == nil {
			sums = r.loadSummaries()
		}
		if s := cachedSummary(sums, o.name, 0, o.id); s != nil {
			objs[i].seq = s.Seq
			continue
		}
		s, err := r.loadSnapshot(ctx, o.name, o.size)
		if err != nil {
			if u != nil && o.id == u.snap.ID && errors.Is(err, ErrIntegrity) {
				continue
			}
			return nil, err
		}
		sums[o.name] = &cachedSnapshot{ID: s.ID, Snapshot: summaryOf(s)}
		objs[i].seq, dirty = s.Seq, true
	}
	if dirty {
		r.saveCacheFile(summaryFile, sums)
	}
	return legacy, nil
}

// openNeeded opens every snapshot at the newest sequence number (the head
// is the newest of them), and where a sequence number is held by several
// (present or forgotten: a fork), those and the ones just above, whose
// parents say which line each is on (forksOf), and the ones above a
// number held only by a forgotten snapshot (or one still there), whose
// parents say that no snapshot of that number was deleted without a
// record (verifyChain; their summaries from the summary cache, when this
// client read them before); the others become stubs.
// It returns them sorted by sortSnapshots.
func (r *Repository) openNeeded(ctx context.Context, objs []listedSnapshot, forgot map[crypt.ID]uint64, u *unstoredSnapshot) ([]*Snapshot, error) {
	held := map[uint64]int{}  // known snapshots (present or forgotten) by number
	plain := map[uint64]int{} // present snapshots no forget record names, by number
	var newest uint64
	present := make(map[crypt.ID]bool, len(objs))
	for _, o := range objs {
		held[o.seq]++
		newest = max(newest, o.seq)
		present[o.id] = true
		if _, ok := forgot[o.id]; !ok {
			plain[o.seq]++
		}
	}
	for id, seq := range forgot {
		if !present[id] {
			held[seq]++
		}
	}
	var sums map[string]*cachedSnapshot
	dirty := false
	snaps := make([]*Snapshot, 0, len(objs))
	for _, o := range objs {
		if o.seq == 0 {
			continue // an unreadable version 1 name: our own cut-off upload
		}
		lone := o.seq != newest && held[o.seq] == 1
		if lone && (o.seq == 1 || held[o.seq-1] == 0 || held[o.seq-1] == 1 && plain[o.seq-1] == 1) {
			snaps = append(snaps, &Snapshot{ID: o.id, Seq: o.seq})
			continue
		}
		if lone && held[o.seq-1] == 1 {
			// The number below is held by a forgotten snapshot only
			// (or one still there): that the main line's one of it
			// was not deleted with no record says only this one's
			// parent (verifyChain). Its summary does.
			if sums == nil {
				sums = r.loadSummaries()
			}
			if s := cachedSummary(sums, o.name, o.seq, o.id); s != nil {
				snaps = append(snaps, s)
				continue
			}
			s, err := r.loadSnapshot(ctx, o.name, o.size)
			if err != nil && u != nil && o.id == u.snap.ID && errors.Is(err, ErrIntegrity) {
				continue // our own cut-off upload, as below
			}
			if err != nil {
				return nil, err
			}
			sums[o.name], dirty = &cachedSnapshot{ID: s.ID, Snapshot: summaryOf(s)}, true
			snaps = append(snaps, summaryOf(s))
			continue
		}
		s, err := r.loadSnapshot(ctx, o.name, o.size)
		if err != nil && u != nil && o.id == u.snap.ID && errors.Is(err, ErrIntegrity) {
			// Our own upload, cut off by a crash: the next Commit
			// stores it whole (docs/SPEC.md, "Commit").
			continue
		}
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, s)
	}
	if dirty {
		r.saveCacheFile(summaryFile, sums)
	}
	sortSnapshots(snaps)
	return snaps, nil
}

// loadSnapshot reads and opens the snapshot object name of the listed
// size. A name that gives a sequence number must give the snapshot's.
func (r *Repository) loadSnapshot(ctx context.Context, name string, size int64) (*Snapshot, error) {
	seq, id, ok := format.ParseSnapshotName(name)
	if !ok {
		return nil, integrityError(name, "not a snapshot name")
	}
	sealed, err := readObject(ctx, r.remote, name, size, format.MaxSnapshotObject)
	if err != nil {
		return nil, err
	}
	pt, err := r.keys.Open(crypt.TypeSnapshot, id, sealed)
	if err != nil {
		return nil, integrityError(name, "%v (changed, or from another repository)", err)
	}
	s, err := format.DecodeSnapshot(pt)
	if err != nil {
		return nil, integrityError(name, "%v", err)
	}
	if seq != 0 && s.Seq != seq {
		return nil, integrityError(name, "its name says snapshot %d, but it is snapshot %d: it was renamed", seq, s.Seq)
	}
	s.ID = id
	return s, nil
}

// snapshotObjectLocked is the name of the object of snapshot s: the one
// it was listed under (a version 1 name), or the one a writer gives it.
// r.mu is held.
func (r *Repository) snapshotObjectLocked(s *Snapshot) string {
	if r.legacy[s.ID] {
		return format.SnapshotName(s.ID)
	}
	return format.SnapshotSeqName(s.Seq, s.ID)
}

// fillStubs opens the snapshots of snaps that are stubs (or takes their
// summaries from the summary cache), several at once, and puts their
// summaries in their place, in snaps and in r.snapshots.
func (r *Repository) fillStubs(ctx context.Context, snaps []*Snapshot) error {
	var todo []int
	for i, s := range snaps {
		if isStub(s) {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	cache := r.loadSummaries()
	listed := map[string]bool{}
	r.mu.Lock()
	for _, s := range r.snapshots {
		listed[r.snapshotObjectLocked(s)] = true
	}
	names := make([]string, len(todo))
	for j, i := range todo {
		names[j] = r.snapshotObjectLocked(snaps[i])
	}
	r.mu.Unlock()
	got, err := r.openStubs(ctx, snaps, todo, names, cache)
	if err != nil {
		return err
	}
	if err := r.checkParents(got); err != nil {
		return err
	}
	byID := make(map[crypt.ID]*Snapshot, len(todo))
	dirty := keepListed(cache, listed)
	for j, i := range todo {
		sum := summaryOf(got[j])
		snaps[i] = sum
		byID[sum.ID] = sum
		if cache[names[j]] == nil {
			cache[names[j]] = &cachedSnapshot{ID: sum.ID, Snapshot: sum}
			dirty = true
		}
	}
	if dirty {
		r.saveCacheFile(summaryFile, cache)
	}
	r.mu.Lock()
	for i, s := range r.snapshots {
		if sum := byID[s.ID]; sum != nil && isStub(s) {
			r.snapshots[i] = sum
		}
	}
	r.mu.Unlock()
	return nil
}

// openStubs opens the stubs snaps[todo[j]], listed as names[j], several at
// once: from the summary cache when it holds them, else from the remote.
func (r *Repository) openStubs(ctx context.Context, snaps []*Snapshot, todo []int, names []string, cache map[string]*cachedSnapshot) ([]*Snapshot, error) {
	got := make([]*Snapshot, len(todo))
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	work := make(chan int)
	for range min(r.transfers(), len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				s := snaps[todo[j]]
				if c := cachedSummary(cache, names[j], s.Seq, s.ID); c != nil {
					got[j] = c
					continue
				}
				loaded, err := r.loadSnapshot(ctx, names[j], -1)
				if errors.Is(err, remote.ErrNotFound) {
					err = fmt.Errorf("snapshot %d (%s) is gone from the remote since the repository was opened (forgotten by another client?); open it again: %w", s.Seq, s.ID.Short(), err)
				}
				got[j], errs[j] = loaded, err
			}
		}()
	}
	for j := range todo {
		work <- j
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return got, nil
}

// checkParents checks the parent of each snapshot of got, just opened.
func (r *Repository) checkParents(got []*Snapshot) error {
	// The open verified the chain without their parents (verifyChain):
	// the parent of the one above a number a fork's snapshot now holds
	// alone is what says the main line's was deleted.
	r.mu.Lock()
	known := make(map[crypt.ID]uint64, len(r.snapshots)+len(r.forgotten))
	held := map[uint64]bool{}
	for id, seq := range r.forgotten {
		known[id], held[seq] = seq, true
	}
	for _, s := range r.snapshots {
		known[s.ID], held[s.Seq] = s.Seq, true
	}
	r.mu.Unlock()
	var errs []error
	for _, s := range got {
		if err := checkParent(s, known, held); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LoadSnapshot opens snapshot s whole, with its list of index objects
// (which Snapshots leaves out, but the newest's).
//
// A snapshot folded into a history segment (docs/SPEC.md §8.3) has no
// object and no list of index objects: its summary is all there is.
func (r *Repository) LoadSnapshot(ctx context.Context, s *Snapshot) (*Snapshot, error) {
	r.mu.Lock()
	name := r.snapshotObjectLocked(s)
	folded := r.folded[s.ID]
	r.mu.Unlock()
	if folded {
		c := *s
		return &c, nil
	}
	full, err := r.loadSnapshot(ctx, name, -1)
	if err != nil {
		return nil, err
	}
	if full.ID != s.ID || full.Seq != s.Seq {
		return nil, integrityError(name, "it is not snapshot %d (%s)", s.Seq, s.ID.Short())
	}
	return full, nil
}
