package worktree

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// BenchmarkQueuedMemory reports the heap a small file costs between its
// close and the commit that takes it (an untar's files wait so): 4,000
// files of 4 KiB in 40 folders are written and closed, the small-file
// worker stores them, and the heap is measured before any commit (a
// figure, not a limit: nothing fails on it).
//
//	go test ./internal/worktree -run '^$' -bench QueuedMemory -benchtime 1x
func BenchmarkQueuedMemory(b *testing.B) {
	for range b.N {
		b.ReportMetric(queuedMemory(b, 4000), "heapB/file")
	}
}

func queuedMemory(b *testing.B, files int) float64 {
	ctx := b.Context()
	env := testutil.NewRepo(b, repo.InitOptions{})
	tr, err := Open(ctx, env.Repo, Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	before := heap()
	data := bytes.Repeat([]byte("a small file of an untar\n"), 4096/25)
	for d := range 40 {
		dir, _, err := tr.Create(ctx, tr.Root(), fmt.Sprintf("folder-%03d", d), NewEntry{Type: repo.NodeDir, Mode: 0o755})
		if err != nil {
			b.Fatal(err)
		}
		for f := range files / 40 {
			in, _, err := tr.Create(ctx, dir, fmt.Sprintf("file-%06d.go", f), NewEntry{Type: repo.NodeFile, Mode: 0o644})
			if err != nil {
				b.Fatal(err)
			}
			h, err := tr.OpenFile(in, true, false)
			if err != nil {
				b.Fatal(err)
			}
			// Each file its own content, as an untar's are.
			if _, err := h.WriteAt(append(fmt.Appendf(nil, "%d/%d\n", d, f), data...), 0); err != nil {
				b.Fatal(err)
			}
			if err := h.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	for {
		tr.small.mu.Lock()
		idle := !tr.small.running
		tr.small.mu.Unlock()
		if idle {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	after := heap()
	runtime.KeepAlive(tr)
	return float64(after-before) / float64(files)
}
