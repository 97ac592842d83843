package worktree_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// hammerModel is what a worker expects of its part of the tree: each path
// is a folder (isDir) or a file naming a file identity, whose content
// files holds (hard links share one identity).
type hammerModel struct {
	dirs  map[string]bool // path -> true for folders
	names map[string]int  // file path -> identity
	files map[int][]byte  // identity -> content
	next  int             // next identity
	links map[int]int     // identity -> names
}

func newHammerModel() *hammerModel {
	return &hammerModel{dirs: map[string]bool{}, names: map[string]int{}, files: map[int][]byte{}, links: map[int]int{}}
}

func (m *hammerModel) addFile(p string, data []byte) {
	m.next++
	m.names[p], m.files[m.next], m.links[m.next] = m.next, data, 1
}

func (m *hammerModel) dropName(p string) {
	id := m.names[p]
	delete(m.names, p)
	if m.links[id]--; m.links[id] == 0 {
		delete(m.files, id)
		delete(m.links, id)
	}
}

// under lists the paths in folder d (direct entries).
func (m *hammerModel) under(d string) []string {
	var out []string
	for p := range m.dirs {
		if parentOf(p) == d {
			out = append(out, p)
		}
	}
	for p := range m.names {
		if parentOf(p) == d {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// splitModel splits the model of what hammerSeed committed into one model
// a top folder, for the worker that owns it.
func splitModel(seed *hammerModel, tops []string) map[string]*hammerModel {
	models := map[string]*hammerModel{}
	for _, top := range tops {
		m := newHammerModel()
		for p := range seed.dirs {
			if p == top || strings.HasPrefix(p, top+"/") {
				m.dirs[p] = true
			}
		}
		for p, id := range seed.names {
			if strings.HasPrefix(p, top+"/") {
				m.addFile(p, seed.files[id])
			}
		}
		models[top] = m
	}
	return models
}

// hammerSeed commits, below each of tops, folders s0..s2 holding files
// f0..f1 and a folder n with a file, and returns the model of it.
func hammerSeed(t *testing.T, env *testutil.Env, tops []string) *hammerModel {
	t.Helper()
	m := newHammerModel()
	tr := open(t, env.Repo, t.TempDir())
	for _, top := range tops {
		d := mkdir(t, tr, tr.Root(), top)
		m.dirs[top] = true
		for i := range 3 {
			s := mkdir(t, tr, d, fmt.Sprint("s", i))
			sp := fmt.Sprintf("%s/s%d", top, i)
			m.dirs[sp] = true
			for j := range 2 {
				data := []byte(fmt.Sprintf("seed %s/f%d", sp, j))
				writeFile(t, tr, s, fmt.Sprint("f", j), data, true)
				m.addFile(fmt.Sprintf("%s/f%d", sp, j), data)
			}
			n := mkdir(t, tr, s, "n")
			m.dirs[sp+"/n"] = true
			data := []byte("seed " + sp + "/n/g")
			writeFile(t, tr, n, "g", data, true)
			m.addFile(sp+"/n/g", data)
		}
	}
	commitAndLeave(t, env.Repo, tr)
	return m
}

// hammerClient opens env's repository as a new machine does: a fresh
// cache, the writer lease, every remote call delayed by latency.
func hammerClient(t *testing.T, env *testutil.Env, latency time.Duration) (*repo.Repository, *worktree.Tree) {
	t.Helper()
	rem := testutil.NewRemote(t, env.Dir)
	rem.SetLatency(latency)
	r, err := repo.Open(t.Context(), rem, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	return r, open(t, r, t.TempDir())
}

// resolvePath looks p up from the root, loading folders on the way.
func resolvePath(ctx context.Context, tr *worktree.Tree, p string) (*worktree.Inode, error) {
	in := tr.Root()
	if p == "" {
		return in, nil
	}
	for _, name := range strings.Split(p, "/") {
		var err error
		if in, _, err = tr.Lookup(ctx, in, name); err != nil {
			return nil, fmt.Errorf("lookup %s: %w", p, err)
		}
	}
	return in, nil
}

// hammerWorker changes its own part of the tree (below top) at random
// through the Tree's operations, as the model says they must answer, and
// keeps the model up to date.
type hammerWorker struct {
	t    *testing.T
	tr   *worktree.Tree
	m    *hammerModel
	top  string
	rnd  int // the round: names are new in each
	rng  *rand.Rand
	ops  int
	errs []string
}

func (w *hammerWorker) failf(format string, args ...any) {
	w.errs = append(w.errs, fmt.Sprintf(format, args...))
}

func (w *hammerWorker) pickDir() string {
	var ds []string
	for d := range w.m.dirs {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[w.rng.IntN(len(ds))]
}

func (w *hammerWorker) pickFile() (string, bool) {
	var fs []string
	for f := range w.m.names {
		fs = append(fs, f)
	}
	if len(fs) == 0 {
		return "", false
	}
	slices.Sort(fs)
	return fs[w.rng.IntN(len(fs))], true
}

func (w *hammerWorker) write(in *worktree.Inode, data []byte) error {
	h, err := w.tr.OpenFile(in, true, true)
	if err != nil {
		return err
	}
	if _, err := h.WriteAt(data, 0); err != nil {
		h.Close()
		return err
	}
	return h.Close()
}

// step runs one random operation.
func (w *hammerWorker) step(ctx context.Context) {
	w.ops++
	m, tr := w.m, w.tr
	name := fmt.Sprintf("x%d-%d", w.rnd, w.ops)
	switch op := w.rng.IntN(9); op {
	case 0, 1: // a new file in any folder
		d := w.pickDir()
		dir, err := resolvePath(ctx, tr, d)
		if err != nil {
			w.failf("create: %v", err)
			return
		}
		in, _, err := tr.Create(ctx, dir, name, worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
		if err != nil {
			w.failf("create %s/%s: %v", d, name, err)
			return
		}
		data := []byte(fmt.Sprintf("%s/%s written", d, name))
		if err := w.write(in, data); err != nil {
			w.failf("write %s/%s: %v", d, name, err)
			return
		}
		m.addFile(d+"/"+name, data)
	case 2: // a new folder
		d := w.pickDir()
		dir, err := resolvePath(ctx, tr, d)
		if err == nil {
			_, _, err = tr.Create(ctx, dir, name, worktree.NewEntry{Type: repo.NodeDir, Mode: 0o755})
		}
		if err != nil {
			w.failf("mkdir %s/%s: %v", d, name, err)
			return
		}
		m.dirs[d+"/"+name] = true
	case 3: // unlink a file
		f, ok := w.pickFile()
		if !ok {
			return
		}
		dir, err := resolvePath(ctx, tr, parentOf(f))
		if err == nil {
			err = tr.Unlink(ctx, dir, f[len(parentOf(f))+1:])
		}
		if err != nil {
			w.failf("unlink %s: %v", f, err)
			return
		}
		m.dropName(f)
	case 4: // rmdir: ENOTEMPTY unless empty
		d := w.pickDir()
		if d == w.top {
			return
		}
		dir, err := resolvePath(ctx, tr, parentOf(d))
		if err == nil {
			err = tr.Rmdir(ctx, dir, d[len(parentOf(d))+1:])
		}
		empty := len(m.under(d)) == 0
		switch {
		case empty && err != nil:
			w.failf("rmdir of empty %s: %v", d, err)
		case !empty && !errors.Is(err, syscall.ENOTEMPTY):
			w.failf("rmdir of %s holding %v: %v, want ENOTEMPTY", d, m.under(d), err)
		case empty:
			delete(m.dirs, d)
		}
	case 5: // rename a file or a folder into another folder, or a file over another
		if w.rng.IntN(3) == 0 && w.renameOver(ctx) {
			return
		}
		var from string
		if f, ok := w.pickFile(); ok && w.rng.IntN(2) == 0 {
			from = f
		} else if from = w.pickDir(); from == w.top {
			return
		}
		to := w.pickDir()
		if to == from || strings.HasPrefix(to, from+"/") {
			return
		}
		odir, err := resolvePath(ctx, tr, parentOf(from))
		var ndir *worktree.Inode
		if err == nil {
			ndir, err = resolvePath(ctx, tr, to)
		}
		if err == nil {
			err = tr.Rename(ctx, odir, from[len(parentOf(from))+1:], ndir, name, 0)
		}
		if err != nil {
			w.failf("rename %s to %s/%s: %v", from, to, name, err)
			return
		}
		w.moveModel(from, to+"/"+name)
	case 6: // a hard link (the whole tree loads), in odd rounds only
		f, ok := w.pickFile()
		if !ok || w.rnd%2 == 0 {
			return
		}
		d := w.pickDir()
		in, err := resolvePath(ctx, tr, f)
		var dir *worktree.Inode
		if err == nil {
			dir, err = resolvePath(ctx, tr, d)
		}
		if err == nil {
			_, err = tr.Link(ctx, in, dir, name)
		}
		if err != nil {
			w.failf("link %s to %s/%s: %v", f, d, name, err)
			return
		}
		id := m.names[f]
		m.names[d+"/"+name] = id
		m.links[id]++
	case 7: // rewrite a file
		f, ok := w.pickFile()
		if !ok {
			return
		}
		in, err := resolvePath(ctx, tr, f)
		data := []byte(fmt.Sprintf("%s rewritten at %d", f, w.ops))
		if err == nil {
			err = w.write(in, data)
		}
		if err != nil {
			w.failf("rewrite %s: %v", f, err)
			return
		}
		m.files[m.names[f]] = data
	case 8: // list a folder
		d := w.pickDir()
		dir, err := resolvePath(ctx, tr, d)
		var ents []worktree.DirEntry
		if err == nil {
			ents, err = tr.ReadDir(ctx, dir)
		}
		if err != nil {
			w.failf("readdir %s: %v", d, err)
			return
		}
		var got, want []string
		for _, e := range ents {
			got = append(got, d+"/"+e.Name)
		}
		want = m.under(d)
		if !slices.Equal(got, want) {
			w.failf("readdir %s = %v, want %v", d, got, want)
		}
	}
}

// renameOver renames a file over another file, and reports whether it
// found two.
func (w *hammerWorker) renameOver(ctx context.Context) bool {
	m, tr := w.m, w.tr
	from, ok1 := w.pickFile()
	to, ok2 := w.pickFile()
	if !ok1 || !ok2 || from == to {
		return false
	}
	odir, err := resolvePath(ctx, tr, parentOf(from))
	var ndir *worktree.Inode
	if err == nil {
		ndir, err = resolvePath(ctx, tr, parentOf(to))
	}
	if err == nil {
		err = tr.Rename(ctx, odir, from[len(parentOf(from))+1:], ndir, to[len(parentOf(to))+1:], 0)
	}
	if err != nil {
		w.failf("rename %s over %s: %v", from, to, err)
		return true
	}
	if m.names[from] != m.names[to] { // two names of one file: nothing happens
		m.dropName(to)
		m.names[to] = m.names[from]
		delete(m.names, from)
	}
	return true
}

// moveModel renames from (a file or a folder with all it holds) to to.
func (w *hammerWorker) moveModel(from, to string) {
	m := w.m
	if id, ok := m.names[from]; ok {
		delete(m.names, from)
		m.names[to] = id
		return
	}
	for _, p := range slices.Collect(maps.Keys(m.dirs)) {
		if p == from || strings.HasPrefix(p, from+"/") {
			delete(m.dirs, p)
			m.dirs[to+p[len(from):]] = true
		}
	}
	for _, p := range slices.Collect(maps.Keys(m.names)) {
		if strings.HasPrefix(p, from+"/") {
			id := m.names[p]
			delete(m.names, p)
			m.names[to+p[len(from):]] = id
		}
	}
}

// hammerVerify reads the whole tree through a client on a fresh cache and
// compares every folder and file with the models.
func hammerVerify(t *testing.T, env *testutil.Env, models map[string]*hammerModel) {
	t.Helper()
	ctx := t.Context()
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := worktree.Open(ctx, r, worktree.Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	gotDirs, gotFiles := map[string]bool{}, map[string][]byte{}
	gotIno, gotNlink := map[string]uint64{}, map[string]uint32{}
	var walk func(p string, dir *worktree.Inode)
	walk = func(p string, dir *worktree.Inode) {
		ents, err := tr.ReadDir(ctx, dir)
		if err != nil {
			t.Fatalf("readdir /%s: %v", p, err)
		}
		for _, e := range ents {
			cp := e.Name
			if p != "" {
				cp = p + "/" + e.Name
			}
			in, a, err := tr.Lookup(ctx, dir, e.Name)
			if err != nil {
				t.Fatalf("lookup /%s: %v", cp, err)
			}
			if e.Attr.Type == repo.NodeDir {
				gotDirs[cp] = true
				walk(cp, in)
				continue
			}
			gotFiles[cp] = readFile(t, tr, strings.Split(cp, "/")...)
			gotIno[cp], gotNlink[cp] = a.Ino, a.Nlink
		}
	}
	walk("", tr.Root())
	wantDirs, wantFiles := map[string]bool{}, map[string][]byte{}
	for _, m := range models {
		maps.Copy(wantDirs, m.dirs)
		for p, id := range m.names {
			wantFiles[p] = m.files[id]
		}
	}
	for p := range wantDirs {
		if !gotDirs[p] {
			t.Errorf("folder /%s is lost", p)
		}
	}
	for p := range gotDirs {
		if !wantDirs[p] {
			t.Errorf("folder /%s should not be there (resurrected or duplicated)", p)
		}
	}
	// Names of one file are one inode, with as many links; names of
	// different files are different inodes.
	fileOf := map[uint64]string{} // inode -> its file, as top/identity
	for top, m := range models {
		inoOf := map[int]uint64{}
		for p, id := range m.names {
			ino, ok := gotIno[p]
			if !ok {
				continue // reported below
			}
			if first, seen := inoOf[id]; seen && first != ino {
				t.Errorf("%s: /%s is another inode than the other names of its file (a hard link split)", top, p)
			}
			inoOf[id] = ino
			if f := fmt.Sprint(top, "/", id); fileOf[ino] != "" && fileOf[ino] != f {
				t.Errorf("%s: /%s is the same inode as a name of another file (files merged)", top, p)
			} else {
				fileOf[ino] = f
			}
			if gotNlink[p] != uint32(m.links[id]) {
				t.Errorf("%s: /%s has %d links, want %d", top, p, gotNlink[p], m.links[id])
			}
		}
	}
	for p, want := range wantFiles {
		got, ok := gotFiles[p]
		switch {
		case !ok:
			t.Errorf("file /%s is lost", p)
		case !bytes.Equal(got, want):
			t.Errorf("file /%s = %q, want %q", p, got, want)
		}
	}
	for p := range gotFiles {
		if _, ok := wantFiles[p]; !ok {
			t.Errorf("file /%s should not be there (resurrected or duplicated)", p)
		}
	}
}

// TestHammerColdTree: on a client that has loaded nothing (a fresh cache)
// and whose remote answers slowly, workers create, write, link, rename,
// unlink and remove files and folders in folders not loaded yet, each in a
// part of the tree of its own, while a lister lists folders everywhere
// (loading the folders they show in the background) and commits run;
// then the last commit, and a client on a fresh cache must read back
// exactly what the workers' models hold: nothing lost, duplicated or
// brought back. Several rounds, each on a fresh cache. SEALFS_SOAK=1 runs
// more rounds and operations.
func TestHammerColdTree(t *testing.T) {
	rounds, steps := 3, 40
	if os.Getenv("SEALFS_SOAK") != "" {
		rounds, steps = 12, 200
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	tops := []string{"w0", "w1", "w2", "w3"}
	seed := hammerSeed(t, env, tops)
	models := splitModel(seed, tops)
	seedN := time.Now().UnixNano()
	t.Logf("seed %d", seedN)
	ops := 0
	for round := range rounds {
		r, tr := hammerClient(t, env, 200*time.Microsecond)
		ctx := t.Context()
		stop := make(chan struct{})
		var bg sync.WaitGroup
		var bgErr sync.Map
		bg.Go(func() { // lists folders everywhere, which loads theirs ahead
			rng := rand.New(rand.NewPCG(uint64(seedN), uint64(round)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("%s/s%d", tops[rng.IntN(len(tops))], rng.IntN(3))
				if dir, err := resolvePath(ctx, tr, p); err == nil {
					if _, err := tr.ReadDir(ctx, dir); err != nil && !errors.Is(err, syscall.ENOENT) {
						bgErr.Store("readdir "+p, err)
					}
				}
				if _, err := tr.ReadDir(ctx, tr.Root()); err != nil {
					bgErr.Store("readdir /", err)
				}
			}
		})
		bg.Go(func() { // commits as the daemon's timer does
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if _, err := tr.Commit(ctx); err != nil {
					bgErr.Store("commit", err)
				}
			}
		})
		var wg sync.WaitGroup
		workers := make([]*hammerWorker, len(tops))
		for i, top := range tops {
			w := &hammerWorker{t: t, tr: tr, m: models[top], top: top, rnd: round, rng: rand.New(rand.NewPCG(uint64(seedN), uint64(100*round+i)))}
			workers[i] = w
			wg.Go(func() {
				for range steps {
					w.step(ctx)
				}
			})
		}
		wg.Wait()
		close(stop)
		bg.Wait()
		for _, w := range workers {
			ops += w.ops
			for _, e := range w.errs {
				t.Errorf("round %d, %s: %s", round, w.top, e)
			}
		}
		bgErr.Range(func(k, v any) bool { t.Errorf("round %d, %s: %v", round, k, v); return true })
		if _, err := tr.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			t.FailNow()
		}
		hammerVerify(t, env, models)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d rounds, %d operations, each round verified on a fresh cache", rounds, ops)
}

// TestHammerRebase: a client that has loaded nothing and holds no lease
// (a mount that came up offline) is changed by workers in folders not
// loaded yet, while a lister lists folders everywhere (loading theirs in
// the background); meanwhile another writer changes a folder of its own
// and commits. The client then takes the lease and commits on top of it
// (a rebase): a client on a fresh cache must read back both sides' work,
// nothing lost, duplicated or brought back.
func TestHammerRebase(t *testing.T) {
	steps := 40
	if os.Getenv("SEALFS_SOAK") != "" {
		steps = 200
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	tops := []string{"w0", "w1", "b0"}
	seed := hammerSeed(t, env, tops)
	models := splitModel(seed, tops)
	ctx := t.Context()
	rem := testutil.NewRemote(t, env.Dir)
	rem.SetLatency(200 * time.Microsecond)
	r, err := repo.Open(ctx, rem, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tr := open(t, r, t.TempDir())
	defer tr.Close()
	seedN := time.Now().UnixNano()
	t.Logf("seed %d", seedN)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		rng := rand.New(rand.NewPCG(uint64(seedN), 7))
		for {
			select {
			case <-stop:
				return
			default:
			}
			p := fmt.Sprintf("%s/s%d", tops[rng.IntN(len(tops))], rng.IntN(3))
			if dir, err := resolvePath(ctx, tr, p); err == nil {
				tr.ReadDir(ctx, dir)
			}
			tr.ReadDir(ctx, tr.Root())
		}
	})
	var wg sync.WaitGroup
	workers := []*hammerWorker{}
	for i, top := range tops[:2] {
		w := &hammerWorker{t: t, tr: tr, m: models[top], top: top, rnd: 1 + int(seedN%2), rng: rand.New(rand.NewPCG(uint64(seedN), uint64(i)))}
		workers = append(workers, w)
		wg.Go(func() {
			for range steps {
				w.step(ctx)
			}
		})
	}
	// The other writer changes b0 and commits, while the workers run.
	rB, trB := otherWriter(t, env)
	b := &hammerWorker{t: t, tr: trB, m: models["b0"], top: "b0", rnd: 3, rng: rand.New(rand.NewPCG(uint64(seedN), 99))}
	for range steps {
		b.step(ctx)
	}
	commitAndLeave(t, rB, trB)
	trB.Close()
	wg.Wait()
	close(stop)
	bg.Wait()
	ops := 0
	for _, w := range append(workers, b) {
		ops += w.ops
		for _, e := range w.errs {
			t.Errorf("%s: %s", w.top, e)
		}
	}
	comeBackAndCommit(t, r, tr)
	if recent, n := tr.Conflicts(); n != 0 {
		t.Errorf("%d conflicts, though each side changed folders of its own: %+v", n, recent)
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	hammerVerify(t, env, models)
	t.Logf("%d operations on both sides", ops)
}
