package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The backup tools people point at a mount, judged from outside: a tree
// holding everything `rsync -aHAX`, `tar --xattrs --acls` and `cp -a`
// carry (hard links, user xattrs, POSIX ACLs, sparse files, fifos, devices,
// symlinks, set-id bits, mode 0000, 255-byte names, owners, times) is
// copied in with each tool, committed, read back on a fresh cache and
// through `sealfs restore`, and compared by rsync itself:
// `rsync -n -c -aHAX --itemize-changes REF/ COPY/` must print nothing.
// ext4 is the reference: the same copies to a local directory print
// nothing, and the test checks that first so a host that lacks a feature
// fails here, not in the mount. (GNU tar does not keep hard links between
// fifos or devices even on ext4: its copy is compared with what it makes
// on the local disk.)

// posixTools are the commands the test drives; .ci/run installs their
// packages (rsync, tar, coreutils, acl).
var posixTools = []string{"rsync", "tar", "cp", "setfacl"}

func needPosixTools(t *testing.T) {
	t.Helper()
	for _, tool := range posixTools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing: .ci/run installs it", tool)
			}
			t.Skipf("%s is missing (apt-get install rsync tar acl)", tool)
		}
	}
}

// sh runs a command and fails the test with its output when it fails.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeToolsTree builds the source tree: each entry is one thing a backup
// tool must carry over.
func makeToolsTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(rel, data string, mode uint32) string {
		t.Helper()
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(data), 0o644))
		must(os.Chmod(p, os.FileMode(mode&0o777)))
		must(unix.Chmod(p, mode)) // set-id and sticky bits too
		return p
	}
	dir := func(rel string, mode uint32) string {
		t.Helper()
		p := filepath.Join(root, rel)
		must(os.MkdirAll(p, 0o755))
		must(unix.Chmod(p, mode))
		return p
	}

	// Hard links: three names of one file across folders, and a pair.
	a := file("links/a", "shared by three names\n", 0o644)
	dir("links/sub", 0o755)
	must(os.Link(a, filepath.Join(root, "links/b")))
	must(os.Link(a, filepath.Join(root, "links/sub/c")))
	p := file("links/pair-1", strings.Repeat("pair ", 5000), 0o600)
	must(os.Link(p, filepath.Join(root, "links/pair-2")))
	// xattrs and an ACL belong to the inode: every name shows them.
	must(unix.Setxattr(p, "user.linked", []byte("seen through both names"), 0))
	sh(t, "setfacl", "-m", "u:1234:r--", p)

	// Extended attributes in the user namespace (text, binary, empty, 4000
	// bytes) and in root's trusted namespace, on a file and a folder.
	x := file("xattr/file", "has xattrs\n", 0o644)
	must(unix.Setxattr(x, "user.comment", []byte("hello, world"), 0))
	must(unix.Setxattr(x, "user.binary", []byte{0, 1, 2, 0xff, 0xfe, 0}, 0))
	must(unix.Setxattr(x, "user.empty", nil, 0))
	must(unix.Setxattr(x, "user.big", bytes.Repeat([]byte("v"), 4000), 0))
	xd := dir("xattr/dir", 0o755)
	must(unix.Setxattr(xd, "user.folder", []byte("folder attr"), 0))
	must(unix.Setxattr(xd, "trusted.sealfs-test", []byte("root's namespace"), 0))

	// POSIX ACLs: an access ACL on a file, access and default ACLs on a
	// folder, and a file made inside that folder (which inherits them).
	acl := file("acl/file", "acl\n", 0o640)
	sh(t, "setfacl", "-m", "u:1234:rw-,g:2345:r--", acl)
	ad := dir("acl/dir", 0o750)
	sh(t, "setfacl", "-m", "u:1234:rwx", ad)
	sh(t, "setfacl", "-d", "-m", "u:1234:rwx,g:2345:r-x", ad)
	file("acl/dir/inherited", "inherits the default ACL\n", 0o640)

	// A sparse file: data at both ends of 64 MiB and in the middle.
	f, err := os.Create(filepath.Join(root, "sparse"))
	must(err)
	for _, off := range []int64{0, 32 << 20, 64<<20 - 10} {
		_, err := f.WriteAt([]byte("0123456789"), off)
		must(err)
	}
	must(f.Close())

	// Special files: a fifo, a character and a block device, mode 0000 ones.
	dir("special", 0o755)
	must(unix.Mkfifo(filepath.Join(root, "special/fifo"), 0o640))
	must(unix.Mknod(filepath.Join(root, "special/chr"), unix.S_IFCHR|0o620, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(root, "special/blk"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 200))))
	must(unix.Mkfifo(filepath.Join(root, "special/fifo-0000"), 0))
	must(unix.Chmod(filepath.Join(root, "special/fifo-0000"), 0))
	// Hard links of things that are not regular files.
	must(os.Link(filepath.Join(root, "special/fifo"), filepath.Join(root, "special/fifo-link")))
	must(os.Link(filepath.Join(root, "special/chr"), filepath.Join(root, "special/chr-link")))

	// Symlinks: relative, absolute and dangling, and a 1000-byte target.
	must(os.Symlink("../links/a", filepath.Join(root, "special/rel")))
	must(os.Symlink("/does/not/exist", filepath.Join(root, "special/dangling")))
	must(os.Symlink(strings.Repeat("long/", 200), filepath.Join(root, "special/long-target")))
	must(unix.Linkat(unix.AT_FDCWD, filepath.Join(root, "special/rel"), unix.AT_FDCWD, filepath.Join(root, "special/rel-link"), 0))

	// Set-id and sticky bits, and modes nobody may use.
	file("modes/setuid", "#!/bin/sh\n", 0o4755)
	file("modes/setgid", "#!/bin/sh\n", 0o2755)
	file("modes/both", "#!/bin/sh\n", 0o6750)
	file("modes/0000", "locked\n", 0)
	file("modes/0444", "read only\n", 0o444)
	dir("modes/sticky", 0o1777)
	dir("modes/setgid-dir", 0o2775)
	file("modes/dir-0000/inside", "under a 0000 folder\n", 0o644)
	dir("modes/dir-0000", 0)

	// Owners other than root (rsync -a and tar keep them as root).
	own := file("owners/u1234", "owned\n", 0o644)
	must(os.Lchown(own, 1234, 2345))
	must(os.Lchown(filepath.Join(root, "special/rel"), 1234, 2345))
	must(os.Lchown(filepath.Join(root, "links/pair-1"), 4321, 5432))

	// Names: 255 bytes (the limit of a component), UTF-8, spaces.
	file("names/"+strings.Repeat("n", 255), "long name\n", 0o644)
	dir("names/"+strings.Repeat("d", 255), 0o755)
	file("names/"+strings.Repeat("d", 255)+"/"+strings.Repeat("é", 127), "long utf-8 name\n", 0o644)
	file("names/with space and ünïcödé", "x\n", 0o644)
	file("names/empty", "", 0o644)
	dir("names/empty-dir", 0o700)

	// Old times on everything, folders last so their times stay.
	when := time.Date(2019, 5, 6, 7, 8, 9, 123456789, time.UTC)
	ts := []unix.Timespec{unix.NsecToTimespec(when.UnixNano()), unix.NsecToTimespec(when.UnixNano())}
	var dirs []string
	must(filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
	for i := len(dirs) - 1; i >= 0; i-- {
		must(unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i], ts, 0))
	}
}

// rsyncDiff is what `rsync -n -c -aHAX --itemize-changes` says it would
// change to make dst equal to src: nothing when they are equal.
func rsyncDiff(t *testing.T, src, dst string) string {
	t.Helper()
	out, err := exec.Command("rsync", "-n", "-c", "-aHAX", "--itemize-changes", src+"/", dst+"/").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("rsync -n failed: %v\n%s", err, out)
	}
	return string(out)
}

// copyWithRsync copies src to dst with `rsync -aHAX`. A failure is an
// error, not the end of the test: the comparisons after it say what was lost.
func copyWithRsync(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("rsync", "-aHAX", src+"/", dst+"/").CombinedOutput(); err != nil {
		t.Errorf("rsync -aHAX %s/ %s/: %v\n%s", src, dst, err, out)
	}
}

// copyWithTar copies src to dst with `tar --xattrs --acls`, the way a
// backup script pipes one tar into another; -S keeps holes as holes.
func copyWithTar(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `set -o pipefail; tar --xattrs --xattrs-include='user.*' --xattrs-include='trusted.*' --acls -S -cpf - -C "$1" . | tar --xattrs --xattrs-include='user.*' --xattrs-include='trusted.*' --acls -xpf - -C "$2"`
	if out, err := exec.Command("bash", "-c", script, "tar", src, dst).CombinedOutput(); err != nil {
		t.Errorf("tar --xattrs --acls from %s to %s: %v\n%s", src, dst, err, out)
	}
}

// sparseBlocks fails the test when the sparse file in dir takes more than a
// few blocks of its 64 MiB: holes stay holes (ext4 reports 12 KiB here).
func checkSparse(t *testing.T, dir string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "sparse"), &st); err != nil {
		t.Error(err)
		return
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("%s/sparse: %d bytes allocated for %d bytes with three 10-byte extents; holes were filled", dir, st.Blocks*512, st.Size)
	}
}

// copyWithCp copies src to dst with `cp -a` (links, xattrs and ACLs kept).
func copyWithCp(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src+"/.", dst+"/").CombinedOutput(); err != nil {
		t.Errorf("cp -a %s/. %s/: %v\n%s", src, dst, err, out)
	}
}

// toolCopy is one tool's copy of the source tree and the tree it must
// equal: the rsync and cp copies equal the source; the tar copy equals what
// tar itself makes on the local disk (GNU tar does not keep hard links
// between fifos or devices, so the source is not its reference).
type toolCopy struct {
	name string
	copy func(t *testing.T, src, dst string)
	ref  string
}

// copyAll makes every tool's copy of src under root.
func copyAll(t *testing.T, src, root string, copies []toolCopy) {
	t.Helper()
	for _, c := range copies {
		c.copy(t, src, filepath.Join(root, c.name))
	}
}

// checkCopies compares every copy under root with its reference by rsync,
// and checks that tar -S kept the sparse file's holes.
func checkCopies(t *testing.T, when, root string, copies []toolCopy) {
	t.Helper()
	for _, c := range copies {
		if d := rsyncDiff(t, c.ref, filepath.Join(root, c.name)); d != "" {
			t.Errorf("%s, the %s copy differs from %s; rsync -n -c -aHAX --itemize-changes says:\n%s", when, c.name, c.ref, d)
		}
	}
	checkSparse(t, filepath.Join(root, "tar"))
}

func TestPosixToolsRoundTrip(t *testing.T) {
	needRoot(t)
	needPosixTools(t)
	src := filepath.Join(t.TempDir(), "src")
	makeToolsTree(t, src)

	// The reference: on the local disk, rsync and cp copy the tree exactly
	// and tar as tar does.
	local := t.TempDir()
	copies := []toolCopy{
		{"rsync", copyWithRsync, src},
		{"tar", copyWithTar, filepath.Join(local, "tar")},
		{"cp", copyWithCp, src},
	}
	copyAll(t, src, local, copies)
	checkCopies(t, "on the local disk", local, copies)
	if d := rsyncDiff(t, src, filepath.Join(local, "tar")); strings.Count(d, "\n") > 2 {
		t.Errorf("tar on the local disk lost more than the hard links of the fifo and the device:\n%s", d)
	}
	if t.Failed() {
		t.Fatal("the tools do not copy this tree on the local disk as they should; the host's filesystem lacks a feature")
	}

	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	copyAll(t, src, mnt, copies)
	checkCopies(t, "in the live mount", mnt, copies)
	r := c.umount(t, mnt)
	if !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("umount said %q %q", r.stdout, r.stderr)
	}

	// A new machine: only the recovery code and a fresh cache.
	fresh := cliRepo{remote: c.remote, cache: filepath.Join(t.TempDir(), "fresh"), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	checkCopies(t, "after a remount on a fresh cache", mnt, copies)
	fresh.umount(t, mnt)

	dst := filepath.Join(t.TempDir(), "restored")
	expect(t, sealfs(t, nil, "restore", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst), 0, "")
	checkCopies(t, "after sealfs restore", dst, copies)
	expect(t, c.run(t, "check", "--read-data", c.remote), 0, "")
}

// TestPosixBackupRestore: `sealfs backup` of the same tree and `sealfs
// restore` of it on a fresh cache give back the tree exactly, as rsync
// sees it, holes included.
func TestPosixBackupRestore(t *testing.T) {
	needRoot(t)
	needPosixTools(t)
	src := filepath.Join(t.TempDir(), "src")
	makeToolsTree(t, src)
	c := initRepo(t)
	expect(t, c.run(t, "backup", src, c.remote), 0, "")
	dst := filepath.Join(t.TempDir(), "restored")
	expect(t, sealfs(t, nil, "restore", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst), 0, "")
	if d := rsyncDiff(t, src, dst); d != "" {
		t.Errorf("the restored backup differs from the source; rsync -n -c -aHAX --itemize-changes says:\n%s", d)
	}
	checkSparse(t, dst)
}
