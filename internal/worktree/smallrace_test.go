package worktree

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestSmallStoreRacesOps (session 8 review): small files stored in the
// background once closed race with everything done to them after: reopen
// and append, rewrite in place, O_TRUNC, truncate, rename (over another),
// unlink and create again, each file by a goroutine of its own while
// commits run back to back. Whatever a commit takes from the small-file
// worker, the last commit must store every file as it was left: read back
// in the same tree and from a fresh cache.
func TestSmallStoreRacesOps(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr := openTestTree(t, env.Repo)
	defer tr.Close()
	const workers, files, steps = 4, 4, 60
	var (
		mu   sync.Mutex
		want = map[string][]byte{}
	)
	fail := func(format string, args ...any) { t.Errorf(format, args...) }
	work := func(w int) {
		rnd := rand.New(rand.NewPCG(uint64(w), 99))
		data := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rnd.Uint32() | 1)
			}
			return b
		}
		mine := map[string][]byte{}
		name := func(k int) string { return fmt.Sprintf("w%d-%d", w, k) }
		put := func(n string, b []byte, off int64, trunc bool) bool {
			in, _, err := tr.Lookup(ctx, tr.root, n)
			if err != nil {
				if in, _, err = tr.Create(ctx, tr.root, n, NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
					fail("create %s: %v", n, err)
					return false
				}
			}
			h, err := tr.OpenFile(in, true, trunc)
			if err != nil {
				fail("open %s: %v", n, err)
				return false
			}
			// Two writes: the second may land after a commit took the
			// first.
			half := len(b) / 2
			if _, err := h.WriteAt(b[:half], off); err != nil {
				fail("write %s: %v", n, err)
			}
			if _, err := h.WriteAt(b[half:], off+int64(half)); err != nil {
				fail("write %s: %v", n, err)
			}
			if err := h.Close(); err != nil {
				fail("close %s: %v", n, err)
			}
			return true
		}
		for range steps {
			n := name(rnd.IntN(files))
			cur, ok := mine[n]
			switch op := rnd.IntN(7); {
			case !ok || op == 0: // new, or replaced (O_TRUNC)
				b := data(1 + rnd.IntN(40000))
				if put(n, b, 0, true) {
					mine[n] = b
				}
			case op == 1: // append
				b := data(1 + rnd.IntN(9000))
				if put(n, b, int64(len(cur)), false) {
					mine[n] = append(cur, b...)
				}
			case op == 2 && len(cur) > 0: // rewrite in place, same size
				off := rnd.IntN(len(cur))
				b := data(1 + rnd.IntN(len(cur)-off))
				if put(n, b, int64(off), false) {
					nb := bytes.Clone(cur)
					copy(nb[off:], b)
					mine[n] = nb
				}
			case op == 3: // truncate, shorter or longer
				in, _, err := tr.Lookup(ctx, tr.root, n)
				if err != nil {
					fail("lookup %s: %v", n, err)
					continue
				}
				size := uint64(rnd.IntN(len(cur) + 5000))
				if _, err := tr.SetAttr(in, SetAttr{Size: &size}); err != nil {
					fail("truncate %s: %v", n, err)
					continue
				}
				nb := make([]byte, size)
				copy(nb, cur)
				mine[n] = nb
			case op == 4: // rename over another of mine
				to := name(rnd.IntN(files))
				if to == n {
					continue
				}
				if err := tr.Rename(ctx, tr.root, n, tr.root, to, 0); err != nil {
					fail("rename %s %s: %v", n, to, err)
					continue
				}
				mine[to] = cur
				delete(mine, n)
			case op == 5: // unlink
				if err := tr.Unlink(ctx, tr.root, n); err != nil {
					fail("unlink %s: %v", n, err)
					continue
				}
				delete(mine, n)
			default: // append again, right after a close
				b := data(1 + rnd.IntN(100))
				if put(n, b, int64(len(cur)), false) {
					mine[n] = append(cur, b...)
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for n, b := range mine {
			want[n] = b
		}
	}
	var stop atomic.Bool
	var commits sync.WaitGroup
	commits.Go(func() {
		for !stop.Load() {
			if _, err := tr.Commit(ctx); err != nil {
				fail("commit: %v", err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { work(w) })
	}
	wg.Wait()
	stop.Store(true)
	commits.Wait()
	if t.Failed() {
		return
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for n, b := range want {
		if got := readAllOf(t, tr, n); !bytes.Equal(got, b) {
			t.Errorf("%s: the tree reads %d bytes, not the %d left", n, len(got), len(b))
		}
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := Open(ctx, r2, Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for n, b := range want {
		if got := readAllOf(t, tr2, n); !bytes.Equal(got, b) {
			t.Errorf("%s: the snapshot holds %d bytes, not the %d left", n, len(got), len(b))
		}
	}
	names, err := tr2.ReadDir(ctx, tr2.root)
	if err == nil && len(names) != len(want) {
		t.Errorf("the snapshot holds %d files, not %d", len(names), len(want))
	}
}
