package worktree

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sealfs/sealfs/repo"
)

// Xattr flags, as setxattr(2) takes them.
const (
	XattrCreate  = 1 // fail with EEXIST if the name exists
	XattrReplace = 2 // fail with ENODATA if it does not
)

// Limits of one entry's xattrs beyond the format's (repo.MaxXattrs,
// repo.MaxXattrNameLen, repo.MaxXattrValueLen). Past them a set fails with
// ENOSPC, as ext4 answers when an inode's xattr space is full
// (fs/ext4/xattr.c): the names (each with its NUL) fit the 64 KiB a
// listxattr(2) can return (XATTR_LIST_MAX), and names and values together
// stay small enough that a directory of them stays a storable tree blob.
const (
	maxXattrList  = 64 << 10
	maxXattrBytes = 256 << 10
)

// GetXattr returns the value of an entry's xattr, or ENODATA.
func (t *Tree) GetXattr(in *Inode, name string) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := findXattr(in.meta.Xattrs, name); ok {
		return bytes.Clone(in.meta.Xattrs[i].Value), nil
	}
	return nil, syscall.ENODATA
}

// ListXattr returns the names of an entry's xattrs, sorted.
func (t *Tree) ListXattr(in *Inode) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, len(in.meta.Xattrs))
	for i, x := range in.meta.Xattrs {
		out[i] = string(x.Name)
	}
	return out
}

// SetXattr sets an entry's xattr, as setxattr(2) with flags (XattrCreate,
// XattrReplace). Setting system.posix_acl_access sets the mode's
// permission bits from the ACL.
func (t *Tree) SetXattr(in *Inode, name string, value []byte, flags uint32) error {
	return t.changeXattr(in, record{Op: opSetxattr, Name: []byte(name), Value: bytes.Clone(value)}, flags)
}

// RemoveXattr removes an entry's xattr, or fails with ENODATA.
func (t *Tree) RemoveXattr(in *Inode, name string) error {
	return t.changeXattr(in, record{Op: opRemovexattr, Name: []byte(name)}, 0)
}

// changeXattr journals a setxattr or removexattr record and applies it;
// flags (XattrCreate, XattrReplace) are checked here, not at replay.
func (t *Tree) changeXattr(in *Inode, rec record, flags uint32) error {
	if t.opts.ReadOnly {
		return syscall.EROFS
	}
	if err := t.lockAttached(in); err != nil {
		return err
	}
	defer t.changed()
	defer t.mu.Unlock()
	rec.Path, rec.Time = []byte(t.pathOf(in)), time.Now().UnixNano()
	_, found := findXattr(in.meta.Xattrs, string(rec.Name))
	switch {
	case rec.Op == opSetxattr && flags&XattrCreate != 0 && found:
		return syscall.EEXIST
	case rec.Op == opSetxattr && flags&XattrReplace != 0 && !found:
		return syscall.ENODATA
	}
	// Checked first, so that a record the journal takes always applies.
	if _, _, err := xattrChange(&in.meta, rec); err != nil {
		return err
	}
	if in.parent != nil || in == t.root { // an unlinked entry has no path to journal
		if err := t.record(rec); err != nil {
			return err
		}
	}
	return t.applyXattrLocked(in, rec)
}

// applyXattrLocked makes the change a setxattr or removexattr record
// describes: the new xattrs, the mode an access ACL gives, ctime.
func (t *Tree) applyXattrLocked(in *Inode, rec record) error {
	xs, mode, err := xattrChange(&in.meta, rec)
	if err != nil {
		return err
	}
	in.meta.Xattrs, in.meta.Mode = xs, mode
	in.changed(rec.Time)
	return nil
}

// xattrChange returns n's xattrs and mode after the change rec describes,
// or the errno the change fails with. n is left alone: its xattrs may be
// shared with a snapshot being committed, so they are never changed in
// place.
func xattrChange(n *repo.Node, rec record) ([]repo.Xattr, uint32, error) {
	name := string(rec.Name)
	i, found := findXattr(n.Xattrs, name)
	if rec.Op == opRemovexattr {
		if !found {
			return nil, 0, syscall.ENODATA
		}
		return slices.Delete(slices.Clone(n.Xattrs), i, i+1), n.Mode, nil
	}
	switch {
	case len(name) == 0 || len(name) > repo.MaxXattrNameLen:
		return nil, 0, syscall.ERANGE // as the VFS answers (fs/xattr.c)
	case len(rec.Value) > repo.MaxXattrValueLen:
		return nil, 0, syscall.E2BIG // as the VFS answers (XATTR_SIZE_MAX)
	}
	if err := checkNamespace(name); err != nil {
		return nil, 0, err
	}
	mode, value := n.Mode, rec.Value
	switch name {
	case aclAccess:
		es, err := parseACL(value)
		if err != nil {
			return nil, 0, syscall.EINVAL
		}
		var minimal bool
		if mode, minimal = aclMode(es, mode); minimal {
			// ext4 keeps no ACL that says no more than the mode
			// (posix_acl_update_mode).
			xs := n.Xattrs
			if found {
				xs = slices.Delete(slices.Clone(xs), i, i+1)
			}
			return xs, mode, nil
		}
	case aclDefault:
		if n.Type != repo.NodeDir {
			return nil, 0, syscall.EACCES // as ext4 (__ext4_set_acl)
		}
		if _, err := parseACL(value); err != nil {
			return nil, 0, syscall.EINVAL
		}
	}
	xs := slices.Clone(n.Xattrs)
	x := repo.Xattr{Name: []byte(name), Value: value}
	if found {
		xs[i] = x
	} else {
		xs = slices.Insert(xs, i, x)
	}
	if err := checkXattrSpace(xs); err != nil {
		return nil, 0, err
	}
	return xs, mode, nil
}

// xattrPrefixes are the namespaces ext4 stores (besides the two ACLs).
var xattrPrefixes = []string{"user.", "trusted.", "security."}

// checkNamespace refuses to set what ext4 refuses (fs/xattr.c,
// xattr_resolve_name): a name of a namespace it has no handler for
// (EOPNOTSUPP), or a namespace's prefix alone (EINVAL). The kernel hands a
// FUSE filesystem every name.
func checkNamespace(name string) error {
	if name == aclAccess || name == aclDefault {
		return nil
	}
	for _, p := range xattrPrefixes {
		if strings.HasPrefix(name, p) {
			if name == p {
				return syscall.EINVAL
			}
			return nil
		}
	}
	return syscall.EOPNOTSUPP
}

// checkXattrSpace refuses a set of xattrs over the limits with ENOSPC.
func checkXattrSpace(xs []repo.Xattr) error {
	list, total := 0, 0
	for _, x := range xs {
		list += len(x.Name) + 1
		total += len(x.Name) + len(x.Value)
	}
	if len(xs) > repo.MaxXattrs || list > maxXattrList || total > maxXattrBytes {
		return syscall.ENOSPC
	}
	return nil
}

// findXattr returns where name is, or would be, in the sorted xs.
func findXattr(xs []repo.Xattr, name string) (int, bool) {
	i := sort.Search(len(xs), func(i int) bool { return string(xs[i].Name) >= name })
	return i, i < len(xs) && string(xs[i].Name) == name
}

// chmodACL returns xs with the access ACL, if any, following a new mode
// (posix_acl_chmod).
func chmodACL(xs []repo.Xattr, mode uint32) []repo.Xattr {
	i, ok := findXattr(xs, aclAccess)
	if !ok {
		return xs
	}
	es, err := parseACL(xs[i].Value)
	if err != nil {
		return xs
	}
	out := slices.Clone(xs)
	out[i].Value = encodeACL(aclChmod(es, mode))
	return out
}

// inheritACL returns the xattrs and mode a new entry of type typ and the
// given mode gets in directory dir (posix_acl_create): with a default ACL
// there, a new directory takes it as its own default, and every new entry
// but a symlink an access ACL made from it.
func inheritACL(dir *Inode, typ repo.NodeType, mode uint32) ([]repo.Xattr, uint32) {
	i, ok := findXattr(dir.meta.Xattrs, aclDefault)
	if !ok || typ == repo.NodeSymlink {
		return nil, mode
	}
	def := dir.meta.Xattrs[i].Value
	es, err := parseACL(def)
	if err != nil {
		return nil, mode
	}
	access, mode := aclCreate(es, mode)
	var xs []repo.Xattr
	if access != nil {
		xs = append(xs, repo.Xattr{Name: []byte(aclAccess), Value: access})
	}
	if typ == repo.NodeDir {
		xs = append(xs, repo.Xattr{Name: []byte(aclDefault), Value: bytes.Clone(def)})
	}
	return xs, mode
}
