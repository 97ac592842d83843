package test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// linkOps are hard-link, exchange and truncate sequences with files
// held open across them; run on ext4 (the reference) and on the mount.
func linkOps(t *testing.T, root string) {
	t.Helper()
	p := func(s string) string { return filepath.Join(root, s) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	// Written through one name, the other unlinked while it is open.
	must(os.WriteFile(p("a"), []byte("first"), 0o644))
	must(os.Link(p("a"), p("b")))
	fb, err := os.OpenFile(p("b"), os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	_, err = fb.Write([]byte(" via b"))
	must(err)
	must(os.Remove(p("a")))
	_, err = fb.Write(big)
	must(err)
	must(fb.Close())
	// A link into a folder, the folder renamed, written through the link.
	must(os.Mkdir(p("x"), 0o755))
	must(os.WriteFile(p("x/f"), []byte("in x"), 0o600))
	must(os.Link(p("x/f"), p("g")))
	must(os.Rename(p("x"), p("x2")))
	must(os.WriteFile(p("g"), []byte("through g"), 0o600))
	// A file being written exchanged with a linked file, written on.
	must(os.WriteFile(p("l1"), []byte("linked"), 0o644))
	must(os.Link(p("l1"), p("x2/l2")))
	fw, err := os.Create(p("w"))
	must(err)
	_, err = fw.Write(big)
	must(err)
	must(unix.Renameat2(unix.AT_FDCWD, p("w"), unix.AT_FDCWD, p("l1"), unix.RENAME_EXCHANGE))
	_, err = fw.Write([]byte("tail"))
	must(err)
	must(fw.Close())
	must(os.WriteFile(p("x2/l2"), []byte("linked, again"), 0o644))
	// Truncated through one name while open through another.
	must(os.WriteFile(p("t1"), big, 0o644))
	must(os.Link(p("t1"), p("t2")))
	ft, err := os.OpenFile(p("t1"), os.O_RDWR, 0)
	must(err)
	must(os.Truncate(p("t2"), 3))
	_, err = ft.WriteAt([]byte("end"), 10)
	must(err)
	must(ft.Close())
	must(os.Remove(p("t1")))
	// An exchange of two names of one inode, and of a link with a folder.
	must(unix.Renameat2(unix.AT_FDCWD, p("t2"), unix.AT_FDCWD, p("t2"), unix.RENAME_EXCHANGE))
	must(os.Link(p("g"), p("x2/g2")))
	must(os.Mkdir(p("y"), 0o700))
	must(unix.Renameat2(unix.AT_FDCWD, p("x2/g2"), unix.AT_FDCWD, p("y"), unix.RENAME_EXCHANGE))
}

// treeShape is what a tree holds: each path's type, size, nlink and
// content, and which paths share an inode.
func treeShape(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inos := map[uint64]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			return err
		}
		desc := ""
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc = string(b)
			if first, ok := inos[st.Ino]; ok {
				desc = "same as " + first
			} else {
				inos[st.Ino] = rel
			}
			desc = fmt.Sprintf("nlink %d: %s", st.Nlink, desc)
		}
		out[rel] = d.Type().String() + " " + desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameShape(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for p, w := range want {
		if g := got[p]; g != w {
			if len(g) > 80 {
				g = g[:80]
			}
			if len(w) > 80 {
				w = w[:80]
			}
			t.Errorf("%s: %s is %q, want %q", what, p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok && p != "." {
			t.Errorf("%s: %s is there, not on ext4", what, p)
		}
	}
}

// TestLinksWithOpenFiles: hard links, exchanges and truncations with
// files held open, through the mount, compared with the same operations
// on the local disk (ext4 is the reference): after a kill -9 and a
// remount, after a commit and a remount on a fresh cache, and restored.
func TestLinksWithOpenFiles(t *testing.T) {
	needRoot(t)
	ref := t.TempDir()
	linkOps(t, ref)
	want := treeShape(t, ref)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	linkOps(t, mnt)
	sameShape(t, "mounted", want, treeShape(t, mnt))
	killDaemon(t, mnt)
	syscall.Unmount(mnt, syscall.MNT_DETACH)
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	sameShape(t, "after kill -9", want, treeShape(t, mnt))
	c.umount(t, mnt)
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	sameShape(t, "fresh cache", want, treeShape(t, mnt))
	fresh.umount(t, mnt)
	out := filepath.Join(t.TempDir(), "restored")
	expect(t, sealfs(t, nil, "restore", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, out), 0, "")
	sameShape(t, "restored", want, treeShape(t, out))
}
