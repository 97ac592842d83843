package repo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// errKth is the failure kthRemote injects.
var errKth = errors.New("injected failure of the chosen call")

// kthRemote fails the k-th call (counting every Put, Get, Stat, List and
// Delete once armed), before it reaches the remote or after it landed,
// and every call after it: the process is taken to have died there.
type kthRemote struct {
	remote.Remote
	mu    sync.Mutex
	armed bool
	k, n  int
	after bool
	calls []string
}

// call counts a call and says whether to pass it on and what to return
// after it.
func (k *kthRemote) call(op, name string) (pass bool, fail bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.armed {
		return true, false
	}
	k.n++
	k.calls = append(k.calls, op+" "+name)
	switch {
	case k.n < k.k:
		return true, false
	case k.n == k.k:
		return k.after, true
	}
	return false, true // dead
}

func (k *kthRemote) Put(ctx context.Context, name string, data []byte) error {
	pass, fail := k.call("put", name)
	if pass {
		if err := k.Remote.Put(ctx, name, data); err != nil {
			return err
		}
	}
	if fail {
		return errKth
	}
	return nil
}

func (k *kthRemote) Get(ctx context.Context, name string, off, n int64) ([]byte, error) {
	pass, fail := k.call("get", name)
	if !pass || fail {
		return nil, errKth
	}
	return k.Remote.Get(ctx, name, off, n)
}

func (k *kthRemote) Stat(ctx context.Context, name string) (int64, error) {
	pass, fail := k.call("stat", name)
	if !pass || fail {
		return 0, errKth
	}
	return k.Remote.Stat(ctx, name)
}

func (k *kthRemote) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	pass, fail := k.call("list", dir)
	if !pass || fail {
		return errKth
	}
	return k.Remote.List(ctx, dir, fn)
}

func (k *kthRemote) Delete(ctx context.Context, name string) error {
	pass, fail := k.call("delete", name)
	if pass {
		if err := k.Remote.Delete(ctx, name); err != nil {
			return err
		}
	}
	if fail {
		return errKth
	}
	return nil
}

// TestPruneDiesAtEveryCall: a prune that dies at each of its remote calls
// in turn (the call not made, or made and its answer lost; nothing after
// it) leaves a repository that a new client opens and checks clean with
// --read-data, and a prune by a new process on the same cache finishes:
// every retained snapshot, and the prune snapshots, read back byte for
// byte, with nothing unreferenced left.
func TestPruneDiesAtEveryCall(t *testing.T) {
	ctx := context.Background()
	p, q, n, o := randomData(21, 700<<10), randomData(22, 500<<10), randomData(23, 2<<20), randomData(24, 100<<10)
	for _, after := range []bool{false, true} {
		for k := 1; ; k++ {
			name := fmt.Sprintf("call %d, %s", k, map[bool]string{false: "before it lands", true: "after it landed"}[after])
			env := testutil.NewRepo(t, pruneOpts)
			storeFiles(t, env.Repo, map[string][]byte{"p": p, "q": q, "empty": nil})
			storeFiles(t, env.Repo, map[string][]byte{"p": p, "q": q, "m": []byte("m")})
			storeFiles(t, env.Repo, map[string][]byte{"q": q, "n": n, "empty": nil})
			storeFiles(t, env.Repo, map[string][]byte{"q": q, "n": n, "o": o})
			if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1, 2)); err != nil {
				t.Fatal(err)
			}
			want := snapshotFiles{3: {"q": q, "n": n, "empty": nil}, 4: {"q": q, "n": n, "o": o}}
			if err := env.Repo.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
			kr := &kthRemote{Remote: testutil.NewRemote(t, env.Dir), k: k, after: after}
			r, err := repo.Open(ctx, kr, unlock.WithCode(env.Code), repo.Options{CacheDir: env.CacheDir})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Lock(ctx, false); err != nil {
				t.Fatal(err)
			}
			kr.mu.Lock()
			kr.armed = true
			kr.mu.Unlock()
			_, err = r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 10})
			kr.mu.Lock()
			calls := kr.calls
			kr.armed = false
			kr.mu.Unlock()
			if len(calls) < k {
				if err != nil {
					t.Fatalf("%s: prune without a failure: %v", name, err)
				}
				t.Logf("%d calls, %s: every one failed once", len(calls)-1, map[bool]string{false: "before", true: "after"}[after])
				r.Unlock(ctx) //nolint:errcheck
				break
			}
			if err == nil {
				t.Fatalf("%s (%s): prune succeeded", name, calls[k-1])
			}
			r.Unlock(ctx) //nolint:errcheck // the process died; its lease is its own
			what := name + " (" + calls[k-1] + ")"
			fresh, err := env.Reopen(t, t.TempDir(), false)
			if err != nil {
				t.Fatalf("%s: open after the prune died: %v", what, err)
			}
			rep, err := fresh.Check(ctx, repo.CheckOptions{ReadData: true})
			if err != nil || !rep.OK() {
				t.Fatalf("%s: check after the prune died: %v %v", what, err, rep.Problems)
			}
			again, err := env.Reopen(t, "", false)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if err := again.Lock(ctx, false); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if _, err := again.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 10}); err != nil {
				t.Fatalf("%s: prune again: %v", what, err)
			}
			snaps, err := again.Snapshots(ctx)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			for _, s := range snaps {
				if s.Seq > 4 {
					want[s.Seq] = want[4]
				}
			}
			if err := again.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
			if !t.Run(strings.ReplaceAll(what, "/", "_"), func(t *testing.T) { verifyPruned(t, env, want) }) {
				t.FailNow()
			}
		}
	}
}

// TestPruneRefusesMissingPack: on a remote where a pack holding a blob a
// retained snapshot needs was deleted (by an attacker, or a storage
// fault), prune fails with an integrity error and deletes nothing: it does
// not "fix" the index by dropping the blobs it cannot find. A copy of a
// pack under another pack's name (named by no index) is not a reason to
// refuse either: only the missing one is.
func TestPruneRefusesMissingPack(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, pruneOpts)
	p, q := randomData(31, 700<<10), randomData(32, 500<<10)
	storeFiles(t, env.Repo, map[string][]byte{"p": p, "q": q})
	s2 := storeFiles(t, env.Repo, map[string][]byte{"q": q})
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1)); err != nil {
		t.Fatal(err)
	}
	tree, err := env.Repo.LoadTree(ctx, s2.Tree)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := env.Repo.Index().Lookup(tree.Find([]byte("q")).Content[0].ID)
	if !ok {
		t.Fatal("q's first chunk is in no index")
	}
	packPath := filepath.Join(env.Dir, filepath.FromSlash(format.PackName(l.Pack)))
	b, err := os.ReadFile(packPath)
	if err != nil {
		t.Fatal(err)
	}
	var other crypt.ID
	other[0] = 0xfe
	if err := os.MkdirAll(filepath.Dir(filepath.Join(env.Dir, filepath.FromSlash(format.PackName(other)))), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.Dir, filepath.FromSlash(format.PackName(other))), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(packPath); err != nil {
		t.Fatal(err)
	}
	before := listing(t, env.Dir)
	for _, dry := range []bool{true, false} {
		_, err := env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 0, DryRun: dry})
		if !errors.Is(err, repo.ErrIntegrity) || !strings.Contains(err.Error(), l.Pack.String()) {
			t.Fatalf("prune (dry run %v) with a live pack missing = %v; want an integrity error naming it", dry, err)
		}
	}
	after := listing(t, env.Dir)
	for name := range before {
		if _, ok := after[name]; !ok && !strings.Contains(name, "lease") {
			t.Errorf("prune deleted %s", name)
		}
	}
}
