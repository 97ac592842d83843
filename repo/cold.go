package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// Cold index objects (docs/SPEC.md §7, "Cold index objects"): a merge of
// index objects moves the entries of the trees in its run that the newest
// root no longer reaches (the roots and folders of older snapshots) into a
// cold index object, which the snapshot names in a list of its own
// (Snapshot.Cold). An open loads only the main list; the cold objects are
// loaded, before the main ones (whose entries win), by whoever reads old
// history, and on any miss in the main index: a blob classified wrongly
// costs a load, never a miss.

// loadCold puts the cold index objects of the newest snapshot into the
// index, once per index (Refresh replaces it). A missing or damaged one is
// an integrity error naming it.
func (r *Repository) loadCold(ctx context.Context) error {
	if r.index.Load().coldLoaded() {
		return nil
	}
	r.coldMu.Lock()
	defer r.coldMu.Unlock()
	idx := r.index.Load()
	if idx.coldLoaded() {
		return nil
	}
	var ids []crypt.ID
	if s := r.Latest(); s != nil {
		ids = s.Cold
	}
	tables := make([]*format.IndexTable, len(ids))
	for i, x := range ids {
		t := idx.table(x)
		if t == nil {
			var err error
			if t, err = r.readIndex(ctx, x); err != nil {
				return fmt.Errorf("failed to load the history index (needed for older snapshots): %w", err)
			}
		}
		tables[i] = t
	}
	idx.addCold(ids, tables)
	r.mu.Lock()
	if r.index.Load() == idx {
		for i, x := range ids {
			r.loaded[x] = true
			r.indexEntries[x] = tables[i].Len()
		}
	}
	r.mu.Unlock()
	return nil
}

// lookup finds blob id in the index, loading the cold index objects when
// the main ones do not list it.
func (r *Repository) lookup(ctx context.Context, id crypt.ID) (Location, bool, error) {
	if l, ok := r.Index().Lookup(id); ok {
		return l, true, nil
	}
	// Loaded meanwhile, or now: look again either way.
	if err := r.loadCold(ctx); err != nil {
		return Location{}, false, err
	}
	l, ok := r.Index().Lookup(id)
	return l, ok, nil
}

// Has reports whether the index lists blob id: the main index objects,
// or else the cold ones, which it loads (an error when they fail to).
func (r *Repository) Has(ctx context.Context, id crypt.ID) (bool, error) {
	_, ok, err := r.lookup(ctx, id)
	return ok, err
}

// splitCold sorts the entries of a merge's run (sorted, one a blob) into
// those that stay in the main list and those that go cold: the trees of
// the run that the tree root does not reach through trees of the run
// (trees are content-addressed, so a tree indexed before the run holds
// only trees indexed before it too, or copies of them). A tree reached
// through an older one is taken for cold: reading it loads the cold
// objects, nothing is missed.
func (r *Repository) splitCold(ctx context.Context, entries []format.IndexEntry, root crypt.ID) (hot, cold []format.IndexEntry, err error) {
	inRun := map[crypt.ID]bool{}
	for _, e := range entries {
		if e.Type == crypt.TypeTreeBlob {
			inRun[e.ID] = true
		}
	}
	if len(inRun) == 0 {
		return entries, nil, nil
	}
	reached := map[crypt.ID]bool{root: true}
	queue := []crypt.ID{root}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		t, err := r.LoadTree(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		for _, n := range t.Nodes {
			if n.Type == NodeDir && inRun[n.Subtree] && !reached[n.Subtree] {
				reached[n.Subtree] = true
				queue = append(queue, n.Subtree)
			}
		}
	}
	for _, e := range entries {
		if e.Type != crypt.TypeTreeBlob || reached[e.ID] {
			hot = append(hot, e)
			continue
		}
		cold = append(cold, e)
	}
	return hot, cold, nil
}

// indexCount returns how many entries index object x holds: known, or
// from its size on the remote (a sealed index object of n entries is
// 5 + 77 n bytes and the seal's overhead). Only merges are planned by it.
func (r *Repository) indexCount(ctx context.Context, x crypt.ID) (int, error) {
	r.mu.Lock()
	n, ok := r.indexEntries[x]
	r.mu.Unlock()
	if ok {
		return n, nil
	}
	size, err := r.remote.Stat(ctx, format.IndexName(x))
	if errors.Is(err, remote.ErrNotFound) {
		return 0, integrityError(format.IndexName(x), "the index is missing")
	}
	if err != nil {
		return 0, err
	}
	n = int(max(0, size-crypt.Overhead-5) / format.IndexEntrySize)
	r.mu.Lock()
	r.indexEntries[x] = n
	r.mu.Unlock()
	return n, nil
}

// coldMerge plans the cold index objects a merge that moves entries cold
// writes: the newest run of the cold list (planRun, with the new entries
// as its newest object) is read back and sealed with them into one object
// (the newest entry of a blob wins). It returns that object and the run it
// replaces (none: the object is added to the list).
//
// A cold object that is missing or does not open concerns only older
// snapshots: it is never merged (the run stops short of it, or the new
// object is added to the list), so that damage to old history, which
// check and every reader of that history report, does not stop every
// commit of new changes.
func (r *Repository) coldMerge(ctx context.Context, list []crypt.ID, cold []format.IndexEntry) (sealedObject, []crypt.ID, error) {
	counts := make([]int, len(list)+1)
	for i, x := range list {
		n, err := r.indexCount(ctx, x)
		if errors.Is(err, ErrIntegrity) {
			n = format.MaxIndexEntries // missing: no run reaches past it
		} else if err != nil {
			return sealedObject{}, nil, err
		}
		counts[i] = n
	}
	counts[len(list)] = len(cold)
	s := min(planRun(counts, mergeFactor, maxNamedIndexes, format.MaxIndexEntries), len(list))
	start := s // the run merged: list[start:]
	var merged []format.IndexEntry
	for j, x := range list[s:] {
		t, err := r.readIndex(ctx, x)
		if errors.Is(err, ErrIntegrity) {
			// Damaged: it and the objects before it stay in the list as
			// they are; the run starts after it.
			start, merged = s+j+1, merged[:0]
			continue
		}
		if err != nil {
			return sealedObject{}, nil, fmt.Errorf("failed to merge history index objects: %w", err)
		}
		for i := range t.Len() {
			merged = append(merged, t.Entry(i))
		}
	}
	objs, err := r.sealIndexes(append(merged, cold...))
	if err != nil {
		return sealedObject{}, nil, err
	}
	if len(objs) != 1 {
		return sealedObject{}, nil, fmt.Errorf("merging %d history index objects gave %d", len(list)-start, len(objs))
	}
	return objs[0], slices.Clone(list[start:]), nil
}
