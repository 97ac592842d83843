package worktree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"sort"
	"sync"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/worktree/sealedfile"
	"github.com/sealfs/sealfs/repo"
)

// dirCopy is a directory as it will be committed: its entries, and for
// entries that are loaded directories, their own copies.
type dirCopy struct {
	nodes []*repo.Node
	sub   map[int]*dirCopy
	attr  *repo.RootAttr // the root's own attributes (on the root's copy)
	// stored, when set, is the tree this directory already has on the
	// remote: it was never loaded, so none of its entries changed (nodes
	// is empty and stands for nothing).
	stored *crypt.ID
	// files and bytes count what a stored directory holds, where known
	// (the root: the base snapshot's counts).
	files, bytes uint64
	// in is the directory copied; id, once saved, its tree (settled
	// into its meta.Subtree: unload.go).
	in *Inode
	id crypt.ID
}

type stagedJob struct {
	in      *Inode
	gen     uint64
	staging string // the staging file's id, opened only while it is read
	size    uint64
	overlay *overlayView // set for a file changed in place
	stream  *streamer    // set for a new file chunked while written
	content []repo.Extent
	ok      bool
	damaged bool // its content cannot be read back: left out, stays queued
	gone    bool // deleted or changed while it was read: the next commit's
}

// Pending reports how many files wait in the staging area and their bytes.
func (t *Tree) Pending() (files int, bytes uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for in := range t.staged {
		if in.committed == nil || in.gen != in.cleanGen {
			files++
			bytes += in.meta.Size
		}
	}
	return files, bytes
}

// Committable reports how many of the files Pending counts a Commit would
// store now: not those still open for writing (Commit leaves them to a
// later commit) nor those unlinked while open. A commit started because
// many files wait counts these: files held open stay waiting however
// often it commits.
func (t *Tree) Committable() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for in := range t.staged {
		if in.writers == 0 && in.parent != nil && (in.committed == nil || in.gen != in.cleanGen) {
			n++
		}
	}
	return n
}

// Queued returns the paths of the files Pending counts, sorted, at most
// max of them, and how many there are in all.
func (t *Tree) Queued(max int) (paths []string, files int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for in := range t.staged {
		if in.committed == nil || in.gen != in.cleanGen {
			files++
			if in.parent != nil {
				paths = append(paths, "/"+t.pathOf(in))
			}
		}
	}
	sort.Strings(paths)
	if len(paths) > max {
		paths = paths[:max]
	}
	return paths, files
}

// Dirty reports whether anything changed since the last commit.
func (t *Tree) Dirty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dirty
}

// Commit stores the changes so far as a new snapshot: the content of every
// changed file that is not open for writing, and the whole namespace. Files
// still open for writing keep their last committed content (new ones are
// left out) and go into a later commit. It returns nil when nothing changed.
func (t *Tree) Commit(ctx context.Context) (*repo.Snapshot, error) {
	return t.commit(ctx, false)
}

// CommitOpen commits as Commit does, and the files still open for writing
// too, with what they hold now: what fsync with --sync=remote promises for
// the file it is called on (and for a file just closed, whose release the
// kernel sends later). A file written while it is read goes into a later
// commit (Handle.CommittedSince tells).
func (t *Tree) CommitOpen(ctx context.Context) (*repo.Snapshot, error) {
	return t.commit(ctx, true)
}

func (t *Tree) commit(ctx context.Context, open bool) (*repo.Snapshot, error) {
	if t.opts.ReadOnly {
		return nil, nil
	}
	t.commitMu.Lock()
	defer t.commitMu.Unlock()
	// Another writer committed since our base (we started offline): carry
	// our changes over onto its snapshot first.
	if err := t.rebase(ctx); err != nil {
		return nil, err
	}
	if err := t.loadForLinks(ctx); err != nil {
		return nil, t.commitFailed(err)
	}
	jobs, dirty := t.takeJobs(open)
	if !dirty {
		return nil, nil
	}
	if err := t.storeJobs(ctx, jobs); err != nil {
		return nil, t.commitFailed(err)
	}
	frozen, err := t.freeze(jobs)
	if err != nil {
		return nil, t.commitFailed(err)
	}
	snap, err := t.storeSnapshot(ctx, frozen.root)
	if err != nil {
		return nil, t.commitFailed(err)
	}
	t.settle(snap, frozen.done, frozen.root)
	t.notifyUnloaded()
	t.removeJournalsBefore(frozen.journal.n)
	t.mu.Lock()
	t.closeOldJournalsLocked()
	t.mu.Unlock()
	for _, j := range jobs {
		t.sentFiles.Add(1)
		t.sentBytes.Add(j.size)
	}
	return snap, nil
}

// Sent returns how many files, and how many bytes of them, commits have
// stored since the tree was opened (a file stored twice counts twice).
func (t *Tree) Sent() (files, bytes uint64) {
	return t.sentFiles.Load(), t.sentBytes.Load()
}

// loadForLinks loads the whole tree when an inode has several names, or a
// rebase brought in link groups (an entry of theirs may have names in a
// folder not loaded yet), so that the commit numbers every link group
// (links.go). It is a walk of the tree in memory once everything is
// loaded.
func (t *Tree) loadForLinks(ctx context.Context) error {
	return t.locked(ctx, func() error {
		if len(t.linked) == 0 && !t.groupsIn {
			return nil
		}
		if err := t.loadAllLocked(ctx); err != nil {
			return err
		}
		t.groupsIn = false
		return nil
	})
}

// takeJobs returns the staged files to store, those that changed since
// their last commit and are not open for writing (or are, when open is
// set), and whether anything changed at all; the tree counts as clean from
// here until the commit fails. A commit that left out a file open for
// writing counts as clean too, so with open set the files are looked at
// even then.
func (t *Tree) takeJobs(open bool) ([]*stagedJob, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.dirty && !open {
		return nil, false
	}
	var jobs []*stagedJob
	for in := range t.staged {
		if in.writers > 0 && open && in.file != nil {
			// A queued write that failed, its writer not told yet:
			// the file is what landed, not the size it was to have
			// (a commit would read zeros past the end).
			in.file.drain()
			if in.file.behindFailed() {
				t.behindFailedLocked(in, in.file)
			}
		}
		if (in.writers == 0 || open) && in.parent != nil && (in.committed == nil || in.gen != in.cleanGen) {
			j := &stagedJob{in: in, gen: in.gen, staging: in.staging, size: in.meta.Size}
			if in.overlay {
				j.overlay = t.overlayViewLocked(in)
			}
			j.stream = in.stream
			jobs = append(jobs, j)
		}
	}
	dirty := t.dirty || len(jobs) > 0
	t.dirty = false
	return jobs, dirty
}

// commitFailed marks the tree dirty again, so that the commit is retried,
// and returns err.
func (t *Tree) commitFailed(err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dirty = true
	t.lastError = err
	return err
}

// storeParallel is how many staged files a commit stores at once: an
// untar leaves thousands of small files, each a few requests to the
// repository's pipeline, which has cores to spare for them.
const storeParallel = 4

// storeJobs chunks and uploads the staged files, outside the lock,
// storeParallel at a time. A file whose queued copy (or stored base)
// cannot be read back is marked damaged and left out; any other failure
// fails the commit (and stops the files still being stored).
func (t *Tree) storeJobs(ctx context.Context, jobs []*stagedJob) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, storeParallel)
	)
	for _, j := range jobs {
		sem <- struct{}{}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := t.storeJob(ctx, j); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err() // the caller's, if it ended before every file went
	}
	return first
}

// storeJob stores one staged file (storeJobs).
func (t *Tree) storeJob(ctx context.Context, j *stagedJob) error {
	content, err := t.jobContent(ctx, j)
	if err != nil && t.jobGone(j) {
		// Deleted (its staging copy with it) or changed while it was
		// read: not a failure of the commit.
		j.gone = true
		return nil
	}
	if err != nil && unreadable(err) {
		// One such file must not hold back every other file: it keeps
		// its last committed content (a new file is left out) and stays
		// queued.
		t.opts.Log.Error("cannot read back a queued file: it is left out of this commit and stays queued; write it again or delete it",
			"path", t.displayPath(j.in), "err", err)
		j.damaged = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to store %s: %w", t.displayPath(j.in), err)
	}
	j.content = content
	return nil
}

// jobGone reports whether a job's file left the namespace or changed
// since the job was taken.
func (t *Tree) jobGone(j *stagedJob) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return j.in.parent == nil || j.in.gen != j.gen || j.in.staging != j.staging
}

// jobContent returns a staged file's stored content: what its streamer
// chunked while it was written, if that is whole, or else stored now from
// its staging copy.
func (t *Tree) jobContent(ctx context.Context, j *stagedJob) ([]repo.Extent, error) {
	if j.stream != nil {
		j.stream.takeSmall()
		if content, ok := j.stream.result(j.size); ok {
			return content, nil
		}
	}
	return t.storeStaged(ctx, j)
}

// frozenCommit is the namespace a commit stores, copied under the lock,
// with the journal that goes on from it.
type frozenCommit struct {
	root    *dirCopy
	done    map[*Inode]*stagedJob // the files stored, unchanged since
	journal *journal              // the new journal, in place
}

// freeze copies the namespace for committing and starts a new journal,
// under the lock. A job whose file changed while it was read goes into the
// next commit. The new journal must rebuild, on top of the snapshot being
// committed, what that snapshot leaves out: files still being written, and
// the staging copies of files changed since they were read. A staging
// record whose file is gone at replay means "committed and cleaned". It is
// created whole or not at all (a full disk): then the commit fails, the
// old journal goes on, and the next commit tries again.
func (t *Tree) freeze(jobs []*stagedJob) (*frozenCommit, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	done := map[*Inode]*stagedJob{}
	for _, j := range jobs {
		j.ok = !j.damaged && !j.gone && j.in.gen == j.gen
		switch {
		case j.ok:
			done[j.in] = j
		case !j.damaged:
			t.dirty = true // it changed while it was read: next time
		}
	}
	root, err := t.copyDirLocked(t.root, done, map[*Inode]uint64{})
	if err != nil {
		return nil, err
	}
	root.attr = rootAttr(&t.root.meta)
	old := t.journal
	next, err := t.startJournalLocked(old.n+1, t.nextSeqLocked(), t.restageRecords(done))
	if err != nil {
		return nil, err
	}
	t.journal = next
	t.oldJournals = append(t.oldJournals, old)
	return &frozenCommit{root: root, done: done, journal: next}, nil
}

// closeOldJournalsLocked closes the journals replaced before the current
// one, which carries everything they held: a commit that failed after
// its new journal was in place left its old one open (a small file's
// content record there is still read), and without this each kept a
// descriptor, and the disk space of its deleted file, for the life of the
// mount. t.mu is held.
func (t *Tree) closeOldJournalsLocked() {
	for _, j := range t.oldJournals {
		j.close()
	}
	t.oldJournals = nil
}

// storeSnapshot stores the trees of a namespace copy and a snapshot of it.
func (t *Tree) storeSnapshot(ctx context.Context, root *dirCopy) (*repo.Snapshot, error) {
	rootID, err := t.saveDir(ctx, root)
	if err != nil {
		return nil, err
	}
	files, bytes := countFiles(root)
	return t.r.Commit(ctx, rootID, repo.CommitInfo{Files: files, Bytes: bytes, Root: root.attr})
}

// settle records what snap stored: the files stored are clean now, and
// those no longer open and unchanged since leave the staging area. Their
// staging files are deleted after the tree's lock is let go (an untar's
// commit deletes thousands). Folders the commit saved take the trees it
// saved, and those used least recently are unloaded if too many entries
// are loaded (unload.go).
func (t *Tree) settle(snap *repo.Snapshot, done map[*Inode]*stagedJob, root *dirCopy) {
	t.mu.Lock()
	settleTrees(root, t.root)
	t.baseSeq = snap.Seq
	t.lastError = nil
	var remove []string
	for in, j := range done {
		in.committed = &stored{Content: j.content, Size: j.size}
		in.cleanGen = j.gen
		if in.gen == j.gen && in.opens == 0 {
			in.meta.Content, in.meta.Size = j.content, j.size
			if p := t.dropStagingLocked(in); p != "" {
				remove = append(remove, p)
			}
		} else if in.gen == j.gen {
			if err := t.recarryLocked(in); err != nil {
				t.opts.Log.Warn("failed to carry a small file into the new journal", "path", "/"+t.pathOf(in), "err", err)
			}
		}
	}
	t.mu.Unlock()
	for _, p := range remove {
		os.Remove(p)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetGoneLocked() // what the kernel forgot since the last commit
	t.trimLocked()
	t.makeReserveLocked() // space may be back: staging files went
}

// settleTrees gives every folder (but the root) that a commit saved, and
// that is still loaded, the tree saved: a folder found unchanged since can
// be unloaded (unload.go). One unloaded since the commit's copy was taken
// keeps the tree it was found equal to: it may have changed since the
// copy, and back. t.mu is held.
func settleTrees(d *dirCopy, root *Inode) {
	if d.stored != nil {
		return
	}
	if d.in != root && d.in.children != nil {
		d.in.meta.Subtree = d.id
	}
	for _, sub := range d.sub {
		settleTrees(sub, root)
	}
}

// unreadable reports whether err says that a file's queued content cannot
// be read back, by the local cache (a damaged sealed block) or from the
// remote (its stored base failed verification), as opposed to a failure
// that every file would meet (a remote that does not answer).
func unreadable(err error) bool {
	return errors.Is(err, sealedfile.ErrDamaged) || errors.Is(err, repo.ErrIntegrity)
}

// nextSeqLocked is the number the snapshot of the commit starting now
// gets, the base of the journal it starts: one above the newest, or above
// a snapshot of ours left unstored, which the commit stores first. A
// journal based below the snapshot its commit stores would be taken for
// committed at the next start, and put aside, once another commit started
// a newer one (a change made after it started would be lost).
func (t *Tree) nextSeqLocked() uint64 {
	var seq uint64
	if s := t.r.Latest(); s != nil {
		seq = s.Seq
	}
	return max(seq, t.r.Unstored()) + 1
}

func (t *Tree) displayPath(in *Inode) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return "/" + t.pathOf(in)
}

// copyDirLocked copies a loaded directory for committing. The names of
// one inode get one link group, numbered in groups from 1 in the order met
// (the tree is loaded whole when any inode has several names).
func (t *Tree) copyDirLocked(dir *Inode, done map[*Inode]*stagedJob, groups map[*Inode]uint64) (*dirCopy, error) {
	d := &dirCopy{sub: map[int]*dirCopy{}, in: dir}
	if dir.children == nil {
		// Never loaded: unchanged below. Only the root is copied so (its
		// attributes may have changed, or a journal replayed nothing);
		// subdirectories that were not loaded keep their Subtree below.
		if dir.meta.Subtree == (crypt.ID{}) {
			return nil, fmt.Errorf("folder /%s was never loaded and has no stored tree", t.pathOf(dir))
		}
		id := dir.meta.Subtree
		d.stored = &id
		if s := t.r.Latest(); s != nil && s.Tree == id {
			d.files, d.bytes = s.Files, s.Bytes
		}
		return d, nil
	}
	for _, e := range sortedChildren(dir) {
		c := e.in
		if c.meta.Type != repo.NodeDir {
			c.meta.LinkGroup = 0
			if len(c.links) > 0 {
				if groups[c] == 0 {
					groups[c] = uint64(len(groups) + 1)
				}
				c.meta.LinkGroup = groups[c]
			}
		}
		n := c.meta
		n.Name = []byte(e.name)
		switch {
		case c.meta.Type == repo.NodeDir && c.children != nil:
			sub, err := t.copyDirLocked(c, done, groups)
			if err != nil {
				return nil, err
			}
			d.sub[len(d.nodes)] = sub
			n.Subtree = crypt.ID{}
		case c.meta.Type == repo.NodeFile && c.staging != "":
			if j := done[c]; j != nil {
				n.Content, n.Size = j.content, j.size
			} else if c.committed != nil {
				n.Content, n.Size = c.committed.Content, c.committed.Size
			} else {
				continue // a new file still being written
			}
		}
		d.nodes = append(d.nodes, &n)
	}
	return d, nil
}

// saveDir stores a directory copy, its loaded subdirectories first.
func (t *Tree) saveDir(ctx context.Context, d *dirCopy) (crypt.ID, error) {
	if d.stored != nil {
		return *d.stored, nil
	}
	for i, sub := range d.sub {
		id, err := t.saveDir(ctx, sub)
		if err != nil {
			return crypt.ID{}, err
		}
		d.nodes[i].Subtree = id
	}
	var err error
	d.id, err = t.r.SaveTree(ctx, &repo.Tree{Nodes: d.nodes})
	return d.id, err
}

func countFiles(d *dirCopy) (files, bytes uint64) {
	if d.stored != nil {
		return d.files, d.bytes
	}
	for i, n := range d.nodes {
		if n.Type == repo.NodeFile {
			files++
			bytes += n.Size
		}
		if sub := d.sub[i]; sub != nil {
			f, b := countFiles(sub)
			files, bytes = files+f, bytes+b
		}
	}
	return files, bytes
}

// restageRecords yields, for every staged file, the records that bring
// its staging copy back: create (for a file no snapshot holds yet), stage
// and its attributes; a small file's content record (carryRecordLocked)
// stands for stage when the commit does not store it. They are made as the
// new journal takes them (a commit of many files would hold all of them at
// once): t.mu is held until it has. A content that cannot be read back
// ends them with an error record (failRecord): the journal is not made.
func (t *Tree) restageRecords(done map[*Inode]*stagedJob) iter.Seq[record] {
	return func(yield func(record) bool) {
		for in := range t.staged {
			if in.parent == nil {
				continue
			}
			p := t.pathOf(in)
			if in.committed == nil && done[in] == nil {
				// Not in the snapshot: made again, with all its names.
				m := in.meta
				m.Content = nil
				if !yield(record{Op: opCreate, Path: []byte(p), Meta: &m}) {
					return
				}
				for _, r := range t.linkRecords(in) {
					if !yield(r) {
						return
					}
				}
			}
			rec, err := t.carryRecordLocked(in, []byte(p), done[in] != nil)
			if err != nil {
				yield(failRecord(fmt.Errorf("failed to carry %s into the new journal: %w", p, err)))
				return
			}
			if !yield(rec) || !yield(attrRecord(p, &in.meta)) {
				return
			}
		}
	}
}

// storeStaged chunks and stores a staged file from its staging copy.
func (t *Tree) storeStaged(ctx context.Context, j *stagedJob) ([]repo.Extent, error) {
	f, err := t.openStaging(j.staging, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if j.overlay != nil {
		v := *j.overlay
		v.f = f
		return t.overlayContent(ctx, &v)
	}
	if j.stream != nil && j.size <= smallWhole && j.stream.sequential(j.size) {
		if content, ok, err := t.storeWhole(ctx, f, j.size); ok || err != nil {
			return content, err
		}
	}
	content, _, err := t.r.SaveSparseFile(ctx, f, int64(j.size))
	return content, err
}

// smallWhole is the size up to which a new file written in one sequential
// run is read whole into memory to be stored (storeWhole): no holes to
// look for, and one read of its staging copy instead of three.
const smallWhole = streamStart

// wholeBufs hold the buffers storeWhole reads into: most files an untar
// writes fit the small ones.
var (
	wholeBufs      = sync.Pool{New: func() any { b := make([]byte, smallWhole); return &b }}
	wholeBufsSmall = sync.Pool{New: func() any { b := make([]byte, wholeSmall); return &b }}
)

// wholeSmall is the size of the small buffers of storeWhole.
const wholeSmall = 64 << 10

// storeWhole stores a file of size bytes written sequentially from its
// start (so its staging copy has no hole on disk) from one read of it.
// What SaveSparseFile would find as a hole in such a file is a run of
// zeros at its start or end of a whole 4 KiB page (or reaching the end of
// the file past the last page boundary), widened so; a file with one is
// left to SaveSparseFile (ok false), so that both store the same extents;
// so is one over smallWhole, which its buffers do not hold (a file queued
// small that grew before the small-file worker reached it).
func (t *Tree) storeWhole(ctx context.Context, f *stagingFile, size uint64) ([]repo.Extent, bool, error) {
	if size > smallWhole {
		return nil, false, nil
	}
	pool := &wholeBufs
	if size <= wholeSmall {
		pool = &wholeBufsSmall
	}
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	buf := (*bp)[:size]
	if n, err := f.ReadAt(buf, 0); uint64(n) != size {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("file changed size while it was read (%d bytes, then %d)", size, n)
		}
		return nil, false, err
	}
	return t.storeBytes(ctx, buf)
}

// storeBytes stores buf, the whole content of a file written sequentially
// from its start, as storeWhole does.
func (t *Tree) storeBytes(ctx context.Context, buf []byte) ([]repo.Extent, bool, error) {
	size := uint64(len(buf))
	if size > 0 && zeroEdge(buf) {
		return nil, false, nil
	}
	w := t.r.NewFileWriter()
	if err := w.Write(ctx, bytes.NewReader(buf)); err != nil {
		return nil, false, err
	}
	content, n := w.Content()
	if n != size {
		return nil, false, fmt.Errorf("stored %d bytes of a %d-byte file", n, size)
	}
	return content, true, nil
}

// zeroEdge reports whether SaveSparseFile might find a hole in p, the
// whole content of a file with no hole on disk. It looks for holes only at
// the edges: where the first block holding a nonzero byte starts (so: the
// first block all zeros), and past the last nonzero byte, rounded up to a
// 4 KiB page, in the last block (so: zeros from that page boundary to the
// end, or the last block all zeros); zeros inside are data to it.
func zeroEdge(p []byte) bool {
	const page, block = 4096, sealedfile.BlockSize
	last := len(p) - 1
	for last >= 0 && p[last] == 0 {
		last--
	}
	if last < 0 {
		return true // all zeros
	}
	first := 0
	for first < len(p) && p[first] == 0 {
		first++
	}
	lastBlock := (len(p) - 1) / block * block
	return first >= block || last < lastBlock || (last+page)/page*page < len(p)
}
