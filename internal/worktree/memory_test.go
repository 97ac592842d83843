package worktree

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

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

// TestCommitJournalMemory: a commit's new journal restages every staged
// file (its create, stage and attribute records), and is written as its
// records are made, a buffer at a time: the commit of many files does not
// hold all their records, nor the whole sealed journal, at once. Measured
// as the peak of the heap over what was live before, while the commit
// freezes its namespace and writes its journal, with the collector kept
// close to what is live (it grew 3.2 KiB a file before: the records, then
// the journal, each in a slice doubled as it grew; 0.5-0.8 KiB after).
func TestCommitJournalMemory(t *testing.T) {
	const files = 10_000
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	writeSmallFiles(t, tr, 10, files/10)
	jobs, _ := tr.takeJobs(false)
	if err := tr.storeJobs(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != files {
		t.Fatalf("%d files to commit, want %d", len(jobs), files)
	}
	var frozen *frozenCommit
	grew := heapPeak(func() { frozen, err = tr.freeze(jobs) })
	if err != nil {
		t.Fatal(err)
	}
	frozen.oldJournal.close()
	perFile := float64(grew) / files
	t.Logf("the heap grew by %.0f bytes a file while a commit of %d files froze", perFile, files)
	if perFile > 1536 && !raceEnabled {
		t.Errorf("the heap grew by %.0f bytes a file while a commit of %d files froze, want at most 1.5 KiB", perFile, files)
	}
}

// writeSmallFiles creates folders folders of files files each, every file
// written with a line and closed.
func writeSmallFiles(t testing.TB, tr *Tree, folders, files int) {
	ctx := t.Context()
	data := []byte("a small file of a backup\n")
	for d := range folders {
		dir, _, err := tr.Create(ctx, tr.Root(), fmt.Sprintf("folder-%03d", d), NewEntry{Type: repo.NodeDir, Mode: 0o755})
		if err != nil {
			t.Fatal(err)
		}
		for f := range files {
			in, _, err := tr.Create(ctx, dir, fmt.Sprintf("file-%06d.txt", f), NewEntry{Type: repo.NodeFile, Mode: 0o644})
			if err != nil {
				t.Fatal(err)
			}
			h, err := tr.OpenFile(in, true, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.WriteAt(data, 0); err != nil {
				t.Fatal(err)
			}
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// heapPeak runs f with the collector kept close to what is live (GOGC
// 10) and returns by how much the heap's objects grew at most over what
// was live before, sampled every 100 µs.
func heapPeak(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			if h := read(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	if h := read(); h > peak.Load() {
		peak.Store(h)
	}
	return max(peak.Load(), base) - base
}
