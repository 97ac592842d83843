package fusefs

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestSnapshotsViewWalkReleasesTrees: a walk of the whole view (find, du
// over /.snapshots) opens every snapshot's tree; once the kernel forgets
// the inodes it read (here: drop_caches), the daemon lets those trees go
// too, so its memory does not keep growing with the number of snapshots
// browsed. Before, every tree opened stayed until the unmount (30
// snapshots of 3,000 files: 48 MB of heap kept). A file held open keeps its
// snapshot's tree, and reads; a folder looked up again opens its tree
// again.
func TestSnapshotsViewWalkReleasesTrees(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting and drop_caches need root here")
	}
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := worktree.Open(ctx, env.Repo, worktree.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := tr.Create(ctx, tr.Root(), "d", worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if _, _, err := tr.Create(ctx, d, fmt.Sprintf("file-%05d", i), worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 30
	for i := range n {
		name := fmt.Sprintf("x%d", i)
		wi, _, err := tr.Create(ctx, tr.Root(), name, worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		h, err := tr.OpenFile(wi, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt([]byte(name), 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f := New(tr, Options{SnapshotsDir: ".snapshots"})
	dir := mountFS(t, f)
	view := filepath.Join(dir, ".snapshots")
	h0 := heapInUse()
	count := 0
	if err := filepath.WalkDir(view, func(p string, e fs.DirEntry, err error) error { count++; return err }); err != nil {
		t.Fatal(err)
	}
	if got := f.view.opened(); got != n {
		t.Fatalf("the walk opened %d trees, want %d", got, n)
	}
	h1 := heapInUse()
	// A file of the first snapshot stays open through the drop.
	first := filepath.Join(view, f.view.folders[0].name)
	held, err := os.Open(filepath.Join(first, "x0"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); f.view.opened() > 1 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	h2 := heapInUse()
	t.Logf("walked %d entries; heap %d MB before, %d MB after the walk, %d MB once the kernel forgot them", count, h0>>20, h1>>20, h2>>20)
	if got := f.view.opened(); got != 1 {
		t.Fatalf("after the kernel forgot the walk's inodes, %d trees are open, want 1 (the held file's)", got)
	}
	if b := make([]byte, 8); true {
		k, err := held.ReadAt(b, 0)
		if string(b[:k]) != "x0" {
			t.Fatalf("the held file reads %q, %v", b[:k], err)
		}
	}
	// Looked up again, a folder opens its tree again.
	last := filepath.Join(view, "latest")
	if b, err := os.ReadFile(filepath.Join(last, fmt.Sprintf("x%d", n-1))); err != nil || string(b) != fmt.Sprintf("x%d", n-1) {
		t.Fatalf("read after the drop: %q, %v", b, err)
	}
	if es, err := os.ReadDir(filepath.Join(last, "d")); err != nil || len(es) != 3000 {
		t.Fatalf("listing after the drop: %d entries, %v", len(es), err)
	}
}
