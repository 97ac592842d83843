package worktree

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

// TestUnloadRacesOps (session 8 review): with folders unloaded as soon as
// they can be (MaxLoaded 1), writers change files in folders of their own
// (write, append, rewrite in place, truncate, rename across folders,
// unlink, chmod) while commits run back to back, which unload the folders
// they stored. Every file must read back as left, in the tree and from a
// fresh cache.
func TestUnloadRacesOps(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir(), MaxLoaded: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var unloads atomic.Int64
	var tops atomic.Int64 // folders a<w> unloaded: the d<w>-<d> held below are detached
	tr.OnUnload(func(paths []string) {
		unloads.Add(int64(len(paths)))
		for _, p := range paths {
			if !strings.Contains(p, "/") {
				tops.Add(1)
			}
		}
	})
	const workers, dirs, files, steps = 3, 8, 3, 150
	// heldDirs: folders looked up before, used again as the kernel uses
	// the nodes it holds (unloaded since, some of them).
	var dirsMu sync.Mutex
	heldDirs := map[string]*Inode{}
	dirOf := func(w, d int) *Inode {
		name := fmt.Sprintf("d%d-%d", w, d)
		dirsMu.Lock()
		held := heldDirs[name]
		dirsMu.Unlock()
		if held != nil && (w+d)%2 == 0 {
			return held
		}
		top := fmt.Sprintf("a%d", w)
		parent, _, err := tr.Lookup(ctx, tr.root, top)
		if err != nil {
			if parent, _, err = tr.Create(ctx, tr.root, top, NewEntry{Type: repo.NodeDir, Mode: 0o755}); err != nil {
				t.Errorf("mkdir %s: %v", top, err)
				return nil
			}
		}
		in, _, err := tr.Lookup(ctx, parent, name)
		defer func() {
			dirsMu.Lock()
			heldDirs[name] = in
			dirsMu.Unlock()
		}()
		if err != nil {
			in, _, err = tr.Create(ctx, parent, name, NewEntry{Type: repo.NodeDir, Mode: 0o755})
			if err != nil {
				t.Errorf("mkdir %s: %v", name, err)
				return nil
			}
		}
		return in
	}
	var mu sync.Mutex
	want := map[string][]byte{}
	modes := map[string]uint32{}
	work := func(w int) {
		rnd := rand.New(rand.NewPCG(uint64(w), 7))
		data := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rnd.Uint32() | 1)
			}
			return b
		}
		mine := map[[2]int][]byte{}
		mode := map[[2]int]uint32{}
		// held: inodes looked up before, used again as the kernel
		// uses the nodes it holds (their folders may have been
		// unloaded since).
		held := map[[2]int]*Inode{}
		pick := func() [2]int { return [2]int{rnd.IntN(dirs), rnd.IntN(files)} }
		fname := func(k [2]int) string { return fmt.Sprintf("f%d", k[1]) }
		lookup := func(k [2]int) *Inode {
			if in := held[k]; in != nil && rnd.IntN(2) == 0 {
				return in
			}
			d := dirOf(w, k[0])
			if d == nil {
				return nil
			}
			in, _, err := tr.Lookup(ctx, d, fname(k))
			if err != nil {
				t.Errorf("lookup %v: %v", k, err)
				return nil
			}
			return in
		}
		put := func(k [2]int, b []byte, off int64, trunc bool) bool {
			d := dirOf(w, k[0])
			if d == nil {
				return false
			}
			in, _, err := tr.Lookup(ctx, d, fname(k))
			if h := held[k]; h != nil && rnd.IntN(2) == 0 {
				in, err = h, nil
			}
			if err != nil {
				if in, _, err = tr.Create(ctx, d, fname(k), NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
					t.Errorf("create %v: %v", k, err)
					return false
				}
			}
			held[k] = in
			h, err := tr.OpenFile(in, true, trunc)
			if err != nil {
				t.Errorf("open %v: %v", k, err)
				return false
			}
			if _, err := h.WriteAt(b, off); err != nil {
				t.Errorf("write %v: %v", k, err)
			}
			if err := h.Close(); err != nil {
				t.Errorf("close %v: %v", k, err)
			}
			return true
		}
		for range steps {
			k := pick()
			cur, ok := mine[k]
			switch op := rnd.IntN(7); {
			case !ok || op == 0:
				b := data(1 + rnd.IntN(20000))
				if put(k, b, 0, true) {
					mine[k] = b
					if !ok {
						mode[k] = 0o644
					}
				}
			case op == 1:
				b := data(1 + rnd.IntN(5000))
				if put(k, b, int64(len(cur)), false) {
					mine[k] = append(bytes.Clone(cur), b...)
				}
			case op == 2 && len(cur) > 0:
				off := rnd.IntN(len(cur))
				b := data(1 + rnd.IntN(len(cur)-off))
				if put(k, b, int64(off), false) {
					nb := bytes.Clone(cur)
					copy(nb[off:], b)
					mine[k] = nb
				}
			case op == 3:
				in := lookup(k)
				if in == nil {
					continue
				}
				size := uint64(rnd.IntN(len(cur) + 3000))
				if _, err := tr.SetAttr(in, SetAttr{Size: &size}); err != nil {
					t.Errorf("truncate %v: %v", k, err)
					continue
				}
				nb := make([]byte, size)
				copy(nb, cur)
				mine[k] = nb
			case op == 4:
				to := pick()
				if to == k {
					continue
				}
				from, into := dirOf(w, k[0]), dirOf(w, to[0])
				if from == nil || into == nil {
					continue
				}
				if err := tr.Rename(ctx, from, fname(k), into, fname(to), 0); err != nil {
					t.Errorf("rename %v %v: %v", k, to, err)
					continue
				}
				mine[to], mode[to] = cur, mode[k]
				delete(mine, k)
				held[to] = held[k]
				delete(held, k)
			case op == 5:
				d := dirOf(w, k[0])
				if d == nil {
					continue
				}
				if err := tr.Unlink(ctx, d, fname(k)); err != nil {
					t.Errorf("unlink %v: %v", k, err)
					continue
				}
				delete(mine, k)
				delete(held, k)
			default:
				in := lookup(k)
				if in == nil {
					continue
				}
				m := uint32(0o600 + rnd.IntN(0o100))
				if _, err := tr.SetAttr(in, SetAttr{Mode: &m}); err != nil {
					t.Errorf("chmod %v: %v", k, err)
					continue
				}
				mode[k] = m
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for k, b := range mine {
			p := fmt.Sprintf("a%d/d%d-%d/%s", w, w, k[0], fname(k))
			want[p], modes[p] = b, mode[k]
		}
	}
	var stop atomic.Bool
	var commits sync.WaitGroup
	commits.Go(func() {
		for !stop.Load() {
			if _, err := tr.Commit(ctx); err != nil {
				t.Errorf("commit: %v", err)
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
	check := func(tr *Tree, when string) {
		for p, b := range want {
			in, err := tr.root, error(nil)
			for _, name := range strings.Split(p, "/") {
				if in, _, err = tr.Lookup(ctx, in, name); err != nil {
					break
				}
			}
			if err != nil {
				t.Errorf("%s: %s: %v", when, p, err)
				continue
			}
			h, err := tr.OpenFile(in, false, false)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, in.meta.Size)
			n, _ := h.ReadAt(ctx, got, 0)
			h.Close()
			if !bytes.Equal(got[:n], b) {
				t.Errorf("%s: %s reads %d bytes, not the %d left", when, p, n, len(b))
			}
			if in.meta.Mode&0o7777 != modes[p] {
				t.Errorf("%s: %s mode %o, want %o", when, p, in.meta.Mode&0o7777, modes[p])
			}
		}
	}
	if unloads.Load() == 0 {
		t.Fatal("no folder was unloaded")
	}
	t.Logf("%d folders unloaded, %d of them at the top", unloads.Load(), tops.Load())
	check(tr, "in the tree")
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := Open(ctx, r2, Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check(tr2, "from the remote")
}
