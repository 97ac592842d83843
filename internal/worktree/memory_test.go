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
	_ = frozen
	tr.mu.Lock()
	tr.closeOldJournalsLocked()
	tr.mu.Unlock()
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

// TestUnloadForgetsGoneInodes: an unloaded folder keeps weak pointers only
// to those of its former entries that something still holds: after the
// next commit, the others (a pointer and a weak handle each, for every
// file ever unloaded: 16 MiB at a million) are let go. A held inode still
// comes back in place when its folder loads again. (Failed before: 800
// weak pointers kept for one inode held.)
func TestUnloadForgetsGoneInodes(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir(), MaxLoaded: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	writeSmallFiles(t, tr, 20, 50)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	dir, _, err := tr.Lookup(ctx, tr.Root(), "folder-000")
	if err != nil {
		t.Fatal(err)
	}
	held, _, err := tr.Lookup(ctx, dir, "file-000007.txt")
	if err != nil {
		t.Fatal(err)
	}
	dir = nil
	weakPointers := func() (n int) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, c := range tr.root.children {
			if c.gone != nil {
				n += len(*c.gone)
			}
		}
		return n
	}
	for i := range 2 {
		// The other folders used since folder-000 (the 4 used last stay
		// loaded), a change and a commit: folder-000 is unloaded.
		for d := 1; d < 20; d++ {
			f, _, err := tr.Lookup(ctx, tr.Root(), fmt.Sprintf("folder-%03d", d))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := tr.Lookup(ctx, f, "file-000000.txt"); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := tr.Create(ctx, tr.Root(), fmt.Sprintf("more-%d", i), NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := weakPointers(); n != 1 {
		t.Errorf("unloaded folders keep %d weak pointers with one inode held in them, want 1", n)
	}
	dir, _, err = tr.Lookup(ctx, tr.Root(), "folder-000")
	if err != nil {
		t.Fatal(err)
	}
	if again, _, err := tr.Lookup(ctx, dir, "file-000007.txt"); err != nil || again != held {
		t.Fatalf("the held inode did not come back in place: %p, %p, %v", again, held, err)
	}
}

// TestUnloadWalkForgetsGone: a walk that only reads (ls -lR: no commit)
// lets go of the weak pointers of the folders it unloaded once nothing
// holds their entries, as it goes. (Failed before: one kept for every
// file walked.)
func TestUnloadWalkForgetsGone(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	writeSmallFiles(t, tr, 40, 50)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	ro, err := Open(ctx, env.Repo, Options{Dir: t.TempDir(), ReadOnly: true, MaxLoaded: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for d := range 40 {
		dir, _, err := ro.Lookup(ctx, ro.Root(), fmt.Sprintf("folder-%03d", d))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ro.ReadDir(ctx, dir); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
	}
	ro.mu.Lock()
	n := 0
	for _, c := range ro.root.children {
		if c.gone != nil {
			n += len(*c.gone)
		}
	}
	ro.mu.Unlock()
	// What the last loads unloaded since it last looked: at most the
	// bound's worth (and a folder more).
	if n > 150 {
		t.Errorf("a walk of 2,000 files with a bound of 100 keeps %d weak pointers, nothing held", n)
	}
}
