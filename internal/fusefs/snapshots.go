package fusefs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// The snapshots view is a read-only folder at the mount's root
// (Options.SnapshotsDir, .snapshots by default) that holds a folder per
// snapshot of the repository, named by its time (snapnames.go), each that
// snapshot's whole tree as it was, and latest, a symbolic link to the
// newest one's folder. It is no entry of the live tree: a commit never
// sees it, and the root's listing does not show it (as ZFS's hidden
// .zfs), so that rsync, tar, find or du walking the mount do not copy or
// count every snapshot; it is reached by its name. An entry of that name
// in the live root wins: the view is not shown then, and the log says so.
//
// Listing the view reads no tree: the folders come from the repository's
// list of snapshots, in memory, and a stat of a folder answers from its
// snapshot. A snapshot's tree is a read-only worktree.Tree, opened when
// something inside its folder is first asked for, whose folders load as
// they are browsed and whose files read through the repository's blob
// reader, as the live tree's do (a damaged blob is EIO); it is let go
// when the kernel forgets the folder (nothing under it held), so that a
// walk of every snapshot does not keep them all in memory. Inode
// numbers come from the live tree's worktree.Inos, so none is shared; a
// folder's and the view's stay while the mount runs, those inside a
// folder while the kernel holds it (opened again, its tree numbers its
// inodes anew). The list follows the repository: a
// snapshot committed appears, one forgotten disappears, and what a
// process still holds of one forgotten fails with ESTALE.

// snapshotsRecheck is how often an operation inside a snapshot's folder
// compares the list with the repository's, to find its snapshot
// forgotten.
const snapshotsRecheck = time.Second

// latestName is the link to the newest snapshot's folder.
const latestName = "latest"

// snapshotsView is the view's state, shared by its nodes.
type snapshotsView struct {
	fs        *FS
	r         *repo.Repository
	snaps     func() ([]*repo.Snapshot, error) // r.Snapshots
	newest    func() *repo.Snapshot            // r.Latest
	inos      *worktree.Inos
	name      string // of the folder at the root
	dirIno    uint64
	latestIno uint64
	warned    atomic.Bool // that a live entry hides the view

	refreshMu sync.Mutex // one refresh at a time, so that none applies an older list
	mu        sync.Mutex
	ids       []crypt.ID           // the snapshots the folders were made from, in order
	folders   []*snapView          // in the same order
	byName    map[string]*snapView // the folders by name
	byID      map[crypt.ID]*snapView
	retired   map[string]bool // the names of folders gone: never another's (mountNames)
	latest    *snapView       // nil when there is no snapshot
	checked   time.Time       // when ids was last compared with the repository's
	gen       uint64          // of the last rebuild
}

// snapView is a snapshot's folder in the view.
type snapView struct {
	snap *repo.Snapshot
	ino  uint64 // its root's inode number
	gone atomic.Bool
	v    *snapshotsView

	name string // guarded by v.mu
	gen  uint64 // the rebuild that last saw it; guarded by v.mu

	mu    sync.Mutex
	trees map[*viewTree]*worktree.Tree // open, by the folder's inode that opened each
}

// viewTree is a snapshot's tree as one inode of its folder holds it (the
// inodes under it keep the tree they came from). It opens when something
// inside the folder is first asked for, and is let go when the kernel
// forgets the folder's inode (which it does only once it holds nothing
// under it: no inode, no open file), so that browsing every snapshot
// (find, du) keeps in memory only what the kernel still holds; the
// folder's next use opens it again.
type viewTree struct {
	sv *snapView
	mu sync.Mutex
	t  *worktree.Tree
}

func newSnapshotsView(f *FS, name string) *snapshotsView {
	r := f.tree.Repository()
	// The summaries of the snapshots: the first listing opens the ones
	// the open did not (or takes them from the cache directory).
	list := func() ([]*repo.Snapshot, error) { return r.Snapshots(context.Background()) }
	v := makeSnapshotsView(name, f.tree.Inos(), list, r.Latest)
	v.fs, v.r = f, r
	return v
}

// makeSnapshotsView returns a view of the snapshots that snaps lists, the
// newest of which is newest.
func makeSnapshotsView(name string, inos *worktree.Inos, snaps func() ([]*repo.Snapshot, error), newest func() *repo.Snapshot) *snapshotsView {
	return &snapshotsView{snaps: snaps, newest: newest, inos: inos, name: name, dirIno: inos.Next(), latestIno: inos.Next(),
		byName: map[string]*snapView{}, byID: map[crypt.ID]*snapView{}, retired: map[string]bool{}}
}

// refresh brings the folders up to date with the repository's snapshots:
// O(n) in memory when nothing changed, a rebuild otherwise. When the
// snapshots cannot be listed (their summaries not read yet, the remote
// down) the folders stay as they were, and it returns EIO.
func (v *snapshotsView) refresh() syscall.Errno {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	snaps, err := v.snaps()
	if err != nil {
		if v.fs != nil {
			return v.fs.errno(context.Background(), "list the snapshots", err)
		}
		return syscall.EIO
	}
	latest := v.newest()
	var gone []*snapView
	v.mu.Lock()
	v.checked = time.Now()
	if !v.sameLocked(snaps) {
		gone = v.rebuildLocked(snaps)
	}
	v.latest = nil
	if latest != nil {
		v.latest = v.byID[latest.ID]
	}
	if v.latest == nil && len(v.folders) > 0 { // a commit between the two calls
		v.latest = v.folders[len(v.folders)-1]
	}
	v.mu.Unlock()
	for _, sv := range gone {
		sv.forget()
	}
	return 0
}

// refreshIfOld refreshes when the list was last compared more than
// snapshotsRecheck ago.
func (v *snapshotsView) refreshIfOld() syscall.Errno {
	v.mu.Lock()
	old := time.Since(v.checked) > snapshotsRecheck
	v.mu.Unlock()
	if old {
		return v.refresh()
	}
	return 0
}

func (v *snapshotsView) sameLocked(snaps []*repo.Snapshot) bool {
	if len(snaps) != len(v.ids) {
		return false
	}
	for i, s := range snaps {
		if s.ID != v.ids[i] {
			return false
		}
	}
	return true
}

// rebuildLocked makes the folders of snaps: a snapshot shown before keeps
// its name and inode numbers; it returns those no longer there, for the
// caller to forget.
func (v *snapshotsView) rebuildLocked(snaps []*repo.Snapshot) (gone []*snapView) {
	v.gen++
	kept := make(map[crypt.ID]string, len(v.byID))
	for id, sv := range v.byID {
		kept[id] = sv.name
	}
	names := mountNames(snaps, kept, v.retired)
	v.ids = make([]crypt.ID, len(snaps))
	v.folders = make([]*snapView, len(snaps))
	v.byName = make(map[string]*snapView, len(snaps))
	for i, s := range snaps {
		sv := v.byID[s.ID]
		if sv == nil {
			sv = &snapView{snap: s, ino: v.inos.Next(), v: v, trees: map[*viewTree]*worktree.Tree{}}
			v.byID[s.ID] = sv
		}
		sv.name, sv.gen = names[i], v.gen
		v.ids[i], v.folders[i], v.byName[names[i]] = s.ID, sv, sv
	}
	for id, sv := range v.byID {
		if sv.gen != v.gen {
			delete(v.byID, id)
			v.retired[sv.name] = true
			sv.gone.Store(true)
			gone = append(gone, sv)
		}
	}
	return gone
}

// forget marks a snapshot's folder gone and ends its trees' background
// work; what still holds it fails with ESTALE.
func (sv *snapView) forget() {
	sv.gone.Store(true)
	sv.mu.Lock()
	vts := make([]*viewTree, 0, len(sv.trees))
	for vt := range sv.trees {
		vts = append(vts, vt)
	}
	sv.mu.Unlock()
	for _, vt := range vts {
		vt.close()
	}
}

// check is the errno of an operation inside the snapshot's folder: ESTALE
// once the snapshot is no longer in the repository.
func (sv *snapView) check() syscall.Errno {
	if e := sv.v.refreshIfOld(); e != 0 {
		return e
	}
	if sv.gone.Load() {
		return syscall.ESTALE
	}
	return 0
}

// open returns the snapshot's tree, opening it the first time something
// inside the folder is asked for (a stat of the folder needs none:
// rootAttr): that reads nothing from the remote yet. It is ESTALE once the
// snapshot is forgotten.
func (vt *viewTree) open(ctx context.Context) (*worktree.Tree, syscall.Errno) {
	sv := vt.sv
	if errno := sv.check(); errno != 0 {
		return nil, errno
	}
	vt.mu.Lock()
	defer vt.mu.Unlock()
	if vt.t != nil {
		return vt.t, 0
	}
	if sv.gone.Load() {
		return nil, syscall.ESTALE
	}
	// A fork snapshot no writer has recorded: its blobs are listed by its
	// own index objects only.
	if err := sv.v.r.LoadIndexesOf(ctx, sv.snap); err != nil {
		return nil, sv.v.fs.errno(ctx, "open snapshot", err)
	}
	t, err := worktree.Open(ctx, sv.v.r, worktree.Options{ReadOnly: true, Snapshot: sv.snap, Inos: sv.v.inos, RootIno: sv.ino,
		Log: sv.v.fs.opts.Log, Atime: worktree.Noatime})
	if err != nil {
		return nil, sv.v.fs.errno(ctx, "open snapshot", err)
	}
	sv.mu.Lock()
	gone := sv.gone.Load() // forget sets it before it looks at sv.trees
	if !gone {
		sv.trees[vt] = t
	}
	sv.mu.Unlock()
	if gone {
		t.Close()
		return nil, syscall.ESTALE
	}
	vt.t = t
	return t, 0
}

// close ends the tree's background work and lets it go (a use of the
// folder after that opens it again).
func (vt *viewTree) close() {
	vt.mu.Lock()
	t := vt.t
	vt.t = nil
	vt.mu.Unlock()
	if t != nil {
		t.Close()
	}
	vt.sv.mu.Lock()
	delete(vt.sv.trees, vt)
	vt.sv.mu.Unlock()
}

// rootAttr returns the attributes of the snapshot's folder: its tree's
// root while a tree of it is open, the snapshot's own otherwise.
func (sv *snapView) rootAttr() (worktree.Attr, syscall.Errno) {
	if errno := sv.check(); errno != 0 {
		return worktree.Attr{}, errno
	}
	var t *worktree.Tree
	sv.mu.Lock()
	for _, t = range sv.trees {
		break
	}
	sv.mu.Unlock()
	if t != nil {
		return t.Attr(t.Root()), 0
	}
	return worktree.SnapshotRootAttr(sv.snap, sv.ino), 0
}

// close ends the background work of the snapshots' trees opened.
func (v *snapshotsView) close() {
	v.mu.Lock()
	folders := v.byID
	v.byID = map[crypt.ID]*snapView{}
	v.mu.Unlock()
	for _, sv := range folders {
		sv.forget()
	}
}

// hides reports, at a lookup of the view's name in the live root, that
// the live root has an entry of that name; the first time, it logs which
// flag shows the view.
func (v *snapshotsView) hides(liveErr error) bool {
	if liveErr != nil {
		return false
	}
	if !v.warned.Swap(true) {
		v.fs.opts.Log.Warn("the root holds an entry of the snapshots view's name: it is shown, and the view is not; mount with --snapshots-dir NAME to see the snapshots under another name",
			"name", v.name)
	}
	return true
}

// times returns the view folder's times: the newest snapshot's, or the
// mount's start without one.
func (v *snapshotsView) timeLocked() time.Time {
	if v.latest != nil {
		return v.latest.snap.Time
	}
	return v.fs.started
}

// find returns the folder of that name, and the newest, as the list
// was when last compared (at most snapshotsRecheck ago).
func (v *snapshotsView) find(name string) (sv, latest *snapView) {
	v.refreshIfOld()
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.byName[name], v.latest
}

// dirNode is the view's folder.
type dirNode struct {
	gofs.Inode
	v *snapshotsView
}

var (
	_ gofs.NodeLookuper      = (*dirNode)(nil)
	_ gofs.NodeGetattrer     = (*dirNode)(nil)
	_ gofs.NodeReaddirer     = (*dirNode)(nil)
	_ gofs.NodeSetattrer     = (*dirNode)(nil)
	_ gofs.NodeMkdirer       = (*dirNode)(nil)
	_ gofs.NodeMknoder       = (*dirNode)(nil)
	_ gofs.NodeCreater       = (*dirNode)(nil)
	_ gofs.NodeSymlinker     = (*dirNode)(nil)
	_ gofs.NodeUnlinker      = (*dirNode)(nil)
	_ gofs.NodeRmdirer       = (*dirNode)(nil)
	_ gofs.NodeRenamer       = (*dirNode)(nil)
	_ gofs.NodeLinker        = (*dirNode)(nil)
	_ gofs.NodeGetxattrer    = (*dirNode)(nil)
	_ gofs.NodeListxattrer   = (*dirNode)(nil)
	_ gofs.NodeSetxattrer    = (*dirNode)(nil)
	_ gofs.NodeRemovexattrer = (*dirNode)(nil)
	_ gofs.NodeStatfser      = (*dirNode)(nil)
	_ gofs.NodeReadlinker    = (*latestNode)(nil)
	_ gofs.NodeGetattrer     = (*latestNode)(nil)
	_ gofs.NodeSetattrer     = (*latestNode)(nil)
	_ gofs.NodeGetxattrer    = (*latestNode)(nil)
	_ gofs.NodeListxattrer   = (*latestNode)(nil)
	_ gofs.NodeSetxattrer    = (*latestNode)(nil)
	_ gofs.NodeRemovexattrer = (*latestNode)(nil)
)

// dirInode returns the view's folder as the entry of the live root.
func (v *snapshotsView) dirInode(ctx context.Context, root *node, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if e := v.refreshIfOld(); e != 0 {
		return nil, e
	}
	v.fillDir(&out.Attr)
	return root.NewInode(ctx, &dirNode{v: v}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: v.dirIno}), 0
}

// fillDir gives the view's folder its attributes: read-only for all,
// owned by root, a link for each snapshot's folder.
func (v *snapshotsView) fillDir(out *fuse.Attr) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out.Ino = v.dirIno
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = uint32(2 + len(v.folders))
	out.Blksize = 4096
	t := v.timeLocked()
	out.SetTimes(&t, &t, &t)
}

// Getattr returns the folder's attributes.
func (d *dirNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if e := d.v.refreshIfOld(); e != 0 {
		return e
	}
	d.v.fillDir(&out.Attr)
	return 0
}

// Readdir lists latest and a folder per snapshot, oldest first; it reads
// no tree.
func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	v := d.v
	if e := v.refresh(); e != 0 {
		return nil, e
	}
	return gofs.NewListDirStream(v.entries(v.fs.tree.Attr(v.fs.tree.Root()).Ino)), 0
}

// entries returns the listing of the view's folder, whose parent has
// inode number up.
func (v *snapshotsView) entries(up uint64) []fuse.DirEntry {
	v.mu.Lock()
	defer v.mu.Unlock()
	list := make([]fuse.DirEntry, 0, len(v.folders)+3)
	list = append(list, fuse.DirEntry{Name: ".", Ino: v.dirIno, Mode: syscall.S_IFDIR},
		fuse.DirEntry{Name: "..", Ino: up, Mode: syscall.S_IFDIR})
	if v.latest != nil {
		list = append(list, fuse.DirEntry{Name: latestName, Ino: v.latestIno, Mode: syscall.S_IFLNK})
	}
	for _, sv := range v.folders {
		list = append(list, fuse.DirEntry{Name: sv.name, Ino: sv.ino, Mode: syscall.S_IFDIR})
	}
	return list
}

// Lookup finds latest or a snapshot's folder; the folder's tree opens
// here, reading nothing yet.
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	v := d.v
	sv, latest := v.find(name)
	if sv == nil && name != latestName {
		if e := v.refresh(); e != 0 { // a snapshot just committed
			return nil, e
		}
		sv, latest = v.find(name)
	}
	if name == latestName && latest != nil {
		l := &latestNode{v: v}
		l.fill(&out.Attr)
		return d.NewInode(ctx, l, gofs.StableAttr{Mode: syscall.S_IFLNK, Ino: v.latestIno}), 0
	}
	if sv == nil {
		return nil, syscall.ENOENT
	}
	a, errno := sv.rootAttr()
	if errno != 0 {
		return nil, errno
	}
	fillAttr(a, &out.Attr)
	if a.NlinkUnknown() {
		out.SetAttrTimeout(unknownAttrTimeout)
	}
	// A folder the kernel still holds keeps its node (and tree): go-fuse
	// gives the inode number's node, not this new one.
	return d.NewInode(ctx, &node{fs: v.fs, view: sv, vt: &viewTree{sv: sv}}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: sv.ino}), 0
}

// Statfs is the mount's.
func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if d.v.fs.opts.Statfs != nil {
		d.v.fs.opts.Statfs(out)
	}
	out.NameLen = 255
	return 0
}

// The view changes only with the repository: every change through it is
// EROFS.

// Setattr is EROFS.
func (d *dirNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

// Mkdir is EROFS.
func (d *dirNode) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

// Mknod is EROFS.
func (d *dirNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

// Create is EROFS.
func (d *dirNode) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

// Symlink is EROFS.
func (d *dirNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

// Unlink is EROFS.
func (d *dirNode) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }

// Rmdir is EROFS.
func (d *dirNode) Rmdir(context.Context, string) syscall.Errno { return syscall.EROFS }

// Rename is EROFS.
func (d *dirNode) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}

// Link is EROFS.
func (d *dirNode) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

// Getxattr: the folder has no xattrs.
func (d *dirNode) Getxattr(context.Context, string, []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENODATA
}

// Listxattr: none.
func (d *dirNode) Listxattr(context.Context, []byte) (uint32, syscall.Errno) { return 0, 0 }

// Setxattr is EROFS.
func (d *dirNode) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}

// Removexattr is EROFS.
func (d *dirNode) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

// latestNode is the link to the newest snapshot's folder.
type latestNode struct {
	gofs.Inode
	v *snapshotsView
}

// target returns the newest snapshot's folder name, or ENOENT without a
// snapshot.
func (l *latestNode) target() (string, syscall.Errno) {
	if e := l.v.refresh(); e != 0 {
		return "", e
	}
	l.v.mu.Lock()
	defer l.v.mu.Unlock()
	if l.v.latest == nil {
		return "", syscall.ENOENT
	}
	return l.v.latest.name, 0
}

// fill gives the link its attributes.
func (l *latestNode) fill(out *fuse.Attr) {
	target, _ := l.target()
	l.v.mu.Lock()
	t := l.v.timeLocked()
	l.v.mu.Unlock()
	out.Ino = l.v.latestIno
	out.Mode = syscall.S_IFLNK | 0o777
	out.Size = uint64(len(target))
	out.Nlink = 1
	out.Blksize = 4096
	out.SetTimes(&t, &t, &t)
}

// Readlink returns the newest snapshot's folder name.
func (l *latestNode) Readlink(context.Context) ([]byte, syscall.Errno) {
	target, errno := l.target()
	return []byte(target), errno
}

// Getattr returns the link's attributes.
func (l *latestNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	l.fill(&out.Attr)
	return 0
}

// Setattr is EROFS.
func (l *latestNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

// Getxattr: the link has no xattrs.
func (l *latestNode) Getxattr(context.Context, string, []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENODATA
}

// Listxattr: none.
func (l *latestNode) Listxattr(context.Context, []byte) (uint32, syscall.Errno) { return 0, 0 }

// Setxattr is EROFS.
func (l *latestNode) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}

// Removexattr is EROFS.
func (l *latestNode) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }
