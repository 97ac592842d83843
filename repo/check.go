package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// CheckOptions say how thoroughly Check verifies.
type CheckOptions struct {
	// ReadData downloads every pack whole and verifies every blob in it.
	ReadData bool
	// Progress, if set, is told what is being checked.
	Progress func(stage string, done, total int)
}

// CheckReport is what Check found.
type CheckReport struct {
	Problems                        []error // each names the object concerned
	Slots, Snapshots, Indexes       int
	ForgetRecords                   int
	Packs, Blobs, Trees             int
	UnreferencedPacks, Unreferenced []string // left by interrupted commits; harmless
}

// OK reports whether no problem was found.
func (c *CheckReport) OK() bool { return len(c.Problems) == 0 }

// Check verifies every object of the repository: key slots, snapshots,
// indexes, pack headers against the index, every tree reachable from a
// snapshot and, with ReadData, every blob. It keeps going after a problem
// and reports each; the error it returns is only for a failure to check at
// all (the remote unreachable).
func (r *Repository) Check(ctx context.Context, o CheckOptions) (*CheckReport, error) {
	rep := &CheckReport{}
	problem := func(err error) { rep.Problems = append(rep.Problems, err) }
	progress := func(stage string, done, total int) {
		if o.Progress != nil {
			o.Progress(stage, done, total)
		}
	}

	// Key slots.
	err := r.remote.List(ctx, format.KeysDir, func(e remote.Entry) error {
		rep.Slots++
		b, err := readObject(ctx, r.remote, e.Name, e.Size, format.MaxSlotObject)
		if errors.Is(err, ErrIntegrity) {
			problem(err)
			return nil
		}
		if err != nil {
			problem(fmt.Errorf("%s: %w", e.Name, err))
			return nil
		}
		if _, err := crypt.ParseKeySlot(b); err != nil {
			problem(integrityError(e.Name, "%v", err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Snapshots, and the indexes they name.
	var snapEntries []remote.Entry
	if err := r.remote.List(ctx, format.SnapshotsDir, func(e remote.Entry) error { snapEntries = append(snapEntries, e); return nil }); err != nil {
		return nil, err
	}
	sort.Slice(snapEntries, func(i, j int) bool { return snapEntries[i].Name < snapEntries[j].Name })
	var snaps []*Snapshot
	forgot := map[uint64]crypt.ID{}
	wantIndex := map[crypt.ID]string{}
	for i, e := range snapEntries {
		progress("snapshots", i, len(snapEntries))
		name := e.Name
		if format.IsForgetName(name) {
			if err := r.readForgotten(ctx, e, forgot); err != nil {
				problem(err)
			}
			rep.ForgetRecords++
			continue
		}
		s, err := r.loadSnapshot(ctx, name, e.Size)
		if err != nil {
			problem(err)
			continue
		}
		snaps = append(snaps, s)
		for _, x := range s.Indexes {
			wantIndex[x] = name
		}
	}
	rep.Snapshots = len(snaps)
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].Seq < snaps[j].Seq })
	for _, err := range verifyChain(snaps, forgot) {
		problem(err)
	}

	haveIndex := map[string]bool{}
	if err := r.remote.List(ctx, format.IndexDir, func(e remote.Entry) error { haveIndex[e.Name] = true; return nil }); err != nil {
		return nil, err
	}
	all := newIndex()
	done := 0
	for x, snap := range wantIndex {
		progress("indexes", done, len(wantIndex))
		done++
		name := format.IndexName(x)
		if !haveIndex[name] {
			problem(integrityError(name, "the index is missing (named by %s)", snap))
			continue
		}
		delete(haveIndex, name)
		if err := r.loadIndex(ctx, x, all); err != nil {
			problem(err)
			continue
		}
		rep.Indexes++
	}
	for name := range haveIndex {
		rep.Unreferenced = append(rep.Unreferenced, name)
	}

	// Packs: every pack the index names must exist and its header must
	// agree with the index.
	packSizes := map[crypt.ID]int64{}
	err = r.remote.List(ctx, format.DataDir, func(e remote.Entry) error {
		id, err := crypt.ParseID(path.Base(e.Name))
		if err != nil || format.PackName(id) != e.Name {
			problem(integrityError(e.Name, "not a pack name"))
			return nil
		}
		packSizes[id] = e.Size
		return nil
	})
	if err != nil {
		return nil, err
	}
	byPack := map[crypt.ID][]format.IndexEntry{}
	all.each(func(id crypt.ID, l Location) {
		byPack[l.Pack] = append(byPack[l.Pack], format.IndexEntry{ID: id, Location: l})
	})
	done = 0
	for pack, want := range byPack {
		progress("packs", done, len(byPack))
		done++
		size, ok := packSizes[pack]
		if !ok {
			problem(integrityError(format.PackName(pack), "the pack is missing (the index lists %d blobs in it)", len(want)))
			continue
		}
		delete(packSizes, pack)
		rep.Packs++
		rep.Blobs += r.checkPack(ctx, pack, size, want, o.ReadData, problem)
	}
	for id := range packSizes {
		rep.UnreferencedPacks = append(rep.UnreferencedPacks, format.PackName(id))
	}

	// Trees reachable from every snapshot, with the full index.
	r.mu.Lock()
	saved := r.index
	r.index = all
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.index = saved
		r.mu.Unlock()
	}()
	seen := map[crypt.ID]bool{}
	for i, s := range snaps {
		progress("trees", i, len(snaps))
		r.checkTree(ctx, s.Tree, "/", format.SnapshotName(s.ID), all, seen, rep, problem)
	}
	sort.Strings(rep.Unreferenced)
	sort.Strings(rep.UnreferencedPacks)
	return rep, nil
}

// checkPack verifies one pack's header against the index entries for it,
// and with readData every blob in it. It returns the number of blobs checked.
func (r *Repository) checkPack(ctx context.Context, pack crypt.ID, size int64, want []format.IndexEntry, readData bool, problem func(error)) int {
	name := format.PackName(pack)
	entries, data, err := r.readPackHeader(ctx, pack, size, readData)
	if err != nil {
		problem(err)
		return 0
	}
	inHeader := map[crypt.ID]Location{}
	for _, e := range entries {
		inHeader[e.ID] = e.Location
	}
	for _, w := range want {
		if l, ok := inHeader[w.ID]; !ok || l != w.Location {
			problem(integrityError(name, "the pack header does not agree with the index about blob %s", w.ID.Short()))
		}
	}
	if !readData {
		return len(want)
	}
	for _, e := range entries {
		if _, err := r.openBlob(e.Type, e.ID, e.Location, data[e.Offset:e.Offset+e.Length]); err != nil {
			problem(err)
		}
	}
	return len(entries)
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

func (r *Repository) checkTree(ctx context.Context, id crypt.ID, dir, snap string, all *Index, seen map[crypt.ID]bool, rep *CheckReport, problem func(error)) {
	if seen[id] {
		return
	}
	seen[id] = true
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		problem(fmt.Errorf("directory %s of %s: %w", dir, snap, err))
		return
	}
	rep.Trees++
	for _, n := range t.Nodes {
		p := path.Join(dir, string(n.Name))
		for _, e := range n.Content {
			if e.Hole {
				continue
			}
			if l, ok := all.Lookup(e.ID); !ok || l.Type != crypt.TypeDataBlob {
				problem(integrityError(fmt.Sprintf("data blob %s", e.ID), "file %s of %s needs it, and no index lists it", p, snap))
			}
		}
		if n.Type == NodeDir {
			r.checkTree(ctx, n.Subtree, p, snap, all, seen, rep, problem)
		}
	}
}
