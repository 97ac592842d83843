package worktree

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// replay applies the journals left behind, in order, and returns the
// journal to go on with: it records the replayed state whole, and the old
// journals are removed once it is in place. Journals based on an older
// snapshot than the newest were committed already; they are moved aside,
// not deleted.
func (t *Tree) replay(ctx context.Context) (*journal, error) {
	ns, err := listJournals(t.opts.Dir)
	if err != nil {
		return nil, err
	}
	var next uint64 = 1
	var applied []string
	legacyOK := !hasSealedJournal(t.opts.Dir, ns)
	t.replaying = true
	for _, n := range ns {
		next = n + 1
		p := journalName(t.opts.Dir, n)
		base, recs, err := readJournal(p, t.localKey, n)
		if errors.Is(err, errJournalEmpty) {
			t.opts.Log.Warn("removing an empty journal: it was cut off as it was created, before it recorded anything", "journal", p)
			applied = append(applied, p)
			continue
		}
		if errors.Is(err, errJournalDamaged) {
			t.opts.Log.Error("replaying a damaged journal up to the damage; later changes are lost", "err", err)
		} else if err != nil {
			return nil, err
		}
		if len(recs) > 0 && recs[0].legacy && !legacyOK {
			// Only someone who can write the cache puts a plaintext
			// journal beside sealed ones: its records are not ours.
			aside := filepath.Join(t.opts.Dir, "refused-"+filepath.Base(p))
			t.opts.Log.Error("refusing a plaintext journal in a sealed cache; it is kept aside, unreplayed", "journal", p, "aside", aside)
			if err := os.Rename(p, aside); err != nil {
				return nil, err
			}
			continue
		}
		if base < t.baseSeq && (base != t.orphanBase || t.orphanBase == 0) {
			old := filepath.Join(t.opts.Dir, "committed-"+filepath.Base(p))
			t.opts.Log.Warn("journal predates the newest snapshot; keeping it aside", "journal", p, "base", base, "newest", t.baseSeq)
			if err := os.Rename(p, old); err != nil {
				return nil, err
			}
			continue
		}
		for i, rec := range recs {
			if err := t.apply(ctx, rec); err != nil {
				t.opts.Log.Warn("journal record could not be replayed", "journal", p, "record", i+1, "op", rec.Op, "path", string(rec.Path), "err", err)
			}
		}
		applied = append(applied, p)
		if len(recs) > 0 { // an empty journal changed nothing: no commit
			t.dirty = true
		}
	}
	t.replaying = false
	// The replayed state lives on in the new journal: record it whole, then
	// drop the old files. Until the new journal is in place (a crash, a
	// full disk), the old ones stay and are replayed again.
	var recs iter.Seq[record]
	if t.dirty {
		recs = t.rewriteRecords()
	}
	j, err := t.startJournalLocked(next, t.replayedBase(), recs)
	if err != nil {
		return nil, err
	}
	for _, p := range applied {
		os.Remove(p)
	}
	t.removeOrphans()
	return j, nil
}

// replayedBase is the base of the journal that goes on after a replay:
// the snapshot the tree is based on, or the snapshot of ours that follows
// it, left unstored by the crash, which the next commit stores before its
// own. That snapshot holds only part of what the journals replayed (what
// the tree held when its commit started): once it is stored, a journal
// based below it is taken for committed and put aside at the next start.
// (Should another writer take its number, the journal builds on its
// parent: baseOnJournals.)
func (t *Tree) replayedBase() uint64 {
	if u := t.r.Unstored(); u == t.baseSeq+1 {
		return u
	}
	return t.baseSeq
}

// removeOrphans deletes the staging files no inode refers to: those of
// files dropped by the replayed journals, and those a crash left before
// their stage record was written (or cut short going to disk: ID.tmp).
func (t *Tree) removeOrphans() {
	keep := map[string]bool{}
	for in := range t.staged {
		keep[in.staging] = true
	}
	// So do the contents of content records no file took in the end.
	t.stagingMu.Lock()
	for id := range t.inline {
		if !keep[id] {
			delete(t.inline, id)
		}
	}
	t.stagingMu.Unlock()
	entries, err := os.ReadDir(filepath.Join(t.opts.Dir, stagingDir))
	if err != nil {
		t.opts.Log.Warn("failed to list the staging area", "err", err)
		return
	}
	for _, e := range entries {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, ".tmp"); ok && validStagingID(id) {
			os.Remove(t.stagingPath(name)) // a file cut short going to disk
		} else if validStagingID(name) && !keep[name] {
			os.Remove(t.stagingPath(name))
		}
	}
}

// rewriteRecords yields records that rebuild every change of the tree
// relative to the base snapshot: all entries of loaded directories, and
// the staging of staged files. It is used after a replay and a rebase;
// the records are made as the new journal takes them (t.mu is held until
// it has).
func (t *Tree) rewriteRecords() iter.Seq[record] {
	return func(yield func(record) bool) {
		for _, r := range t.rootRecords() {
			if !yield(r) {
				return
			}
		}
		seen := map[*Inode][]byte{} // hard-linked inodes recorded, and their first path
		t.rewriteDir(t.root, seen, yield)
	}
}

// rewriteDir yields the records of rewriteRecords for a directory and
// those below it, and reports whether yield wanted them all.
func (t *Tree) rewriteDir(dir *Inode, seen map[*Inode][]byte, yield func(record) bool) bool {
	if dir.children == nil {
		return true
	}
	if !yield(record{Op: opClear, Path: []byte(t.pathOf(dir))}) {
		return false
	}
	for _, e := range sortedChildren(dir) {
		c, p := e.in, t.namePath(dir, e.name)
		if first := seen[c]; first != nil {
			if !yield(record{Op: opLink, Path: first, To: p}) {
				return false
			}
			continue
		}
		if len(c.links) > 0 {
			seen[c] = p
		}
		m := c.meta
		if c.children != nil {
			m.Subtree = crypt.ID{} // described entry by entry below
		}
		if !yield(record{Op: opCreate, Path: p, Meta: &m}) {
			return false
		}
		if c.staging != "" {
			rec, err := t.carryRecordLocked(c, p, false)
			if err != nil {
				rec = failRecord(fmt.Errorf("failed to carry %s into the new journal: %w", p, err))
			}
			if !yield(rec) || err != nil {
				return false
			}
		}
		if c.meta.Type == repo.NodeDir && !t.rewriteDir(c, seen, yield) {
			return false
		}
	}
	return true
}

// resolve finds the inode at path, loading directories on the way.
func (t *Tree) resolve(ctx context.Context, path []byte) (*Inode, error) {
	in := t.root
	if len(path) == 0 {
		return in, nil
	}
	for _, name := range strings.Split(string(path), "/") {
		c, err := t.lookupLocked(ctx, in, name)
		if err != nil {
			return nil, err
		}
		in = c
	}
	return in, nil
}

func splitPath(path []byte) (string, string) {
	s := string(path)
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

// apply replays one journal record, once it is found well formed.
func (t *Tree) apply(ctx context.Context, rec record) error {
	if err := rec.check(); err != nil {
		return err
	}
	switch rec.Op {
	case opCreate:
		return t.applyCreate(ctx, rec)
	case opClear:
		return t.applyClear(ctx, rec)
	case opUnlink:
		return t.applyUnlink(ctx, rec)
	case opRename:
		return t.applyRename(ctx, rec)
	case opExchange:
		return t.applyExchange(ctx, rec)
	case opSetattr:
		return t.applySetattr(ctx, rec)
	case opStage:
		return t.applyStage(ctx, rec)
	case opContent:
		return t.applyContent(ctx, rec)
	case opLink:
		return t.applyLink(ctx, rec)
	case opSetxattr, opRemovexattr, opXattrs:
		in, err := t.resolve(ctx, rec.Path)
		if err != nil {
			return err
		}
		if rec.Op == opXattrs {
			return t.applyXattrs(in, rec)
		}
		return t.applyXattrLocked(in, rec)
	}
	return fmt.Errorf("unknown journal operation %q", rec.Op)
}

// resolveParent finds the directory of the entry at path, loaded, and
// returns it with the entry's name.
func (t *Tree) resolveParent(ctx context.Context, path []byte) (*Inode, string, error) {
	dirPath, name := splitPath(path)
	dir, err := t.resolve(ctx, []byte(dirPath))
	if err != nil {
		return nil, "", err
	}
	if err := t.loadDir(ctx, dir); err != nil {
		return nil, "", err
	}
	return dir, name, nil
}

// applyCreate puts the entry a create record describes in place, over
// whatever has its name.
func (t *Tree) applyCreate(ctx context.Context, rec record) error {
	dir, name, err := t.resolveParent(ctx, rec.Path)
	if err != nil {
		return err
	}
	t.removeNameLocked(dir, name)
	in := &Inode{Ino: t.newIno(), meta: *rec.Meta}
	in.meta.Name = nil
	if in.meta.Type == repo.NodeDir && in.meta.Subtree.IsZero() {
		in.children = map[string]*Inode{}
	}
	if in.meta.CtimeNs == 0 {
		in.meta.CtimeNs = in.meta.MtimeNs // a journal of an older sealfs
	}
	if in.meta.Type == repo.NodeFile {
		// The size is the content's until a stage record gives the
		// file its staging copy (a staged file's create record carries
		// its current size, not its content): an entry whose content
		// does not hold its size could never be committed.
		in.meta.Size = 0
		for _, e := range in.meta.Content {
			in.meta.Size += e.Size // checkMeta refused an overflow
		}
	}
	if in.meta.Type == repo.NodeFile && len(in.meta.Content) > 0 {
		in.committed = &stored{Content: in.meta.Content, Size: in.meta.Size}
	}
	t.addNameLocked(in, dir, name)
	if rec.Time != 0 {
		dir.entriesChanged(rec.Time)
	}
	return nil
}

// applyClear empties a directory; the records after it fill it again.
func (t *Tree) applyClear(ctx context.Context, rec record) error {
	dir, err := t.resolve(ctx, rec.Path)
	if err != nil {
		return err
	}
	if dir.meta.Type != repo.NodeDir {
		return syscall.ENOTDIR
	}
	if err := t.loadDir(ctx, dir); err != nil {
		return err
	}
	for name := range dir.children {
		t.removeNameLocked(dir, name)
	}
	return nil
}

// applyUnlink removes an entry.
func (t *Tree) applyUnlink(ctx context.Context, rec record) error {
	dir, name, err := t.resolveParent(ctx, rec.Path)
	if err != nil {
		return err
	}
	in := t.removeNameLocked(dir, name)
	if in == nil {
		return syscall.ENOENT
	}
	if rec.Time != 0 {
		dir.entriesChanged(rec.Time)
		in.changed(rec.Time)
	}
	return nil
}

// applyRename moves an entry, over whatever has its new name.
func (t *Tree) applyRename(ctx context.Context, rec record) error {
	olddir, oldname, err := t.resolveParent(ctx, rec.Path)
	if err != nil {
		return err
	}
	in := olddir.children[oldname]
	if in == nil {
		return syscall.ENOENT
	}
	dir, name, err := t.resolveParent(ctx, rec.To)
	if err != nil {
		return err
	}
	// A directory may not move below itself (the record is not ours).
	if below(dir, in) {
		return syscall.EINVAL
	}
	old := dir.children[name]
	if old == in {
		return nil // two names of one inode: nothing happens
	}
	if old != nil {
		t.removeNameLocked(dir, name)
	}
	t.moveNameLocked(in, olddir, oldname, dir, name)
	if rec.Time != 0 {
		olddir.entriesChanged(rec.Time)
		dir.entriesChanged(rec.Time)
		in.changed(rec.Time)
	}
	return nil
}

// applyExchange swaps two entries; neither may be the other's ancestor.
func (t *Tree) applyExchange(ctx context.Context, rec record) error {
	dirA, nameA, err := t.resolveParent(ctx, rec.Path)
	if err != nil {
		return err
	}
	dirB, nameB, err := t.resolveParent(ctx, rec.To)
	if err != nil {
		return err
	}
	a, b := dirA.children[nameA], dirB.children[nameB]
	switch {
	case a == nil || b == nil:
		return syscall.ENOENT
	case a == b:
		return nil
	case below(dirA, b) || below(dirB, a):
		return syscall.EINVAL
	}
	t.swapNamesLocked(dirA, nameA, dirB, nameB)
	if rec.Time != 0 {
		exchanged(dirA, dirB, a, b, rec.Time)
	}
	return nil
}

// applySetattr sets an entry's mode, owner and times; a size of zero
// empties a file that has no staging copy.
func (t *Tree) applySetattr(ctx context.Context, rec record) error {
	in, err := t.resolve(ctx, rec.Path)
	if err != nil {
		return err
	}
	in.meta.Mode, in.meta.UID, in.meta.GID = rec.Meta.Mode, rec.Meta.UID, rec.Meta.GID
	in.meta.Xattrs = chmodACL(in.meta.Xattrs, in.meta.Mode)
	in.meta.MtimeNs, in.meta.AtimeNs, in.meta.CtimeNs = rec.Meta.MtimeNs, rec.Meta.AtimeNs, rec.Meta.CtimeNs
	if in.meta.CtimeNs == 0 {
		in.meta.CtimeNs = in.meta.MtimeNs // a journal of an older sealfs
	}
	if in.staging == "" && in.meta.Type == repo.NodeFile && rec.Meta.Size == 0 {
		in.meta.Size, in.meta.Content = 0, nil
	}
	return nil
}

// applyStage gives a file the staging copy a stage record names, unless
// the copy is gone.
func (t *Tree) applyStage(ctx context.Context, rec record) error {
	in, err := t.resolve(ctx, rec.Path)
	if err != nil {
		return err
	}
	if in.meta.Type != repo.NodeFile {
		return syscall.EINVAL
	}
	id, size, err := t.stagingOf(rec)
	if err != nil || id == "" {
		return err
	}
	t.restageLocked(in, id, size, rec.Overlay)
	return nil
}

// stagingOf returns the staging copy a stage record names and the size of
// its content, or "" when the copy is gone: committed and cleaned before
// the crash. The plaintext copy of an older sealfs is sealed first.
func (t *Tree) stagingOf(rec record) (string, uint64, error) {
	id := rec.Staging
	if rec.legacy {
		var err error
		if id, err = t.sealLegacyStaging(id); errors.Is(err, os.ErrNotExist) {
			return "", 0, nil
		} else if err != nil {
			return "", 0, err
		}
	}
	fi, err := os.Stat(t.stagingPath(id))
	if errors.Is(err, os.ErrNotExist) {
		// In a content record replayed before (a commit that stored it
		// carries a stage record on), or committed.
		t.stagingMu.Lock()
		ref, ok := t.inline[id]
		t.stagingMu.Unlock()
		if ok && ref.j == nil {
			return id, uint64(len(ref.data)), nil
		}
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return id, stagedSize(fi.Size()), nil
}

// restageLocked makes in read its content from the staging copy id of size
// bytes, an overlay over stored content when o is set.
func (t *Tree) restageLocked(in *Inode, id string, size uint64, o *overlayRecord) {
	if in.file != nil {
		in.file.Close()
		in.file = nil
	}
	in.staging, in.meta.Size = id, size
	in.overlay = o != nil
	if o != nil {
		t.setOverlayLocked(in, o.Base, o.BaseSize)
		in.baseLimit, in.written = o.BaseLimit, o.Written
	}
	in.gen++
	t.staged[in] = true
}
