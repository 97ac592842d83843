package snaptree

import (
	"bytes"
	"context"
	"errors"
	"slices"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// ErrNotFound is Lookup's error for a path a snapshot does not hold.
var ErrNotFound = errors.New("no such file or directory in the snapshot")

const nodeDir = format.NodeDir

// Kind is what happened to a path between two snapshots.
type Kind byte

// The kinds of change, as restic's diff shows them.
const (
	Added   Kind = '+'
	Removed Kind = '-'
	Changed Kind = 'M'
)

// Change is one path that differs between two snapshots. Node is the new
// entry (the old one for Removed).
type Change struct {
	Kind Kind
	Path string
	Node *repo.Node
}

// Diff calls fn, in path order, for each path that differs between the
// trees a (old) and b (new): added (with everything inside an added
// directory), removed (likewise), or changed (Modified). Directories whose
// subtree ids are equal are skipped without being loaded.
func Diff(ctx context.Context, l Loader, a, b crypt.ID, fn func(Change) error) error {
	return diffDir(ctx, l, a, b, "", fn)
}

func diffDir(ctx context.Context, l Loader, a, b crypt.ID, prefix string, fn func(Change) error) error {
	if a == b {
		return nil
	}
	ta, err := l.LoadTree(ctx, a)
	if err != nil {
		return err
	}
	tb, err := l.LoadTree(ctx, b)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(ta.Nodes) || j < len(tb.Nodes) {
		var c int
		switch {
		case i == len(ta.Nodes):
			c = 1
		case j == len(tb.Nodes):
			c = -1
		default:
			c = bytes.Compare(ta.Nodes[i].Name, tb.Nodes[j].Name)
		}
		switch {
		case c < 0:
			err = whole(ctx, l, Removed, ta.Nodes[i], prefix, fn)
			i++
		case c > 0:
			err = whole(ctx, l, Added, tb.Nodes[j], prefix, fn)
			j++
		default:
			err = diffNode(ctx, l, ta.Nodes[i], tb.Nodes[j], prefix, fn)
			i, j = i+1, j+1
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// diffNode compares two entries of one name.
func diffNode(ctx context.Context, l Loader, na, nb *repo.Node, prefix string, fn func(Change) error) error {
	p := join(prefix, string(nb.Name))
	if na.Type != nb.Type {
		// Another kind of entry: the old one and all it held went.
		if err := whole(ctx, l, Removed, na, prefix, fn); err != nil {
			return err
		}
		return whole(ctx, l, Added, nb, prefix, fn)
	}
	if Modified(na, nb) {
		if err := fn(Change{Kind: Changed, Path: p, Node: nb}); err != nil {
			return err
		}
	}
	if nb.Type == nodeDir {
		return diffDir(ctx, l, na.Subtree, nb.Subtree, p, fn)
	}
	return nil
}

// whole reports n, and everything below it if it is a directory, as kind.
func whole(ctx context.Context, l Loader, kind Kind, n *repo.Node, prefix string, fn func(Change) error) error {
	p := join(prefix, string(n.Name))
	if err := fn(Change{Kind: kind, Path: p, Node: n}); err != nil {
		return err
	}
	if n.Type != nodeDir {
		return nil
	}
	return List(ctx, l, n.Subtree, p, true, func(e Entry) error {
		return fn(Change{Kind: kind, Path: e.Path, Node: e.Node})
	})
}

// Modified reports whether two entries of one name and type differ in what
// a person would call a change: a file's content, size or modification
// time, a symlink's target, a device's number, and for every kind the
// mode, owner and extended attributes. A directory's times follow its
// entries and are left out (its entries are compared one by one), and
// so are access and status-change times.
func Modified(a, b *repo.Node) bool {
	switch {
	case a.Mode != b.Mode, a.UID != b.UID, a.GID != b.GID, a.Rdev != b.Rdev,
		!bytes.Equal(a.Target, b.Target), !slices.EqualFunc(a.Xattrs, b.Xattrs, sameXattr):
		return true
	case a.Type == nodeDir:
		return false
	}
	return a.Size != b.Size || a.MtimeNs != b.MtimeNs || !slices.Equal(a.Content, b.Content)
}

func sameXattr(a, b format.Xattr) bool {
	return bytes.Equal(a.Name, b.Name) && bytes.Equal(a.Value, b.Value)
}
