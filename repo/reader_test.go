package repo_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// TestFileReaderFailure: a read across a chunk that cannot be fetched
// returns the bytes before it with an error, never a short read without
// one; the kernel's further reads of the same chunk through the same
// reader fail at once instead of waiting through the remote's retries
// again; a new reader fetches it again and reads the whole file.
func TestFileReaderFailure(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	data := randomData(7, 3<<20)
	snap := storeFile(t, env.Repo, "f", data)
	ctx := context.Background()
	rem := testutil.NewRemote(t, env.Dir)
	r, err := repo.Open(ctx, rem, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := r.LoadTree(ctx, snap.Tree)
	if err != nil {
		t.Fatal(err)
	}
	node := tree.Nodes[0]
	if len(node.Content) < 3 {
		t.Fatalf("3 MiB made %d chunks", len(node.Content))
	}
	second := int64(node.Content[0].Size)
	fr := r.OpenFile(node)
	buf := make([]byte, second+100)
	if _, err := fr.ReadAt(ctx, buf[:100], 0); err != nil {
		t.Fatal(err)
	}

	rem.FailOn("get", "data/", 1, faulty.FailBefore)
	before := rem.Stats().Gets
	n, err := fr.ReadAt(ctx, buf, 0)
	if !errors.Is(err, faulty.ErrInjected) || n != int(second) || !bytes.Equal(buf[:n], data[:n]) {
		t.Fatalf("read across the failing chunk: %d bytes, %v; want the %d bytes before it and the error", n, err, second)
	}
	if n, err := fr.ReadAt(ctx, buf[:100], second); n != 0 || !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("reading the failed chunk again at once: %d bytes, %v; want the same error", n, err)
	}
	if got := rem.Stats().Gets - before; got != 1 {
		t.Fatalf("%d requests for one failing chunk, want 1", got)
	}
	var out bytes.Buffer
	if _, err := r.OpenFile(node).CopyTo(ctx, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("a new reader: %v", err)
	}
}
