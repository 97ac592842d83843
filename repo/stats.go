package repo

import (
	"context"
	"fmt"
	"path"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// SnapshotStats is what one snapshot holds, and what its data takes on the
// remote.
type SnapshotStats struct {
	Snapshot *Snapshot
	// Files is the number of regular files; LogicalBytes the sum of their
	// sizes (holes included: they are not stored).
	Files, LogicalBytes uint64
	// Chunks is the number of distinct data blobs the files name (a
	// segmented blob is one); RawBytes their plaintext and StoredBytes
	// their sealed lengths in the index.
	Chunks                int
	RawBytes, StoredBytes uint64
}

// StatsReport is what SizeStats found: each snapshot's figures and their total.
type StatsReport struct {
	Snapshots []SnapshotStats
	// The snapshots together, each data blob counted once.
	LogicalBytes          uint64
	Chunks                int
	RawBytes, StoredBytes uint64
	// The tree blobs of the snapshots (each once): their number and sealed
	// lengths in the index.
	TreeBlobs int
	TreeBytes uint64
	// The whole remote: index objects, objects under snapshots/ (forget
	// records included), and every object.
	IndexObjects, SnapshotObjects int
	IndexBytes, SnapshotBytes     uint64
	RemoteBytes                   uint64
}

// treeStats is one tree's own share of the figures, and its folders.
type treeStats struct {
	files, bytes uint64
	chunks       []crypt.ID
	subtrees     []crypt.ID
}

// SizeStats reports the logical and stored sizes of snaps (every retained
// snapshot when nil), reading each tree once (walkTrees) through the
// loaded index: the blobs of a fork no writer has recorded are listed only
// once LoadIndexesOf loaded them. It changes nothing and needs no lease.
// progress, if set, is told what is being done, as Check tells it.
func (r *Repository) SizeStats(ctx context.Context, snaps []*Snapshot, progress func(stage string, done, total int)) (*StatsReport, error) {
	if snaps == nil {
		all, err := r.Snapshots(ctx)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		for _, s := range all {
			if _, gone := r.forgotten[s.ID]; !gone {
				snaps = append(snaps, s)
			}
		}
		r.mu.Unlock()
	}
	// Older snapshots' trees may be listed in the cold index objects only.
	if err := r.loadCold(ctx); err != nil {
		return nil, err
	}
	idx := r.Index()
	rep := &StatsReport{}
	trees := map[crypt.ID]*treeStats{}
	chunks := map[crypt.ID]Location{}
	err := r.walkTrees(ctx, progress, snaps, idx, func(ref treeRef, t *Tree) error {
		ts := &treeStats{}
		l, _ := idx.Lookup(ref.id) // walkTrees found it
		rep.TreeBlobs++
		rep.TreeBytes += uint64(l.Length)
		for _, n := range t.Nodes {
			switch n.Type {
			case NodeFile:
				ts.files++
				ts.bytes += n.Size
			case NodeDir:
				ts.subtrees = append(ts.subtrees, n.Subtree)
			}
			for _, e := range n.Content {
				if e.Hole {
					continue
				}
				if _, ok := chunks[e.ID]; !ok {
					l, err := dataLocation(idx, e.ID, ref, n)
					if err != nil {
						return err
					}
					chunks[e.ID] = l
				}
				ts.chunks = append(ts.chunks, e.ID)
			}
		}
		trees[ref.id] = ts
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, s := range snaps {
		ss := SnapshotStats{Snapshot: s}
		if err := sumTree(trees, chunks, s.Tree, &ss, map[crypt.ID]bool{}); err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", s.Seq, err)
		}
		rep.Snapshots = append(rep.Snapshots, ss)
		rep.LogicalBytes += ss.LogicalBytes
	}
	rep.Chunks = len(chunks)
	for _, l := range chunks {
		rep.RawBytes += uint64(l.RawLength)
		rep.StoredBytes += uint64(l.Length)
	}
	return rep, r.remoteStats(ctx, rep)
}

// sumTree adds the tree id and everything below it to ss: files and their
// sizes as often as a folder occurs, data blobs once (seen: the trees
// already counted in ss).
func sumTree(trees map[crypt.ID]*treeStats, chunks map[crypt.ID]Location, id crypt.ID, ss *SnapshotStats, seen map[crypt.ID]bool) error {
	// Folders below a tree are counted by their totals, computed once per
	// tree: a folder repeated many times costs nothing more.
	totals := map[crypt.ID][2]uint64{}
	var total func(id crypt.ID, depth int) ([2]uint64, error)
	total = func(id crypt.ID, depth int) ([2]uint64, error) {
		if t, ok := totals[id]; ok {
			return t, nil
		}
		ts := trees[id]
		if ts == nil || depth > maxTreeDepth {
			return [2]uint64{}, integrityError(fmt.Sprintf("tree %s", id), "it was not loaded, or folders nest over %d deep (run sealfs check)", maxTreeDepth)
		}
		t := [2]uint64{ts.files, ts.bytes}
		for _, sub := range ts.subtrees {
			st, err := total(sub, depth+1)
			if err != nil {
				return t, err
			}
			t[0] += st[0]
			t[1] += st[1]
		}
		totals[id] = t
		return t, nil
	}
	t, err := total(id, 0)
	if err != nil {
		return err
	}
	ss.Files, ss.LogicalBytes = t[0], t[1]
	// The data blobs: each distinct tree once.
	queue := []crypt.ID{id}
	seen[id] = true
	blobs := map[crypt.ID]bool{}
	for len(queue) > 0 {
		ts := trees[queue[0]]
		queue = queue[1:]
		for _, c := range ts.chunks {
			if !blobs[c] {
				blobs[c] = true
				ss.RawBytes += uint64(chunks[c].RawLength)
				ss.StoredBytes += uint64(chunks[c].Length)
			}
		}
		for _, sub := range ts.subtrees {
			if !seen[sub] {
				seen[sub] = true
				queue = append(queue, sub)
			}
		}
	}
	ss.Chunks = len(blobs)
	return nil
}

// maxTreeDepth bounds how deep folders may nest for SizeStats: a tree names
// its folders by id, and a damaged repository must not recurse forever.
const maxTreeDepth = 4096

// remoteStats lists the remote for the sizes of its index and snapshot
// objects and of everything.
func (r *Repository) remoteStats(ctx context.Context, rep *StatsReport) error {
	indexes, err := listSizes(ctx, r.remote, format.IndexDir, format.IndexName)
	if err != nil {
		return err
	}
	for _, n := range indexes {
		rep.IndexObjects++
		rep.IndexBytes += uint64(n)
	}
	return r.remote.List(ctx, "", func(e remote.Entry) error {
		rep.RemoteBytes += uint64(e.Size)
		if path.Dir(e.Name) == format.SnapshotsDir || path.Dir(e.Name) == format.ForgetDir {
			rep.SnapshotObjects++
			rep.SnapshotBytes += uint64(e.Size)
		}
		return nil
	})
}
