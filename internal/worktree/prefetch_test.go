package worktree

import (
	"fmt"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// prefetchIdle waits until no folder is being loaded ahead.
func (t *Tree) prefetchIdle(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := &t.prefetcher
		p.mu.Lock()
		idle := p.workers == 0 && len(p.queue) == 0
		p.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("the folders listed are still being loaded after 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// folderTree commits d0..d2, each with s0 and s1, each of those with a
// folder deep and a file f, to env's repository.
func folderTree(t *testing.T, env *testutil.Env) {
	t.Helper()
	ctx := t.Context()
	tr, err := Open(ctx, env.Repo, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	mk := func(dir *Inode, name string, typ repo.NodeType) *Inode {
		in, _, err := tr.Create(ctx, dir, name, NewEntry{Type: typ, Mode: 0o755})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	for i := range 3 {
		d := mk(tr.Root(), fmt.Sprint("d", i), repo.NodeDir)
		for j := range 2 {
			s := mk(d, fmt.Sprint("s", j), repo.NodeDir)
			mk(mk(s, "deep", repo.NodeDir), "f", repo.NodeFile)
			mk(s, "f", repo.NodeFile)
		}
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// coldTree opens env's repository again on a fresh cache, through a
// counting remote.
func coldTree(t *testing.T, env *testutil.Env) (*Tree, *faulty.Remote) {
	t.Helper()
	rem := testutil.NewRemote(t, env.Dir)
	r, err := repo.Open(t.Context(), rem, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(t.Context(), r, Options{Dir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return tr, rem
}

// TestPrefetchSubtrees: listing a folder loads its folders and theirs in
// the background, and no deeper; a walk then lists them without asking
// the remote.
func TestPrefetchSubtrees(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	folderTree(t, env)
	tr, rem := coldTree(t, env)
	defer tr.Close()
	if _, err := tr.ReadDir(ctx, tr.Root()); err != nil {
		t.Fatal(err)
	}
	tr.prefetchIdle(t)
	tr.mu.Lock()
	for name, d := range tr.root.children {
		for sname, s := range d.children {
			if s.children == nil {
				t.Errorf("%s/%s is not loaded after the top folder was listed", name, sname)
			}
			if deep := s.children["deep"]; deep != nil && deep.children != nil {
				t.Errorf("%s/%s/deep is loaded: three levels below the listing", name, sname)
			}
		}
		if d.children == nil {
			t.Errorf("%s is not loaded after the top folder was listed", name)
		}
	}
	tr.mu.Unlock()
	gets := rem.Stats().Gets
	for i := range 3 {
		for _, p := range [][]string{{fmt.Sprint("d", i)}, {fmt.Sprint("d", i), "s0"}, {fmt.Sprint("d", i), "s1"}} {
			dir := tr.Root()
			for _, name := range p {
				var err error
				if dir, _, err = tr.Lookup(ctx, dir, name); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := tr.ReadDir(ctx, dir); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := rem.Stats().Gets - gets; n != 0 {
		t.Errorf("listing the folders loaded ahead asked the remote %d times", n)
	}
	// Those listings load the level below them in turn.
	tr.prefetchIdle(t)
	gets = rem.Stats().Gets
	if _, err := tr.ReadDir(ctx, lookupIn(t, tr, "d0", "s0", "deep")); err != nil {
		t.Fatal(err)
	}
	if n := rem.Stats().Gets - gets; n != 0 {
		t.Errorf("listing d0/s0/deep after d0/s0 was listed asked the remote %d times", n)
	}
}

// lookupIn looks a path up from the root.
func lookupIn(t *testing.T, tr *Tree, path ...string) *Inode {
	t.Helper()
	in := tr.Root()
	for _, name := range path {
		var err error
		if in, _, err = tr.Lookup(t.Context(), in, name); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// TestPrefetchEndsAtClose: loads ahead that hang on the remote end when
// the tree closes (at unmount), and the folders stay unloaded.
func TestPrefetchEndsAtClose(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	folderTree(t, env)
	tr, rem := coldTree(t, env)
	if _, _, err := tr.Lookup(ctx, tr.Root(), "d0"); err != nil {
		t.Fatal(err)
	}
	rem.SetLatency(time.Hour)
	if _, err := tr.ReadDir(ctx, tr.Root()); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited for the loads ahead hanging on the remote")
	}
	for name, d := range tr.root.children {
		if d.children != nil {
			t.Errorf("%s was loaded although its fetch hung", name)
		}
	}
}
