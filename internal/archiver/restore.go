package archiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// Restorer writes a repository tree to a local directory.
type Restorer struct {
	r     *repo.Repository
	links map[uint64]string // link group -> first restored path
	// Owners sets uid/gid (needs root); otherwise files belong to the caller.
	Owners bool
	// Warn is told of each extended attribute the target refuses (a
	// namespace its filesystem does not support, trusted.* without
	// CAP_SYS_ADMIN); the restore goes on with the rest. Nil counts them
	// only (see Warnings).
	Warn func(error)
	// OnFile, if set, is told the size of each file once it is restored
	// (or left out as damaged).
	OnFile   func(size uint64)
	warnings int
	damaged  []error // files left out because their content failed verification
}

// NewRestorer returns a Restorer reading from r.
func NewRestorer(r *repo.Repository) *Restorer {
	return &Restorer{r: r, links: map[uint64]string{}, Owners: os.Geteuid() == 0}
}

// Warnings returns how many extended attributes the last RestoreTree could
// not set.
func (rs *Restorer) Warnings() int { return rs.warnings }

// RestoreTree restores the tree blob id into the existing directory dir.
// A file whose content fails verification is left out (never restored in
// part) and the restore goes on with the others; the error returned then
// names every such file and wraps repo.ErrIntegrity. Any other failure
// stops the restore.
func (rs *Restorer) RestoreTree(ctx context.Context, id crypt.ID, dir string) error {
	rs.damaged, rs.warnings = nil, 0
	if err := rs.restoreTree(ctx, id, dir); err != nil {
		return err
	}
	if len(rs.damaged) > 0 {
		return fmt.Errorf("damaged files not restored (%d); `sealfs check --read-data` lists every damaged object:\n%w", len(rs.damaged), errors.Join(rs.damaged...))
	}
	return nil
}

func (rs *Restorer) restoreTree(ctx context.Context, id crypt.ID, dir string) error {
	t, err := rs.r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	for _, n := range t.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := rs.restoreNode(ctx, n, filepath.Join(dir, string(n.Name))); err != nil {
			return err
		}
	}
	return nil
}

func (rs *Restorer) restoreNode(ctx context.Context, n *repo.Node, path string) error {
	linked := n.Type != repo.NodeDir && n.LinkGroup != 0
	if first, ok := rs.links[n.LinkGroup]; linked && ok {
		return os.Link(first, path) // a further name of an inode restored
	}
	switch n.Type {
	case repo.NodeDir:
		if err := os.Mkdir(path, 0o700); err != nil && !os.IsExist(err) {
			return err
		}
		if err := rs.restoreTree(ctx, n.Subtree, path); err != nil {
			return err
		}
	case repo.NodeSymlink:
		if err := os.Symlink(string(n.Target), path); err != nil {
			return err
		}
	case repo.NodeFile:
		err := rs.restoreFile(ctx, n, path)
		if rs.OnFile != nil {
			rs.OnFile(n.Size)
		}
		if err != nil {
			if errors.Is(err, repo.ErrIntegrity) {
				rs.damaged = append(rs.damaged, err)
				return nil
			}
			return err
		}
	case repo.NodeFIFO:
		if err := unix.Mkfifo(path, 0o600); err != nil {
			return fmt.Errorf("failed to make fifo %s: %w", path, err)
		}
	case repo.NodeCharDev, repo.NodeBlockDev, repo.NodeSocket:
		mode := map[repo.NodeType]uint32{repo.NodeCharDev: unix.S_IFCHR, repo.NodeBlockDev: unix.S_IFBLK, repo.NodeSocket: unix.S_IFSOCK}[n.Type]
		if err := unix.Mknod(path, mode|0o600, int(n.Rdev)); err != nil {
			return fmt.Errorf("failed to make %s (needs root for devices): %w", path, err)
		}
	}
	if linked {
		rs.links[n.LinkGroup] = path
	}
	return rs.restoreMeta(n, path)
}

// RestoreRoot gives the directory dir the attributes a snapshot keeps for
// its root, as RestoreTree gives every entry its own; xattrs the target
// refuses are warnings, as there.
func (rs *Restorer) RestoreRoot(a *repo.RootAttr, dir string) error {
	n := &repo.Node{Type: repo.NodeDir, Mode: a.Mode, UID: a.UID, GID: a.GID, MtimeNs: a.MtimeNs, AtimeNs: a.AtimeNs,
		Xattrs: a.Xattrs}
	return rs.restoreMeta(n, dir)
}

// restoreFile writes a file's content to path. A file that cannot be
// restored whole is removed: a restore leaves no partial file behind that
// could be taken for the original.
func (rs *Restorer) restoreFile(ctx context.Context, n *repo.Node, path string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	fr := rs.r.OpenFile(n)
	var off int64
	for _, e := range n.Content {
		if e.Hole {
			off += int64(e.Size) // leave a hole: the final Truncate sets the size
			continue
		}
		buf := make([]byte, e.Size)
		if _, err := fr.ReadAt(ctx, buf, off); err != nil {
			return fmt.Errorf("failed to restore %s: %w", path, err)
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
		off += int64(e.Size)
	}
	return f.Truncate(int64(n.Size))
}

func (rs *Restorer) restoreMeta(n *repo.Node, path string) error {
	if rs.Owners {
		if err := os.Lchown(path, int(n.UID), int(n.GID)); err != nil {
			return err
		}
	}
	if n.Type != repo.NodeSymlink {
		if err := unix.Chmod(path, n.Mode); err != nil {
			return err
		}
	}
	// After chown, which clears security.capability; an access ACL
	// agrees with the mode set above.
	for _, err := range setXattrs(path, n.Xattrs) {
		rs.warnings++
		if rs.Warn != nil {
			rs.Warn(err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(n.AtimeNs), unix.NsecToTimespec(n.MtimeNs)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}
