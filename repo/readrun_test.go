package repo_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// openReader opens the repository in dir as a new client with a disk
// cache, as a mount does.
func openReader(t *testing.T, env *testutil.Env) (*repo.Repository, *faulty.Remote) {
	t.Helper()
	rem := testutil.NewRemote(t, env.Dir)
	r, err := repo.Open(context.Background(), rem, unlock.WithCode(env.Code),
		repo.Options{CacheDir: t.TempDir(), CacheSize: 64 << 20, TrustSegments: true})
	if err != nil {
		t.Fatal(err)
	}
	return r, rem
}

// TestReadAheadRuns: a sequential reader's read-ahead fetches the chunks
// that lie one after the other in a pack with one range request for
// several, and the file reads back byte for byte.
func TestReadAheadRuns(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	data := randomData(80, 12<<20)
	storeFiles(t, env.Repo, map[string][]byte{"f": data})
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, rem := openReader(t, env)
	node := fileNode(t, r, "f")
	fr := r.OpenFile(node)
	before := rem.Stats().Gets
	buf := make([]byte, 1<<20)
	for off := 0; off < len(data); off += len(buf) {
		if _, err := fr.ReadAt(context.Background(), buf, int64(off)); err != nil || !bytes.Equal(buf, data[off:off+len(buf)]) {
			t.Fatalf("read at %d: %v, or other bytes", off, err)
		}
	}
	gets := rem.Stats().Gets - before
	t.Logf("%d chunks read with %d requests", len(node.Content), gets)
	if gets*2 > int64(len(node.Content)) {
		t.Fatalf("%d chunks read with %d requests: read-ahead fetched them one by one", len(node.Content), gets)
	}
}

// TestReadAheadRunFallback: when the request for a run of chunks fails,
// each chunk is fetched on its own, and readers waiting for them get
// their content.
func TestReadAheadRunFallback(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	data := randomData(81, 3<<20)
	storeFiles(t, env.Repo, map[string][]byte{"f": data})
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, rem := openReader(t, env)
	node := fileNode(t, r, "f")
	var ids []crypt.ID
	for _, e := range node.Content {
		ids = append(ids, e.ID)
	}
	if len(ids) < 3 {
		t.Fatalf("%d chunks, want a few", len(ids))
	}
	rem.FailOn("get", "data/", 1, faulty.FailBefore)
	before := rem.Stats().Gets
	if n := repo.PrefetchRunForTest(r, ids); n != len(ids) {
		t.Fatalf("a run of %d of %d chunks, want all (one pack, under 4 MiB)", n, len(ids))
	}
	off := uint64(0)
	for _, e := range node.Content {
		got, err := r.LoadBlob(context.Background(), crypt.TypeDataBlob, e.ID)
		if err != nil || !bytes.Equal(got, data[off:off+e.Size]) {
			t.Fatalf("chunk at %d: %v, or other bytes", off, err)
		}
		off += e.Size
	}
	if gets := rem.Stats().Gets - before; gets != int64(1+len(ids)) {
		t.Fatalf("%d requests, want the failed run's and one per chunk", gets)
	}
}
