package archiver_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/archiver"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

const gib = 1 << 30

// makeEdgeTree builds a directory with the cases backup tools meet.
func makeEdgeTree(t *testing.T, root string, smallFiles int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write("empty", nil, 0o644)
	write("exec.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	write("private", []byte("secret-ish"), 0o600)
	write("setuid", []byte("x"), 0o4755)
	write("big-random", random(9<<20+12345), 0o644)
	write("compressible.txt", bytes.Repeat([]byte("all work and no play makes jack a dull boy\n"), 100000), 0o644)

	// Sparse: a 5 GiB file with data at the start, across the 4 GiB mark
	// and at the end; a 0-byte-data 2 GiB hole-only file.
	f, err := os.Create(filepath.Join(root, "sparse-5g"))
	must(err)
	_, err = f.WriteAt(random(300000), 1000)
	must(err)
	_, err = f.WriteAt(random(2<<20), 4*gib-1<<20)
	must(err)
	_, err = f.WriteAt([]byte("tail"), 5*gib-4)
	must(err)
	must(f.Close())
	write("hole-only-2g", nil, 0o644)
	must(os.Truncate(filepath.Join(root, "hole-only-2g"), 2*gib))

	// Many small files, some identical.
	for i := range smallFiles {
		write(fmt.Sprintf("many/d%02d/f%05d", i%20, i), []byte(fmt.Sprintf("small file %d\n", i%(smallFiles/2+1))), 0o644)
	}
	// Deep path.
	deep := "deep"
	for i := range 40 {
		deep = filepath.Join(deep, fmt.Sprintf("level%02d", i))
	}
	write(filepath.Join(deep, "bottom.txt"), []byte("bottom"), 0o644)
	// Long and non-UTF-8 names.
	write(strings.Repeat("n", 255), []byte("long name"), 0o644)
	write("names/\xff\xfe\xfd-not-utf8", []byte("latin1"), 0o644)
	write("names/héllo wörld ✓", []byte("utf8"), 0o644)
	write("names/with\nnewline", []byte("nl"), 0o644)
	// Symlinks, hard links, fifo, device node, empty dir.
	must(os.Symlink("exec.sh", filepath.Join(root, "link-rel")))
	must(os.Symlink("/nonexistent/target", filepath.Join(root, "link-dangling")))
	must(os.Link(filepath.Join(root, "private"), filepath.Join(root, "names", "hardlink-to-private")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o640))
	must(os.Link(filepath.Join(root, "fifo"), filepath.Join(root, "names", "hardlink-to-fifo")))
	must(os.Link(filepath.Join(root, "link-rel"), filepath.Join(root, "names", "hardlink-to-symlink")))
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(root, "null-dev"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(os.Lchown(filepath.Join(root, "private"), 1234, 5678))
	}
	must(os.MkdirAll(filepath.Join(root, "empty-dir"), 0o700))
	// Times with nanoseconds, on files, a symlink and directories (last).
	when := time.Date(2001, 2, 3, 4, 5, 6, 789012345, time.UTC)
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		must(err)
		ts := []unix.Timespec{unix.NsecToTimespec(when.Add(-time.Hour).UnixNano()), unix.NsecToTimespec(when.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

func TestSaveRestoreEdgeCases(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	makeEdgeTree(t, src, 10000)
	env := testutil.NewRepo(t, repo.InitOptions{})
	s := archiver.NewSaver(env.Repo)
	t0 := time.Now()
	root, err := s.SaveDir(ctx, src)
	t.Logf("save %v", time.Since(t0))
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: st.Files, Bytes: st.Bytes}); err != nil {
		t.Fatal(err)
	}
	// The 7 GiB of sparse files and the 10k small files cost little to store.
	if put := env.Remote.Stats().BytesPut; put > 20<<20 {
		t.Errorf("storing the tree uploaded %d bytes, want < 20 MiB", put)
	}

	// A new client: fresh cache directory, only the recovery code.
	r2, err := env.Reopen(t, filepath.Join(t.TempDir(), "fresh-cache"), false)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := archiver.NewRestorer(r2).RestoreTree(ctx, r2.Latest().Tree, dst); err != nil {
		t.Fatal(err)
	}
	// The root itself is not part of the tree; compare everything below it.
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{{}, mtimeOf(t, src)}, 0)
	_ = os.Chmod(dst, modeOf(t, src))
	t.Logf("restore done %v", time.Since(t0))
	if n := testutil.CompareTrees(t, src, dst); n < 10000 {
		t.Logf("compare done %v", time.Since(t0))
		t.Fatalf("compared only %d entries", n)
	}

	// Random access across the 4 GiB mark through the file reader.
	tree, err := r2.LoadTree(ctx, r2.Latest().Tree)
	if err != nil {
		t.Fatal(err)
	}
	node := tree.Find([]byte("sparse-5g"))
	want := make([]byte, 3<<20)
	f, _ := os.Open(filepath.Join(src, "sparse-5g"))
	defer f.Close()
	if _, err := f.ReadAt(want, 4*gib-2<<20); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := r2.OpenFile(node).ReadAt(ctx, got, 4*gib-2<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("ReadAt across the 4 GiB mark returned wrong bytes")
	}
}

func mtimeOf(t *testing.T, p string) unix.Timespec {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mtim
}

func modeOf(t *testing.T, p string) os.FileMode {
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
