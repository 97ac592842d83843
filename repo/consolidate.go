package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// Index consolidation (docs/SPEC.md §7, "Consolidation"): every commit
// writes an index object for its new blobs, and a snapshot names the index
// objects the repository consists of. So that this list does not grow by
// one with every commit, a commit merges the newest index objects into one
// when they are as large as the one before them (as a binary counter
// carries), and whenever the list would be longer than maxNamedIndexes:
// a snapshot names O(log blobs) index objects, and each blob is rewritten
// O(log blobs) times over the repository's life.

// maxNamedIndexes is the most index objects a snapshot names, unless the
// ones before the newest are full (format.MaxIndexEntries each).
const maxNamedIndexes = 24

// mergeFactor: an index object is merged with the newer ones after it once
// it holds at most mergeFactor times as many entries as they do together.
const mergeFactor = 2

// sealIndexes seals entries into index objects of at most
// format.MaxIndexEntries entries, each under a fresh id. It is the one way
// index objects are made: for the blobs of a commit, for a merge, and for
// a rewrite (prune). An index object, once sealed, is uploaded with these
// bytes until a Put succeeds (docs/SPEC.md §9). Its entries are sorted by
// blob id, one a blob (the later of several in entries), so that readers
// search it in place (§7).
func (r *Repository) sealIndexes(entries []format.IndexEntry) ([]sealedObject, error) {
	entries = format.SortIndexEntries(slices.Clone(entries))
	var out []sealedObject
	for len(entries) > 0 {
		n := min(len(entries), format.MaxIndexEntries)
		xid, err := crypt.NewRandomID()
		if err != nil {
			return nil, err
		}
		sealed, err := r.keys.Seal(nil, crypt.TypeIndex, xid, format.EncodeIndex(entries[:n]))
		if err != nil {
			return nil, err
		}
		out = append(out, sealedObject{id: xid, sealed: sealed, entries: n})
		entries = entries[n:]
	}
	return out, nil
}

// readIndex reads, opens and decodes the index object id.
func (r *Repository) readIndex(ctx context.Context, id crypt.ID) (*format.IndexTable, error) {
	name := format.IndexName(id)
	sealed, err := readObject(ctx, r.remote, name, -1, format.MaxIndexObject)
	if errors.Is(err, remote.ErrNotFound) {
		return nil, integrityError(name, "the index is missing")
	}
	if err != nil {
		return nil, err
	}
	// The table keeps the plaintext: decrypted where it was read, not
	// copied.
	pt, err := r.keys.OpenInPlace(crypt.TypeIndex, id, sealed)
	if err != nil {
		return nil, integrityError(name, "%v (changed, or from another repository)", err)
	}
	t, err := format.OpenIndexTable(pt)
	if err != nil {
		return nil, integrityError(name, "%v", err)
	}
	return t, nil
}

// loadIndexes reads the index objects ids, several at once, and returns
// an index of their entries in that order (a later entry of a blob wins);
// it records each one's number of entries in counts. The first failure in
// the order of ids is returned. An index object the current index holds
// whole is not read again (it never changes), only checked to be still
// there: a reload, and the second open of a mount (its lease), cost a
// stat for each.
func (r *Repository) loadIndexes(ctx context.Context, ids []crypt.ID, counts map[crypt.ID]int) (*Index, error) {
	lists := make([]*format.IndexTable, len(ids))
	errs := make([]error, len(ids))
	prev := r.index.Load()
	var wg sync.WaitGroup
	work := make(chan int)
	for range min(r.transfers(), len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if t := prev.table(ids[i]); t != nil {
					lists[i], errs[i] = t, r.indexPresent(ctx, ids[i])
					continue
				}
				lists[i], errs[i] = r.readIndex(ctx, ids[i])
			}
		}()
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, err
		}
		counts[ids[i]] = lists[i].Len()
	}
	return newIndexOf(ids, lists), nil
}

// indexPresent checks that index object id is on the remote.
func (r *Repository) indexPresent(ctx context.Context, id crypt.ID) error {
	name := format.IndexName(id)
	_, err := r.remote.Stat(ctx, name)
	if errors.Is(err, remote.ErrNotFound) {
		return integrityError(name, "the index is missing")
	}
	return err
}

// readerIndexes returns the index objects a reader loads, in the order it
// loads them (a later entry of a blob wins), given every snapshot by
// sequence number: the newest snapshot's. They list every blob of every
// retained snapshot (docs/SPEC.md §7); the index objects that only older
// snapshots name may be gone.
func readerIndexes(snaps []*Snapshot) []crypt.ID {
	if len(snaps) == 0 {
		return nil
	}
	return snaps[len(snaps)-1].Indexes
}

// allIndexes returns every index object of the newest snapshot, in the
// order a reader of old history loads them: the cold ones, then those an
// open loads (readerIndexes), whose entries win.
func allIndexes(snaps []*Snapshot) []crypt.ID {
	if len(snaps) == 0 {
		return nil
	}
	return slices.Concat(snaps[len(snaps)-1].Cold, readerIndexes(snaps))
}

// indexMerge is a stored index object that holds the entries of the index
// objects it covers (a run of the list the next snapshot names), which it
// replaces in that list.
//
// A merge that moved entries cold (cold.go) also stored the cold index
// object cold, which replaces the run coldCovers of the cold list (or is
// added to it): the two go into a snapshot together or not at all.
type indexMerge struct {
	id     crypt.ID
	covers []crypt.ID
	cold   crypt.ID
	// coldCovers is the run of the cold list the cold object replaces.
	coldCovers []crypt.ID
}

// planMerge returns where the run of index objects to merge begins, given
// how many entries each of the list holds (oldest first): the run ends at
// the newest; len(counts) when nothing is to be merged. An object joins
// the run while it holds at most mergeFactor times the run's entries, or
// while the list would be longer than maxNamedIndexes, as long as the
// merged object stays within format.MaxIndexEntries.
func planMerge(counts []int) int {
	return planRun(counts, mergeFactor, maxNamedIndexes, format.MaxIndexEntries)
}

// planRun is planMerge's rule with its bounds given: an object joins the
// run while it holds at most factor times the run's entries, or while the
// list would be longer than maxLen, as long as the run stays within
// maxEntries. History segments are merged by it too (fold.go).
func planRun(counts []int, factor, maxLen, maxEntries int) int {
	if len(counts) < 2 {
		return len(counts)
	}
	s := len(counts) - 1
	acc := counts[s]
	for s > 0 && (counts[s-1] <= factor*acc || s >= maxLen) && counts[s-1]+acc <= maxEntries {
		s--
		acc += counts[s]
	}
	if s == len(counts)-1 {
		return len(counts)
	}
	return s
}

// indexListsLocked returns the lists of index objects a snapshot that
// follows parent names. list: those of fork snapshots the parent lacks
// (forkIndexesLocked), the parent's, then the ones stored since, with each
// stored merge in place of the run it covers. cold: the parent's cold
// list, with each merge's cold object in place of the run it covers (or
// added). A merge is applied only when both its runs are there (the parent
// did not change under it); one left out is garbage. r.mu is held.
func (r *Repository) indexListsLocked(parent *Snapshot) (list, cold []crypt.ID) {
	if parent != nil {
		list = append(list, r.forkIndexesLocked(parent)...)
		list = append(list, parent.Indexes...)
		cold = slices.Clone(parent.Cold)
	}
	list = append(list, r.unnamed...)
	for _, m := range r.merges {
		at, ok := runAt(list, m.covers)
		coldAt, coldOK := runAt(cold, m.coldCovers)
		if !ok || !m.cold.IsZero() && !coldOK {
			continue
		}
		list = append(list[:at+1], list[at+len(m.covers):]...)
		list[at] = m.id
		if !m.cold.IsZero() {
			cold = append(cold[:coldAt], append([]crypt.ID{m.cold}, cold[coldAt+len(m.coldCovers):]...)...)
		}
	}
	return list, cold
}

// runAt returns where run starts in list; an empty run is at list's end.
func runAt(list, run []crypt.ID) (int, bool) {
	if len(run) == 0 {
		return len(list), true
	}
	for i, x := range list {
		if x == run[0] {
			return i, i+len(run) <= len(list) && equalIDs(list[i:i+len(run)], run)
		}
	}
	return 0, false
}

func equalIDs(a, b []crypt.ID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// consolidateIndexes merges the newest index objects of the list the next
// snapshot names, when planMerge says so: it reads them back, seals their
// entries (the newest entry of a blob wins, as when they are loaded in
// order) into one object and queues it for upload like any index object
// (storeIndexes): a failure fails the commit, and the next commit uploads
// the same bytes first. The entries of the run's trees that root (the
// tree the snapshot will name) no longer reaches go into a cold index
// object instead (splitCold, coldMerge). commitMu is held.
func (r *Repository) consolidateIndexes(ctx context.Context, parent *Snapshot, root crypt.ID) error {
	r.mu.Lock()
	list, coldList := r.indexListsLocked(parent)
	counts := make([]int, len(list))
	for i, x := range list {
		n, ok := r.indexEntries[x]
		if !ok {
			n = format.MaxIndexEntries // unknown: never merged
		}
		counts[i] = n
	}
	queued := len(r.unsentIndexes) > 0
	r.mu.Unlock()
	if queued {
		return nil // storeIndexes failed; this commit fails
	}
	s := planMerge(counts)
	if s == len(list) {
		return nil
	}
	run := list[s:]
	var merged []format.IndexEntry // in order: the last entry of a blob wins
	for _, x := range run {
		t, err := r.readIndex(ctx, x)
		if err != nil {
			return fmt.Errorf("failed to merge index objects: %w", err)
		}
		for i := range t.Len() {
			merged = append(merged, t.Entry(i))
		}
	}
	hot, cold, err := r.splitCold(ctx, format.SortIndexEntries(merged), root)
	if err != nil {
		return fmt.Errorf("failed to merge index objects: %w", err)
	}
	objs, err := r.sealIndexes(hot)
	if err == nil && len(objs) == 0 {
		objs, err = r.sealEmptyIndex()
	}
	if err != nil {
		return err
	}
	if len(objs) != 1 {
		return fmt.Errorf("merging %d index objects gave %d", len(run), len(objs))
	}
	objs[0].covers = append([]crypt.ID(nil), run...)
	if len(cold) > 0 {
		c, coldCovers, err := r.coldMerge(ctx, coldList, cold)
		if err != nil {
			return err
		}
		c.cold = true
		objs[0].coldID, objs[0].coldCovers = c.id, coldCovers
		objs = []sealedObject{c, objs[0]} // stored first: the merge names it
	}
	r.mu.Lock()
	r.unsentIndexes = append(r.unsentIndexes, objs...)
	r.mu.Unlock()
	return r.storeIndexes(ctx)
}

// sealEmptyIndex seals an index object of no entries: a merge whose run
// went cold whole.
func (r *Repository) sealEmptyIndex() ([]sealedObject, error) {
	xid, err := crypt.NewRandomID()
	if err != nil {
		return nil, err
	}
	sealed, err := r.keys.Seal(nil, crypt.TypeIndex, xid, format.EncodeIndex(nil))
	if err != nil {
		return nil, err
	}
	return []sealedObject{{id: xid, sealed: sealed}}, nil
}

// keepIndexEntriesLocked forgets the sizes of index objects that are no
// longer in named, the list of the newest snapshot, nor waiting to be
// named. r.mu is held.
func (r *Repository) keepIndexEntriesLocked(named, cold []crypt.ID) {
	keep := make(map[crypt.ID]int, len(named)+len(cold)+len(r.unnamed))
	for _, l := range [][]crypt.ID{named, cold, r.unnamed} {
		for _, x := range l {
			if n, ok := r.indexEntries[x]; ok {
				keep[x] = n
			}
		}
	}
	for _, m := range r.merges {
		if n, ok := r.indexEntries[m.id]; ok {
			keep[m.id] = n
		}
	}
	r.indexEntries = keep
}
