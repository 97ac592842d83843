// Package fusefs is the FUSE filesystem of a sealfs mount, on go-fuse/v2: it
// translates kernel requests into operations on a worktree.Tree and maps
// their errors to errno values. Everything else (chunking, encryption, the
// journal, commits) happens below it.
package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
)

// StatusXattr is the extended attribute of the mount's root that holds the
// daemon's status as JSON; `sealfs status` reads it.
const StatusXattr = "user.sealfs.status"

// Options configure the filesystem.
type Options struct {
	Log *slog.Logger
	// Status returns the status document served as StatusXattr.
	Status func() []byte
	// SyncRemote, when set, is called by fsync to commit to the remote and
	// wait for it (--sync=remote). Otherwise fsync makes data durable in
	// the local staging area and journal.
	SyncRemote func(ctx context.Context) error
	// Statfs fills in the free-space figures (those of the cache disk).
	Statfs func(out *fuse.StatfsOut)
	// SnapshotsDir is the name of the read-only folder at the root that
	// shows every snapshot (snapshots.go); empty: none.
	SnapshotsDir string
	// OnIntegrityError, if set, is called for every request that failed
	// because something did not verify (repo.ErrIntegrity): the daemon
	// counts them.
	OnIntegrityError func()
}

// DefaultSnapshotsDir is the snapshots view's name unless told otherwise.
const DefaultSnapshotsDir = ".snapshots"

// FS is the filesystem; Root returns its root node for gofs.Mount.
type FS struct {
	tree    *worktree.Tree
	opts    Options
	view    *snapshotsView // nil without Options.SnapshotsDir
	started time.Time
	root    *node // Root's node (the kernel's nodes hang below it)
	pruner  pruner
	mounted atomic.Bool // Mount served it: the kernel can be told to forget
}

// New returns a filesystem over t.
func New(t *worktree.Tree, o Options) *FS {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	f := &FS{tree: t, opts: o, started: time.Now()}
	f.root = &node{fs: f, wi: t.Root()}
	if o.SnapshotsDir != "" {
		f.view = newSnapshotsView(f, o.SnapshotsDir)
	}
	t.OnUnload(f.pruneUnloaded)
	return f
}

// Close ends the background work of the snapshots' trees opened in the
// snapshots view, once the mount is gone.
func (f *FS) Close() {
	f.tree.OnUnload(nil)
	f.stopPruning()
	if f.view != nil {
		f.view.close()
	}
}

// Root returns the root node.
func (f *FS) Root() gofs.InodeEmbedder { return f.root }

// Mount mounts f at dir with the given FUSE mount options. It sets what
// the nodes rely on: a mode of 0 stays 0 (go-fuse would show 0644 or 0755
// otherwise, and a file locked down with chmod 000 would look readable),
// the root has the tree's inode number, the kernel enforces POSIX ACLs
// (which it reads through Getxattr, docs/SPEC.md §8) and leaves the umask
// to the filesystem (see umaskFS), and it caches entries and attributes
// for a second.
func Mount(dir string, f *FS, mo fuse.MountOptions) (*fuse.Server, error) {
	mo.EnableAcl = true
	mo.ExtraCapabilities |= fuse.CAP_DONT_MASK
	one := time.Second
	raw := gofs.NewNodeFS(f.Root(), &gofs.Options{
		EntryTimeout: &one, AttrTimeout: &one, NegativeTimeout: &one, MountOptions: mo,
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: f.tree.Attr(f.tree.Root()).Ino},
	})
	srv, err := fuse.NewServer(umaskFS{raw}, dir, &mo)
	if err != nil {
		return nil, err
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		return nil, err
	}
	f.mounted.Store(true)
	return srv, nil
}

// node is one inode of the mount: of the live tree, or of a snapshot's
// tree in the snapshots view (snapshots.go).
type node struct {
	gofs.Inode
	fs   *FS
	view *snapView       // the snapshot, in the snapshots view; nil in the live tree
	vt   *viewTree       // view's tree as its folder's inode holds it; nil in the live tree
	t    *worktree.Tree  // the tree wi is of, in the snapshots view
	wi   *worktree.Inode // nil: the root of view's tree, not opened yet
}

var (
	_ gofs.NodeLookuper      = (*node)(nil)
	_ gofs.NodeGetattrer     = (*node)(nil)
	_ gofs.NodeSetattrer     = (*node)(nil)
	_ gofs.NodeReaddirer     = (*node)(nil)
	_ gofs.NodeMkdirer       = (*node)(nil)
	_ gofs.NodeMknoder       = (*node)(nil)
	_ gofs.NodeCreater       = (*node)(nil)
	_ gofs.NodeSymlinker     = (*node)(nil)
	_ gofs.NodeReadlinker    = (*node)(nil)
	_ gofs.NodeUnlinker      = (*node)(nil)
	_ gofs.NodeRmdirer       = (*node)(nil)
	_ gofs.NodeRenamer       = (*node)(nil)
	_ gofs.NodeLinker        = (*node)(nil)
	_ gofs.NodeOpener        = (*node)(nil)
	_ gofs.NodeFsyncer       = (*node)(nil)
	_ gofs.NodeStatfser      = (*node)(nil)
	_ gofs.NodeGetxattrer    = (*node)(nil)
	_ gofs.NodeListxattrer   = (*node)(nil)
	_ gofs.NodeSetxattrer    = (*node)(nil)
	_ gofs.NodeRemovexattrer = (*node)(nil)
	_ gofs.NodeOnForgetter   = (*node)(nil)
	_ gofs.FileReader        = (*handle)(nil)
	_ gofs.FileWriter        = (*handle)(nil)
	_ gofs.FileFlusher       = (*handle)(nil)
	_ gofs.FileReleaser      = (*handle)(nil)
	_ gofs.FileFsyncer       = (*handle)(nil)
	_ gofs.FileAllocater     = (*handle)(nil)
)

// errno maps an error to an errno, logging what is not a plain POSIX
// failure. A request the kernel interrupted (ctx, its context, is done:
// the caller got a signal) is EINTR, whatever else failed. A failed
// verification of remote data is EIO, never wrong data; so is a remote
// that cannot be reached, whatever errno its network error carries.
func (f *FS) errno(ctx context.Context, op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	switch {
	case interrupted(ctx, err):
		f.logInterrupt(op, err)
		return syscall.EINTR
	case errors.Is(err, repo.ErrIntegrity), remote.IsUnreachable(err):
		f.logFailure(op, err)
		return syscall.EIO
	case errors.As(err, &e):
		return e
	case errors.Is(err, repo.ErrReadOnly):
		return syscall.EROFS
	}
	f.logFailure(op, err)
	return syscall.EIO
}

// readErrno maps the error of a read that cannot return what it was asked
// for: EINTR when it was interrupted, otherwise EIO, whatever the cause
// (damage, the remote, the cache disk); it logs the cause.
func (f *FS) readErrno(ctx context.Context, err error) syscall.Errno {
	if interrupted(ctx, err) || errors.Is(err, syscall.EINTR) {
		f.logInterrupt("read", err)
		return syscall.EINTR
	}
	f.logFailure("read", err)
	return syscall.EIO
}

// interrupted reports whether a request failed because it was interrupted.
func interrupted(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled)
}

// logInterrupt notes a request given up because its caller was
// interrupted: nothing failed, but a remote that hangs shows here.
func (f *FS) logInterrupt(op string, err error) {
	f.opts.Log.Info("request interrupted by its caller", "op", op, "err", err)
}

func (f *FS) logFailure(op string, err error) {
	if errors.Is(err, repo.ErrIntegrity) {
		if f.opts.OnIntegrityError != nil {
			f.opts.OnIntegrityError()
		}
		f.opts.Log.Error("integrity error: refusing to return unverified data", "op", op, "err", err)
		return
	}
	f.opts.Log.Error("operation failed", "op", op, "err", err)
}

// fileTypes maps node types to the S_IFMT bits of a mode, both ways.
var fileTypes = map[repo.NodeType]uint32{
	repo.NodeFile: syscall.S_IFREG, repo.NodeDir: syscall.S_IFDIR, repo.NodeSymlink: syscall.S_IFLNK,
	repo.NodeFIFO: syscall.S_IFIFO, repo.NodeCharDev: syscall.S_IFCHR, repo.NodeBlockDev: syscall.S_IFBLK,
	repo.NodeSocket: syscall.S_IFSOCK,
}

func typeBits(t repo.NodeType) uint32 { return fileTypes[t] }

// nodeType returns the node type of a mode's S_IFMT bits (a regular file
// for anything unknown).
func nodeType(mode uint32) repo.NodeType {
	for t, bits := range fileTypes {
		if mode&syscall.S_IFMT == bits {
			return t
		}
	}
	return repo.NodeFile
}

// IOSize is a file's preferred I/O size (st_blksize) and the largest write
// request a mount takes (the daemon's MaxWrite): cp, cat and stdio move
// st_blksize bytes (at least 128 KiB) a system call, and each becomes one
// FUSE request at most this large. At 4 KiB a sequential write took 8 times
// the requests of 1 MiB (a round trip to the daemon, its sealing and a
// pwrite each), as NFS and CIFS report their 1 MiB transfer size here.
const IOSize = 1 << 20

func fillAttr(a worktree.Attr, out *fuse.Attr) {
	out.Ino = a.Ino
	out.Mode = typeBits(a.Type) | a.Mode
	out.Size = a.Size
	out.Blocks = a.Blocks
	out.Blksize = IOSize
	out.Nlink = a.Nlink
	out.Uid, out.Gid = a.UID, a.GID
	out.Rdev = uint32(a.Rdev)
	mt := time.Unix(0, a.MtimeNs)
	at := time.Unix(0, a.AtimeNs)
	ct := time.Unix(0, a.CtimeNs)
	out.SetTimes(&at, &mt, &ct)
}

// unknownAttrTimeout is how long the kernel may keep the attributes of a
// folder whose nlink is not known yet (worktree.Attr.NlinkUnknown): no
// time at all (0 would mean the mount's default), so that a stat after
// the folder is loaded sees 2 + its subdirectories.
const unknownAttrTimeout = time.Nanosecond

// OnForget: the kernel holds nothing of n any more. For a snapshot's
// folder in the snapshots view that is nothing under it either (every
// inode holds its parent): its tree closes, and its memory goes.
func (n *node) OnForget() {
	if n.vt != nil && n.wi == nil {
		n.vt.close()
	}
}

// isLiveRoot reports whether n is the live tree's root.
func (n *node) isLiveRoot() bool { return n.view == nil && n.wi == n.fs.tree.Root() }

// at returns n's tree and inode: the live tree's, or its snapshot's in the
// snapshots view, whose tree opens here when first needed (at the
// snapshot's folder; an inode under it keeps the tree it came from);
// ESTALE once that snapshot is forgotten.
func (n *node) at(ctx context.Context) (*worktree.Tree, *worktree.Inode, syscall.Errno) {
	switch {
	case n.view == nil:
		return n.fs.tree, n.wi, 0
	case n.wi != nil:
		return n.t, n.wi, n.view.check()
	}
	t, errno := n.vt.open(ctx)
	if errno != 0 {
		return nil, nil, errno
	}
	return t, t.Root(), 0
}

// viewAt reports whether name in n is the snapshots view's folder: n is
// the live root, and it holds no entry of the view's name.
func (n *node) viewAt(ctx context.Context, name string) bool {
	v := n.fs.view
	if v == nil || name != v.name || !n.isLiveRoot() {
		return false
	}
	_, _, err := n.fs.tree.Lookup(ctx, n.wi, name)
	return errors.Is(err, syscall.ENOENT)
}

// child returns the inode of wi, of tree t, an entry of n.
func (n *node) child(ctx context.Context, t *worktree.Tree, wi *worktree.Inode, a worktree.Attr, out *fuse.EntryOut) *gofs.Inode {
	fillAttr(a, &out.Attr)
	if a.NlinkUnknown() {
		out.SetAttrTimeout(unknownAttrTimeout)
	}
	c := &node{fs: n.fs, view: n.view, vt: n.vt, wi: wi}
	if n.view != nil {
		c.t = t
	}
	return n.NewInode(ctx, c, gofs.StableAttr{Mode: typeBits(a.Type), Ino: a.Ino})
}

func caller(ctx context.Context) (uint32, uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return 0, 0
}

// Lookup finds a directory entry.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t, dir, errno := n.at(ctx)
	if errno != 0 {
		return nil, errno
	}
	wi, a, err := t.Lookup(ctx, dir, name)
	if v := n.fs.view; v != nil && name == v.name && n.isLiveRoot() && !v.hides(err) && errors.Is(err, syscall.ENOENT) {
		return v.dirInode(ctx, n, out)
	}
	if err != nil {
		return nil, n.fs.errno(ctx, "lookup", err)
	}
	return n.child(ctx, t, wi, a, out), 0
}

// Getattr returns the attributes.
func (n *node) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	a, errno := n.attr(ctx)
	if errno != 0 {
		return errno
	}
	fillAttr(a, &out.Attr)
	if a.NlinkUnknown() {
		out.SetTimeout(unknownAttrTimeout)
	}
	return 0
}

// attr returns n's attributes; those of a snapshot's root without
// opening its tree.
func (n *node) attr(ctx context.Context) (worktree.Attr, syscall.Errno) {
	if n.view != nil && n.wi == nil {
		return n.view.rootAttr()
	}
	t, wi, errno := n.at(ctx)
	if errno != 0 {
		return worktree.Attr{}, errno
	}
	return t.Attr(wi), 0
}

// Setattr changes mode, owner, size or times. The kernel has checked the
// caller's permission (the mount uses default_permissions).
func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.view != nil {
		return syscall.EROFS
	}
	var s worktree.SetAttr
	if m, ok := in.GetMode(); ok {
		s.Mode = &m
	}
	if u, ok := in.GetUID(); ok {
		s.UID = &u
	}
	if g, ok := in.GetGID(); ok {
		s.GID = &g
	}
	if sz, ok := in.GetSize(); ok {
		s.Size = &sz
	}
	if t, ok := in.GetATime(); ok {
		ns := t.UnixNano()
		s.AtimeNs = &ns
	}
	if t, ok := in.GetMTime(); ok {
		ns := t.UnixNano()
		s.MtimeNs = &ns
	}
	a, err := n.fs.tree.SetAttr(n.wi, s)
	if err != nil {
		return n.fs.errno(ctx, "setattr", err)
	}
	fillAttr(a, &out.Attr)
	return 0
}

// Readdir lists a directory.
func (n *node) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	t, dir, errno := n.at(ctx)
	if errno != 0 {
		return nil, errno
	}
	entries, err := t.ReadDir(ctx, dir)
	if err != nil {
		return nil, n.fs.errno(ctx, "readdir", err)
	}
	// . and .. come first, as ext4 lists them; the root is its own parent.
	self := t.Attr(dir).Ino
	up := self
	if _, p := n.Parent(); p != nil {
		up = p.StableAttr().Ino
	}
	list := make([]fuse.DirEntry, 0, len(entries)+2)
	list = append(list, fuse.DirEntry{Name: ".", Ino: self, Mode: syscall.S_IFDIR},
		fuse.DirEntry{Name: "..", Ino: up, Mode: syscall.S_IFDIR})
	for _, e := range entries {
		list = append(list, fuse.DirEntry{Name: e.Name, Ino: e.Attr.Ino, Mode: typeBits(e.Attr.Type)})
	}
	return gofs.NewListDirStream(list), 0
}

func (n *node) create(ctx context.Context, name string, e worktree.NewEntry, out *fuse.EntryOut) (*gofs.Inode, *worktree.Inode, syscall.Errno) {
	switch {
	case n.view != nil:
		return nil, nil, syscall.EROFS
	case n.viewAt(ctx, name):
		return nil, nil, syscall.EEXIST
	}
	e.UID, e.GID = caller(ctx)
	wi, a, err := n.fs.tree.Create(ctx, n.wi, name, e)
	if err != nil {
		return nil, nil, n.fs.errno(ctx, "create", err)
	}
	return n.child(ctx, n.fs.tree, wi, a, out), wi, 0
}

// Mkdir makes a directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	in, _, errno := n.create(ctx, name, worktree.NewEntry{Type: repo.NodeDir, Mode: mode}, out)
	return in, errno
}

// Mknod makes a fifo, socket or device node (kept as metadata).
func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	in, _, errno := n.create(ctx, name, worktree.NewEntry{Type: nodeType(mode), Mode: mode, Rdev: uint64(dev)}, out)
	return in, errno
}

// Symlink makes a symbolic link.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	in, _, errno := n.create(ctx, name, worktree.NewEntry{Type: repo.NodeSymlink, Mode: 0o777, Target: []byte(target)}, out)
	return in, errno
}

// Readlink returns a symlink's target.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, wi, errno := n.at(ctx)
	if errno != 0 {
		return nil, errno
	}
	target, err := t.Readlink(wi)
	return target, n.fs.errno(ctx, "readlink", err)
}

// Create makes and opens a regular file.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	in, wi, errno := n.create(ctx, name, worktree.NewEntry{Type: repo.NodeFile, Mode: mode}, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	h, err := n.fs.tree.OpenFile(wi, true, false)
	if err != nil {
		return nil, nil, 0, n.fs.errno(ctx, "create", err)
	}
	return in, &handle{fs: n.fs, h: h}, 0, 0
}

// Unlink removes a file.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.view != nil || n.viewAt(ctx, name) {
		return syscall.EROFS
	}
	return n.fs.errno(ctx, "unlink", n.fs.tree.Unlink(ctx, n.wi, name))
}

// Rmdir removes an empty directory.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.view != nil || n.viewAt(ctx, name) {
		return syscall.EROFS
	}
	return n.fs.errno(ctx, "rmdir", n.fs.tree.Rmdir(ctx, n.wi, name))
}

// Rename moves an entry, replacing the target. Nothing moves into, out of
// or inside the snapshots view (EROFS), nor over its folder (EEXIST).
func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	switch {
	case !ok || np.view != nil || n.view != nil || n.viewAt(ctx, name):
		return syscall.EROFS
	case np.viewAt(ctx, newName):
		return syscall.EEXIST
	}
	return n.fs.errno(ctx, "rename", n.fs.tree.Rename(ctx, n.wi, name, np.wi, newName, flags))
}

// Link gives the target a further name here, as link(2).
func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	tn, ok := target.(*node)
	switch {
	case !ok || tn.view != nil || n.view != nil:
		return nil, syscall.EROFS
	case n.viewAt(ctx, name):
		return nil, syscall.EEXIST
	}
	a, err := n.fs.tree.Link(ctx, tn.wi, n.wi, name)
	if err != nil {
		return nil, n.fs.errno(ctx, "link", err)
	}
	return n.child(ctx, n.fs.tree, tn.wi, a, out), 0
}

// Open opens a regular file.
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	t, wi, errno := n.at(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	h, err := t.OpenFile(wi, write, flags&syscall.O_TRUNC != 0)
	if err != nil {
		return nil, 0, n.fs.errno(ctx, "open", err)
	}
	// A random read of 4 KiB opens a 64 KiB segment: the kernel keeps
	// the rest, and the reads around it cost no round trip.
	h.FillCache(func(off int64, data []byte) {
		// Whole pages only: the kernel keeps a partial one, but not as
		// content it can serve.
		pg := int64(os.Getpagesize())
		skip := (pg - off%pg) % pg
		if int64(len(data)) <= skip {
			return
		}
		data, off = data[skip:], off+skip
		if whole := int64(len(data)) / pg * pg; whole > 0 {
			n.WriteCache(off, data[:whole])
		}
	})
	return &handle{fs: n.fs, h: h, view: n.view}, 0, 0
}

// Fsync is fsync(2). go-fuse asks the node first: a file's goes to its
// handle; a directory's (the write-temp, rename, fsync-the-directory
// pattern) makes the journal that holds its entries durable, and commits
// with --sync=remote, as a file's fsync does.
func (n *node) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return h.Fsync(ctx, flags)
	}
	if n.view != nil {
		return 0 // nothing to make durable
	}
	if err := n.fs.tree.Sync(); err != nil {
		return n.fs.errno(ctx, "fsync", err)
	}
	if n.fs.opts.SyncRemote != nil {
		return n.fs.errno(ctx, "fsync", n.fs.opts.SyncRemote(ctx))
	}
	return 0
}

// Statfs reports the cache disk's free space: that is where writes queue.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if n.fs.opts.Statfs != nil {
		n.fs.opts.Statfs(out)
	}
	out.NameLen = 255
	return 0
}

// Getxattr returns an xattr's value (docs/SPEC.md §8); on the root, the
// status document too.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	t, wi, errno := n.at(ctx)
	if errno != 0 {
		return 0, errno
	}
	var v []byte
	if n.isLiveRoot() && attr == StatusXattr && n.fs.opts.Status != nil {
		v = n.fs.opts.Status()
	} else {
		var err error
		if v, err = t.GetXattr(wi, attr); err != nil {
			return 0, n.fs.errno(ctx, "getxattr", err)
		}
	}
	return copyOut(dest, v)
}

// copyOut answers a getxattr or listxattr: the size the value needs when
// dest is empty (a size query), ERANGE when it does not fit.
func copyOut(dest, v []byte) (uint32, syscall.Errno) {
	if len(dest) == 0 {
		return uint32(len(v)), 0
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Setxattr sets an xattr; flags are XATTR_CREATE and XATTR_REPLACE. The
// kernel has checked the caller's permission (trusted.* needs
// CAP_SYS_ADMIN, user.* write permission). The status name is the mount's
// own: nobody may set it.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	switch {
	case n.view != nil:
		return syscall.EROFS
	case n.isLiveRoot() && attr == StatusXattr:
		return syscall.EPERM
	}
	return n.fs.errno(ctx, "setxattr", n.fs.tree.SetXattr(n.wi, attr, data, flags))
}

// Removexattr removes an xattr.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	switch {
	case n.view != nil:
		return syscall.EROFS
	case n.isLiveRoot() && attr == StatusXattr:
		return syscall.EPERM
	}
	return n.fs.errno(ctx, "removexattr", n.fs.tree.RemoveXattr(n.wi, attr))
}

// Listxattr lists the xattrs' names, each ended by a NUL (the status one
// is hidden).
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	t, wi, errno := n.at(ctx)
	if errno != 0 {
		return 0, errno
	}
	var list []byte
	for _, name := range t.ListXattr(wi) {
		list = append(append(list, name...), 0)
	}
	return copyOut(dest, list)
}

// handle is an open file.
type handle struct {
	fs   *FS
	h    *worktree.Handle
	view *snapView // the snapshot, of a file in the snapshots view
}

// Read reads at an offset. It returns everything asked for, or less only
// at the end of the file, or fails: the kernel takes a short read for the
// end of the file (and shrinks the file's size to it), so returning the
// bytes read before an error would silently turn a damaged or unreachable
// file into a shorter one. An interrupted read (the kernel cancels ctx)
// stops waiting for the remote and fails with EINTR.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if h.view != nil {
		if e := h.view.check(); e != 0 {
			return nil, e
		}
	}
	n, err := h.h.ReadAt(ctx, dest, off)
	// Only the io.EOF of the io.ReaderAt contract itself marks the end of
	// the file; a wrapped one came from somewhere below and is a failure.
	if err != nil && err != io.EOF {
		return nil, h.fs.readErrno(ctx, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write writes at an offset.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := h.h.WriteAt(data, off)
	if err != nil {
		return uint32(n), h.fs.errno(ctx, "write", err)
	}
	return uint32(n), 0
}

// Flush runs at every close(2) of a descriptor.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	return h.fs.errno(ctx, "flush", h.h.Flush())
}

// Fsync makes the file durable: locally, or on the remote with --sync=remote.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if err := h.h.Sync(); err != nil {
		return h.fs.errno(ctx, "fsync", err)
	}
	if h.fs.opts.SyncRemote != nil && h.view == nil {
		return h.fs.errno(ctx, "fsync", h.syncRemote(ctx))
	}
	return 0
}

// syncRemoteTries is how many commits an fsync with --sync=remote makes
// before it gives up on a file that another descriptor changes while
// each commit reads it.
const syncRemoteTries = 5

// syncRemote commits until a snapshot holds what the file held when fsync
// was called (its files open for writing included): a write that lands
// while the commit reads the file leaves it out of that commit.
func (h *handle) syncRemote(ctx context.Context) error {
	gen := h.h.Gen()
	for range syncRemoteTries {
		if err := h.fs.opts.SyncRemote(ctx); err != nil {
			return err
		}
		if h.h.CommittedSince(gen) {
			return nil
		}
	}
	return fmt.Errorf("the file changed while each of %d commits read it; fsync again once it is no longer written", syncRemoteTries)
}

// Release runs when the last descriptor is closed.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	return h.fs.errno(ctx, "release", h.h.Close())
}

// Allocate preallocates space, as fallocate(2).
func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	return h.fs.errno(ctx, "fallocate", h.h.Allocate(off, size, mode))
}

// Lseek finds data and holes (SEEK_DATA, SEEK_HOLE).
func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := h.h.Seek(int64(off), int(whence))
	if err != nil {
		return 0, h.fs.errno(ctx, "lseek", err)
	}
	return uint64(n), 0
}
