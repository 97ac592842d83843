package worktree

import (
	"fmt"
	"strings"
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
	tr := openTestTree(t, env.Repo)
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

// folders returns the folders of the test tree (folderTree) by path,
// and whether each is loaded.
func (t *Tree) folders(tb testing.TB) map[string]bool {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]bool{}
	var walk func(dir *Inode, path string)
	walk = func(dir *Inode, path string) {
		for name, c := range dir.children {
			if c.meta.Type == repo.NodeDir {
				out[path+name] = c.children != nil
				walk(c, path+name+"/")
			}
		}
	}
	walk(t.root, "")
	return out
}

// TestPrefetchSubtrees: listing a folder loads the folders below it in
// the background; a walk then lists them without asking the remote.
func TestPrefetchSubtrees(t *testing.T) {
	defer func(n int) { defaultMaxLoaded = n }(defaultMaxLoaded)
	defaultMaxLoaded = DefaultMaxLoaded // under SEALFS_TEST_MAX_LOADED=1 nothing loads ahead
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	folderTree(t, env)
	tr, rem := coldTree(t, env)
	defer tr.Close()
	if _, err := tr.ReadDir(ctx, tr.Root()); err != nil {
		t.Fatal(err)
	}
	tr.prefetchIdle(t)
	got := tr.folders(t)
	for p, loaded := range got {
		if !loaded {
			t.Errorf("%s is not loaded after the top folder was listed", p)
		}
	}
	if len(got) != 3*(1+2*2) {
		t.Errorf("%d folders are known after the listing, want 15: %v", len(got), got)
	}
	gets := rem.Stats().Gets
	for p := range got {
		if _, err := tr.ReadDir(ctx, lookupIn(t, tr, strings.Split(p, "/")...)); err != nil {
			t.Fatal(err)
		}
	}
	if n := rem.Stats().Gets - gets; n != 0 {
		t.Errorf("listing the folders loaded ahead asked the remote %d times", n)
	}
}

// TestPrefetchBounded: folders loaded ahead and not listed yet bound what
// loads ahead (here: one): a listing then loads its own folders only; a
// walk that lists them goes on.
func TestPrefetchBounded(t *testing.T) {
	defer func(n int) { prefetchAhead = n }(prefetchAhead)
	prefetchAhead = 1
	defer func(n int) { defaultMaxLoaded = n }(defaultMaxLoaded)
	defaultMaxLoaded = DefaultMaxLoaded
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	folderTree(t, env)
	tr, _ := coldTree(t, env)
	defer tr.Close()
	if _, err := tr.ReadDir(ctx, tr.Root()); err != nil {
		t.Fatal(err)
	}
	tr.prefetchIdle(t)
	for p, loaded := range tr.folders(t) {
		if want := !strings.Contains(p, "/"); loaded != want {
			t.Errorf("after the top was listed, %s loaded: %v", p, loaded)
		}
	}
	if _, err := tr.ReadDir(ctx, lookupIn(t, tr, "d0")); err != nil {
		t.Fatal(err)
	}
	tr.prefetchIdle(t)
	for p, loaded := range tr.folders(t) {
		if want := !strings.Contains(p, "/") || p == "d0/s0" || p == "d0/s1"; loaded != want {
			t.Errorf("after d0 was listed, %s loaded: %v", p, loaded)
		}
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
