package worktree_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// gatedRemote holds reads of packs while its gate is closed, and says
// when the first one arrives.
type gatedRemote struct {
	remote.Remote
	mu      sync.Mutex
	gate    chan struct{}
	reached chan struct{}
}

// hold makes the next reads of packs wait until the returned function is
// called; reached is closed when the first one arrives.
func (g *gatedRemote) hold() (reached <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate, g.reached = make(chan struct{}), make(chan struct{})
	gate := g.gate
	return g.reached, func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(gate)
	}
}

func (g *gatedRemote) Get(ctx context.Context, name string, off, n int64) ([]byte, error) {
	g.mu.Lock()
	gate, reached := g.gate, g.reached
	if gate != nil && strings.HasPrefix(name, format.DataDir+"/") {
		select {
		case <-reached:
		default:
			close(reached)
		}
	}
	g.mu.Unlock()
	if gate != nil && strings.HasPrefix(name, format.DataDir+"/") {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Remote.Get(ctx, name, off, n)
}

// TestCommitWhileQueuedFilesDeleted: files queued for a commit that are
// deleted while the commit reads the others leave that commit, and the
// commit stores the rest. The commit failed ("failed to store /: open
// .../staging/...: no such file or directory"): a steady stream of
// temporary files made and deleted kept every commit failing, so nothing
// more reached the remote (found by TestHammerColdTree).
func TestCommitWhileQueuedFilesDeleted(t *testing.T) {
	ctx := t.Context()
	env := testutil.NewRepo(t, repo.InitOptions{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	tr := open(t, env.Repo, t.TempDir())
	writeFile(t, tr, tr.Root(), "big", big, true)
	commitAndLeave(t, env.Repo, tr)

	g := &gatedRemote{Remote: testutil.NewRemote(t, env.Dir)}
	r, err := repo.Open(ctx, g, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	tr = open(t, r, t.TempDir())
	defer tr.Close()
	// big is changed in place: its commit reads its stored chunk back.
	h, err := tr.OpenFile(lookup(t, tr, "big"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("changed"), 500_000); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	copy(big[500_000:], "changed")
	// Temporary files, written out of order (so no streamer holds them).
	var tmps []string
	for i := range 16 {
		name := fmt.Sprint("tmp", i)
		in, _, err := tr.Create(ctx, tr.Root(), name, worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		h, err := tr.OpenFile(in, true, false)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte("temporary " + name)
		if _, err := h.WriteAt(data[4:], 4); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(data[:4], 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		tmps = append(tmps, name)
	}
	reached, release := g.hold()
	done := make(chan error, 1)
	go func() {
		_, err := tr.Commit(ctx)
		done <- err
	}()
	select {
	case <-reached: // the commit reads big's stored chunk
	case err := <-done:
		t.Fatalf("the commit ended (%v) without reading big's stored content", err)
	}
	for _, name := range tmps {
		if err := tr.Unlink(ctx, tr.Root(), name); err != nil {
			t.Fatal(err)
		}
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("commit while queued files were deleted: %v", err)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	tr2 := open(t, r2, t.TempDir())
	defer tr2.Close()
	if got := readFile(t, tr2, "big"); !bytes.Equal(got, big) {
		t.Fatal("big does not read back as changed")
	}
	ents, err := tr2.ReadDir(ctx, tr2.Root())
	if err != nil || len(ents) != 1 {
		t.Fatalf("the root holds %v (%v), want big alone", ents, err)
	}
}
