package test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nobodyID is the uid and gid of the user the permission tests act as: not
// the owner of anything, in no group that owns anything.
const nobodyID = 65534

// asNobody runs a command as nobodyID (uid and gid, no other groups) and
// returns its error and output.
func asNobody(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// reachable lets everybody through the folders above mnt (t.TempDir makes
// them 0700), so that another user can reach the mount.
func reachable(t *testing.T, mnt string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(mnt), filepath.Dir(filepath.Dir(mnt))} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

func run1(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// xattrSample is what TestXattrsAndACLs sets: per path, xattrs of every
// namespace a user can set (trusted.* and security.* on a symlink: the
// kernel allows user.* on files and directories only).
var xattrSample = map[string]map[string]string{
	"":       {"user.root": "on the mount's root", "trusted.r": "r"},
	"shared": {"user.a": "1", "trusted.b": "two", "security.c": "\x00\xff binary"},
	"d":      {"user.dir": "on a directory"},
	"l":      {"trusted.t": "on a symlink", "security.s": "too"},
}

// TestXattrsAndACLs: xattrs of each namespace and POSIX ACLs set through
// the mount read back, and the kernel honours an ACL (the mount uses
// default_permissions): nobody reads a 0600 file of root's that an ACL
// entry names them in, and not one that no ACL names them in; a directory's
// default ACL is inherited by a new file; chmod changes the ACL's mask, as
// on ext4. The mount's root keeps its mode, xattrs and ACL like any
// directory (nobody reaches the files through the root's ACL). All of it,
// and every ctime, is the same after a SIGKILL of the
// daemon (replayed from the journal), and after a commit and a remount on
// a fresh cache (read from the snapshot).
func TestXattrsAndACLs(t *testing.T) {
	c, mnt := posixMount(t)
	reachable(t, mnt)
	p := func(n string) string { return filepath.Join(mnt, n) }
	for name, mode := range map[string]os.FileMode{"shared": 0o600, "closed": 0o600, "masked": 0o640} {
		if err := os.WriteFile(p(name), []byte("content of "+name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(p("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("shared", p("l")); err != nil {
		t.Fatal(err)
	}
	for path, xs := range xattrSample {
		for name, value := range xs {
			if err := unix.Lsetxattr(p(path), name, []byte(value), 0); err != nil {
				t.Fatalf("setxattr %s %s: %v", path, name, err)
			}
		}
	}
	run1(t, "setfacl", "-m", "u:nobody:r", p("shared"))
	run1(t, "setfacl", "-m", "u:nobody:r", p("masked"))
	run1(t, "chmod", "600", p("masked")) // the mask goes to ---: nobody is shut out again
	run1(t, "setfacl", "-d", "-m", "u:nobody:rwx", p("d"))
	// The root too: nobody gets in only through its ACL.
	run1(t, "chmod", "750", mnt)
	run1(t, "setfacl", "-m", "u:nobody:rx", mnt)
	if err := os.WriteFile(p("d/inherited"), []byte("content of d/inherited"), 0o640); err != nil {
		t.Fatal(err)
	}
	ctimes := map[string]int64{}
	for _, name := range []string{"", "shared", "closed", "masked", "d", "l", "d/inherited"} {
		var st unix.Stat_t
		if err := unix.Lstat(p(name), &st); err != nil {
			t.Fatal(err)
		}
		ctimes[name] = st.Ctim.Nano()
	}
	check := func(when string) {
		t.Helper()
		for path, xs := range xattrSample {
			for name, value := range xs {
				if got, err := getxattrValue(p(path), name); err != nil || got != value {
					t.Errorf("%s: %s %s reads %q (%v), want %q", when, path, name, got, err, value)
				}
			}
		}
		for name, readable := range map[string]bool{"shared": true, "closed": false, "masked": false, "d/inherited": true} {
			out, err := asNobody("cat", p(name))
			if readable && (err != nil || out != "content of "+name) {
				t.Errorf("%s: nobody cannot read %s, which an ACL lets them: %v %s", when, name, err, out)
			}
			if !readable && err == nil {
				t.Errorf("%s: nobody reads %s, which neither its mode nor its ACL lets them", when, name)
			}
		}
		acl := run1(t, "getfacl", "-cp", p("masked"))
		if !strings.Contains(acl, "user:nobody:r--") || !strings.Contains(acl, "mask::---") {
			t.Errorf("%s: the ACL of masked after chmod 600 is\n%s", when, acl)
		}
		if def := run1(t, "getfacl", "-cpd", p("d")); !strings.Contains(def, "user:nobody:rwx") {
			t.Errorf("%s: the default ACL of d is\n%s", when, def)
		}
		if fi, err := os.Stat(mnt); err != nil || fi.Mode().Perm() != 0o750 {
			t.Errorf("%s: the root has mode %v (%v), want 0750", when, fi.Mode(), err)
		}
		for name, want := range ctimes {
			var st unix.Stat_t
			if err := unix.Lstat(p(name), &st); err != nil || st.Ctim.Nano() != want {
				t.Errorf("%s: ctime of %s is %d (%v), was %d", when, name, st.Ctim.Nano(), err, want)
			}
		}
	}
	check("at once")
	killDaemon(t, mnt)
	expect(t, c.mount(t, mnt, "--allow-other"), 0, "")
	check("after SIGKILL of the daemon and a mount on the same cache")
	fresh := remountFresh(t, c, mnt)
	check("after a commit and a mount on a fresh cache")
	fresh.umount(t, mnt)
}

func getxattrValue(path, name string) (string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// TestXattrCtimeJournaled: a setxattr, a removexattr, a chmod and a
// utimensat each set ctime, and a SIGKILL of the daemon right after them
// loses neither the change nor its ctime.
func TestXattrCtimeJournaled(t *testing.T) {
	c, mnt := posixMount(t)
	f := filepath.Join(mnt, "f")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(f, "user.gone", []byte("soon"), 0); err != nil {
		t.Fatal(err)
	}
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	steps := []func() error{
		func() error { return os.Chtimes(f, past, past) },
		func() error { return os.Chmod(f, 0o640) },
		func() error { return unix.Setxattr(f, "user.kept", []byte("v"), 0) },
		func() error { return unix.Removexattr(f, "user.gone") },
	}
	for i, step := range steps {
		var before unix.Stat_t
		unix.Stat(f, &before)
		if err := step(); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(f, &st); err != nil {
			t.Fatal(err)
		}
		if st.Ctim.Nano() <= before.Ctim.Nano() {
			t.Fatalf("step %d: ctime %d, was %d", i, st.Ctim.Nano(), before.Ctim.Nano())
		}
	}
	var want unix.Stat_t
	unix.Stat(f, &want)
	killDaemon(t, mnt)
	expect(t, c.mount(t, mnt, "--allow-other"), 0, "")
	var st unix.Stat_t
	if err := unix.Stat(f, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ctim != want.Ctim || st.Mtim != want.Mtim || st.Mode != want.Mode {
		t.Errorf("after SIGKILL: ctime %v mtime %v mode %o, want %v %v %o", st.Ctim, st.Mtim, st.Mode, want.Ctim, want.Mtim, want.Mode)
	}
	if v, err := getxattrValue(f, "user.kept"); err != nil || v != "v" {
		t.Errorf("after SIGKILL: user.kept reads %q, %v", v, err)
	}
	if _, err := getxattrValue(f, "user.gone"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("after SIGKILL: user.gone: %v, want ENODATA", err)
	}
	c.umount(t, mnt)
}

// xattrsOf returns every xattr of path (not following a symlink) as
// name=value lines, sorted, ACLs included.
func xattrsOf(t *testing.T, path string) []string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", path, err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v, err := getxattrValue(path, name)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", path, name, err)
		}
		out = append(out, name+"="+v)
	}
	sort.Strings(out)
	return out
}

// TestBackupRestoreXattrs: backup reads the xattrs and POSIX ACLs of local
// files (every namespace, on files, directories and symlinks, and on the
// directory backed up itself, with its mode) and restore sets them: the
// restored tree has exactly the source's, ACLs included.
// A restore that may not set some (trusted.* and security.* without
// CAP_SYS_ADMIN) sets all the others, and warns about each one it could not
// set.
func TestBackupRestoreXattrs(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	src := t.TempDir()
	s := func(n string) string { return filepath.Join(src, n) }
	if err := os.WriteFile(s("f"), []byte("f"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s("d"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", s("l")); err != nil {
		t.Fatal(err)
	}
	for path, xs := range map[string]map[string]string{
		"f": {"user.a": "1", "trusted.b": "two", "security.c": "\x00\xff"},
		"d": {"user.dir": "on a directory", "trusted.d": "x"},
		"l": {"trusted.t": "on a symlink"},
	} {
		for name, value := range xs {
			if err := unix.Lsetxattr(s(path), name, []byte(value), 0); err != nil {
				t.Fatalf("setxattr %s %s: %v", path, name, err)
			}
		}
	}
	run1(t, "setfacl", "-m", "u:nobody:rw,g:nogroup:r", s("f"))
	run1(t, "setfacl", "-d", "-m", "u:nobody:rwx", s("d"))
	// The directory backed up: its own attributes go with the snapshot.
	if err := unix.Setxattr(src, "user.root", []byte("of the source"), 0); err != nil {
		t.Fatal(err)
	}
	run1(t, "setfacl", "-m", "u:nobody:rx", src)
	if err := os.Chmod(src, 0o751); err != nil {
		t.Fatal(err)
	}
	expect(t, c.run(t, "backup", src, c.remote), 0, "")

	dst := filepath.Join(t.TempDir(), "dst")
	expect(t, sealfs(t, nil, "restore", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst), 0, "")
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o751 {
		t.Errorf("the restored directory has mode %v (%v), the source 0751", fi.Mode(), err)
	}
	for _, name := range []string{"", "f", "d", "l"} {
		want, got := xattrsOf(t, s(name)), xattrsOf(t, filepath.Join(dst, name))
		if strings.Join(got, "\n") != strings.Join(want, "\n") || len(want) < 1 {
			t.Errorf("%s restored with xattrs\n%q\nthe source has\n%q", name, got, want)
		}
	}
	for _, name := range []string{"f", "d"} {
		if g, w := run1(t, "getfacl", "-cp", filepath.Join(dst, name)), run1(t, "getfacl", "-cp", s(name)); g != w {
			t.Errorf("%s restored with the ACL\n%s\nthe source has\n%s", name, g, w)
		}
	}

	// Without CAP_SYS_ADMIN, trusted.* and security.* are refused (EPERM,
	// as the kernel answers: cap_inode_setxattr): the rest is restored, and
	// each refusal is a warning.
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	dst2 := filepath.Join(t.TempDir(), "dst")
	r := run(t, exec.Command(setpriv, "--bounding-set=-sys_admin", sealfsBin, "restore", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst2))
	expect(t, r, 0, "")
	for _, x := range []string{"trusted.b of " + filepath.Join(dst2, "f"), "security.c of " + filepath.Join(dst2, "f"),
		"trusted.d of " + filepath.Join(dst2, "d"), "trusted.t of " + filepath.Join(dst2, "l")} {
		if !strings.Contains(r.stderr, "warning: extended attribute "+x+" not restored") {
			t.Errorf("no warning about %s:\n%s", x, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "4 extended attributes were not restored") {
		t.Errorf("no count of what was not restored:\n%s", r.stderr)
	}
	for _, name := range []string{"", "f", "d", "l"} {
		var want []string
		for _, x := range xattrsOf(t, s(name)) {
			if !strings.HasPrefix(x, "trusted.") && !strings.HasPrefix(x, "security.") {
				want = append(want, x)
			}
		}
		if got := xattrsOf(t, filepath.Join(dst2, name)); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s restored without CAP_SYS_ADMIN with\n%q\nwant\n%q", name, got, want)
		}
	}
}
