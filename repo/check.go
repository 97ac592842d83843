package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// CheckOptions say how thoroughly Check verifies.
type CheckOptions struct {
	// ReadData downloads every pack whole and verifies every blob in it.
	ReadData bool
	// DataSubset, with ReadData, limits the packs read whole to these
	// (the others have their headers checked); nil reads every pack.
	DataSubset *DataSubset
	// Progress, if set, is told what is being checked.
	Progress func(stage string, done, total int)
}

// CheckReport is what Check found.
type CheckReport struct {
	Problems                  []error // each names the object concerned
	Slots, Snapshots, Indexes int
	ForgetRecords             int
	Packs, Blobs, Trees       int
	// DataPacks are the packs read whole and verified blob by blob (all
	// of them with ReadData, the chosen ones with a DataSubset).
	DataPacks                       []crypt.ID
	UnreferencedPacks, Unreferenced []string // left by interrupted commits; harmless
	// Forks are the snapshots not in the newest snapshot's history (a
	// fork, docs/SPEC.md §8): not a problem; each stays restorable.
	Forks []*Snapshot
}

// OK reports whether no problem was found.
func (c *CheckReport) OK() bool { return len(c.Problems) == 0 }

// Check verifies every object of the repository: key slots, snapshots,
// indexes, pack headers against the index, every tree reachable from a
// snapshot and, with ReadData, every blob. It keeps going after a problem
// and reports each; the error it returns is only for a failure to check at
// all (the remote unreachable).
func (r *Repository) Check(ctx context.Context, o CheckOptions) (*CheckReport, error) {
	c := &checker{r: r, o: o, rep: &CheckReport{}}
	if err := c.slots(ctx); err != nil {
		return nil, err
	}
	snaps, wantIndex, err := c.snapshots(ctx)
	if err != nil {
		return nil, err
	}
	all, err := c.indexes(ctx, wantIndex)
	if err != nil {
		return nil, err
	}
	if err := c.packs(ctx, all); err != nil {
		return nil, err
	}
	c.trees(ctx, snaps, all)
	sort.Strings(c.rep.Unreferenced)
	sort.Strings(c.rep.UnreferencedPacks)
	return c.rep, nil
}

// checker is one run of Check and what it found so far.
type checker struct {
	r   *Repository
	o   CheckOptions
	rep *CheckReport
}

// problem records something wrong with the repository; the check goes on.
func (c *checker) problem(err error) { c.rep.Problems = append(c.rep.Problems, err) }

func (c *checker) progress(stage string, done, total int) {
	if c.o.Progress != nil {
		c.o.Progress(stage, done, total)
	}
}

// slots checks that every key slot is within its size limit and parses
// (opening one needs its secret).
func (c *checker) slots(ctx context.Context) error {
	return c.r.remote.List(ctx, format.KeysDir, func(e remote.Entry) error {
		c.rep.Slots++
		b, err := readObject(ctx, c.r.remote, e.Name, e.Size, format.MaxSlotObject)
		switch {
		case errors.Is(err, ErrIntegrity):
			c.problem(err)
		case err != nil:
			c.problem(fmt.Errorf("%s: %w", e.Name, err))
		default:
			if _, err := crypt.ParseKeySlot(b); err != nil {
				c.problem(integrityError(e.Name, "%v", err))
			}
		}
		return nil
	})
}

// snapshots opens every snapshot and forget record and checks the chain
// they form. It returns the snapshots that opened, by sequence number, and
// the index objects a reader loads (readerIndexes, and those of forks no
// writer recorded yet), in the order it loads them, each with the snapshot
// that names it.
func (c *checker) snapshots(ctx context.Context) ([]*Snapshot, []indexWant, error) {
	var entries []remote.Entry
	if err := c.r.remote.List(ctx, format.SnapshotsDir, func(e remote.Entry) error { entries = append(entries, e); return nil }); err != nil {
		return nil, nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	var snaps []*Snapshot
	forgot := map[crypt.ID]uint64{}
	names := map[crypt.ID]string{}
	for i, e := range entries {
		c.progress("snapshots", i, len(entries))
		if format.IsForgetName(e.Name) {
			if err := c.r.readForgotten(ctx, e, forgot); err != nil {
				c.problem(err)
			}
			c.rep.ForgetRecords++
			continue
		}
		s, err := c.r.loadSnapshot(ctx, e.Name, e.Size)
		if err != nil {
			c.problem(err)
			continue
		}
		if other, dup := names[s.ID]; dup {
			c.problem(integrityError(e.Name, "snapshot %s is listed twice, also as %s: a snapshot was copied or renamed", s.ID.Short(), other))
			continue
		}
		names[s.ID] = e.Name
		snaps = append(snaps, s)
	}
	sortSnapshots(snaps)
	var newest []indexWant
	named := map[crypt.ID]bool{}
	for _, x := range allIndexes(snaps) {
		newest = append(newest, indexWant{x, format.SnapshotSeqName(snaps[len(snaps)-1].Seq, snaps[len(snaps)-1].ID)})
		named[x] = true
	}
	snaps, folded := c.history(ctx, snaps, forgot, names)
	c.rep.Snapshots = len(snaps)
	for _, err := range verifyChain(snaps, forgot, folded) {
		c.problem(err)
	}
	c.rep.Forks = forksOf(snaps, forgot, folded)
	// A fork no writer has recorded yet: its blobs are in its own indexes.
	// They go first: where they and the newest snapshot's list one blob,
	// the newest's entry is the one read, as a reader of the main line
	// reads it (§7: a later object's entry wins).
	var want []indexWant
	for _, f := range unrecordedForks(snaps, forgot, folded) {
		for _, x := range slices.Concat(f.Cold, f.Indexes) {
			if !named[x] {
				want = append(want, indexWant{x, format.SnapshotSeqName(f.Seq, f.ID)})
				named[x] = true
			}
		}
	}
	return snaps, append(want, newest...), nil
}

// indexWant is an index object check loads, and the snapshot that names
// it.
type indexWant struct {
	id   crypt.ID
	snap string
}

// history adds to snaps (sorted, the head last) the snapshots of the
// newest snapshot's history segments (docs/SPEC.md §8.3), and reports the
// segments the newest snapshot does not name as unreferenced (harmless),
// and the listed snapshots a segment holds too (a fold's leftovers)
// likewise. It returns the joined list and 0, or, when a segment fails
// (a problem), snaps and the number its segments cover.
func (c *checker) history(ctx context.Context, snaps []*Snapshot, forgot map[crypt.ID]uint64, names map[crypt.ID]string) ([]*Snapshot, uint64) {
	if len(snaps) == 0 {
		return snaps, 0
	}
	head := snaps[len(snaps)-1]
	named := map[string]bool{}
	for _, ref := range head.History {
		named[format.HistoryName(ref.ID)] = true
	}
	if err := c.r.remote.List(ctx, format.HistoryDir, func(e remote.Entry) error {
		if !named[e.Name] {
			c.rep.Unreferenced = append(c.rep.Unreferenced, e.Name)
		}
		return nil
	}); err != nil {
		c.problem(fmt.Errorf("failed to list %s: %w", format.HistoryDir, err))
	}
	if len(head.History) == 0 {
		return snaps, 0
	}
	folded, err := c.r.readHistory(ctx, head.History)
	if err != nil {
		c.problem(err)
		return snaps, head.Folded()
	}
	joined, leftovers := joinHistory(snaps, folded, forgot, head.Folded(), func(s *Snapshot) string { return names[s.ID] })
	c.rep.Unreferenced = append(c.rep.Unreferenced, leftovers...)
	return joined, 0
}

// indexes loads the index objects a reader loads (want, in the order a
// reader loads them: a later object's entry of a blob wins) into one index
// of the whole repository: the one every snapshot's trees are read
// through, as a reader does. Any other index object (one an older snapshot
// names, replaced by a merge or a rewrite) is unreferenced: garbage that
// prune removes.
func (c *checker) indexes(ctx context.Context, want []indexWant) (*Index, error) {
	have := map[string]bool{}
	if err := c.r.remote.List(ctx, format.IndexDir, func(e remote.Entry) error { have[e.Name] = true; return nil }); err != nil {
		return nil, err
	}
	all := newIndex()
	done := 0
	for _, w := range want {
		c.progress("indexes", done, len(want))
		done++
		name := format.IndexName(w.id)
		if !have[name] {
			c.problem(integrityError(name, "the index is missing (named by %s)", w.snap))
			continue
		}
		delete(have, name)
		if err := c.r.loadIndex(ctx, w.id, all, nil); err != nil {
			c.problem(err)
			continue
		}
		c.rep.Indexes++
	}
	for name := range have {
		c.rep.Unreferenced = append(c.rep.Unreferenced, name)
	}
	return all, nil
}

// packs checks that every pack the index names exists and that its header
// agrees with the index (with ReadData, every blob in it too). A pack no
// index names is unreferenced.
func (c *checker) packs(ctx context.Context, all *Index) error {
	sizes, err := c.listPacks(ctx)
	if err != nil {
		return err
	}
	byPack := map[crypt.ID][]format.IndexEntry{}
	all.each(func(id crypt.ID, l Location) {
		byPack[l.Pack] = append(byPack[l.Pack], format.IndexEntry{ID: id, Location: l})
	})
	var read map[crypt.ID]bool // nil: every pack (with ReadData)
	if c.o.ReadData && c.o.DataSubset != nil {
		if read, err = c.o.DataSubset.choose(sizes); err != nil {
			return err
		}
	}
	done := 0
	for pack, want := range byPack {
		c.progress("packs", done, len(byPack))
		done++
		size, ok := sizes[pack]
		if !ok {
			c.problem(integrityError(format.PackName(pack), "the pack is missing (the index lists %d blobs in it)", len(want)))
			continue
		}
		delete(sizes, pack)
		c.rep.Packs++
		whole := c.o.ReadData && (read == nil || read[pack])
		if whole {
			c.rep.DataPacks = append(c.rep.DataPacks, pack)
		}
		c.rep.Blobs += c.pack(ctx, pack, size, want, whole)
	}
	c.progress("packs", done, len(byPack))
	for id := range sizes {
		c.rep.UnreferencedPacks = append(c.rep.UnreferencedPacks, format.PackName(id))
	}
	return nil
}

// listPacks returns the size of every pack; anything under data/ that is
// not named as a pack is a problem.
func (c *checker) listPacks(ctx context.Context) (map[crypt.ID]int64, error) {
	sizes := map[crypt.ID]int64{}
	err := c.r.remote.List(ctx, format.DataDir, func(e remote.Entry) error {
		id, err := crypt.ParseID(path.Base(e.Name))
		if err != nil || format.PackName(id) != e.Name {
			c.problem(integrityError(e.Name, "not a pack name"))
			return nil
		}
		sizes[id] = e.Size
		return nil
	})
	return sizes, err
}

// pack verifies one pack's header against the index entries for it, and
// whole every blob in it. It returns the number of blobs checked.
func (c *checker) pack(ctx context.Context, pack crypt.ID, size int64, want []format.IndexEntry, whole bool) int {
	name := format.PackName(pack)
	entries, data, err := c.r.readPackHeader(ctx, pack, size, whole)
	if err != nil {
		c.problem(err)
		return 0
	}
	inHeader := map[crypt.ID]Location{}
	for _, e := range entries {
		inHeader[e.ID] = e.Location
	}
	for _, w := range want {
		if l, ok := inHeader[w.ID]; !ok || l != w.Location {
			c.problem(integrityError(name, "the pack header does not agree with the index about blob %s", w.ID.Short()))
		}
	}
	if !whole {
		return len(want)
	}
	for _, e := range entries {
		if _, err := c.r.openBlob(e.Type, e.ID, e.Location, data[e.Offset:e.Offset+e.Length]); err != nil {
			c.problem(err)
		}
	}
	return len(entries)
}

// trees walks the trees reachable from every snapshot, reading them
// through all, the index of the whole repository: every tree must open and
// every data blob a file needs must be indexed.
func (c *checker) trees(ctx context.Context, snaps []*Snapshot, all *Index) {
	r := c.r
	saved := r.index.Swap(all)
	defer r.index.Store(saved)
	seen := map[crypt.ID]bool{}
	for i, s := range snaps {
		c.progress("trees", i, len(snaps))
		c.tree(ctx, s.Tree, "/", format.SnapshotSeqName(s.Seq, s.ID), all, seen)
	}
}

// tree checks the directory id, at dir of snapshot snap, and the ones
// below it that are not in seen yet.
func (c *checker) tree(ctx context.Context, id crypt.ID, dir, snap string, all *Index, seen map[crypt.ID]bool) {
	if seen[id] {
		return
	}
	seen[id] = true
	t, err := c.r.LoadTree(ctx, id)
	if err != nil {
		c.problem(fmt.Errorf("directory %s of %s: %w", dir, snap, err))
		return
	}
	c.rep.Trees++
	for _, n := range t.Nodes {
		p := path.Join(dir, string(n.Name))
		for _, e := range n.Content {
			if e.Hole {
				continue
			}
			if l, ok := all.Lookup(e.ID); !ok || !format.IsDataBlob(l.Type) {
				c.problem(integrityError(fmt.Sprintf("data blob %s", e.ID), "file %s of %s needs it, and no index lists it", p, snap))
			}
		}
		if n.Type == NodeDir {
			c.tree(ctx, n.Subtree, p, snap, all, seen)
		}
	}
}

// readPackHeader reads and verifies a pack's header. With whole it reads
// the whole pack and returns its bytes too.
func (r *Repository) readPackHeader(ctx context.Context, pack crypt.ID, size int64, whole bool) ([]format.IndexEntry, []byte, error) {
	name := format.PackName(pack)
	if size < 4+crypt.Overhead {
		return nil, nil, integrityError(name, "the pack is truncated to %d bytes", size)
	}
	if max := format.MaxPackObject(r.cfg.PackSize); whole && size > max {
		return nil, nil, integrityError(name, "the pack is %d bytes, over the %d-byte limit of this repository's packs", size, max)
	}
	var data []byte
	var err error
	if whole {
		data, err = r.remote.Get(ctx, name, 0, size)
	} else {
		data, err = r.remote.Get(ctx, name, size-4, 4)
	}
	if err != nil {
		if errors.Is(err, remote.ErrShortRead) || errors.Is(err, remote.ErrNotFound) {
			return nil, nil, integrityError(name, "%v", err)
		}
		return nil, nil, err
	}
	hlen := int64(binary.BigEndian.Uint32(data[len(data)-4:]))
	if hlen > format.MaxPackHeaderObject {
		return nil, nil, integrityError(name, "the pack header is %d bytes, over the %d-byte limit", hlen, format.MaxPackHeaderObject)
	}
	if hlen < crypt.Overhead || hlen > size-4 {
		return nil, nil, integrityError(name, "the pack header length %d does not fit a %d-byte pack (truncated?)", hlen, size)
	}
	var sealed []byte
	if whole {
		sealed = data[size-4-hlen : size-4]
	} else if sealed, err = r.remote.Get(ctx, name, size-4-hlen, hlen); err != nil {
		return nil, nil, integrityError(name, "%v", err)
	}
	pt, err := r.keys.Open(crypt.TypePackHeader, pack, sealed)
	if err != nil {
		return nil, nil, integrityError(name, "the pack header %v (changed, swapped, truncated or from another repository)", err)
	}
	entries, err := format.DecodePackHeader(pt, pack, size-4-hlen)
	if err != nil {
		return nil, nil, integrityError(name, "%v", err)
	}
	return entries, data, nil
}
