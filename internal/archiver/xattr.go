package archiver

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/repo"
)

// readXattrs returns the extended attributes of path (not following a
// symlink), POSIX ACLs included (as system.posix_acl_access and
// system.posix_acl_default), sorted by name. A filesystem without xattrs
// has none. Those the format cannot hold (more than repo.MaxXattrs) are
// an error naming the file.
func readXattrs(path string) ([]repo.Xattr, error) {
	names, err := listXattrs(path)
	if err != nil {
		return nil, err
	}
	if len(names) > repo.MaxXattrs {
		return nil, fmt.Errorf("%s has %d extended attributes, more than the %d a snapshot holds", path, len(names), repo.MaxXattrs)
	}
	var out []repo.Xattr
	for _, name := range names {
		v, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read extended attribute %s of %s: %w", name, path, err)
		}
		out = append(out, repo.Xattr{Name: []byte(name), Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Name, out[j].Name) < 0 })
	return out, nil
}

// listXattrs returns the names of path's xattrs.
func listXattrs(path string) ([]string, error) {
	buf, err := sized(func(b []byte) (int, error) { return unix.Llistxattr(path, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to list the extended attributes of %s: %w", path, err)
	}
	var names []string
	for _, name := range bytes.Split(buf, []byte{0}) {
		if len(name) > 0 {
			names = append(names, string(name))
		}
	}
	return names, nil
}

func getXattr(path, name string) ([]byte, error) {
	return sized(func(b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// sized calls a get or list call with a buffer of the size it asks for,
// again when the value grew between the size query and the call (ERANGE).
func sized(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, syscall.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// setXattrs gives path (not following a symlink) the xattrs xs. One that
// the filesystem or the caller's privileges refuse (a namespace the
// filesystem does not support, trusted.* without CAP_SYS_ADMIN) does not
// stop the others: each refusal is returned, naming the file and the
// attribute.
func setXattrs(path string, xs []repo.Xattr) []error {
	var errs []error
	for _, x := range xs {
		if err := unix.Lsetxattr(path, string(x.Name), x.Value, 0); err != nil {
			errs = append(errs, fmt.Errorf("extended attribute %s of %s not restored: %w", x.Name, path, err))
		}
	}
	return errs
}
