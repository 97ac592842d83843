// Package archiver copies a local directory tree into a repository as a
// snapshot, and restores a snapshot's tree to a local directory, keeping
// what backup tools rely on: modes, owners, times, extended attributes and
// POSIX ACLs, symlinks, hard links, fifos and device nodes, sparse files (holes are found with SEEK_DATA and
// SEEK_HOLE and never stored) and names that are not UTF-8.
package archiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// Stats counts what Save stored.
type Stats struct {
	Files, Dirs, Others uint64
	Bytes               uint64 // file bytes, holes included
}

// Saver stores local trees into a repository open for writing.
type Saver struct {
	r     *repo.Repository
	links map[[2]uint64]uint64 // (dev, inode) -> link group
	stats Stats
	// OnFile, if set, is told the size of each file once it is stored.
	OnFile func(size uint64)
}

// NewSaver returns a Saver for r.
func NewSaver(r *repo.Repository) *Saver {
	return &Saver{r: r, links: map[[2]uint64]uint64{}}
}

// Stats returns what was saved so far.
func (s *Saver) Stats() Stats { return s.stats }

// SaveDir stores the directory at path and everything below it, and returns
// the id of its tree blob.
func (s *Saver) SaveDir(ctx context.Context, path string) (crypt.ID, error) {
	f, err := os.Open(path)
	if err != nil {
		return crypt.ID{}, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return crypt.ID{}, fmt.Errorf("failed to read directory %s: %w", path, err)
	}
	sort.Strings(names)
	t := &repo.Tree{}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return crypt.ID{}, err
		}
		n, err := s.saveEntry(ctx, filepath.Join(path, name))
		if err != nil {
			return crypt.ID{}, err
		}
		t.Nodes = append(t.Nodes, n)
	}
	s.stats.Dirs++
	return s.r.SaveTree(ctx, t)
}

func (s *Saver) saveEntry(ctx context.Context, path string) (*repo.Node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, fmt.Errorf("failed to stat %s: %w", path, err)
	}
	n := NodeFromStat(filepath.Base(path), &st)
	xattrs, err := readXattrs(path)
	if err != nil {
		return nil, err
	}
	n.Xattrs = xattrs
	if n.Type != repo.NodeDir && st.Nlink > 1 {
		n.LinkGroup = s.linkGroup(&st)
	}
	switch n.Type {
	case repo.NodeDir:
		id, err := s.SaveDir(ctx, path)
		if err != nil {
			return nil, err
		}
		n.Subtree = id
	case repo.NodeSymlink:
		target, err := os.Readlink(path)
		if err != nil {
			return nil, fmt.Errorf("failed to read symlink %s: %w", path, err)
		}
		n.Target, n.Size = []byte(target), uint64(len(target))
		s.stats.Others++
	case repo.NodeFile:
		content, size, err := s.saveFile(ctx, path)
		if err != nil {
			return nil, err
		}
		n.Content, n.Size = content, size
		s.stats.Files++
		s.stats.Bytes += size
		if s.OnFile != nil {
			s.OnFile(size)
		}
	default:
		s.stats.Others++
	}
	return n, nil
}

// linkGroup is the link group of the inode st describes, one of several
// names: the same for each of its names, numbered from 1.
func (s *Saver) linkGroup(st *unix.Stat_t) uint64 {
	key := [2]uint64{st.Dev, st.Ino}
	g, ok := s.links[key]
	if !ok {
		g = uint64(len(s.links) + 1)
		s.links[key] = g
	}
	return g
}

// RootAttrs returns the attributes of the directory at path that a
// snapshot keeps for its root: mode, owner, times and xattrs.
func (s *Saver) RootAttrs(path string) (*repo.RootAttr, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("failed to stat %s: %w", path, err)
	}
	xattrs, err := readXattrs(path)
	if err != nil {
		return nil, err
	}
	n := NodeFromStat("", &st)
	return &repo.RootAttr{Mode: n.Mode, UID: n.UID, GID: n.GID, MtimeNs: n.MtimeNs, AtimeNs: n.AtimeNs, CtimeNs: n.CtimeNs,
		Xattrs: xattrs}, nil
}

// saveFile stores a file's data regions and records its holes.
func (s *Saver) saveFile(ctx context.Context, path string) ([]repo.Extent, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	content, n, err := s.r.SaveSparseFile(ctx, f, fi.Size())
	if err != nil {
		return nil, 0, fmt.Errorf("failed to store %s: %w", path, err)
	}
	return content, n, nil
}

// NodeFromStat makes a node of the given name from lstat results; the
// caller fills in content, target or subtree.
func NodeFromStat(name string, st *unix.Stat_t) *repo.Node {
	n := &repo.Node{
		Name:    []byte(name),
		Mode:    st.Mode & 07777,
		UID:     st.Uid,
		GID:     st.Gid,
		MtimeNs: st.Mtim.Nano(),
		CtimeNs: st.Ctim.Nano(),
		AtimeNs: st.Atim.Nano(),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		n.Type = repo.NodeDir
	case unix.S_IFLNK:
		n.Type = repo.NodeSymlink
	case unix.S_IFIFO:
		n.Type = repo.NodeFIFO
	case unix.S_IFCHR:
		n.Type, n.Rdev = repo.NodeCharDev, st.Rdev
	case unix.S_IFBLK:
		n.Type, n.Rdev = repo.NodeBlockDev, st.Rdev
	case unix.S_IFSOCK:
		n.Type = repo.NodeSocket
	default:
		n.Type = repo.NodeFile
	}
	return n
}
