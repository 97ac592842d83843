package fusefs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/fusefs"
)

// TestXattrNamespaces: setfattr and getfattr round-trip an xattr of each
// namespace on a file and a directory, a trusted.* and security.* one on a
// symlink (user.* there is refused by the kernel with EPERM, as on ext4),
// and listxattr lists them.
func TestXattrNamespaces(t *testing.T) {
	dir, _, _ := mount(t)
	f, d, l := filepath.Join(dir, "f"), filepath.Join(dir, "d"), filepath.Join(dir, "l")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", l); err != nil {
		t.Fatal(err)
	}
	names := []string{"user.k", "trusted.k", "security.k"}
	for _, p := range []string{f, d, l} {
		for _, name := range names {
			if p == l && name == "user.k" {
				if err := unix.Lsetxattr(p, name, []byte("v"), 0); !errors.Is(err, syscall.EPERM) {
					t.Errorf("user.* on a symlink: %v, want EPERM", err)
				}
				continue
			}
			value := "value of " + name + " on " + filepath.Base(p)
			if out, err := exec.Command("setfattr", "-h", "-n", name, "-v", value, p).CombinedOutput(); err != nil {
				t.Fatalf("setfattr %s %s: %v: %s", name, p, err, out)
			}
			out, err := exec.Command("getfattr", "-h", "--absolute-names", "--only-values", "-n", name, p).Output()
			if err != nil || string(out) != value {
				t.Errorf("getfattr %s %s: %q, %v; want %q", name, p, out, err, value)
			}
		}
		out, err := exec.Command("getfattr", "-h", "-d", "-m", "-", "--absolute-names", p).CombinedOutput()
		if err != nil {
			t.Fatalf("getfattr -d %s: %v: %s", p, err, out)
		}
		for _, name := range names {
			if has := strings.Contains(string(out), name+"="); has != (p != l || name != "user.k") {
				t.Errorf("getfattr -d %s lists %s: %v\n%s", p, name, has, out)
			}
		}
	}
}

func getxattr(p, name string) ([]byte, error) {
	buf := make([]byte, 128<<10)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// TestXattrLimitsAndFlags: the answers of ext4 (and the VFS above it) at
// every limit: EOPNOTSUPP for a namespace ext4 has no handler for and
// EINVAL for a prefix alone (fs/xattr.c), ERANGE for a buffer too small and for a name over 255
// bytes, E2BIG for a value over 64 KiB, ENODATA for a missing name (get and
// remove), EEXIST and ENODATA for XATTR_CREATE and XATTR_REPLACE, ENOSPC
// when an entry's xattrs are full (fs/ext4/xattr.c answers ENOSPC when the
// inode's xattr space is; sealfs' limits are SPEC §8's: 1024 xattrs, the
// names within listxattr's 64 KiB, 256 KiB of names and values).
func TestXattrLimitsAndFlags(t *testing.T) {
	dir, _, _ := mount(t)
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	expect := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	expect("get of a missing name", errOnly(getxattr(f, "user.none")), syscall.ENODATA)
	expect("remove of a missing name", unix.Removexattr(f, "user.none"), syscall.ENODATA)
	expect("XATTR_REPLACE of a missing name", unix.Setxattr(f, "user.a", []byte("1"), unix.XATTR_REPLACE), syscall.ENODATA)
	expect("XATTR_CREATE", unix.Setxattr(f, "user.a", []byte("1"), unix.XATTR_CREATE), nil)
	expect("XATTR_CREATE of an existing name", unix.Setxattr(f, "user.a", []byte("2"), unix.XATTR_CREATE), syscall.EEXIST)
	expect("XATTR_REPLACE", unix.Setxattr(f, "user.a", []byte("3"), unix.XATTR_REPLACE), nil)
	if v, err := getxattr(f, "user.a"); err != nil || string(v) != "3" {
		t.Errorf("user.a reads %q, %v", v, err)
	}
	// Sizes: a size query, a buffer one byte short.
	if err := unix.Setxattr(f, "user.b", []byte("four"), 0); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Getxattr(f, "user.b", nil); n != 4 || err != nil {
		t.Errorf("size query: %d, %v", n, err)
	}
	_, err := unix.Getxattr(f, "user.b", make([]byte, 3))
	expect("get into a short buffer", err, syscall.ERANGE)
	if n, err := unix.Listxattr(f, nil); n != len("user.a\x00user.b\x00") || err != nil {
		t.Errorf("list size query: %d, %v", n, err)
	}
	_, err = unix.Listxattr(f, make([]byte, 5))
	expect("list into a short buffer", err, syscall.ERANGE)
	// Namespaces ext4 has no handler for, and a prefix alone.
	expect("an unknown namespace", unix.Setxattr(f, "other.k", []byte("v"), 0), syscall.EOPNOTSUPP)
	expect("system.* but the ACLs", unix.Setxattr(f, "system.k", []byte("v"), 0), syscall.EOPNOTSUPP)
	expect("user. alone", unix.Setxattr(f, "user.", []byte("v"), 0), syscall.EINVAL)
	// Names and values at the limits and over.
	long := "user." + strings.Repeat("n", 250)
	expect("a 255-byte name", unix.Setxattr(f, long, []byte("v"), 0), nil)
	expect("a 256-byte name", unix.Setxattr(f, long+"n", []byte("v"), 0), syscall.ERANGE)
	big := bytes.Repeat([]byte{0xa5}, 64<<10)
	expect("a 64 KiB value", unix.Setxattr(f, "user.big", big, 0), nil)
	if v, err := getxattr(f, "user.big"); err != nil || !bytes.Equal(v, big) {
		t.Errorf("the 64 KiB value reads back %d bytes, %v", len(v), err)
	}
	expect("a value over 64 KiB", unix.Setxattr(f, "user.big2", append(big, 0), 0), syscall.E2BIG)
	expect("a third 64 KiB value", unix.Setxattr(f, "user.big2", big, 0), nil)
	expect("a fourth 64 KiB value", unix.Setxattr(f, "user.big3", big, 0), nil)
	expect("a fifth, past 256 KiB", unix.Setxattr(f, "user.big4", big, 0), syscall.ENOSPC)
	// 1024 xattrs and no more.
	g := filepath.Join(dir, "g")
	if err := os.WriteFile(g, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 1024 {
		if err := unix.Setxattr(g, fmt.Sprintf("user.%04d", i), nil, 0); err != nil {
			t.Fatalf("xattr %d: %v", i, err)
		}
	}
	expect("xattr 1025", unix.Setxattr(g, "user.more", nil, 0), syscall.ENOSPC)
	expect("replacing one of 1024", unix.Setxattr(g, "user.0000", []byte("v"), 0), nil)
}

func errOnly(_ []byte, err error) error { return err }

// TestXattrStatusOnRoot: the root serves the mount's status as
// user.sealfs.status, hides it from listxattr and refuses to set or
// remove it (EPERM); the root's own xattrs work as any directory's.
func TestXattrStatusOnRoot(t *testing.T) {
	dir, _, _ := mountWith(t, fusefs.Options{Status: func() []byte { return []byte(`{"pid":1}`) }})
	if v, err := getxattr(dir, fusefs.StatusXattr); err != nil || string(v) != `{"pid":1}` {
		t.Errorf("status reads %q, %v", v, err)
	}
	if err := unix.Setxattr(dir, "user.k", []byte("v"), 0); err != nil {
		t.Errorf("an xattr on the root: %v", err)
	}
	buf := make([]byte, 1024)
	if n, err := unix.Listxattr(dir, buf); string(buf[:max(n, 0)]) != "user.k\x00" || err != nil {
		t.Errorf("the root lists %q, %v", buf[:max(n, 0)], err)
	}
	if err := unix.Setxattr(dir, fusefs.StatusXattr, []byte("{}"), 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("setting the status: %v, want EPERM", err)
	}
	if err := unix.Removexattr(dir, fusefs.StatusXattr); !errors.Is(err, syscall.EPERM) {
		t.Errorf("removing the status: %v, want EPERM", err)
	}
}

// TestDefaultACLUmask: in a directory with a default ACL a new entry's
// mode is cut by the ACL and not by the umask; elsewhere by the umask,
// once (ext4: posix_acl_create). Under a default ACL of rwx for everyone
// and a umask of 077, ext4 makes a file asked for 0666 0666, a directory
// asked for 0777 0777 (with the default ACL), a fifo 0666; with no default
// ACL 0600, 0700 and 0600.
func TestDefaultACLUmask(t *testing.T) {
	dir, _, _ := mount(t)
	acl := filepath.Join(dir, "acl")
	plain := filepath.Join(dir, "plain")
	for _, d := range []string{acl, plain} {
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("setfacl", "-d", "-m", "u::rwx,g::rwx,o::rwx", acl).CombinedOutput(); err != nil {
		t.Fatalf("setfacl: %v %s", err, out)
	}
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	for d, want := range map[string][3]uint32{acl: {0o666, 0o777, 0o666}, plain: {0o600, 0o700, 0o600}} {
		if err := os.WriteFile(filepath.Join(d, "f"), nil, 0o666); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkdir(filepath.Join(d, "d"), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(filepath.Join(d, "p"), 0o666); err != nil {
			t.Fatal(err)
		}
		for i, name := range []string{"f", "d", "p"} {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(d, name), &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&0o7777 != want[i] {
				t.Errorf("%s/%s has mode %o, want %o (as ext4)", filepath.Base(d), name, st.Mode&0o7777, want[i])
			}
		}
	}
	if _, err := getxattr(filepath.Join(acl, "d"), "system.posix_acl_default"); err != nil {
		t.Errorf("a new directory did not inherit the default ACL: %v", err)
	}
}

// TestCapabilityKilled: a file capability (security.capability) goes when
// the file is written or changes owner, as on ext4: the kernel removes it
// through removexattr (cap_inode_killpriv), so a changed binary never
// keeps the privileges of the one it replaced.
func TestCapabilityKilled(t *testing.T) {
	dir, _, _ := mount(t)
	// vfs_cap_data, revision 2: CAP_NET_BIND_SERVICE permitted.
	capData := binary.LittleEndian.AppendUint32(nil, 0x02000000)
	capData = binary.LittleEndian.AppendUint32(capData, 1<<unix.CAP_NET_BIND_SERVICE)
	capData = append(capData, make([]byte, 12)...)
	for name, change := range map[string]func(string) error{
		"chown": func(p string) error { return os.Chown(p, 1000, 1000) },
		"write": func(p string) error {
			h, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			if _, err := h.Write([]byte("y")); err != nil {
				h.Close()
				return err
			}
			return h.Close()
		},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(p, "security.capability", capData, 0); err != nil {
			t.Fatal(err)
		}
		if err := change(p); err != nil {
			t.Fatal(err)
		}
		if _, err := getxattr(p, "security.capability"); !errors.Is(err, syscall.ENODATA) {
			t.Errorf("after %s: security.capability: %v, want ENODATA (as ext4)", name, err)
		}
	}
}
