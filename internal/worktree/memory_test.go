package worktree

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// BenchmarkTreeMemory reports the heap a loaded tree holds per file: 100
// folders of small files (each with one extent) are committed, opened
// again on a fresh cache and listed whole, as `ls -lR` after a remount
// does (a figure, not a limit: nothing fails on it).
//
//	go test ./internal/worktree -run '^$' -bench TreeMemory -benchtime 1x
func BenchmarkTreeMemory(b *testing.B) {
	for _, files := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(files), func(b *testing.B) {
			for range b.N {
				b.ReportMetric(treeMemory(b, files), "heapB/file")
			}
		})
	}
}

// treeMemory commits files files in 100 folders and returns the heap per
// file of the tree opened again and loaded whole.
func treeMemory(b *testing.B, files int) float64 {
	ctx := b.Context()
	env := testutil.NewRepo(b, repo.InitOptions{})
	tr, err := Open(ctx, env.Repo, Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	data := []byte("a small file of a backup\n")
	for d := range 100 {
		dir, _, err := tr.Create(ctx, tr.Root(), fmt.Sprintf("folder-%03d", d), NewEntry{Type: repo.NodeDir, Mode: 0o755})
		if err != nil {
			b.Fatal(err)
		}
		for f := range files / 100 {
			in, _, err := tr.Create(ctx, dir, fmt.Sprintf("file-%06d.txt", f), NewEntry{Type: repo.NodeFile, Mode: 0o644})
			if err != nil {
				b.Fatal(err)
			}
			h, err := tr.OpenFile(in, true, false)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := h.WriteAt(data, 0); err != nil {
				b.Fatal(err)
			}
			if err := h.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	tr.Close()
	r, err := env.Reopen(b, b.TempDir(), false)
	if err != nil {
		b.Fatal(err)
	}
	before := heap()
	tr2, err := Open(ctx, r, Options{Dir: b.TempDir(), ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer tr2.Close()
	b.ResetTimer()
	var walk func(dir *Inode)
	walk = func(dir *Inode) {
		entries, err := tr2.ReadDir(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			c, a, err := tr2.Lookup(ctx, dir, e.Name)
			if err != nil {
				b.Fatal(err)
			}
			if a.Type == repo.NodeDir {
				walk(c)
			}
		}
	}
	walk(tr2.Root())
	tr2.prefetchIdle(b)
	b.StopTimer()
	after := heap()
	runtime.KeepAlive(tr2)
	return float64(after-before) / float64(files)
}

// heap returns the bytes in use on the heap after a collection.
func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
