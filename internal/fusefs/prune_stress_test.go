package fusefs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/internal/worktree"
)

// TestPruneStress (review): through the kernel, four writers each rewrite,
// append to, chmod, move between folders, delete and make again files of
// their own spread over 24 folders, while commits run and a bound of 8
// loaded entries unloads folders and the kernel is asked to forget their
// entries; every file then reads as its writer left it, mode included,
// through the mount and from a new tree after a last commit.
func TestPruneStress(t *testing.T) {
	m := mountBounded(t, 8)
	env, tr, fs, dir, unmount := m.env, m.tr, m.fs, m.dir, m.unmount
	const tops, subs, writers, filesEach, steps = 4, 6, 4, 6, 150
	folder := func(i int) string { return fmt.Sprintf("t%d/d%d", i%tops, i/tops%subs) }
	for i := range tops * subs {
		if err := os.MkdirAll(filepath.Join(dir, folder(i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	type file struct {
		path string // "" when deleted
		data string
		mode os.FileMode
	}
	models := make([][]file, writers)
	stop := make(chan struct{})
	var commits sync.WaitGroup
	commits.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := tr.Commit(context.Background()); err != nil {
				t.Errorf("commit: %v", err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 9))
			m := make([]file, filesEach)
			defer func() { models[w] = m }()
			for i := range m {
				m[i] = file{path: filepath.Join(folder(rnd.IntN(tops*subs)), fmt.Sprintf("w%df%d", w, i)), data: fmt.Sprintf("w%d f%d", w, i), mode: 0o644}
				if err := os.WriteFile(filepath.Join(dir, m[i].path), []byte(m[i].data), 0o644); err != nil {
					t.Error(err)
					return
				}
			}
			for s := range steps {
				i := rnd.IntN(filesEach)
				f := &m[i]
				p := filepath.Join(dir, f.path)
				var err error
				switch op := rnd.IntN(6); {
				case f.path == "":
					f.path = filepath.Join(folder(rnd.IntN(tops*subs)), fmt.Sprintf("w%df%d", w, i))
					f.data, f.mode = fmt.Sprintf("again %d", s), 0o644
					err = os.WriteFile(filepath.Join(dir, f.path), []byte(f.data), 0o644)
				case op == 0:
					f.data = fmt.Sprintf("rewritten %d", s)
					err = os.WriteFile(p, []byte(f.data), 0)
				case op == 1:
					var h *os.File
					if h, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0); err == nil {
						_, err = fmt.Fprintf(h, "+%d", s)
						f.data += fmt.Sprintf("+%d", s)
						if cerr := h.Close(); err == nil {
							err = cerr
						}
					}
				case op == 2:
					f.mode = os.FileMode(0o600 + rnd.IntN(0o100))
					err = os.Chmod(p, f.mode)
				case op == 3:
					np := filepath.Join(folder(rnd.IntN(tops*subs)), fmt.Sprintf("w%df%d", w, i))
					err = os.Rename(p, filepath.Join(dir, np))
					f.path = np
				case op == 4:
					err = os.Remove(p)
					f.path = ""
				default:
					var b []byte
					if b, err = os.ReadFile(p); err == nil && string(b) != f.data {
						t.Errorf("step %d: %s reads %q, want %q", s, f.path, b, f.data)
					}
				}
				if err != nil {
					t.Errorf("writer %d step %d: %v", w, s, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	commits.Wait()
	if t.Failed() {
		return
	}
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	check := func(what string, read func(p string) (string, os.FileMode, error)) {
		t.Helper()
		for w, m := range models {
			for i, f := range m {
				if f.path == "" {
					continue
				}
				got, mode, err := read(f.path)
				if err != nil || got != f.data || mode.Perm() != f.mode.Perm() {
					t.Errorf("%s: writer %d file %d at %s: %q %v, %v; want %q %v", what, w, i, f.path, got, mode.Perm(), err, f.data, f.mode.Perm())
				}
			}
		}
	}
	t.Logf("kernel nodes at the end: %d", fs.KernelNodes())
	check("mount", func(p string) (string, os.FileMode, error) {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			return "", 0, err
		}
		b, err := os.ReadFile(filepath.Join(dir, p))
		return string(b), st.Mode(), err
	})
	unmount()
	tr2, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	ctx := t.Context()
	check("new tree", func(p string) (string, os.FileMode, error) {
		in := tr2.Root()
		for _, n := range splitPath(p) {
			var err error
			if in, _, err = tr2.Lookup(ctx, in, n); err != nil {
				return "", 0, err
			}
		}
		a := tr2.Attr(in)
		h, err := tr2.OpenFile(in, false, false)
		if err != nil {
			return "", 0, err
		}
		defer h.Close()
		b := make([]byte, a.Size)
		n, err := h.ReadAt(ctx, b, 0)
		if n == len(b) {
			err = nil
		}
		return string(b[:n]), os.FileMode(a.Mode), err
	})
}

func splitPath(p string) []string {
	var out []string
	for p != "" && p != "." {
		d, f := filepath.Split(p)
		out = append([]string{f}, out...)
		p = filepath.Clean(d)
		if p == "/" || p == "." {
			break
		}
	}
	return out
}
