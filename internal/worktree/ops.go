package worktree

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/sealfs/sealfs/repo"
)

// Attr is a snapshot of an inode's attributes.
type Attr struct {
	Ino      uint64
	Type     repo.NodeType
	Mode     uint32 // permission bits
	UID, GID uint32
	Size     uint64
	MtimeNs  int64
	AtimeNs  int64
	CtimeNs  int64
	Rdev     uint64
	Nlink    uint32
	Blocks   uint64 // 512-byte blocks holding data (blocks.go)
}

// NlinkUnknown reports whether a is a directory whose nlink is not known
// yet (its tree is not loaded): the kernel should ask again soon.
func (a Attr) NlinkUnknown() bool { return a.Type == repo.NodeDir && a.Nlink == 1 }

func (t *Tree) attrLocked(in *Inode) Attr {
	a := Attr{Ino: in.Ino, Type: in.meta.Type, Mode: in.meta.Mode, UID: in.meta.UID, GID: in.meta.GID,
		Size: in.meta.Size, MtimeNs: in.meta.MtimeNs, AtimeNs: in.meta.AtimeNs, CtimeNs: in.meta.CtimeNs,
		Rdev: in.meta.Rdev, Nlink: t.nlinkLocked(in)}
	a.Blocks = t.blocksLocked(in)
	return a
}

// Root returns the root directory.
func (t *Tree) Root() *Inode { return t.root }

// Attr returns the inode's attributes.
func (t *Tree) Attr(in *Inode) Attr {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.attrLocked(in)
}

// Readlink returns a symlink's target.
func (t *Tree) Readlink(in *Inode) ([]byte, error) {
	t.mu.Lock()
	if in.meta.Type != repo.NodeSymlink {
		t.mu.Unlock()
		return nil, syscall.EINVAL
	}
	target := append([]byte(nil), in.meta.Target...)
	t.mu.Unlock()
	t.accessed(in) // as ext4: reading or following a link is an access
	return target, nil
}

// Lookup returns the entry name of directory dir. Loading the directory
// from the remote, if needed, stops when ctx is done.
func (t *Tree) Lookup(ctx context.Context, dir *Inode, name string) (c *Inode, a Attr, err error) {
	err = t.locked(ctx, func() (err error) {
		if c, err = t.lookupLocked(ctx, dir, name); err == nil {
			a = t.attrLocked(c)
		}
		return err
	})
	if err != nil {
		return nil, Attr{}, err
	}
	return c, a, nil
}

// DirEntry is one entry of a directory listing: its name, inode number
// and type (the other fields of Attr are zero).
type DirEntry struct {
	Name string
	Attr Attr
}

// ReadDir lists a directory, sorted by name.
func (t *Tree) ReadDir(ctx context.Context, dir *Inode) ([]DirEntry, error) {
	out, err := t.readDir(ctx, dir)
	if err == nil {
		t.accessed(dir)
	}
	return out, err
}

func (t *Tree) readDir(ctx context.Context, dir *Inode) (out []DirEntry, err error) {
	var next []prefetchJob
	defer func() {
		if err == nil {
			t.listed(dir)
			t.prefetch(next)
		}
	}()
	err = t.locked(ctx, func() error {
		if err := t.loadDir(ctx, dir); err != nil {
			return err
		}
		entries := sortedChildren(dir)
		next = aheadOf(entries, prefetchLevels)
		out = make([]DirEntry, 0, len(entries))
		for _, e := range entries {
			// What readdir returns: the inode number and type. (The
			// rest would cost a stat of every queued file's staging
			// copy.)
			out = append(out, DirEntry{Name: e.name, Attr: Attr{Ino: e.in.Ino, Type: e.in.meta.Type}})
		}
		return nil
	})
	return out, err
}

// NewEntry describes an entry to create.
type NewEntry struct {
	Type     repo.NodeType
	Mode     uint32
	UID, GID uint32
	Rdev     uint64
	Target   []byte
}

// maxName is the longest name component, in bytes (NAME_MAX, as ext4).
const maxName = 255

// nameErr is the error of an operation on name that no directory can
// hold: ENAMETOOLONG over maxName bytes (every operation says so, as ext4
// does), EINVAL for the other names that are not names (empty, ., .., a
// slash or a NUL); nil for a valid name.
func nameErr(name string) error {
	switch {
	case len(name) > maxName:
		return syscall.ENAMETOOLONG
	case !validName(name):
		return syscall.EINVAL
	}
	return nil
}

func validName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > maxName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return false
		}
	}
	return true
}

// Create makes a new entry in dir. It fails with EEXIST if name exists.
func (t *Tree) Create(ctx context.Context, dir *Inode, name string, e NewEntry) (in *Inode, a Attr, err error) {
	if t.opts.ReadOnly {
		return nil, Attr{}, syscall.EROFS
	}
	if err := nameErr(name); err != nil {
		return nil, Attr{}, err
	}
	defer t.changed()
	err = t.locked(ctx, func() (err error) {
		in, a, err = t.createLocked(ctx, dir, name, e)
		return err
	})
	return in, a, err
}

func (t *Tree) createLocked(ctx context.Context, dir *Inode, name string, e NewEntry) (*Inode, Attr, error) {
	if err := t.loadDir(ctx, dir); err != nil {
		return nil, Attr{}, err
	}
	if dir.parent == nil && dir != t.root {
		return nil, Attr{}, syscall.ENOENT
	}
	if dir.children[name] != nil {
		return nil, Attr{}, syscall.EEXIST
	}
	e.Mode &= 07777
	inheritSetgid(dir, &e)
	now := time.Now().UnixNano()
	xattrs, mode := inheritACL(dir, e.Type, e.Mode)
	in := &Inode{Ino: t.newIno(), meta: repo.Node{
		Type: e.Type, Mode: mode, UID: e.UID, GID: e.GID, Rdev: e.Rdev,
		Target: e.Target, MtimeNs: now, AtimeNs: now, CtimeNs: now, Xattrs: xattrs,
	}}
	if e.Type == repo.NodeSymlink {
		in.meta.Size = uint64(len(e.Target))
	}
	if e.Type == repo.NodeDir {
		in.children = map[string]*Inode{}
	}
	m := in.meta
	if err := t.record(record{Op: opCreate, Path: t.namePath(dir, name), Meta: &m, Time: now}); err != nil {
		return nil, Attr{}, err
	}
	t.addNameLocked(in, dir, name)
	dir.entriesChanged(now)
	return in, t.attrLocked(in), nil
}

// inheritSetgid applies a setgid directory's rule to an entry made in it,
// as ext4 (inode_init_owner) does: the entry gets the directory's group,
// and a subdirectory the setgid bit too. (The kernel has already taken
// setgid off a new file whose creator is not in its group.)
func inheritSetgid(dir *Inode, e *NewEntry) {
	if dir.meta.Mode&syscall.S_ISGID == 0 {
		return
	}
	e.GID = dir.meta.GID
	if e.Type == repo.NodeDir {
		e.Mode |= syscall.S_ISGID
	}
}

// Unlink removes a non-directory entry; Rmdir an empty directory.
func (t *Tree) Unlink(ctx context.Context, dir *Inode, name string) error {
	return t.remove(ctx, dir, name, false)
}

// Rmdir removes an empty directory.
func (t *Tree) Rmdir(ctx context.Context, dir *Inode, name string) error {
	return t.remove(ctx, dir, name, true)
}

func (t *Tree) remove(ctx context.Context, dir *Inode, name string, isDir bool) error {
	if t.opts.ReadOnly {
		return syscall.EROFS
	}
	defer t.changed()
	return t.locked(ctx, func() error { return t.removeLocked(ctx, dir, name, isDir) })
}

func (t *Tree) removeLocked(ctx context.Context, dir *Inode, name string, isDir bool) error {
	c, err := t.lookupLocked(ctx, dir, name)
	if err != nil {
		return err
	}
	if isDir {
		if c.meta.Type != repo.NodeDir {
			return syscall.ENOTDIR
		}
		if err := t.loadDir(ctx, c); err != nil {
			return err
		}
		if len(c.children) > 0 {
			return syscall.ENOTEMPTY
		}
	} else if c.meta.Type == repo.NodeDir {
		return syscall.EISDIR
	}
	now := time.Now().UnixNano()
	if err := t.record(record{Op: opUnlink, Path: t.namePath(dir, name), Time: now}); err != nil {
		return err
	}
	t.removeNameLocked(dir, name)
	c.changed(now)
	dir.entriesChanged(now)
	return nil
}

// Rename flags, as renameat2(2).
const (
	RenameNoReplace = 1
	RenameExchange  = 2
)

// Rename moves olddir/oldname to newdir/newname, replacing what is there
// (a file by a file, a directory by an empty directory). With
// RenameNoReplace it fails with EEXIST if newname exists; with
// RenameExchange it swaps the two entries, which must both exist. Any
// other flag (RENAME_WHITEOUT included), or both together, is EINVAL, as
// ext4 answers: a flag is never ignored.
func (t *Tree) Rename(ctx context.Context, olddir *Inode, oldname string, newdir *Inode, newname string, flags uint32) error {
	if flags&^(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return syscall.EINVAL
	}
	if t.opts.ReadOnly {
		return syscall.EROFS
	}
	if err := nameErr(newname); err != nil {
		return err
	}
	defer t.changed()
	return t.locked(ctx, func() error { return t.renameLocked(ctx, olddir, oldname, newdir, newname, flags) })
}

func (t *Tree) renameLocked(ctx context.Context, olddir *Inode, oldname string, newdir *Inode, newname string, flags uint32) error {
	c, err := t.lookupLocked(ctx, olddir, oldname)
	if err != nil {
		return err
	}
	if err := t.loadDir(ctx, newdir); err != nil {
		return err
	}
	// A directory may not move below itself.
	if below(newdir, c) {
		return syscall.EINVAL
	}
	old := newdir.children[newname]
	if flags&RenameExchange != 0 {
		return t.exchangeLocked(olddir, oldname, newdir, newname)
	}
	if old == c {
		return nil
	}
	if old != nil {
		if flags&RenameNoReplace != 0 {
			return syscall.EEXIST
		}
		if err := t.replaceable(ctx, c, old); err != nil {
			return err
		}
	}
	now := time.Now().UnixNano()
	if err := t.record(record{Op: opRename, Path: t.namePath(olddir, oldname), To: t.namePath(newdir, newname), Time: now}); err != nil {
		return err
	}
	if old != nil {
		t.removeNameLocked(newdir, newname)
		old.changed(now)
	}
	t.moveNameLocked(c, olddir, oldname, newdir, newname)
	c.changed(now)
	olddir.entriesChanged(now)
	newdir.entriesChanged(now)
	return nil
}

// below reports whether dir is in (or is) the directory top.
func below(dir, top *Inode) bool {
	for p := dir; p != nil; p = p.parent {
		if p == top {
			return true
		}
	}
	return false
}

// replaceable reports why c may not replace old (nil if it may): a
// directory replaces only an empty directory, a file only a non-directory.
func (t *Tree) replaceable(ctx context.Context, c, old *Inode) error {
	switch {
	case c.meta.Type == repo.NodeDir && old.meta.Type != repo.NodeDir:
		return syscall.ENOTDIR
	case c.meta.Type != repo.NodeDir && old.meta.Type == repo.NodeDir:
		return syscall.EISDIR
	case old.meta.Type == repo.NodeDir:
		if err := t.loadDir(ctx, old); err != nil {
			return err
		}
		if len(old.children) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	return nil
}

// exchangeLocked swaps the entries nameA of dirA and nameB of dirB, of
// any types, as RENAME_EXCHANGE: ENOENT if the second does not exist,
// EINVAL if either would end up below itself (the first was checked by
// Rename). The swap is journaled as one exchange record.
func (t *Tree) exchangeLocked(dirA *Inode, nameA string, dirB *Inode, nameB string) error {
	a, b := dirA.children[nameA], dirB.children[nameB]
	if b == nil {
		return syscall.ENOENT
	}
	if a == b {
		return nil
	}
	if below(dirA, b) {
		return syscall.EINVAL
	}
	now := time.Now().UnixNano()
	if err := t.record(record{Op: opExchange, Path: t.namePath(dirA, nameA), To: t.namePath(dirB, nameB), Time: now}); err != nil {
		return err
	}
	t.swapNamesLocked(dirA, nameA, dirB, nameB)
	exchanged(dirA, dirB, a, b, now)
	return nil
}

// exchanged marks the change of two swapped entries a and b and of their
// directories at now.
func exchanged(dirA, dirB, a, b *Inode, now int64) {
	a.changed(now)
	b.changed(now)
	dirA.entriesChanged(now)
	dirB.entriesChanged(now)
}

// SetAttr changes what is not nil.
type SetAttr struct {
	Mode     *uint32
	UID, GID *uint32
	Size     *uint64
	AtimeNs  *int64
	MtimeNs  *int64
}

// applyTo sets in m what s changes.
func (s SetAttr) applyTo(m *repo.Node) {
	if s.Mode != nil {
		m.Mode = *s.Mode & 07777
		m.Xattrs = chmodACL(m.Xattrs, m.Mode)
	}
	if s.UID != nil {
		m.UID = *s.UID
	}
	if s.GID != nil {
		m.GID = *s.GID
	}
	if s.Size != nil {
		m.Size = *s.Size
	}
	if s.AtimeNs != nil {
		m.AtimeNs = *s.AtimeNs
	}
	if s.MtimeNs != nil {
		m.MtimeNs = *s.MtimeNs
	}
}

// SetAttr changes attributes; a size change truncates or extends a file.
func (t *Tree) SetAttr(in *Inode, s SetAttr) (Attr, error) {
	if t.opts.ReadOnly {
		return Attr{}, syscall.EROFS
	}
	if s.Size != nil {
		if in.meta.Type != repo.NodeFile {
			return Attr{}, syscall.EISDIR
		}
		if err := t.stageAndLock(in, *s.Size == 0); err != nil {
			return Attr{}, err
		}
	} else if err := t.lockAttached(in); err != nil {
		return Attr{}, err
	}
	defer t.changed()
	defer t.mu.Unlock()
	// The new attributes are journaled before anything changes: if the
	// journal cannot take them (a full disk), the call fails and the file
	// stays as it was.
	m := in.meta
	written, baseLimit := in.written, in.baseLimit
	// Every setattr is a change of status: ctime is now, whatever times
	// the call sets (utimensat(2) sets atime and mtime, never ctime).
	now := time.Now().UnixNano()
	m.CtimeNs = now
	if s.Size != nil {
		if in.overlay && *s.Size < in.meta.Size {
			written, baseLimit = in.written.clip(*s.Size), min(in.baseLimit, *s.Size)
		}
		if s.MtimeNs == nil {
			s.MtimeNs = &now
		}
	}
	s.applyTo(&m)
	var recs []record
	if in.parent != nil || in == t.root {
		recs = append(recs, attrRecord(t.pathOf(in), &m))
		if s.Size != nil && in.overlay && in.parent != nil {
			rec := t.stageRecordLocked(in)
			rec.Overlay.Written, rec.Overlay.BaseLimit = written, baseLimit
			recs = append(recs, rec)
		}
	}
	var f *stagingFile
	if s.Size != nil {
		var err error
		if f, err = t.openStaging(in.staging, false); err != nil {
			return Attr{}, err
		}
		defer f.Close()
	}
	if err := t.record(recs...); err != nil {
		return Attr{}, err
	}
	if s.Size != nil {
		if err := t.truncInlineLocked(in, f, *s.Size); err != nil {
			return Attr{}, err
		}
		if err := f.Truncate(int64(*s.Size)); err != nil {
			return Attr{}, err
		}
		if in.stream != nil {
			in.stream.stop(true)
		}
		if in.opens == 0 && in.file != nil {
			in.file.Close()
			in.file = nil
		}
		in.written, in.baseLimit = written, baseLimit
		in.gen++
	}
	in.meta = m
	return t.attrLocked(in), nil
}

func (t *Tree) recordAttrLocked(in *Inode) error {
	if in.parent == nil && in != t.root {
		return nil // unlinked: nothing to remember
	}
	return t.record(attrRecord(t.pathOf(in), &in.meta))
}

// attrRecord is the setattr record of path with the attributes of n.
func attrRecord(path string, n *repo.Node) record {
	m := repo.Node{Mode: n.Mode, UID: n.UID, GID: n.GID, MtimeNs: n.MtimeNs, AtimeNs: n.AtimeNs, CtimeNs: n.CtimeNs, Size: n.Size}
	return record{Op: opSetattr, Path: []byte(path), Meta: &m}
}

// stagedHook, when set (by tests), runs between staging a file and taking
// t.mu in stageAndLock.
var stagedHook func()

// stageAndLock stages in and returns with t.mu held and in staged: a
// commit that stored the file and let go of its staging copy (the file
// was clean) in between gets it staged again. (A writer opened then had
// no staging copy: every write failed with EIO, and a truncation failed.)
func (t *Tree) stageAndLock(in *Inode, empty bool) error {
	for {
		if err := t.stage(in, empty); err != nil {
			return err
		}
		if stagedHook != nil {
			stagedHook()
		}
		t.mu.Lock()
		if in.staging != "" {
			return nil
		}
		t.mu.Unlock()
	}
}

// stage gives a file a staging file: an empty one when empty is set (a
// truncation to zero), otherwise a sparse one of the file's size that
// overlays its stored content (nothing is downloaded).
//
// Either way it returns once the kernel cache fills of the stored content
// under way are done (Handle.FillCache): none starts once it is staged.
func (t *Tree) stage(in *Inode, empty bool) (err error) {
	in.matMu.Lock()
	defer in.matMu.Unlock()
	defer func() {
		if err == nil {
			t.mu.Lock()
			for in.fills > 0 {
				t.fillsDone.Wait()
			}
			t.mu.Unlock()
		}
	}()
	if err := t.lockAttached(in); err != nil {
		return err
	}
	if in.staging != "" {
		t.mu.Unlock()
		return nil
	}
	node := in.meta
	t.mu.Unlock()

	id := newStagingID()
	overlay := !empty && node.Size > 0
	var f *stagingFile
	if node.Size == 0 {
		f, err = t.createInline(id) // in memory, then a journal record
	} else {
		f, err = t.openStaging(id, true)
	}
	if err != nil {
		return err
	}
	if overlay {
		if err := f.Truncate(int64(node.Size)); err != nil {
			f.Close()
			os.Remove(t.stagingPath(id))
			return err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if detachedBelow(in) != nil {
		// Its folder was unloaded meanwhile: stageAndLock tries again.
		f.Close()
		os.Remove(t.stagingPath(id))
		return nil
	}
	// Recorded first: if the journal cannot take it (a full disk), the
	// file stays as it was (a truncating open must not empty it).
	if in.parent != nil {
		rec := record{Op: opStage, Path: []byte(t.pathOf(in)), Staging: id}
		if overlay {
			rec.Overlay = &overlayRecord{Base: node.Content, BaseSize: node.Size, BaseLimit: node.Size}
		}
		if err := t.record(rec); err != nil {
			f.Close()
			os.Remove(t.stagingPath(id))
			return err
		}
	}
	in.staging, in.file = id, f // closed again when no handle holds it
	if overlay {
		t.setOverlayLocked(in, node.Content, node.Size)
	} else {
		in.meta.Size = 0
	}
	in.gen++
	t.staged[in] = true
	return nil
}
