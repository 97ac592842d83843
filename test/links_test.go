package test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
)

// dirNlink checks a directory's nlink: 2 + its subdirectories, as on ext4,
// once something inside it was looked up. Before that the mount says 1
// ("not known"), and the kernel may have kept that answer a moment (a
// clock tick): the check asks again for up to two seconds.
func dirNlink(t *testing.T, p string, want uint64) {
	t.Helper()
	var st syscall.Stat_t
	var err error
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err = syscall.Lstat(p, &st); (err == nil && st.Nlink == want) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || st.Nlink != want {
		t.Errorf("%s: nlink %d, %v; want %d", p, st.Nlink, err, want)
	}
}

// TestMountHardLinks: hard links made through the mount of the real binary
// (to a committed file and to a new one, to a fifo and a symlink; unlink
// and rename of linked names and a write through one name) are found again after a kill -9 of the
// daemon (journal replay), are committed with one link group per inode,
// come back as one inode on a mount with a fresh cache, and `sealfs
// restore` makes them hard links again (same inode, nlink), as ext4 keeps
// them.
func TestMountHardLinks(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	p := func(root, s string) string { return filepath.Join(root, s) }
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	if err := os.Mkdir(p(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p(mnt, "d/old"), []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt) // committed: d/old is in snapshot 1

	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(p(mnt, "e"), 0o755))
	must(os.Link(p(mnt, "d/old"), p(mnt, "top-old")))
	must(os.Link(p(mnt, "d/old"), p(mnt, "e/old2")))
	must(os.WriteFile(p(mnt, "top-old"), []byte("old, written again"), 0o640))
	must(os.WriteFile(p(mnt, "n"), []byte("new"), 0o600))
	must(os.Link(p(mnt, "n"), p(mnt, "d/n2")))
	must(os.Link(p(mnt, "n"), p(mnt, "n3")))
	must(os.Remove(p(mnt, "n3")))
	must(os.Rename(p(mnt, "d/n2"), p(mnt, "d/n2r")))
	must(syscall.Mkfifo(p(mnt, "fifo"), 0o640))
	must(os.Link(p(mnt, "fifo"), p(mnt, "d/fifo2")))
	must(os.Symlink("n", p(mnt, "sl")))
	must(os.Link(p(mnt, "sl"), p(mnt, "e/sl2"))) // the symlink itself, as linkat(2) without AT_SYMLINK_FOLLOW
	check := func(root string) {
		t.Helper()
		testutil.SameInode(t, 3, "old, written again", p(root, "d/old"), p(root, "top-old"), p(root, "e/old2"))
		testutil.SameInode(t, 2, "new", p(root, "n"), p(root, "d/n2r"))
		testutil.SameInode(t, 2, "", p(root, "fifo"), p(root, "d/fifo2"))
		testutil.SameInode(t, 2, "n", p(root, "sl"), p(root, "e/sl2"))
		if _, err := os.Lstat(p(root, "n3")); !os.IsNotExist(err) {
			t.Errorf("n3, unlinked, is there: %v", err)
		}
		dirNlink(t, root, 4)
	}
	check(mnt)
	killDaemon(t, mnt)

	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	check(mnt)
	c.umount(t, mnt)

	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	check(mnt)
	fresh.umount(t, mnt)

	out := filepath.Join(t.TempDir(), "restored")
	expect(t, sealfs(t, nil, "restore", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, out), 0, "")
	check(out)
}

// TestGoldenHardLinksMount: the golden repository of format v1, mounted
// on a fresh cache, shows every entry of its newest snapshot as the
// manifest describes it, files byte-exact, and the names of a link group
// (in two directories) as one inode with their count as nlink.
func TestGoldenHardLinksMount(t *testing.T) {
	needRoot(t)
	dir := filepath.Join("..", "testdata", "golden", "v1")
	m := testutil.ReadManifest(t, dir)
	remote := filepath.Join(t.TempDir(), "remote")
	testutil.CopyDir(t, filepath.Join(dir, testutil.GoldenRepoDir), remote)
	code, err := os.ReadFile(filepath.Join(dir, testutil.GoldenCodeFile))
	if err != nil {
		t.Fatal(err)
	}
	c := cliRepo{remote: remote, cache: t.TempDir(), codeFile: filepath.Join(t.TempDir(), "code")}
	if err := os.WriteFile(c.codeFile, code, 0o600); err != nil {
		t.Fatal(err)
	}
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--read-only"), 0, "")
	defer c.umount(t, mnt)
	s := m.Snapshots[len(m.Snapshots)-1]
	groups := map[uint64][]string{}
	for _, e := range s.Entries {
		p := filepath.Join(mnt, string(e.PathBytes()))
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st.Mode&syscall.S_IFMT != statTypes[e.Type] || uint64(st.Size) != e.Size && e.Type != "dir" {
			t.Errorf("%s: mode %o size %d; the manifest says %s of %d bytes", p, st.Mode, st.Size, e.Type, e.Size)
		}
		if e.Type == "file" {
			b, err := os.ReadFile(p)
			sum := sha256.Sum256(b)
			if err != nil || hex.EncodeToString(sum[:]) != e.SHA256 {
				t.Errorf("%s does not read as the manifest's content: %v", p, err)
			}
		}
		if e.LinkGroup != 0 {
			groups[e.LinkGroup] = append(groups[e.LinkGroup], p)
		}
	}
	if len(groups) == 0 {
		t.Fatal("the golden snapshot holds no hard links: nothing tested")
	}
	for _, names := range groups {
		first := map[uint64]bool{}
		for _, p := range names {
			var st syscall.Stat_t
			syscall.Lstat(p, &st)
			first[st.Ino] = true
			if st.Nlink != uint64(len(names)) {
				t.Errorf("%s: nlink %d, want %d", p, st.Nlink, len(names))
			}
		}
		if len(first) != 1 {
			t.Errorf("the names %q of one link group are %d inodes", names, len(first))
		}
	}
}
