package test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// posixMount mounts a fresh repository with --allow-other (as the POSIX
// suites run) and returns it with its mount point.
func posixMount(t *testing.T, extra ...string) (cliRepo, string) {
	t.Helper()
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, append([]string{"--allow-other"}, extra...)...), 0, "")
	return c, mnt
}

// remountFresh unmounts (which commits everything) and mounts the same
// remote again on a fresh cache directory: what it shows came from the
// remote.
func remountFresh(t *testing.T, c cliRepo, mnt string, extra ...string) cliRepo {
	t.Helper()
	c.umount(t, mnt)
	fresh := cliRepo{remote: c.remote, cache: filepath.Join(t.TempDir(), "fresh"), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, append([]string{"--allow-other"}, extra...)...), 0, "")
	return fresh
}

// wantErrno fails the test unless err carries want.
func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v (as ext4)", what, err, want)
	}
}

// TestNameTooLong: a name component over 255 bytes is ENAMETOOLONG on
// every operation, as ext4 answers (ext4_lookup refuses it before
// anything else); a 255-byte name works.
func TestNameTooLong(t *testing.T) {
	_, mnt := posixMount(t)
	long := filepath.Join(mnt, strings.Repeat("n", 256))
	ok := filepath.Join(mnt, strings.Repeat("n", 255))
	if err := os.WriteFile(ok, []byte("x"), 0o644); err != nil {
		t.Fatalf("a 255-byte name: %v", err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := os.Lstat(long)
	wantErrno(t, "lstat", err, syscall.ENAMETOOLONG)
	_, err = os.OpenFile(long, os.O_CREATE|os.O_WRONLY, 0o644)
	wantErrno(t, "open O_CREAT", err, syscall.ENAMETOOLONG)
	_, err = os.Open(long)
	wantErrno(t, "open", err, syscall.ENAMETOOLONG)
	wantErrno(t, "mkdir", os.Mkdir(long, 0o755), syscall.ENAMETOOLONG)
	wantErrno(t, "mkfifo", unix.Mkfifo(long, 0o644), syscall.ENAMETOOLONG)
	wantErrno(t, "mknod", unix.Mknod(long, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))), syscall.ENAMETOOLONG)
	wantErrno(t, "symlink", os.Symlink("target", long), syscall.ENAMETOOLONG)
	wantErrno(t, "rename source", os.Rename(long, filepath.Join(mnt, "x")), syscall.ENAMETOOLONG)
	wantErrno(t, "rename target", os.Rename(ok, long), syscall.ENAMETOOLONG)
	wantErrno(t, "rename target in a subdirectory", os.Rename(ok, filepath.Join(mnt, "d", strings.Repeat("n", 256))), syscall.ENAMETOOLONG)
	wantErrno(t, "link", os.Link(ok, long), syscall.ENAMETOOLONG)
	wantErrno(t, "unlink", unix.Unlink(long), syscall.ENAMETOOLONG)
	wantErrno(t, "rmdir", unix.Rmdir(long), syscall.ENAMETOOLONG)
	wantErrno(t, "chmod", os.Chmod(long, 0o600), syscall.ENAMETOOLONG)
	wantErrno(t, "setxattr", unix.Setxattr(long, "user.a", []byte("v"), 0), syscall.ENAMETOOLONG)
	_, err = os.Readlink(long)
	wantErrno(t, "readlink", err, syscall.ENAMETOOLONG)
	if _, err := os.Stat(ok); err != nil {
		t.Fatalf("the 255-byte name is gone after the refused calls: %v", err)
	}
}

// direntNames reads a directory with getdents64 as ls -a does and returns
// every name (. and .. included) with its inode number.
func direntNames(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	out := map[string]uint64{}
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
		for off := 0; off < n; {
			ino := binary.NativeEndian.Uint64(buf[off:])
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			name := buf[off+19 : off+reclen]
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			out[string(name)] = ino
			off += reclen
		}
	}
}

func inoOf(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestReaddirDotEntries: readdir lists . and .. with the inode numbers of
// the directory and of its parent (the root's .. is the root), as ext4
// does; after a remount on a fresh cache too.
func TestReaddirDotEntries(t *testing.T) {
	c, mnt := posixMount(t)
	if err := os.MkdirAll(filepath.Join(mnt, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		for _, d := range []struct{ dir, parent string }{{mnt, mnt}, {"a", mnt}, {"a/b", "a"}} {
			dir, parent := d.dir, d.parent
			if !filepath.IsAbs(dir) {
				dir = filepath.Join(mnt, dir)
			}
			if !filepath.IsAbs(parent) {
				parent = filepath.Join(mnt, parent)
			}
			names := direntNames(t, dir)
			if names["."] != inoOf(t, dir) || names[".."] != inoOf(t, parent) {
				t.Errorf("%s: readdir of %s gives . %d and .. %d, want %d and %d", when, dir, names["."], names[".."], inoOf(t, dir), inoOf(t, parent))
			}
		}
	}
	check("first mount")
	fresh := remountFresh(t, c, mnt)
	check("after a remount on a fresh cache")
	fresh.umount(t, mnt)
}

// TestModeZero: a permission value of 0 is kept as 0 for every file type
// and every way of making or changing one (open O_CREAT, chmod, mkdir,
// mkfifo, mknod), through commit and a remount on a fresh cache, as ext4
// keeps it; and the umask is applied once, by the kernel.
func TestModeZero(t *testing.T) {
	c, mnt := posixMount(t)
	old := unix.Umask(0)
	defer unix.Umask(old)
	p := func(n string) string { return filepath.Join(mnt, n) }
	fd, err := unix.Open(p("created"), unix.O_CREAT|unix.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if err := os.WriteFile(p("chmodded"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("chmodded"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkdir(p("dir"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkdir(p("dir-chmodded"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("dir-chmodded"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(p("fifo"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(p("chr"), unix.S_IFCHR, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	// The umask, applied once: 027 takes 0777 to 0750, not further.
	unix.Umask(0o027)
	if err := unix.Mkdir(p("masked-dir"), 0o777); err != nil {
		t.Fatal(err)
	}
	if fd, err = unix.Open(p("masked-file"), unix.O_CREAT|unix.O_WRONLY, 0o666); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	unix.Umask(0)
	want := map[string]uint32{
		"created": unix.S_IFREG, "chmodded": unix.S_IFREG, "dir": unix.S_IFDIR, "dir-chmodded": unix.S_IFDIR,
		"fifo": unix.S_IFIFO, "chr": unix.S_IFCHR, "masked-dir": unix.S_IFDIR | 0o750, "masked-file": unix.S_IFREG | 0o640,
	}
	check := func(when string) {
		for name, mode := range want {
			var st unix.Stat_t
			if err := unix.Lstat(p(name), &st); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if st.Mode != mode {
				t.Errorf("%s: %s has mode %o, want %o (as ext4)", when, name, st.Mode, mode)
			}
		}
	}
	check("first mount")
	fresh := remountFresh(t, c, mnt)
	check("after a remount on a fresh cache")
	fresh.umount(t, mnt)
}

// killDaemon kills the mount's daemon with SIGKILL and waits until it is
// gone; the next mount finds the dead mount and the journal.
func killDaemon(t *testing.T, mnt string) {
	t.Helper()
	pid := mountStatus(t, mnt).PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for processAliveTest(pid) {
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRenameFlags: renameat2 as ext4 answers it. RENAME_NOREPLACE fails
// with EEXIST over an existing name; RENAME_EXCHANGE swaps two entries
// for real (files, directories, a file with a directory, across
// directories), journaled so that it survives a SIGKILL of the daemon and
// committed right (a remount on a fresh cache shows it); RENAME_WHITEOUT
// and unknown flags are refused with EINVAL and change nothing.
func TestRenameFlags(t *testing.T) {
	c, mnt := posixMount(t)
	p := func(n string) string { return filepath.Join(mnt, n) }
	files := map[string]string{"a": "content of a", "b": "content of b", "d1/in1": "in d1", "d2/in2": "in d2", "d1/x": "x in d1", "d2/y": "y in d2"}
	for name, data := range files {
		os.MkdirAll(filepath.Dir(p(name)), 0o755)
		if err := os.WriteFile(p(name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(p("f"), []byte("file f"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(p("e"), 0o700)
	rename := func(from, to string, flags uint) error {
		return unix.Renameat2(unix.AT_FDCWD, p(from), unix.AT_FDCWD, p(to), flags)
	}
	wantErrno(t, "RENAME_NOREPLACE over a file", rename("a", "b", unix.RENAME_NOREPLACE), syscall.EEXIST)
	wantErrno(t, "RENAME_WHITEOUT", rename("a", "c", unix.RENAME_WHITEOUT), syscall.EINVAL)
	wantErrno(t, "an unknown flag", rename("a", "c", 1<<5), syscall.EINVAL)
	wantErrno(t, "RENAME_EXCHANGE|RENAME_NOREPLACE", rename("a", "b", unix.RENAME_EXCHANGE|unix.RENAME_NOREPLACE), syscall.EINVAL)
	wantErrno(t, "RENAME_EXCHANGE with a missing target", rename("a", "missing", unix.RENAME_EXCHANGE), syscall.ENOENT)
	wantErrno(t, "RENAME_EXCHANGE of a directory with its own child", rename("d1", "d1/x", unix.RENAME_EXCHANGE), syscall.EINVAL)
	if _, err := os.Lstat(p("c")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused rename made c: %v", err)
	}
	if err := rename("a", "c", unix.RENAME_NOREPLACE); err != nil {
		t.Fatalf("RENAME_NOREPLACE to a free name: %v", err)
	}
	for _, x := range [][2]string{{"c", "b"}, {"d1", "d2"}, {"f", "e"}, {"d1/y", "d2/x"}} {
		if err := rename(x[0], x[1], unix.RENAME_EXCHANGE); err != nil {
			t.Fatalf("RENAME_EXCHANGE %s %s: %v", x[0], x[1], err)
		}
	}
	// After: c <-> b swapped contents; d1 and d2 swapped (with what had
	// been moved in them); f is a directory, e a file.
	want := map[string]string{"c": "content of b", "b": "content of a", "d2/in1": "in d1", "d1/in2": "in d2",
		"d2/x": "y in d2", "d1/y": "x in d1", "e": "file f"}
	check := func(when string) {
		t.Helper()
		for name, data := range want {
			got, err := os.ReadFile(p(name))
			if err != nil || string(got) != data {
				t.Errorf("%s: %s holds %q (%v), want %q", when, name, got, err, data)
			}
		}
		for _, gone := range []string{"a", "d1/in1", "d2/in2", "d1/x", "d2/y"} {
			if _, err := os.Lstat(p(gone)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: %s is still there (%v)", when, gone, err)
			}
		}
		if fi, err := os.Lstat(p("f")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: f is not the directory e was: %v %v", when, fi, err)
		}
		if fi, err := os.Lstat(p("e")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: e is not the file f was: %v %v", when, fi, err)
		}
	}
	check("at once")
	killDaemon(t, mnt)
	expect(t, c.mount(t, mnt, "--allow-other"), 0, "")
	check("after SIGKILL of the daemon and a mount on the same cache")
	fresh := remountFresh(t, c, mnt)
	check("after a remount on a fresh cache")
	fresh.umount(t, mnt)
}

// mountFlags returns the per-mount and the superblock options of the
// mount at mnt, as /proc/self/mountinfo shows them.
func mountFlags(t *testing.T, mnt string) (perMount, super map[string]bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(mnt)
	set := func(list string) map[string]bool {
		m := map[string]bool{}
		for _, o := range strings.Split(list, ",") {
			m[o] = true
		}
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[4] != abs {
			continue
		}
		sep := slices.Index(f, "-")
		return set(f[5]), set(f[sep+3])
	}
	t.Fatalf("%s is not in /proc/self/mountinfo", mnt)
	return nil, nil
}

// TestMountHelperKernelOptions: the mount helper takes every standard
// mount(8) option. The kernel's own flags (suid, dev, noexec, noatime,
// nodiratime, sync, dirsync, lazytime) reach the mount, as they would on
// ext4; nosuid,nodev stay the default, and an explicit suid or dev from
// root is honoured; options that mean nothing to a FUSE mount (users,
// iversion, x-*) are accepted and ignored.
func TestMountHelperKernelOptions(t *testing.T) {
	installMountHelper(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	base := "code_file=" + c.codeFile + ",cache_dir=" + c.cache
	mount := func(opts string) {
		t.Helper()
		if out, err := exec.Command("mount", "-t", "fuse.sealfs", c.remote, mnt, "-o", base+opts).CombinedOutput(); err != nil {
			t.Fatalf("mount -t fuse.sealfs -o ...%s: %v\n%s", opts, err, out)
		}
	}
	check := func(what string, perMount, super map[string]bool, want map[string]bool) {
		t.Helper()
		for o, on := range want {
			if (perMount[o] || super[o]) != on {
				t.Errorf("%s: option %s is %v, want %v (mount shows %v / %v)", what, o, !on, on, perMount, super)
			}
		}
	}
	mount("")
	pm, sb := mountFlags(t, mnt)
	check("defaults", pm, sb, map[string]bool{"nosuid": true, "nodev": true, "relatime": true, "noexec": false, "noatime": false})
	c.umount(t, mnt)
	mount(",users,suid,dev,noexec,noatime,nodiratime,sync,dirsync,lazytime,iversion,nomand,x-systemd.device-timeout=5,defaults,auto,_netdev,nofail,async,sync")
	pm, sb = mountFlags(t, mnt)
	check("explicit", pm, sb, map[string]bool{"nosuid": false, "nodev": false, "noexec": true, "noatime": true,
		"nodiratime": true, "relatime": false, "sync": true, "dirsync": true, "lazytime": true})
	c.umount(t, mnt)
	// An unknown kernel option is a usage error, before any key is read.
	r := sealfs(t, nil, "mount", "--cache-dir", c.cache, "--code-file", filepath.Join(t.TempDir(), "no-code"), "--options", "noatime,bogus", c.remote, mnt)
	if r.code != 2 || !strings.Contains(r.stderr, `unknown mount option "bogus"`) || isMounted(mnt) {
		t.Errorf("--options bogus: exit %d, %q", r.code, r.stderr)
	}
	mount(",strictatime,nosuid")
	pm, sb = mountFlags(t, mnt)
	check("strictatime", pm, sb, map[string]bool{"nosuid": true, "nodev": true, "relatime": false, "noatime": false})
	c.umount(t, mnt)
}

func atimeOf(t *testing.T, p string) time.Time {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return time.Unix(st.Atim.Unix())
}

func setTimes(t *testing.T, p string, atime, mtime time.Time) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, p string) {
	t.Helper()
	if _, err := os.ReadFile(p); err != nil {
		t.Fatal(err)
	}
}

// TestAtime: reads update access times as ext4 does under each mount
// option. relatime (the default): a read updates the access time when it
// is not after the modification or change time or is 24 hours old, and
// not otherwise; listing a directory likewise; what a read set is committed
// and read back on a fresh cache. strictatime: every read. noatime:
// none.
func TestAtime(t *testing.T) {
	c, mnt := posixMount(t)
	p := func(n string) string { return filepath.Join(mnt, n) }
	for _, n := range []string{"new", "old", "recent"} {
		if err := os.WriteFile(p(n), []byte("data of "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	a0 := atimeOf(t, p("new"))
	time.Sleep(20 * time.Millisecond)
	readAll(t, p("new"))
	a1 := atimeOf(t, p("new"))
	if !a1.After(a0) {
		t.Errorf("relatime: a read of a file whose atime is its mtime left atime at %v", a1)
	}
	readAll(t, p("new"))
	if a := atimeOf(t, p("new")); !a.Equal(a1) {
		t.Errorf("relatime: a second read moved atime from %v to %v", a1, a)
	}
	setTimes(t, p("old"), now.Add(-25*time.Hour), now.Add(-26*time.Hour))
	readAll(t, p("old"))
	if a := atimeOf(t, p("old")); a.Before(now) {
		t.Errorf("relatime: a read of a file whose atime is 25 h old left it at %v", a)
	}
	// (utimensat sets ctime to now, so a read after it always updates
	// atime, as on ext4; the second read above is the case that does not.)
	if err := os.Mkdir(p("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	setTimes(t, p("dir"), now.Add(-2*time.Hour), now.Add(-time.Hour))
	direntNames(t, p("dir"))
	if a := atimeOf(t, p("dir")); a.Before(now) {
		t.Errorf("relatime: listing a directory whose atime is before its mtime left it at %v", a)
	}
	// Reading a symlink is an access too.
	if err := os.Symlink("old", p("link")); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(now.Add(-2 * time.Hour).UnixNano()), unix.NsecToTimespec(now.Add(-time.Hour).UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p("link"), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Readlink(p("link")); err != nil {
		t.Fatal(err)
	}
	if a := atimeOf(t, p("link")); a.Before(now) {
		t.Errorf("relatime: readlink of a symlink whose atime is before its mtime left it at %v", a)
	}
	kept := atimeOf(t, p("old"))
	c = remountFresh(t, c, mnt)
	if a := atimeOf(t, p("old")); !a.Equal(kept) {
		t.Errorf("after a remount on a fresh cache, the atime a read set is %v, want %v", a, kept)
	}

	c = remountFresh(t, c, mnt, "--options", "noatime")
	setTimes(t, p("new"), now.Add(-48*time.Hour), now.Add(-time.Minute))
	readAll(t, p("new"))
	if a := atimeOf(t, p("new")); a.After(now) {
		t.Errorf("noatime: a read moved atime to %v", a)
	}
	c = remountFresh(t, c, mnt, "--options", "strictatime")
	readAll(t, p("recent"))
	a1 = atimeOf(t, p("recent"))
	time.Sleep(20 * time.Millisecond)
	readAll(t, p("recent"))
	if a := atimeOf(t, p("recent")); !a.After(a1) || !a1.After(now) {
		t.Errorf("strictatime: two reads left atime at %v then %v", a1, a)
	}
	c.umount(t, mnt)
}

// asUser runs a shell command as uid and gid 4321 (not root, no
// capabilities, no supplementary groups) and fails the test if it fails.
func asUser(t *testing.T, dir, script string) {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	cmd := exec.Command(setpriv, "--reuid=4321", "--regid=4321", "--clear-groups", "--inh-caps=-all", "sh", "-e", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid 4321: %s: %v\n%s", script, err, out)
	}
}

func statMode(t *testing.T, p string) (mode, uid, gid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode, st.Uid, st.Gid
}

// TestSetIDRules: the set-id rules as ext4 (and the kernel for it)
// applies them. A new file or subdirectory of a setgid directory gets the
// directory's group, and a new subdirectory the setgid bit; a write,
// truncate or fallocate (plain, keep-size, punch-hole, zero-range) by a
// user who does not own the file clears setuid, and setgid when the group
// may execute; chown clears both. Kept through a remount on a fresh cache.
func TestSetIDRules(t *testing.T) {
	c, mnt := posixMount(t)
	p := func(n string) string { return filepath.Join(mnt, n) }
	os.Chmod(mnt, 0o777)
	if err := os.Mkdir(p("sg"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p("sg"), 0, 1234); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p("sg"), 0o2777); err != nil {
		t.Fatal(err)
	}
	if m, _, g := statMode(t, p("sg")); m != unix.S_IFDIR|0o2777 || g != 1234 {
		t.Fatalf("sg is %o gid %d", m, g)
	}
	if err := os.Mkdir(p("sg/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("sg/f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	asUser(t, mnt, "mkdir sg/usersub; touch sg/userfile")
	ops := map[string]string{
		"write": "echo more >> write", "truncate": "truncate -s 1 truncate", "fallocate": "fallocate -l 8192 fallocate",
		"keepsize": "fallocate -n -o 8192 -l 4096 keepsize", "punch": "fallocate -p -o 0 -l 4096 punch",
		"zero": "fallocate -z -o 0 -l 4096 zero", "sgid-only": "echo more >> sgid-only",
	}
	var script []string
	for name, op := range ops {
		if err := os.WriteFile(p(name), bytes.Repeat([]byte("x"), 10000), 0o644); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o777) | os.ModeSetuid | os.ModeSetgid
		if name == "sgid-only" {
			mode = 0o767 | os.ModeSetgid // setgid without group execute: mandatory locking, kept
		}
		if err := os.Chmod(p(name), mode); err != nil {
			t.Fatal(err)
		}
		script = append(script, op)
	}
	if err := os.WriteFile(p("chowned"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p("chowned"), 0o755|os.ModeSetuid|os.ModeSetgid)
	asUser(t, mnt, strings.Join(script, "; "))
	if err := os.Chown(p("chowned"), 0, 99); err != nil {
		t.Fatal(err)
	}
	want := map[string][3]uint32{ // mode, uid, gid
		"sg/sub": {unix.S_IFDIR | 0o2755, 0, 1234}, "sg/f": {unix.S_IFREG | 0o644, 0, 1234},
		"sg/usersub": {unix.S_IFDIR | 0o2755, 4321, 1234}, "sg/userfile": {unix.S_IFREG | 0o644, 4321, 1234},
		"write": {unix.S_IFREG | 0o777, 0, 0}, "truncate": {unix.S_IFREG | 0o777, 0, 0}, "fallocate": {unix.S_IFREG | 0o777, 0, 0},
		"keepsize": {unix.S_IFREG | 0o777, 0, 0}, "punch": {unix.S_IFREG | 0o777, 0, 0}, "zero": {unix.S_IFREG | 0o777, 0, 0},
		"sgid-only": {unix.S_IFREG | 0o2767, 0, 0}, "chowned": {unix.S_IFREG | 0o755, 0, 99},
	}
	check := func(when string) {
		t.Helper()
		for name, w := range want {
			mode, uid, gid := statMode(t, p(name))
			if mode != w[0] || uid != w[1] || gid != w[2] {
				t.Errorf("%s: %s is %o %d:%d, want %o %d:%d (as ext4)", when, name, mode, uid, gid, w[0], w[1], w[2])
			}
		}
	}
	check("at once")
	fresh := remountFresh(t, c, mnt)
	check("after a remount on a fresh cache")
	fresh.umount(t, mnt)
}

func blocksOf(t *testing.T, p string) (size, blocks int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Size, st.Blocks
}

// TestSparseBlocksAndFallocate: st_blocks counts only the pages that hold
// data, as on ext4 (a 64 MiB file made by truncate has none; three
// written pages count 3 × 8), queued, stored, after a remount on a fresh
// cache, and after a write into the stored file; fallocate takes ext4's
// modes (allocate, keep-size, punch-hole, zero-range) and refuses the
// others with EOPNOTSUPP.
func TestSparseBlocksAndFallocate(t *testing.T) {
	c, mnt := posixMount(t)
	p := func(n string) string { return filepath.Join(mnt, n) }
	const size = 64 << 20
	if err := os.WriteFile(p("empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p("empty"), size); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p("sparse"))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 32 << 20, size - 30} {
		if _, err := f.WriteAt(bytes.Repeat([]byte("d"), 30), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if err := os.WriteFile(p("dense"), bytes.Repeat([]byte("x"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(when string, sparsePages int64) {
		t.Helper()
		if sz, b := blocksOf(t, p("empty")); sz != size || b != 0 {
			t.Errorf("%s: a 64 MiB file without data has size %d, st_blocks %d; want 0 blocks (as ext4)", when, sz, b)
		}
		// The queued copy is sealed in 4 KiB pages (4068 bytes of data
		// each): a few pages more than ext4's at most.
		if sz, b := blocksOf(t, p("sparse")); sz != size || b < sparsePages*8 || b > sparsePages*8+16 {
			t.Errorf("%s: a 64 MiB file with %d written pages has st_blocks %d; want about %d (as ext4)", when, sparsePages, b, sparsePages*8)
		}
		if _, b := blocksOf(t, p("dense")); b < 2048 || b > 2048+32 {
			t.Errorf("%s: a dense 1 MiB file has st_blocks %d, want about 2048", when, b)
		}
	}
	check("queued", 3)
	c = remountFresh(t, c, mnt)
	check("stored, on a fresh cache", 3)
	// A write into the stored file: the file is changed in place.
	f, err = os.OpenFile(p("sparse"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("w"), 4096), 16<<20); err != nil {
		t.Fatal(err)
	}
	check("changed in place", 4)
	fd := int(f.Fd())
	wantErrno(t, "FALLOC_FL_COLLAPSE_RANGE", unix.Fallocate(fd, unix.FALLOC_FL_COLLAPSE_RANGE, 0, 4096), syscall.EOPNOTSUPP)
	wantErrno(t, "FALLOC_FL_INSERT_RANGE", unix.Fallocate(fd, unix.FALLOC_FL_INSERT_RANGE, 0, 4096), syscall.EOPNOTSUPP)
	wantErrno(t, "FALLOC_FL_PUNCH_HOLE without FALLOC_FL_KEEP_SIZE", unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE, 0, 4096), syscall.EOPNOTSUPP)
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 16<<20, 4096); err != nil {
		t.Fatalf("punch hole: %v", err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, size, 1<<20); err != nil {
		t.Fatalf("keep-size allocation past the end: %v", err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE, size-10, 4096); err != nil {
		t.Fatalf("zero range past the end: %v", err)
	}
	f.Close()
	got, err := os.ReadFile(p("sparse"))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size-10+4096)
	copy(want, bytes.Repeat([]byte("d"), 30))
	copy(want[32<<20:], bytes.Repeat([]byte("d"), 30))
	copy(want[size-30:], bytes.Repeat([]byte("d"), 20))
	if !bytes.Equal(got, want) {
		t.Errorf("after punch, keep-size and zero-range the file reads wrong (%d bytes, want %d)", len(got), len(want))
	}
	c = remountFresh(t, c, mnt)
	if got2, err := os.ReadFile(p("sparse")); err != nil || !bytes.Equal(got2, want) {
		t.Errorf("after a remount on a fresh cache the file reads wrong: %v", err)
	}
	if _, b := blocksOf(t, p("sparse")); b > 5*8 {
		t.Errorf("after the punch, st_blocks is %d; want at most 5 pages", b)
	}
	c.umount(t, mnt)
}

// TestStatfs: statfs (df) through the mount reports the cache disk's size
// and free space and file counts (where writes queue before they go up),
// with ext4's name limit; docs/CLI.md says why.
func TestStatfs(t *testing.T) {
	c, mnt := posixMount(t)
	var got, cache unix.Statfs_t
	if err := unix.Statfs(mnt, &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(c.cache, &cache); err != nil {
		t.Fatal(err)
	}
	if got.Namelen != 255 || got.Bsize == 0 || got.Frsize == 0 || got.Blocks == 0 || got.Bfree > got.Blocks || got.Bavail > got.Bfree {
		t.Errorf("statfs through the mount: %+v", got)
	}
	if got.Blocks*uint64(got.Frsize) != cache.Blocks*uint64(cache.Frsize) || got.Files != cache.Files {
		t.Errorf("statfs through the mount says %d blocks of %d and %d files; the cache disk %d of %d and %d", got.Blocks, got.Frsize, got.Files, cache.Blocks, cache.Frsize, cache.Files)
	}
	if out, err := exec.Command("df", "-P", mnt).CombinedOutput(); err != nil || !strings.Contains(string(out), mnt) {
		t.Errorf("df: %v\n%s", err, out)
	}
	c.umount(t, mnt)
}

// TestAppendTwoDescriptors: O_APPEND writes through two descriptors (two
// processes' worth: each its own open file) never overwrite each other,
// as on ext4: every record is in the file once, whole; after a remount on
// a fresh cache too, with commits running meanwhile.
func TestAppendTwoDescriptors(t *testing.T) {
	// Commits run while the appends do.
	c, mnt := posixMount(t, "--commit-delay", "20ms")
	p := filepath.Join(mnt, "log")
	if err := os.WriteFile(p, []byte("start\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	errs := make(chan error, 2)
	for w := range 2 {
		go func() {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			for i := range n {
				if _, err := fmt.Fprintf(f, "writer %d record %05d %s\n", w, i, strings.Repeat("x", i%97)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		seen := map[string]bool{}
		for _, l := range lines[1:] {
			seen[l] = true
		}
		if lines[0] != "start" || len(lines) != 2*n+1 || len(seen) != 2*n {
			t.Fatalf("%s: %d lines (%d distinct) after %d appends; first %q", when, len(lines), len(seen), 2*n, lines[0])
		}
		for w := range 2 {
			for i := range n {
				if l := fmt.Sprintf("writer %d record %05d %s", w, i, strings.Repeat("x", i%97)); !seen[l] {
					t.Fatalf("%s: %q is missing or torn", when, l)
				}
			}
		}
	}
	check("at once")
	fresh := remountFresh(t, c, mnt)
	check("after a remount on a fresh cache")
	fresh.umount(t, mnt)
}

// TestRootAttributes: the mount root's own mode (0 included), owner and
// times are kept through commit and a remount on a fresh cache, as ext4
// keeps its root directory's (they were lost: the root came back 0755,
// root:root, with the snapshot's time).
func TestRootAttributes(t *testing.T) {
	c, mnt := posixMount(t)
	if err := unix.Chmod(mnt, 0o1750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mnt, 5, 6); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2001, 2, 3, 4, 5, 6, 700, time.UTC)
	setTimes(t, mnt, when, when)
	check := func(what string, mode uint32) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(mnt, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != unix.S_IFDIR|mode || st.Uid != 5 || st.Gid != 6 || !time.Unix(st.Mtim.Unix()).Equal(when) {
			t.Errorf("%s: the root is %o %d:%d mtime %v; want %o 5:6 %v", what, st.Mode, st.Uid, st.Gid, time.Unix(st.Mtim.Unix()).UTC(), unix.S_IFDIR|mode, when)
		}
	}
	check("at once", 0o1750)
	c = remountFresh(t, c, mnt)
	check("after a remount on a fresh cache", 0o1750)
	if err := unix.Chmod(mnt, 0); err != nil {
		t.Fatal(err)
	}
	setTimes(t, mnt, when, when)
	c = remountFresh(t, c, mnt)
	check("after chmod 000 and a remount on a fresh cache", 0)
	c.umount(t, mnt)
}
