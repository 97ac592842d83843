// Package snaptree walks the directory trees of snapshots for people: it
// lists a snapshot's entries (sealfs ls) and compares two snapshots path by
// path (sealfs diff). A directory whose subtree id is the same in both
// snapshots holds the same entries, so Diff skips it without loading it.
package snaptree

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// Loader loads tree blobs (a *repo.Repository is one).
type Loader interface {
	LoadTree(ctx context.Context, id crypt.ID) (*repo.Tree, error)
}

// Entry is one entry of a snapshot's tree, with its path from the
// snapshot's root ("a/b", no leading slash).
type Entry struct {
	Path string
	Node *repo.Node
}

// Lookup finds the entry at p ("", "/" or "." for the root, which has no
// node: it returns nil) below the tree root. A missing path is an error
// wrapping ErrNotFound.
func Lookup(ctx context.Context, l Loader, root crypt.ID, p string) (*repo.Node, error) {
	clean := strings.Trim(path.Clean("/"+p), "/")
	if clean == "" {
		return nil, nil
	}
	tree := root
	parts := strings.Split(clean, "/")
	for i, name := range parts {
		t, err := l.LoadTree(ctx, tree)
		if err != nil {
			return nil, err
		}
		n := t.Find([]byte(name))
		if n == nil {
			return nil, fmt.Errorf("%w: /%s", ErrNotFound, strings.Join(parts[:i+1], "/"))
		}
		if i == len(parts)-1 {
			return n, nil
		}
		if n.Type != nodeDir {
			return nil, fmt.Errorf("%w: /%s is not a directory", ErrNotFound, strings.Join(parts[:i+1], "/"))
		}
		tree = n.Subtree
	}
	return nil, nil // not reached
}

// List calls fn for each entry of the directory tree dir (a tree id) in
// name order, its paths below prefix; recursive: for every entry below it
// too, each directory's entries right after it.
func List(ctx context.Context, l Loader, dir crypt.ID, prefix string, recursive bool, fn func(Entry) error) error {
	t, err := l.LoadTree(ctx, dir)
	if err != nil {
		return err
	}
	for _, n := range t.Nodes {
		p := join(prefix, string(n.Name))
		if err := fn(Entry{Path: p, Node: n}); err != nil {
			return err
		}
		if recursive && n.Type == nodeDir {
			if err := List(ctx, l, n.Subtree, p, true, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}
