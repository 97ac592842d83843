package fusefs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/fusefs"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// commitSnap commits everything written through the mount (commitAll)
// and returns the newest snapshot.
func commitSnap(t *testing.T, tr *worktree.Tree) *repo.Snapshot {
	t.Helper()
	commitAll(t, tr)
	return tr.Repository().Latest()
}

// viewNames returns the folder names the view shows for r's snapshots.
func viewNames(r *repo.Repository) map[uint64]string {
	snaps, err := r.Snapshots(context.Background())
	if err != nil {
		panic(err)
	}
	names := fusefs.SnapshotNames(snaps)
	out := map[uint64]string{}
	for i, s := range snaps {
		out[s.Seq] = names[i]
	}
	return out
}

// wantListing fails unless the view at dir lists a folder for each of
// r's snapshots and latest.
func wantListing(t *testing.T, dir string, r *repo.Repository) {
	t.Helper()
	snaps, err := r.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := append(fusefs.SnapshotNames(snaps), "latest")
	slices.Sort(want)
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Fatalf("ls %s = %q, want %q", dir, got, want)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func statOf(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// Long: one history, built once, checked step by step.
//
// TestSnapshotsView: through a mount, .snapshots shows each snapshot as it
// was: content changed and deleted since in the live tree, hard links as
// one inode, symlinks, fifos, xattrs and the root's own attributes; latest
// links to the newest; the view is not in the root's listing nor in a
// later snapshot; inode numbers stay and st_dev is the mount's.
func TestSnapshotsView(t *testing.T) {
	dir, tr, env := mountWith(t, fusefs.Options{SnapshotsDir: ".snapshots"})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "a"), []byte("one"), 0o640))
	must(os.Mkdir(filepath.Join(dir, "d"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "d", "f"), bytes.Repeat([]byte("f"), 200000), 0o600))
	must(os.WriteFile(filepath.Join(dir, "d", "h1"), []byte("linked"), 0o644))
	must(os.Link(filepath.Join(dir, "d", "h1"), filepath.Join(dir, "h2")))
	must(os.Symlink("d/f", filepath.Join(dir, "s")))
	must(unix.Mkfifo(filepath.Join(dir, "p"), 0o620))
	must(os.Chmod(filepath.Join(dir, "p"), 0o620)) // past the umask
	must(unix.Setxattr(filepath.Join(dir, "a"), "user.note", []byte("old"), 0))
	must(os.Chmod(dir, 0o750))
	s1 := commitSnap(t, tr)

	must(os.WriteFile(filepath.Join(dir, "a"), []byte("two!"), 0o640))
	must(os.Remove(filepath.Join(dir, "d", "f")))
	must(unix.Setxattr(filepath.Join(dir, "a"), "user.note", []byte("new"), 0))
	must(os.Chmod(dir, 0o755))
	s2 := commitSnap(t, tr)

	names := viewNames(env.Repo)
	view := filepath.Join(dir, ".snapshots")
	old, cur := filepath.Join(view, names[s1.Seq]), filepath.Join(view, names[s2.Seq])
	wantListing(t, view, env.Repo)
	if target, err := os.Readlink(filepath.Join(view, "latest")); err != nil || target != names[s2.Seq] {
		t.Fatalf("latest -> %q, %v; want %q", target, err, names[s2.Seq])
	}
	if b, err := os.ReadFile(filepath.Join(view, "latest", "a")); err != nil || string(b) != "two!" {
		t.Fatalf("latest/a = %q, %v", b, err)
	}
	// Old content, changed and deleted since.
	if b, err := os.ReadFile(filepath.Join(old, "a")); err != nil || string(b) != "one" {
		t.Fatalf("old a = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(old, "s")); err != nil || !bytes.Equal(b, bytes.Repeat([]byte("f"), 200000)) {
		t.Fatalf("old d/f through the old symlink: %d bytes, %v", len(b), err)
	}
	if _, err := os.Stat(filepath.Join(cur, "d", "f")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("d/f in the newest snapshot: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a")); err != nil || string(b) != "two!" {
		t.Fatalf("live a = %q, %v", b, err)
	}
	v := make([]byte, 16)
	if n, err := unix.Getxattr(filepath.Join(old, "a"), "user.note", v); err != nil || string(v[:n]) != "old" {
		t.Fatalf("old xattr = %q, %v", v[:n], err)
	}
	// Hard links are one inode; a fifo is a fifo; the root has the
	// snapshot's own attributes; st_dev is the mount's.
	h1, h2 := statOf(t, filepath.Join(old, "d", "h1")), statOf(t, filepath.Join(old, "h2"))
	if h1.Ino != h2.Ino || h1.Nlink != 2 {
		t.Fatalf("hard links: inodes %d and %d, nlink %d", h1.Ino, h2.Ino, h1.Nlink)
	}
	if st := statOf(t, filepath.Join(old, "p")); st.Mode&syscall.S_IFMT != syscall.S_IFIFO || st.Mode&0o777 != 0o620 {
		t.Fatalf("fifo mode %o", st.Mode)
	}
	root, oldRoot, curRoot := statOf(t, dir), statOf(t, old), statOf(t, cur)
	if oldRoot.Mode&0o7777 != 0o750 || curRoot.Mode&0o7777 != 0o755 {
		t.Fatalf("snapshot roots have modes %o and %o, want 750 and 755", oldRoot.Mode&0o7777, curRoot.Mode&0o7777)
	}
	if oldRoot.Dev != root.Dev || h1.Dev != root.Dev {
		t.Fatalf("st_dev %d in the view, %d at the root", oldRoot.Dev, root.Dev)
	}
	// Every inode number is its own.
	inos := map[uint64]string{}
	for _, p := range []string{dir, filepath.Join(dir, "a"), filepath.Join(dir, "d"), view, filepath.Join(view, "latest"), old, cur,
		filepath.Join(old, "a"), filepath.Join(cur, "a"), filepath.Join(old, "d"), filepath.Join(old, "d", "h1")} {
		ino := statOf(t, p).Ino
		if other, ok := inos[ino]; ok {
			t.Fatalf("%s and %s share inode %d", p, other, ino)
		}
		inos[ino] = p
	}
	// The root's listing does not show the view; a later snapshot does
	// not hold it.
	if slices.Contains(listDir(t, dir), ".snapshots") {
		t.Fatal("the root's listing shows .snapshots")
	}
	must(os.WriteFile(filepath.Join(dir, "c"), []byte("three"), 0o644))
	s3 := commitSnap(t, tr)
	top, err := env.Repo.LoadTree(context.Background(), s3.Tree)
	must(err)
	for _, n := range top.Nodes {
		if string(n.Name) == ".snapshots" {
			t.Fatal("a commit stored .snapshots")
		}
	}
	// Inode numbers stay when the list changes.
	if statOf(t, old).Ino != oldRoot.Ino || statOf(t, filepath.Join(old, "d", "h1")).Ino != h1.Ino {
		t.Fatal("inode numbers in the view changed")
	}
	wantListing(t, view, env.Repo)
	if !slices.Contains(listDir(t, view), viewNames(env.Repo)[s3.Seq]) {
		t.Fatal("the new snapshot is not in the view")
	}
}

// TestSnapshotsViewReadOnly: every change inside the view fails with
// EROFS, and none reaches the repository; the view's name cannot be
// taken in the root (EEXIST).
func TestSnapshotsViewReadOnly(t *testing.T) {
	dir, tr, env := mountWith(t, fusefs.Options{SnapshotsDir: ".snapshots"})
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "live"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := commitSnap(t, tr)
	view := filepath.Join(dir, ".snapshots")
	snapDir := filepath.Join(view, viewNames(env.Repo)[s.Seq])
	f, d := filepath.Join(snapDir, "d", "f"), filepath.Join(snapDir, "d")
	for what, err := range map[string]error{
		"create":              os.WriteFile(filepath.Join(d, "new"), nil, 0o644),
		"open for writing":    openErr(f, os.O_WRONLY),
		"open with O_TRUNC":   openErr(f, os.O_RDWR|os.O_TRUNC),
		"mkdir":               os.Mkdir(filepath.Join(d, "sub"), 0o755),
		"mknod":               unix.Mkfifo(filepath.Join(d, "fifo"), 0o644),
		"symlink":             os.Symlink("f", filepath.Join(d, "l")),
		"unlink":              os.Remove(f),
		"rmdir":               syscall.Rmdir(d),
		"rename inside":       os.Rename(f, filepath.Join(d, "g")),
		"rename out":          os.Rename(f, filepath.Join(dir, "g")),
		"rename in":           os.Rename(filepath.Join(dir, "live"), filepath.Join(d, "live")),
		"link inside":         os.Link(f, filepath.Join(d, "g")),
		"link out":            os.Link(f, filepath.Join(dir, "g")),
		"link in":             os.Link(filepath.Join(dir, "live"), filepath.Join(d, "live")),
		"chmod":               os.Chmod(f, 0o600),
		"chown":               os.Chown(f, 1, 1),
		"truncate":            os.Truncate(f, 0),
		"utimes":              os.Chtimes(f, time.Now(), time.Now()),
		"setxattr":            unix.Setxattr(f, "user.x", []byte("v"), 0),
		"removexattr":         unix.Removexattr(f, "user.x"),
		"chmod snapshot":      os.Chmod(snapDir, 0o700),
		"create in view":      os.WriteFile(filepath.Join(view, "new"), nil, 0o644),
		"mkdir in view":       os.Mkdir(filepath.Join(view, "new"), 0o755),
		"symlink in view":     os.Symlink("x", filepath.Join(view, "new")),
		"rmdir snapshot":      syscall.Rmdir(snapDir),
		"rename snapshot":     os.Rename(snapDir, filepath.Join(view, "renamed")),
		"rename snapshot out": os.Rename(snapDir, filepath.Join(dir, "renamed")),
		"unlink latest":       os.Remove(filepath.Join(view, "latest")),
		"chmod view":          os.Chmod(view, 0o777),
		"setxattr view":       unix.Setxattr(view, "user.x", []byte("v"), 0),
		"rmdir view":          syscall.Rmdir(view),
		"rename view":         os.Rename(view, filepath.Join(dir, "renamed")),
	} {
		wantErrno(t, what, err, syscall.EROFS)
	}
	wantErrno(t, "mkdir .snapshots", os.Mkdir(view, 0o755), syscall.EEXIST)
	wantErrno(t, "rename onto .snapshots", os.Rename(filepath.Join(dir, "d"), view), syscall.EEXIST)
	wantErrno(t, "link as .snapshots", os.Link(filepath.Join(dir, "live"), view), syscall.EEXIST)
	wantErrno(t, "symlink as .snapshots", os.Symlink("x", view), syscall.EEXIST)
	if b, err := os.ReadFile(f); err != nil || string(b) != "x" {
		t.Fatalf("the old file after all that: %q, %v", b, err)
	}
	if tr.Dirty() {
		t.Fatal("changes in the view reached the live tree")
	}
}

func openErr(p string, flags int) error {
	f, err := os.OpenFile(p, flags, 0)
	if err == nil {
		f.Close()
	}
	return err
}

// TestSnapshotsViewForget: a forgotten snapshot leaves the view at the
// next listing, and a file of it still open fails with ESTALE, while the
// others read on.
func TestSnapshotsViewForget(t *testing.T) {
	dir, tr, env := mountWith(t, fusefs.Options{SnapshotsDir: ".snapshots"})
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	s1 := commitSnap(t, tr)
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := commitSnap(t, tr)
	names := viewNames(env.Repo)
	view := filepath.Join(dir, ".snapshots")
	old := filepath.Join(view, names[s1.Seq])
	f, err := os.Open(filepath.Join(old, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cur, err := os.Open(filepath.Join(view, names[s2.Seq], "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	before := listDir(t, view)
	if err := env.Repo.Forget(context.Background(), []crypt.ID{s1.ID}); err != nil {
		t.Fatal(err)
	}
	// The others keep their names (forgetting the first snapshot of a
	// second would rename the others by the rule: not while mounted).
	if got, want := listDir(t, view), slices.DeleteFunc(before, func(n string) bool { return n == names[s1.Seq] }); !slices.Equal(got, want) {
		t.Fatalf("after the forget ls .snapshots = %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(view, names[s2.Seq], "a")); err != nil || string(b) != "two" {
		t.Fatalf("the newest snapshot's file by its name after the forget: %q, %v", b, err)
	}
	buf := make([]byte, 8)
	if _, err := f.ReadAt(buf, 0); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("a read of a forgotten snapshot's file: %v, want ESTALE", err)
	}
	if n, err := cur.ReadAt(buf, 0); n != 3 || string(buf[:3]) != "two" {
		t.Fatalf("a read of the newest snapshot's file: %q, %v", buf[:n], err)
	}
	time.Sleep(1100 * time.Millisecond) // the kernel's entry cache
	if _, err := os.Stat(filepath.Join(old, "a")); !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("stat in a forgotten snapshot: %v, want ENOENT or ESTALE", err)
	}
}

// TestSnapshotsViewHiddenByLiveEntry: a live entry of the view's name in
// the root wins, and the log says which flag shows the view; under
// another name the view shows; an empty name turns it off.
func TestSnapshotsViewHiddenByLiveEntry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root here")
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	in, _, err := tr.Create(t.Context(), tr.Root(), ".snapshots", worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Create(t.Context(), in, "mine", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	commitAll(t, tr)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dir := mountTreeWith(t, tr, fusefs.Options{SnapshotsDir: ".snapshots", Log: log})
	if got := listDir(t, filepath.Join(dir, ".snapshots")); !slices.Equal(got, []string{"mine"}) {
		t.Fatalf("ls .snapshots = %q, want the live folder's", got)
	}
	if !bytes.Contains(logs.Bytes(), []byte("--snapshots-dir")) {
		t.Fatalf("the log does not name the flag:\n%s", logs.Bytes())
	}
	other := mountTreeWith(t, tr, fusefs.Options{SnapshotsDir: "history"})
	wantListing(t, filepath.Join(other, "history"), env.Repo)
	if got := listDir(t, filepath.Join(other, "history", "latest", ".snapshots")); !slices.Equal(got, []string{"mine"}) {
		t.Fatalf("the snapshot's own .snapshots = %q", got)
	}
	off := mountTreeWith(t, tr, fusefs.Options{})
	if _, err := os.Stat(filepath.Join(off, "history")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("without a name the view is there: %v", err)
	}
}

// syncBuffer is a bytes.Buffer for a log written from the daemon's
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.b.Bytes())
}
