package worktree_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// version is the content of small file i at version v: v's byte, of a
// length that depends on both, at most 64 KiB.
func version(i, v int) []byte {
	return bytes.Repeat([]byte{byte('a' + v%26)}, 1+(i*7919+v*104729)%(64<<10))
}

// TestInlineRacesCommits: small files rewritten (open with O_TRUNC or not,
// write, close), truncated by path and read, while commits run: a read
// returns a whole version of the file, never a mix, a short read or an
// error; after a crash each file is its last version; with the race
// detector on.
func TestInlineRacesCommits(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	const files, rounds = 8, 40
	last := make([][]byte, files)
	for i := range files {
		last[i] = version(i, 0)
		writeFile(t, tr, tr.Root(), fmt.Sprintf("f%d", i), last[i], true)
	}
	ctx := context.Background()
	var wg, committer sync.WaitGroup
	stop := make(chan struct{})
	committer.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := tr.Commit(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var mu sync.Mutex
	for i := range files {
		wg.Go(func() {
			in := lookup(t, tr, fmt.Sprintf("f%d", i))
			for v := 1; v <= rounds; v++ {
				h, err := tr.OpenFile(in, true, v%2 == 0)
				if err != nil {
					t.Error(err)
					return
				}
				b := version(i, v)
				if v%2 == 1 {
					size := uint64(len(b))
					if _, err := tr.SetAttr(in, worktree.SetAttr{Size: &size}); err != nil {
						t.Error(err)
					}
				}
				if _, err := h.WriteAt(b, 0); err != nil {
					t.Error(err)
				}
				if err := h.Close(); err != nil {
					t.Error(err)
				}
				mu.Lock()
				last[i] = b
				mu.Unlock()
				r, err := tr.OpenFile(in, false, false)
				if err != nil {
					t.Error(err)
					return
				}
				buf := make([]byte, 70<<10)
				n, err := r.ReadAt(ctx, buf, 0)
				r.Close()
				if err != nil && err != io.EOF {
					t.Errorf("f%d v%d: read: %v", i, v, err)
				} else if !bytes.Equal(buf[:n], b) {
					t.Errorf("f%d v%d: read %d bytes, not the %d of the version just closed", i, v, n, len(b))
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	committer.Wait()
	tr2 := open(t, env.Repo, work)
	defer tr2.Close()
	for i := range files {
		if got := readFile(t, tr2, fmt.Sprintf("f%d", i)); !bytes.Equal(got, last[i]) {
			t.Errorf("after a crash f%d reads %d bytes, not its last version's %d", i, len(got), len(last[i]))
		}
	}
}
