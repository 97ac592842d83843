package worktree

import (
	"errors"
	"slices"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// The root directory's own attributes (mode, owner, times, xattrs) are no
// tree entry's: a snapshot holds them beside its root tree (docs/SPEC.md
// §8, "root"; rootMeta, rootAttr). A journal written whole records them
// too.

// rootRecords are the records that give the root its attributes, for a
// journal written whole.
func (t *Tree) rootRecords() []record {
	m := t.root.meta
	return []record{attrRecord("", &m), {Op: opXattrs, Meta: &repo.Node{Xattrs: slices.Clone(m.Xattrs)}}}
}

var errBadXattrs = errors.New("xattrs not sorted, unique and within the limits")

// applyXattrs gives an entry exactly the xattrs of an xattrs record.
func (t *Tree) applyXattrs(in *Inode, rec record) error {
	xs := rec.Meta.Xattrs
	for i := range xs {
		if len(xs[i].Name) == 0 || len(xs[i].Name) > repo.MaxXattrNameLen || len(xs[i].Value) > repo.MaxXattrValueLen ||
			(i > 0 && string(xs[i-1].Name) >= string(xs[i].Name)) {
			return errBadXattrs
		}
	}
	if err := checkXattrSpace(xs); err != nil {
		return err
	}
	in.meta.Xattrs = slices.Clone(xs)
	return nil
}

// sameRootAttrs reports whether two roots have the same attributes, their
// trees, access and change times aside (as sameNode compares entries).
func sameRootAttrs(a, b *repo.Node) bool {
	x, y := *a, *b
	x.Subtree, y.Subtree = crypt.ID{}, crypt.ID{}
	return sameNode(&x, &y)
}
