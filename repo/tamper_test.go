package repo_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// tamperEnv is a repository with two snapshots and several packs, and the
// plaintext of every file, to check that no read ever returns other bytes.
type tamperEnv struct {
	*testutil.Env
	files map[string][]byte
}

func newTamperEnv(t *testing.T) *tamperEnv {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	te := &tamperEnv{Env: env, files: map[string][]byte{}}
	te.files["random"] = randomData(3, 3<<20)
	storeFile(t, env.Repo, "random", te.files["random"])
	te.files["text"] = bytes.Repeat([]byte("compressible text\n"), 50000)
	storeFiles(t, env.Repo, te.files)
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	return te
}

func (te *tamperEnv) objects(t *testing.T) []string {
	var names []string
	err := filepath.WalkDir(te.Dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(te.Dir, p)
			names = append(names, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// detect opens the repository as a new client, checks it with --read-data
// and reads every file. It returns an error when the damage was detected,
// nil when nothing noticed it, and fails the test if any read returned
// wrong plaintext.
func (te *tamperEnv) detect(t *testing.T, cacheDir string) error {
	t.Helper()
	r, err := te.Reopen(t, cacheDir, false)
	if err != nil {
		return err
	}
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		return err
	}
	var found error
	if !rep.OK() {
		found = errors.Join(rep.Problems...)
	}
	for _, name := range []string{"random", "text"} {
		got, err := readFile(r, name)
		if err != nil {
			if !errors.Is(err, repo.ErrIntegrity) {
				t.Errorf("reading %s failed with %v, which is not an integrity error", name, err)
			}
			found = errors.Join(found, err)
			continue
		}
		if !bytes.Equal(got, te.files[name]) {
			t.Fatalf("reading %s returned WRONG PLAINTEXT", name)
		}
	}
	return found
}

func TestTamperFlipEveryObject(t *testing.T) {
	te := newTamperEnv(t)
	if err := te.detect(t, t.TempDir()); err != nil {
		t.Fatalf("untouched repository reports: %v", err)
	}
	for _, name := range te.objects(t) {
		p := filepath.Join(te.Dir, name)
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		positions := []int{0, len(orig) / 3, len(orig) / 2, len(orig) - 20, len(orig) - 1}
		for _, pos := range positions {
			if pos < 0 || pos >= len(orig) {
				continue
			}
			bad := bytes.Clone(orig)
			bad[pos] ^= 0x01
			if err := os.WriteFile(p, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			err := te.detect(t, t.TempDir())
			if err == nil {
				t.Errorf("flipping byte %d of %s went unnoticed", pos, name)
			} else if !errors.Is(err, repo.ErrIntegrity) && !errors.Is(err, repo.ErrWrongKey) {
				t.Errorf("flipping byte %d of %s gave %v, not an integrity error", pos, name, err)
			}
		}
		if err := os.WriteFile(p, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (te *tamperEnv) packs(t *testing.T) []string {
	var packs []string
	for _, n := range te.objects(t) {
		if strings.HasPrefix(n, "data/") {
			packs = append(packs, filepath.Join(te.Dir, n))
		}
	}
	if len(packs) < 2 {
		t.Fatalf("want several packs, got %d", len(packs))
	}
	return packs
}

func expectIntegrity(t *testing.T, what string, err error, mention string) {
	t.Helper()
	if !errors.Is(err, repo.ErrIntegrity) {
		t.Fatalf("%s: got %v, want an integrity error", what, err)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("%s: error %q does not name %s", what, err, mention)
	}
}

func TestTamperTruncatePack(t *testing.T) {
	te := newTamperEnv(t)
	p := te.packs(t)[0]
	fi, _ := os.Stat(p)
	if err := os.Truncate(p, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	expectIntegrity(t, "truncated pack", te.detect(t, t.TempDir()), filepath.Base(p))
}

func TestTamperSwapPacks(t *testing.T) {
	te := newTamperEnv(t)
	packs := te.packs(t)
	a, b := packs[0], packs[1]
	tmp := a + ".tmp"
	for _, mv := range [][2]string{{a, tmp}, {b, a}, {tmp, b}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	expectIntegrity(t, "swapped packs", te.detect(t, t.TempDir()), "data/")
}

func TestTamperDeleteIndex(t *testing.T) {
	te := newTamperEnv(t)
	for _, n := range te.objects(t) {
		if strings.HasPrefix(n, "index/") {
			if err := os.Remove(filepath.Join(te.Dir, n)); err != nil {
				t.Fatal(err)
			}
			expectIntegrity(t, "deleted index", te.detect(t, t.TempDir()), n)
			return
		}
	}
	t.Fatal("no index object")
}

func TestTamperReplayFromOtherRepository(t *testing.T) {
	te := newTamperEnv(t)
	other := newTamperEnv(t)
	var otherSnap, otherPack string
	for _, n := range other.objects(t) {
		if strings.HasPrefix(n, "snapshots/") {
			otherSnap = n
		}
		if strings.HasPrefix(n, "data/") {
			otherPack = n
		}
	}
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A snapshot of another repository put beside ours.
	copyFile(filepath.Join(other.Dir, otherSnap), filepath.Join(te.Dir, otherSnap))
	expectIntegrity(t, "replayed snapshot", te.detect(t, t.TempDir()), otherSnap)
	os.Remove(filepath.Join(te.Dir, otherSnap))
	// A pack of another repository in place of one of ours.
	victim := te.packs(t)[0]
	copyFile(filepath.Join(other.Dir, otherPack), victim)
	expectIntegrity(t, "replayed pack", te.detect(t, t.TempDir()), "data/")
}

func TestTamperRollback(t *testing.T) {
	ctx := context.Background()
	te := newTamperEnv(t)
	cache := t.TempDir()
	old := filepath.Join(t.TempDir(), "old")
	if out, err := exec.Command("cp", "-a", te.Dir, old).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	// This client sees a newer snapshot...
	r, err := te.Reopen(t, cache, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	storeFile(t, r, "third", []byte("3"))
	_ = r.Unlock(ctx)
	// ...then the provider serves the older copy of the whole repository.
	if err := os.RemoveAll(te.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(old, te.Dir); err != nil {
		t.Fatal(err)
	}
	_, err = te.Reopen(t, cache, false)
	if !errors.Is(err, repo.ErrRollback) || !strings.Contains(err.Error(), "number 2") || !strings.Contains(err.Error(), "number 3") {
		t.Fatalf("rolled-back remote = %v; want ErrRollback naming 2 and 3", err)
	}
	// Told to accept it, the client opens it and remembers the new state.
	if _, err := te.Reopen(t, cache, true); err != nil {
		t.Fatalf("with accept-rollback: %v", err)
	}
	if _, err := te.Reopen(t, cache, false); err != nil {
		t.Fatalf("after accepting the rollback: %v", err)
	}
	// Deleting the newest snapshot is a rollback too.
	r, _ = te.Reopen(t, cache, false)
	newest := format.SnapshotSeqName(r.Latest().Seq, r.Latest().ID)
	if err := os.Remove(filepath.Join(te.Dir, newest)); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Reopen(t, cache, false); !errors.Is(err, repo.ErrRollback) {
		t.Fatalf("deleted newest snapshot = %v; want ErrRollback", err)
	}
}
