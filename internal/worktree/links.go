package worktree

import (
	"context"
	"slices"
	"syscall"
	"time"

	"github.com/sealfs/sealfs/repo"
)

// Names and hard links. A directory's children map names to inodes; an
// inode that is not a directory may have several names (hard links). Its
// parent and name are one of them, used for its path in the journal; its
// links are the others. When the name that is its path goes, another of
// its names takes its place; when the last one goes, the inode leaves the
// namespace (parent nil).
//
// A snapshot marks the names of one inode with one link group (docs/SPEC.md
// §8). To count every name of a hard-linked file (its nlink) and to number
// link groups at commit without clashing with a directory never loaded,
// the whole tree is loaded as soon as a link group, or a link, is met.

// dentry is a name of an inode: the entry name of directory dir.
type dentry struct {
	dir  *Inode
	name string
}

// nlinkLocked is in's link count: its names, or for a directory 2 + its
// subdirectories (1, "not known", for a directory not loaded yet, as
// find(1) reads it), or 0 once unlinked. It never loads a directory:
// stat must not wait on the remote (an `ls -l` of a folder would fetch
// every subfolder's tree, a hung remote would hang every stat, and the
// kernel's own GETATTR of the root at mount would wait on it too).
func (t *Tree) nlinkLocked(in *Inode) uint32 {
	switch {
	case in.parent == nil && in != t.root:
		return 0
	case in.meta.Type != repo.NodeDir:
		return 1 + uint32(len(in.links))
	case in.children == nil:
		return 1
	}
	n := uint32(2)
	for _, c := range in.children {
		if c.meta.Type == repo.NodeDir {
			n++
		}
	}
	return n
}

// addNameLocked gives in the entry name of dir, which must be free.
func (t *Tree) addNameLocked(in, dir *Inode, name string) {
	dir.children[name] = in
	if in.parent == nil {
		in.parent, in.name = dir, name
		return
	}
	in.links = append(in.links, dentry{dir, name})
	t.linked[in] = true
}

// removeNameLocked removes the entry name of dir and returns its inode
// (nil if there is none); the inode leaves the namespace when that was its
// last name.
func (t *Tree) removeNameLocked(dir *Inode, name string) *Inode {
	in := dir.children[name]
	if in == nil {
		return nil
	}
	delete(dir.children, name)
	switch {
	case in.parent != dir || in.name != name:
		in.links = slices.DeleteFunc(in.links, func(d dentry) bool { return d.dir == dir && d.name == name })
	case len(in.links) > 0:
		in.parent, in.name = in.links[0].dir, in.links[0].name
		in.links = in.links[1:]
	default:
		t.dropLocked(in)
		return in
	}
	if len(in.links) == 0 {
		in.links = nil
		delete(t.linked, in)
	}
	return in
}

// moveNameLocked moves in's entry oldname of olddir to newname of newdir,
// which must be free.
func (t *Tree) moveNameLocked(in, olddir *Inode, oldname string, newdir *Inode, newname string) {
	delete(olddir.children, oldname)
	newdir.children[newname] = in
	retarget(in, olddir, oldname, newdir, newname)
}

// swapNamesLocked swaps the inodes of the entries nameA of dirA and nameB
// of dirB, two different inodes.
func (t *Tree) swapNamesLocked(dirA *Inode, nameA string, dirB *Inode, nameB string) {
	a, b := dirA.children[nameA], dirB.children[nameB]
	retarget(a, dirA, nameA, dirB, nameB)
	retarget(b, dirB, nameB, dirA, nameA)
	dirA.children[nameA], dirB.children[nameB] = b, a
}

// retarget changes in's name oldname of olddir to newname of newdir (the
// directories' entries are the caller's).
func retarget(in, olddir *Inode, oldname string, newdir *Inode, newname string) {
	if in.parent == olddir && in.name == oldname {
		in.parent, in.name = newdir, newname
		return
	}
	for i, d := range in.links {
		if d.dir == olddir && d.name == oldname {
			in.links[i] = dentry{newdir, newname}
			return
		}
	}
}

// namePath is the path of the entry name of dir.
func (t *Tree) namePath(dir *Inode, name string) []byte {
	return []byte(joinPath(t.pathOf(dir), name))
}

// loadAllLocked loads every directory of the tree, so that every name of
// every hard-linked inode is known.
func (t *Tree) loadAllLocked(ctx context.Context) error {
	if t.loadingAll {
		return nil
	}
	if !t.fetchLocked && len(t.missingLocked()) > 0 {
		return &unloadedError{all: true}
	}
	t.loadingAll = true
	defer func() { t.loadingAll = false }()
	var walk func(dir *Inode) error
	walk = func(dir *Inode) error {
		if err := t.loadDir(ctx, dir); err != nil {
			return err
		}
		for _, e := range sortedChildren(dir) {
			if e.in.meta.Type == repo.NodeDir {
				if err := walk(e.in); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(t.root)
}

// hasLinkGroups reports whether a tree holds hard-linked entries.
func hasLinkGroups(tr *repo.Tree) bool {
	for _, n := range tr.Nodes {
		if n.Type != repo.NodeDir && n.LinkGroup != 0 {
			return true
		}
	}
	return false
}

// fillDirLocked makes the entries of a directory's tree its children; a
// name of a link group already loaded is a further name of its inode.
func (t *Tree) fillDirLocked(dir *Inode, tr *repo.Tree) {
	live := reattachable(dir)
	dir.children = make(map[string]*Inode, len(tr.Nodes))
	defer t.usedLocked(dir)
	for _, n := range tr.Nodes {
		name := string(n.Name)
		if c := live[name]; c != nil && n.LinkGroup == 0 && (sameNode(&c.meta, n) || heldDirChanged(c, n)) {
			// Held since the folder was unloaded: the same inode.
			// (One whose entry changed stays in live, to be dropped;
			// but a folder, which takes its new node.)
			delete(live, name)
			c.meta = *n
			c.meta.Name = nil
			c.parent = nil
			t.addNameLocked(c, dir, name)
			continue
		}
		linked := n.Type != repo.NodeDir && n.LinkGroup != 0
		if g := t.groups[n.LinkGroup]; linked && g != nil && g.parent != nil {
			t.addNameLocked(g, dir, name)
			continue
		}
		c := t.inodeOf(n)
		t.addNameLocked(c, dir, name)
		if linked {
			t.groups[n.LinkGroup] = c
		}
	}
	// Held, but changed by a rebase since: out of the namespace, as a
	// rebase leaves the inodes of a loaded folder whose entries it
	// replaces.
	for _, c := range live {
		t.dropLocked(c)
	}
}

// heldDirChanged reports whether c, a directory held while its folder was
// unloaded, is one whose stored node n a rebase changed (a change below
// it, or its attributes): it takes n, as a rebase's merge does for a
// folder not loaded (takeDir). Nothing of ours is lost: c was equal to
// its stored node when unloaded and no change lands on it detached.
// Dropping it would leave a working directory out of the namespace: what
// is made in it would be lost.
func heldDirChanged(c *Inode, n *repo.Node) bool {
	return c.meta.Type == repo.NodeDir && n.Type == repo.NodeDir && c.children == nil
}

// inodeOf is a new inode for a stored entry.
func (t *Tree) inodeOf(n *repo.Node) *Inode {
	c := &Inode{Ino: t.newIno(), meta: *n}
	c.meta.Name = nil
	if n.Type == repo.NodeFile {
		c.committed = &stored{Content: n.Content, Size: n.Size}
	}
	return c
}

// Link gives in, which is not a directory, the further name name in dir,
// as link(2): EPERM for a directory, EEXIST when the name is taken, ENOENT
// when in has no name left.
func (t *Tree) Link(ctx context.Context, in, dir *Inode, name string) (a Attr, err error) {
	if t.opts.ReadOnly {
		return Attr{}, syscall.EROFS
	}
	if err := nameErr(name); err != nil {
		return Attr{}, err
	}
	defer t.changed()
	err = t.locked(ctx, func() (err error) {
		if err := t.attachLocked(ctx, in); err != nil {
			return err
		}
		a, err = t.linkLocked(ctx, in, dir, name)
		return err
	})
	return a, err
}

func (t *Tree) linkLocked(ctx context.Context, in, dir *Inode, name string) (Attr, error) {
	if in.meta.Type == repo.NodeDir {
		return Attr{}, syscall.EPERM
	}
	if err := t.loadAllLocked(ctx); err != nil {
		return Attr{}, err
	}
	if err := t.loadDir(ctx, dir); err != nil {
		return Attr{}, err
	}
	if (dir.parent == nil && dir != t.root) || in.parent == nil {
		return Attr{}, syscall.ENOENT
	}
	if dir.children[name] != nil {
		return Attr{}, syscall.EEXIST
	}
	now := time.Now().UnixNano()
	if err := t.record(record{Op: opLink, Path: []byte(t.pathOf(in)), To: t.namePath(dir, name), Time: now}); err != nil {
		return Attr{}, err
	}
	t.addNameLocked(in, dir, name)
	in.changed(now)
	dir.entriesChanged(now)
	return t.attrLocked(in), nil
}

// applyLink gives the entry at Path the further name To, over whatever
// has that name.
func (t *Tree) applyLink(ctx context.Context, rec record) error {
	if err := t.loadAllLocked(ctx); err != nil {
		return err
	}
	in, err := t.resolve(ctx, rec.Path)
	if err != nil {
		return err
	}
	if in.meta.Type == repo.NodeDir {
		return syscall.EPERM
	}
	dir, name, err := t.resolveParent(ctx, rec.To)
	if err != nil {
		return err
	}
	if old := dir.children[name]; old == in {
		return nil
	} else if old != nil {
		t.removeNameLocked(dir, name)
	}
	t.addNameLocked(in, dir, name)
	if rec.Time != 0 {
		in.changed(rec.Time)
		dir.entriesChanged(rec.Time)
	}
	return nil
}

// linkRecords are the link records that give in, whose path was recorded
// first, its further names.
func (t *Tree) linkRecords(in *Inode) []record {
	var recs []record
	for _, d := range in.links {
		recs = append(recs, record{Op: opLink, Path: []byte(t.pathOf(in)), To: t.namePath(d.dir, d.name)})
	}
	return recs
}
