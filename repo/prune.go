package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// DefaultMaxUnusedPct is the share of a pack's bytes, in percent, that may
// be unused before Prune repacks it: repacking a pack uploads its live
// bytes again, so at 25 % it uploads at most three bytes for each byte it
// frees.
const DefaultMaxUnusedPct = 25

// smallPackDivisor: a pack under 1/smallPackDivisor of the pack size is
// small; Prune repacks the small packs together when there are several.
const smallPackDivisor = 4

// PruneOptions say what Prune removes and how it reports.
type PruneOptions struct {
	// MaxUnusedPct repacks a pack when more than this percentage of its
	// bytes are unused: not a live blob nor the header entry of one
	// (0..100; negative means DefaultMaxUnusedPct). 0 repacks every pack
	// that holds a blob no snapshot needs; 100 never repacks for that
	// reason.
	MaxUnusedPct int
	// DryRun plans and reports, and changes nothing (it needs no lease).
	DryRun bool
	// Progress, if set, is told what is being done, as Check tells it.
	Progress func(stage string, done, total int)
}

// PruneReport is what Prune did, or with DryRun would do.
type PruneReport struct {
	DryRun bool
	// Snapshots retained, and forgotten ones still present that were
	// deleted first (a Forget cut short).
	Snapshots, Forgotten int
	// LiveBlobs is the number of blobs the retained snapshots need, and
	// LiveBytes their sealed size.
	LiveBlobs int
	LiveBytes int64
	// Packs listed before; those kept as they are; those deleted whole
	// (no live blob, or named by no index: left by an interrupted commit
	// or prune); those repacked (their live blobs copied into new packs,
	// then deleted) and the new packs written.
	Packs, KeptPacks                int
	DeletedPacks, UnreferencedPacks int
	RepackedPacks, NewPacks         int
	// Bytes of the packs deleted whole, of the packs repacked, and of the
	// live blobs copied out of them.
	DeletedBytes, RepackedBytes, CopiedBytes int64
	// Index objects deleted (the head's, when they were rewritten, and
	// those no snapshot's head names) and written.
	DeletedIndexes, NewIndexes int
	// Packs and index objects no snapshot names that were kept because
	// the lease was taken over from a writer that stopped without
	// releasing it: its last upload may still land and name them. The
	// next prune deletes them.
	KeptUnreferencedPacks, KeptUnreferencedIndexes int
	// Snapshot is the snapshot Prune stored to name the rewritten
	// indexes; nil when the indexes did not change.
	Snapshot *Snapshot
	// RemoteBefore and RemoteAfter are the bytes of every object on the
	// remote (with DryRun, RemoteAfter is the estimate).
	RemoteBefore, RemoteAfter int64
}

// Freed returns the bytes the remote shrank by.
func (p *PruneReport) Freed() int64 { return p.RemoteBefore - p.RemoteAfter }

// prunePlan is what Prune decided, before it acts.
type prunePlan struct {
	rep      PruneReport
	head     *Snapshot
	live     map[crypt.ID]bool
	keep     []format.IndexEntry              // live entries in packs kept as they are
	repack   map[crypt.ID][]format.IndexEntry // pack -> its live entries
	packSize map[crypt.ID]int64               // every pack listed
	dropPack map[crypt.ID]bool                // packs deleted (repacked ones included)
	indexes  map[crypt.ID]int64               // every index object listed
	history  map[crypt.ID]int64               // every history segment listed (SPEC §8.3)
	rewrite  bool                             // the head's indexes change
	tookOver bool                             // keep what no snapshot names (Repository.tookOver)
	named    map[crypt.ID]bool                // index objects some present snapshot names
	dead     []crypt.ID                       // blobs the head's index lists and no snapshot needs
}

// Prune removes what no retained snapshot needs (docs/SPEC.md §8.2).
// It needs the writer lease, unless DryRun. In order:
//
//  1. A forget cut short is finished (a forgotten snapshot still present is
//     deleted), a fork no writer has recorded is recorded (a commit of the
//     newest tree), and a snapshot of ours whose upload a crash cut off is
//     stored (as Commit would first).
//  2. The live set: every tree and data blob reachable from every retained
//     snapshot; every one must be in the newest snapshot's index.
//  3. The plan: a pack with no live blob, or that no index names, is
//     deleted; a pack whose unused share is over MaxUnusedPct, or small
//     among several small ones, is repacked; the rest are kept.
//  4. Live blobs of packs to repack are read, authenticated, and copied
//     byte for byte into new packs (a blob's seal binds its type, id and
//     repository, not its pack); index objects listing exactly the live
//     blobs are written; a snapshot that follows the newest, with its tree
//     and root, names only them.
//  5. Only once that snapshot is stored: the index objects it does not
//     name and the packs its indexes do not name are deleted. When this
//     client's lease replaced another writer's (one that stopped without
//     releasing it), the packs and index objects no snapshot names are
//     kept: that writer's last snapshot upload may still land and name
//     them. The next prune deletes them.
//
// Killed at any point, it leaves a repository that opens and checks clean
// (objects no snapshot names at worst), and running it again finishes.
func (r *Repository) Prune(ctx context.Context, o PruneOptions) (*PruneReport, error) {
	if o.MaxUnusedPct < 0 {
		o.MaxUnusedPct = DefaultMaxUnusedPct
	}
	if o.MaxUnusedPct > 100 {
		return nil, fmt.Errorf("the unused share must be 0 to 100 %%, not %d", o.MaxUnusedPct)
	}
	if !o.DryRun {
		if err := r.checkLease(); err != nil {
			return nil, err
		}
	}
	before, err := remoteSize(ctx, r.remote)
	if err != nil {
		return nil, err
	}
	forgot := r.forgottenPresent()
	if !o.DryRun && len(forgot) > 0 {
		if err := r.Forget(ctx, forgot); err != nil {
			return nil, err
		}
	}
	if err := r.recordForks(ctx, o.DryRun); err != nil {
		return nil, err
	}
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	if !o.DryRun {
		if err := r.settleWriter(ctx); err != nil {
			return nil, err
		}
	}
	// Every snapshot's tree: an open leaves the older ones as stubs.
	if _, err := r.Snapshots(ctx); err != nil {
		return nil, err
	}
	// Every blob of every snapshot: the cold index objects too.
	if err := r.loadCold(ctx); err != nil {
		return nil, err
	}
	p, err := r.planPrune(ctx, o)
	if err != nil {
		return nil, err
	}
	p.rep.RemoteBefore, p.rep.Forgotten = before, len(forgot)
	if o.DryRun {
		p.rep.RemoteAfter = before - p.rep.DeletedBytes - p.rep.RepackedBytes + p.rep.CopiedBytes
		for x, size := range p.indexes {
			if p.rewrite || !slices.Contains(p.head.Indexes, x) && !slices.Contains(p.head.Cold, x) {
				p.rep.DeletedIndexes++
				p.rep.RemoteAfter -= size
			}
		}
		return &p.rep, nil
	}
	if p.rewrite {
		if err := r.rewriteIndexes(ctx, o, p); err != nil {
			return nil, err
		}
	}
	if err := r.pruneDelete(ctx, o, p); err != nil {
		return nil, err
	}
	r.dropCached(p.dead)
	if p.rep.RemoteAfter, err = remoteSize(ctx, r.remote); err != nil {
		return nil, err
	}
	return &p.rep, nil
}

// recordForks makes the blobs of fork snapshots that no writer has
// recorded yet (docs/SPEC.md §8) count: it loads their index objects, and
// (unless a dry run) commits the newest snapshot's tree again, which
// records them and names their index objects, so that what prune keeps
// and rewrites covers them.
func (r *Repository) recordForks(ctx context.Context, dryRun bool) error {
	if err := r.loadForkIndexes(ctx); err != nil {
		return err
	}
	if dryRun || len(r.UnrecordedForks()) == 0 {
		return nil
	}
	head := r.Latest()
	if _, err := r.Commit(ctx, head.Tree, CommitInfo{Files: head.Files, Bytes: head.Bytes, Root: head.Root}); err != nil {
		return fmt.Errorf("failed to record a fork before pruning (nothing was pruned): %w", err)
	}
	return nil
}

// forgottenPresent returns the ids of snapshots recorded as forgotten
// that are still present (a Forget cut short).
func (r *Repository) forgottenPresent() []crypt.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []crypt.ID
	for _, s := range r.snapshots {
		if _, ok := r.forgotten[s.ID]; ok {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// settleWriter stores a snapshot of ours that a crash or a failed upload
// left unstored (it follows the newest snapshot, or Refresh would have
// dropped it), and refuses to prune while this client holds blobs or
// indexes that no snapshot names yet: they belong to a commit still to
// come. commitMu is held.
func (r *Repository) settleWriter(ctx context.Context) error {
	r.mu.Lock()
	retry := r.unstored
	r.mu.Unlock()
	if retry != nil {
		if err := r.storeSnapshot(ctx, retry); err != nil {
			return fmt.Errorf("failed to store snapshot %d, which a commit of this client left unstored (nothing was pruned): %w", retry.snap.Seq, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.packer != nil || len(r.outgoing) > 0 || len(r.pending) > 0 || len(r.unsentIndexes) > 0 || len(r.unnamed) > 0 || len(r.merges) > 0 {
		return errors.New("this client has written blobs that no snapshot names yet: commit before pruning")
	}
	return nil
}

// remoteSize returns the bytes of every object on the remote.
func remoteSize(ctx context.Context, rem remote.Remote) (int64, error) {
	var n int64
	err := rem.List(ctx, "", func(e remote.Entry) error { n += e.Size; return nil })
	return n, err
}

func (o PruneOptions) progress(stage string, done, total int) {
	if o.Progress != nil {
		o.Progress(stage, done, total)
	}
}

// planPrune finds the live blobs and decides what becomes of each pack and
// index object. It changes nothing.
func (r *Repository) planPrune(ctx context.Context, o PruneOptions) (*prunePlan, error) {
	r.mu.Lock()
	var retained []*Snapshot
	p := &prunePlan{live: map[crypt.ID]bool{}, repack: map[crypt.ID][]format.IndexEntry{}, dropPack: map[crypt.ID]bool{},
		tookOver: r.tookOver && !o.DryRun, named: map[crypt.ID]bool{}}
	for _, s := range r.snapshots {
		for _, x := range slices.Concat(s.Indexes, s.Cold) {
			p.named[x] = true
		}
		if _, ok := r.forgotten[s.ID]; ok {
			continue // (a dry run: a real one deleted it)
		}
		retained = append(retained, s)
	}
	if r.unstored != nil && o.DryRun {
		// A real prune stored it first (settleWriter). Its blobs are live.
		retained = append(retained, r.unstored.snap)
	}
	r.mu.Unlock()
	p.rep.DryRun = o.DryRun
	p.rep.Snapshots = len(retained)
	if len(retained) == 0 {
		return nil, fmt.Errorf("%w: the repository has no snapshots; there is nothing to prune", ErrNoSnapshot)
	}
	p.head = retained[len(retained)-1]
	idx := r.Index()
	if err := r.liveSet(ctx, o, retained, idx, p.live); err != nil {
		return nil, err
	}
	var err error
	if p.packSize, err = listSizes(ctx, r.remote, format.DataDir, format.PackName); err != nil {
		return nil, err
	}
	if p.indexes, err = listSizes(ctx, r.remote, format.IndexDir, format.IndexName); err != nil {
		return nil, err
	}
	if p.history, err = listSizes(ctx, r.remote, format.HistoryDir, format.HistoryName); err != nil {
		return nil, err
	}
	p.rep.Packs = len(p.packSize)

	livePack, indexed, err := p.groupByPack(idx)
	if err != nil {
		return nil, err
	}
	small := p.classify(livePack, indexed, o.MaxUnusedPct, int64(r.cfg.PackSize/smallPackDivisor))
	if err := p.finish(livePack, indexed, small); err != nil {
		return nil, err
	}
	return p, nil
}

// groupByPack sorts the head's index entries by pack: the live ones of each
// pack (livePack) and every pack the index names (indexed). A blob no
// snapshot needs goes to p.dead. A missing pack that holds live blobs is an
// integrity error.
func (p *prunePlan) groupByPack(idx *Index) (livePack map[crypt.ID][]format.IndexEntry, indexed map[crypt.ID]bool, err error) {
	livePack = map[crypt.ID][]format.IndexEntry{}
	indexed = map[crypt.ID]bool{}
	idx.each(func(id crypt.ID, l Location) {
		indexed[l.Pack] = true
		if !p.live[id] {
			p.dead = append(p.dead, id)
			return
		}
		livePack[l.Pack] = append(livePack[l.Pack], format.IndexEntry{ID: id, Location: l})
		p.rep.LiveBytes += int64(l.Length)
	})
	p.rep.LiveBlobs = len(p.live)
	for pack, entries := range livePack {
		if _, ok := p.packSize[pack]; !ok {
			return nil, nil, integrityError(format.PackName(pack), "the pack is missing, and %d blobs that snapshots need are in it (nothing was pruned; run sealfs check)", len(entries))
		}
	}
	return livePack, indexed, nil
}

// classify decides what becomes of each pack on the remote: dropped whole,
// repacked (more than maxUnusedPct of it unused), or kept. It returns the
// small packs (under smallPack bytes), which finish decides on.
func (p *prunePlan) classify(livePack map[crypt.ID][]format.IndexEntry, indexed map[crypt.ID]bool, maxUnusedPct int, smallPack int64) []crypt.ID {
	var small []crypt.ID
	for pack, size := range p.packSize {
		var live int64
		for _, e := range livePack[pack] {
			live += int64(e.Length)
		}
		// What a pack of its live blobs alone would be: their bytes and
		// the sealed header listing them, with its length.
		need := live + int64(5+format.HeaderEntrySize*len(livePack[pack])+crypt.Overhead+4)
		switch {
		case !indexed[pack] && p.tookOver:
			p.rep.KeptUnreferencedPacks++
		case !indexed[pack]:
			p.rep.UnreferencedPacks++
			p.drop(pack, size)
		case live == 0:
			p.drop(pack, size)
		case (size-need)*100 > size*int64(maxUnusedPct):
			p.repack[pack] = livePack[pack]
		case size < smallPack:
			small = append(small, pack)
		default:
			p.rep.KeptPacks++
			p.keep = append(p.keep, livePack[pack]...)
		}
	}
	return small
}

// finish repacks the small packs together when there are several (or
// packs are repacked anyway), checks that the plan keeps every live blob,
// and decides whether the head's index objects are rewritten.
func (p *prunePlan) finish(livePack map[crypt.ID][]format.IndexEntry, indexed map[crypt.ID]bool, small []crypt.ID) error {
	// Small packs are copied together (with the packs repacked anyway,
	// if any): what comes out is full packs and at most one small one,
	// which the next prune leaves alone.
	if len(small) > 1 || len(small) == 1 && len(p.repack) > 0 {
		for _, pack := range small {
			p.repack[pack] = livePack[pack]
		}
	} else {
		for _, pack := range small {
			p.rep.KeptPacks++
			p.keep = append(p.keep, livePack[pack]...)
		}
	}
	copied := len(p.keep)
	for pack, entries := range p.repack {
		copied += len(entries)
		p.rep.RepackedPacks++
		p.rep.RepackedBytes += p.packSize[pack]
		p.dropPack[pack] = true
		for _, e := range entries {
			p.rep.CopiedBytes += int64(e.Length)
		}
	}
	if copied != len(p.live) {
		return fmt.Errorf("internal error: %d blobs are live, but the plan keeps %d (nothing was pruned)", len(p.live), copied)
	}
	// The head's indexes change when they list a blob no snapshot needs
	// or a pack that goes.
	p.rewrite = len(p.dead) > 0 || len(p.repack) > 0
	for pack := range indexed {
		if p.dropPack[pack] {
			p.rewrite = true
		}
		if _, ok := p.packSize[pack]; !ok {
			p.rewrite = true // a pack gone, holding no live blob
		}
	}
	return nil
}

// drop plans to delete a pack whole.
func (p *prunePlan) drop(pack crypt.ID, size int64) {
	p.dropPack[pack] = true
	p.rep.DeletedPacks++
	p.rep.DeletedBytes += size
}

// liveSet adds to live every tree and data blob reachable from snaps,
// reading trees through idx (walkTrees); a blob idx does not list is an
// integrity error: the repository is damaged, and nothing may be pruned.
func (r *Repository) liveSet(ctx context.Context, o PruneOptions, snaps []*Snapshot, idx *Index, live map[crypt.ID]bool) error {
	err := r.walkTrees(ctx, o.Progress, snaps, idx, func(ref treeRef, t *Tree) error {
		live[ref.id] = true
		for _, n := range t.Nodes {
			for _, e := range n.Content {
				if e.Hole || live[e.ID] {
					continue
				}
				if _, err := dataLocation(idx, e.ID, ref, n); err != nil {
					return err
				}
				live[e.ID] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nothing was pruned: %w", err)
	}
	return nil
}

// dataLocation looks up in idx the data blob id that node n of the tree
// ref names; one idx does not list as a data blob is an integrity error.
func dataLocation(idx *Index, id crypt.ID, ref treeRef, n *Node) (Location, error) {
	l, ok := idx.Lookup(id)
	if !ok || !format.IsDataBlob(l.Type) {
		return l, integrityError(fmt.Sprintf("data blob %s", id), "file %s of snapshot %d needs it, and no index lists it (run sealfs check)",
			path.Join(ref.dir, string(n.Name)), ref.snap.Seq)
	}
	return l, nil
}

// walkTrees calls visit with every tree reachable from snaps, each once (a
// folder shared by several snapshots or folders is loaded once) and where
// it was first found. It reads trees through idx, a batch at a time with up
// to transfers() requests at once, and tells progress (if set) of stage
// "trees"; a tree idx does not list is an integrity error.
func (r *Repository) walkTrees(ctx context.Context, progress func(stage string, done, total int), snaps []*Snapshot, idx *Index, visit func(treeRef, *Tree) error) error {
	if progress == nil {
		progress = func(string, int, int) {}
	}
	seen := map[crypt.ID]bool{}
	var queue []treeRef
	add := func(t treeRef) error {
		if seen[t.id] {
			return nil
		}
		if _, ok := idx.Lookup(t.id); !ok {
			return integrityError(fmt.Sprintf("tree %s", t.id), "directory %s of snapshot %d needs it, and no index lists it (run sealfs check)", t.dir, t.snap.Seq)
		}
		seen[t.id] = true
		queue = append(queue, t)
		return nil
	}
	for _, s := range snaps {
		if err := add(treeRef{s.Tree, "/", s}); err != nil {
			return err
		}
	}
	loaded := 0
	for len(queue) > 0 {
		progress("trees", loaded, loaded+len(queue))
		batch := queue[:min(len(queue), treeBatch)]
		queue = queue[len(batch):]
		trees, err := r.loadTrees(ctx, batch)
		if err != nil {
			return err
		}
		loaded += len(batch)
		for i, t := range trees {
			ref := batch[i]
			if err := visit(ref, t); err != nil {
				return err
			}
			for _, n := range t.Nodes {
				if n.Type == NodeDir {
					if err := add(treeRef{n.Subtree, path.Join(ref.dir, string(n.Name)), ref.snap}); err != nil {
						return err
					}
				}
			}
		}
	}
	progress("trees", loaded, loaded)
	return nil
}

// treeBatch is how many trees walkTrees holds in memory at once.
const treeBatch = 256

// treeRef is a tree to read, and where it was found.
type treeRef struct {
	id   crypt.ID
	dir  string
	snap *Snapshot
}

// loadTrees loads the trees refs name, up to transfers() at once.
func (r *Repository) loadTrees(ctx context.Context, refs []treeRef) ([]*Tree, error) {
	out := make([]*Tree, len(refs))
	errs := make([]error, len(refs))
	sem := make(chan struct{}, r.transfers())
	var wg sync.WaitGroup
	for i, ref := range refs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = r.LoadTree(ctx, ref.id)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("directory %s of snapshot %d: %w", refs[i].dir, refs[i].snap.Seq, err)
		}
	}
	return out, nil
}

// listSizes lists the objects of dir named as name(id) gives, by id, with
// their sizes; anything else there is left alone.
func listSizes(ctx context.Context, rem remote.Remote, dir string, name func(crypt.ID) string) (map[crypt.ID]int64, error) {
	sizes := map[crypt.ID]int64{}
	err := rem.List(ctx, dir, func(e remote.Entry) error {
		if id, err := crypt.ParseID(path.Base(e.Name)); err == nil && name(id) == e.Name {
			sizes[id] = e.Size
		}
		return nil
	})
	return sizes, err
}

// rewriteIndexes copies the live blobs of the packs to repack into new
// packs, writes index objects of exactly the live blobs, and stores a
// snapshot that follows the head and names only them. commitMu is held.
func (r *Repository) rewriteIndexes(ctx context.Context, o PruneOptions, p *prunePlan) error {
	// From here the writer's index is the new one: a blob copied goes
	// into a new pack even though the old index has it.
	next := newIndex()
	for _, e := range p.keep {
		next.add(e.ID, e.Location)
	}
	old := r.index.Swap(next)
	restore := true
	defer func() {
		if restore {
			r.index.Store(old)
		}
	}()
	r.mu.Lock()
	stored := r.stats.Packs
	r.mu.Unlock()
	packs := slices.SortedFunc(maps.Keys(p.repack), func(a, b crypt.ID) int { return bytes.Compare(a[:], b[:]) })
	for i, pack := range packs {
		o.progress("repack", i, len(packs))
		if err := r.repackOne(ctx, pack, p.packSize[pack], p.repack[pack]); err != nil {
			return err
		}
	}
	o.progress("repack", len(packs), len(packs))
	if err := r.Flush(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	p.rep.NewPacks = int(r.stats.Packs - stored)
	r.pending = append(r.pending, p.keep...)
	r.mu.Unlock()
	if err := r.storeIndexes(ctx); err != nil {
		return err
	}
	if err := r.checkLease(); err != nil {
		return err
	}
	r.mu.Lock()
	h := p.head
	s := Snapshot{Version: format.SnapshotForksVersion, Seq: h.Seq + 1, Parent: h.ID, Time: time.Now().UTC(), Tree: h.Tree,
		Files: h.Files, Bytes: h.Bytes, Root: h.Root, Prune: true, Indexes: slices.Clone(r.unnamed)}
	s.Host, _ = os.Hostname()
	// The forks stay recorded; their blobs are live, so the new indexes
	// list them.
	r.recordForksLocked(&s, h)
	r.historyLocked(&s, h, nil)
	p.rep.NewIndexes = len(s.Indexes)
	u, err := r.sealSnapshot(&s)
	if err == nil {
		err = r.rememberUnstoredLocked(u)
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if err := r.storeSnapshot(ctx, u); err != nil {
		return err
	}
	r.mu.Lock()
	r.loaded = map[crypt.ID]bool{}
	for _, x := range s.Indexes {
		r.loaded[x] = true // the index objects in the index now
	}
	r.mu.Unlock()
	restore = false
	p.rep.Snapshot = u.snap
	p.head = u.snap
	return nil
}

// repackOne reads a pack whole and adds its live blobs, each authenticated
// first, byte for byte to the packs being built.
func (r *Repository) repackOne(ctx context.Context, pack crypt.ID, size int64, live []format.IndexEntry) error {
	entries, data, err := r.readPackHeader(ctx, pack, size, true)
	if err != nil {
		return fmt.Errorf("failed to repack (nothing was deleted): %w", err)
	}
	inHeader := map[crypt.ID]Location{}
	for _, e := range entries {
		inHeader[e.ID] = e.Location
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Offset < live[j].Offset })
	for _, e := range live {
		if l, ok := inHeader[e.ID]; !ok || l != e.Location {
			return integrityError(format.PackName(pack), "the pack header does not agree with the index about blob %s (nothing was deleted; run sealfs check)", e.ID.Short())
		}
		sealed := data[e.Offset : e.Offset+e.Length]
		t := crypt.TypeDataBlob
		if e.Type == crypt.TypeTreeBlob {
			t = crypt.TypeTreeBlob
		}
		if _, err := r.openBlob(t, e.ID, e.Location, sealed); err != nil {
			return fmt.Errorf("failed to repack (nothing was deleted; run sealfs check --read-data): %w", err)
		}
		b := preparedBlob{t: e.Type, id: e.ID, sealed: &sealedBlob{id: e.ID, t: e.Type, sealed: bytes.Clone(sealed), raw: int(e.RawLength)}}
		if err := r.addBlob(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// pruneDelete deletes the index objects the head does not name, then the
// packs its indexes do not name, several at once, checking the lease
// before each.
func (r *Repository) pruneDelete(ctx context.Context, o PruneOptions, p *prunePlan) error {
	named := map[crypt.ID]bool{}
	for _, x := range slices.Concat(p.head.Indexes, p.head.Cold) {
		named[x] = true
	}
	var names []string
	for x := range p.indexes {
		if !named[x] && p.tookOver && !p.named[x] {
			p.rep.KeptUnreferencedIndexes++
			continue
		}
		if !named[x] {
			names = append(names, format.IndexName(x))
			p.rep.DeletedIndexes++
		}
	}
	// History segments the head does not name: a failed fold's, or
	// replaced by a merge whose deletes did not finish. A writer whose
	// lease was taken over may still store a snapshot naming its fold's.
	segs := map[crypt.ID]bool{}
	for _, ref := range p.head.History {
		segs[ref.ID] = true
	}
	for x := range p.history {
		if !segs[x] && !p.tookOver {
			names = append(names, format.HistoryName(x))
		}
	}
	sort.Strings(names)
	inIndex := map[crypt.ID]bool{}
	r.Index().each(func(_ crypt.ID, l Location) { inIndex[l.Pack] = true })
	var packs []string
	for pack := range p.dropPack {
		if inIndex[pack] {
			// Never: the plan drops only packs the new index leaves out.
			return fmt.Errorf("internal error: pack %s is to be deleted, but the index names it (nothing more was deleted)", pack.Short())
		}
		if _, listed := p.packSize[pack]; listed {
			packs = append(packs, format.PackName(pack))
		}
	}
	sort.Strings(packs)
	total, done := len(names)+len(packs), 0
	deleted := func() { done++; o.progress("delete", done, total) }
	o.progress("delete", 0, total)
	if err := r.deleteObjects(ctx, names, deleted); err != nil {
		return err
	}
	return r.deleteObjects(ctx, packs, deleted)
}

// deleteObjects deletes names, up to transfers() at once, checking the
// lease before each, and calls deleted after each (one call at a time).
// It stops at the first failure, once the deletes under way have ended.
func (r *Repository) deleteObjects(ctx context.Context, names []string, deleted func()) error {
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	for range min(r.transfers(), len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if first != nil || next == len(names) {
					mu.Unlock()
					return
				}
				name := names[next]
				next++
				mu.Unlock()
				err := r.checkLease()
				if err == nil {
					if err = r.remote.Delete(ctx, name); err != nil {
						err = fmt.Errorf("failed to delete %s (the new state is stored; run prune again to finish): %w", name, err)
					}
				}
				mu.Lock()
				if err != nil && first == nil {
					first = err
				} else if err == nil {
					deleted()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// dropCached removes blobs no snapshot needs from the local blob cache.
func (r *Repository) dropCached(ids []crypt.ID) {
	if r.blobs != nil {
		for _, id := range ids {
			r.blobs.drop(id)
		}
		return
	}
	dir := filepath.Join(r.stateDir, "blobs")
	for _, id := range ids {
		os.Remove(filepath.Join(dir, id.String()))
	}
}
