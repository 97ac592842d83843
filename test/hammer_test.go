package test

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mountModel is what a worker expects of its part of a mount: folders,
// and files by path with their content (hard links are separate paths
// with the same content and are not rewritten).
type mountModel struct {
	dirs  map[string]bool
	files map[string]string
	links map[string]bool // files with another name: never rewritten
}

func (m *mountModel) under(d string) []string {
	var out []string
	for p := range m.dirs {
		if filepath.Dir(p) == d {
			out = append(out, filepath.Base(p))
		}
	}
	for p := range m.files {
		if filepath.Dir(p) == d {
			out = append(out, filepath.Base(p))
		}
	}
	slices.Sort(out)
	return out
}

func (m *mountModel) pick(rng *rand.Rand, dirs bool) (string, bool) {
	src := slices.Collect(maps.Keys(m.files))
	if dirs {
		src = slices.Collect(maps.Keys(m.dirs))
	}
	if len(src) == 0 {
		return "", false
	}
	slices.Sort(src)
	return src[rng.IntN(len(src))], true
}

// mountStep runs one random operation of a worker in its folder top,
// through the mount at mnt, and keeps m up to date; it returns what went
// wrong, if anything.
func mountStep(mnt, top string, m *mountModel, rng *rand.Rand, name string) error {
	p := func(rel string) string { return filepath.Join(mnt, rel) }
	switch rng.IntN(8) {
	case 0, 1:
		d, _ := m.pick(rng, true)
		f := d + "/" + name
		if err := os.WriteFile(p(f), []byte("content of "+f), 0o644); err != nil {
			return err
		}
		m.files[f] = "content of " + f
	case 2:
		d, _ := m.pick(rng, true)
		if err := os.Mkdir(p(d+"/"+name), 0o755); err != nil {
			return err
		}
		m.dirs[d+"/"+name] = true
	case 3:
		f, ok := m.pick(rng, false)
		if !ok {
			return nil
		}
		if err := os.Remove(p(f)); err != nil {
			return err
		}
		delete(m.files, f)
	case 4:
		d, _ := m.pick(rng, true)
		if d == top {
			return nil
		}
		err := syscall.Rmdir(p(d))
		if len(m.under(d)) > 0 {
			if !errors.Is(err, syscall.ENOTEMPTY) {
				return fmt.Errorf("rmdir of %s holding %v: %v, want ENOTEMPTY", d, m.under(d), err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		delete(m.dirs, d)
	case 5:
		from, ok := m.pick(rng, rng.IntN(2) == 0)
		to, _ := m.pick(rng, true)
		if !ok || from == top || to == from || strings.HasPrefix(to, from+"/") {
			return nil
		}
		to += "/" + name
		if err := os.Rename(p(from), p(to)); err != nil {
			return err
		}
		for _, set := range []map[string]bool{m.dirs, m.links} {
			for _, q := range slices.Collect(maps.Keys(set)) {
				if q == from || strings.HasPrefix(q, from+"/") {
					delete(set, q)
					set[to+q[len(from):]] = true
				}
			}
		}
		for _, q := range slices.Collect(maps.Keys(m.files)) {
			if q == from || strings.HasPrefix(q, from+"/") {
				m.files[to+q[len(from):]] = m.files[q]
				delete(m.files, q)
			}
		}
	case 6:
		f, ok := m.pick(rng, false)
		d, _ := m.pick(rng, true)
		if !ok {
			return nil
		}
		if rng.IntN(4) == 0 {
			if err := os.Link(p(f), p(d+"/"+name)); err != nil {
				return err
			}
			m.files[d+"/"+name] = m.files[f]
			m.links[f], m.links[d+"/"+name] = true, true
			return nil
		}
		if m.links[f] {
			return nil
		}
		if err := os.WriteFile(p(f), []byte("rewritten "+f+" "+name), 0o644); err != nil {
			return err
		}
		m.files[f] = "rewritten " + f + " " + name
	case 7:
		d, _ := m.pick(rng, true)
		ents, err := os.ReadDir(p(d))
		if err != nil {
			return err
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if want := m.under(d); !slices.Equal(got, want) {
			return fmt.Errorf("ls %s = %v, want %v", d, got, want)
		}
	}
	return nil
}

// readModel reads the whole tree at root into a model.
func readModel(t *testing.T, root string) *mountModel {
	t.Helper()
	m := &mountModel{dirs: map[string]bool{}, files: map[string]string{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			m.dirs[rel] = true
			return nil
		}
		b, err := os.ReadFile(path)
		m.files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMountHammerColdTree: through the real mount on a fresh cache, behind
// a slow link, workers create, write, link, rename, unlink and remove
// files and folders in folders not listed yet, each in a part of the
// tree of its own, while a walker lists folders everywhere (loading theirs
// in the background) and commits run every 50 ms; each round ends with an
// unmount, and a restore from a fresh cache must hold exactly what the
// workers' models hold. SEALFS_SOAK=1 runs more rounds and operations.
func TestMountHammerColdTree(t *testing.T) {
	needRoot(t)
	rounds, steps := 2, 40
	if os.Getenv("SEALFS_SOAK") != "" {
		rounds, steps = 6, 200
	}
	c := initRepo(t)
	mnt := mountpoint(t)
	tops := []string{"w0", "w1", "w2", "w3"}
	models := map[string]*mountModel{}
	expect(t, c.mount(t, mnt), 0, "")
	for _, top := range tops {
		m := &mountModel{dirs: map[string]bool{top: true}, files: map[string]string{}, links: map[string]bool{}}
		for i := range 3 {
			d := fmt.Sprintf("%s/s%d/n", top, i)
			if err := os.MkdirAll(filepath.Join(mnt, d), 0o755); err != nil {
				t.Fatal(err)
			}
			m.dirs[filepath.Dir(d)], m.dirs[d] = true, true
			for _, f := range []string{filepath.Dir(d) + "/f", d + "/g"} {
				if err := os.WriteFile(filepath.Join(mnt, f), []byte("content of "+f), 0o644); err != nil {
					t.Fatal(err)
				}
				m.files[f] = "content of " + f
			}
		}
		models[top] = m
	}
	c.umount(t, mnt)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ops := 0
	for round := range rounds {
		fresh := c
		fresh.cache = t.TempDir()
		expect(t, fresh.mount(t, mnt, "--commit-delay", "50ms", "--remote-shape", "latency=2ms"), 0, "")
		stop := make(chan struct{})
		var walker sync.WaitGroup
		walker.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(round)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				filepath.WalkDir(filepath.Join(mnt, tops[rng.IntN(len(tops))]), func(string, fs.DirEntry, error) error { return nil })
			}
		})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []string
		for i, top := range tops {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(100*round+i)))
				for k := range steps {
					if err := mountStep(mnt, top, models[top], rng, fmt.Sprintf("x%d-%d", round, k)); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Sprintf("round %d, %s, step %d: %v", round, top, k, err))
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		walker.Wait()
		ops += len(tops) * steps
		for _, e := range errs {
			t.Error(e)
		}
		expect(t, fresh.umount(t, mnt), 0, "")
		if t.Failed() {
			t.FailNow()
		}
		got := readModel(t, restored(t, c))
		want := &mountModel{dirs: map[string]bool{}, files: map[string]string{}}
		for _, m := range models {
			maps.Copy(want.dirs, m.dirs)
			maps.Copy(want.files, m.files)
		}
		for p := range want.dirs {
			if !got.dirs[p] {
				t.Errorf("round %d: folder %s is lost", round, p)
			}
		}
		for p := range got.dirs {
			if !want.dirs[p] {
				t.Errorf("round %d: folder %s should not be there", round, p)
			}
		}
		for p, w := range want.files {
			if g, ok := got.files[p]; !ok || g != w {
				t.Errorf("round %d: file %s = %q (there: %v), want %q", round, p, g, ok, w)
			}
		}
		for p := range got.files {
			if _, ok := want.files[p]; !ok {
				t.Errorf("round %d: file %s should not be there", round, p)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d rounds, %d operations through the mount, each round restored from a fresh cache and compared", rounds, ops)
}

// TestMountRemoveWhileWalking: on a fresh cache behind a slow link, `rm
// -rf` of a folder tree never listed and `mv` of another into a third run
// while `find` and `ls -lR` walk the whole mount (loading folders ahead);
// after an unmount, a restore from a fresh cache holds neither the
// removed tree nor the moved one at its old place, and every other file.
func TestMountRemoveWhileWalking(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	want := map[string]string{}
	for _, top := range []string{"gone", "moved", "kept", "into"} {
		for i := range 8 {
			for j := range 3 {
				d := fmt.Sprintf("%s/d%d/e%d", top, i, j)
				if err := os.MkdirAll(filepath.Join(mnt, d), 0o755); err != nil {
					t.Fatal(err)
				}
				f := d + "/f"
				if err := os.WriteFile(filepath.Join(mnt, f), []byte("content of "+f), 0o644); err != nil {
					t.Fatal(err)
				}
				switch top {
				case "moved":
					want["into/moved/"+f[len("moved/"):]] = "content of " + f
				case "kept", "into":
					want[f] = "content of " + f
				}
			}
		}
	}
	c.umount(t, mnt)
	for round := range 3 {
		fresh := c
		fresh.cache = t.TempDir()
		expect(t, fresh.mount(t, mnt, "--commit-delay", "20ms", "--remote-shape", "latency=3ms"), 0, "")
		var wg sync.WaitGroup
		for _, walk := range [][]string{{"find", mnt}, {"ls", "-lR", mnt}} {
			wg.Go(func() { exec.Command(walk[0], walk[1:]...).Run() })
		}
		if round == 0 {
			wg.Go(func() {
				if out, err := exec.Command("rm", "-rf", filepath.Join(mnt, "gone")).CombinedOutput(); err != nil {
					t.Errorf("rm -rf: %v\n%s", err, out)
				}
			})
			wg.Go(func() {
				if err := os.Rename(filepath.Join(mnt, "moved"), filepath.Join(mnt, "into", "moved")); err != nil {
					t.Errorf("mv: %v", err)
				}
			})
		}
		wg.Wait()
		expect(t, fresh.umount(t, mnt), 0, "")
		got := readModel(t, restored(t, c))
		for p, w := range want {
			if got.files[p] != w {
				t.Errorf("round %d: %s = %q, want %q", round, p, got.files[p], w)
			}
		}
		for p := range got.files {
			if _, ok := want[p]; !ok {
				t.Errorf("round %d: %s should not be there", round, p)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}
