package repo_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/repo"
)

// speedContent is file i's content: random or compressible, small or of
// several chunks, some files equal to others (the dedup path).
func speedContent(i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i%37), 7))
	var n int
	switch i % 4 {
	case 0:
		n = 1 + rng.IntN(5000)
	case 1:
		n = 60<<10 + rng.IntN(200<<10)
	default:
		n = 300<<10 + rng.IntN(900<<10)
	}
	b := make([]byte, n)
	if i%3 == 0 {
		for j := range b {
			b[j] = byte(rng.IntN(4)) + 'a' // compressible
		}
	} else {
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
	}
	return b
}

// TestSpeedReviewConcurrentWriters: many goroutines store distinct
// content at once (pooled chunker buffers, pooled segment scratch, the
// seal pipeline, packs being built, dedup); every file reads back byte
// for byte from the writer (before and after the packs went up) and from
// a fresh client on an empty cache that trusts segments, whole and by
// small ranges.
func TestSpeedReviewConcurrentWriters(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{Chunking: chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}})
	ctx := context.Background()
	const writers, each = 6, 10
	nodes := make([]*repo.Node, writers*each)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				i := g*each + k
				ext, size, err := env.Repo.SaveFile(ctx, bytes.NewReader(speedContent(i)))
				if err != nil {
					errs <- err
					return
				}
				nodes[i] = &repo.Node{Type: repo.NodeFile, Content: ext, Size: size}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check := func(what string, r *repo.Repository) {
		t.Helper()
		for i, n := range nodes {
			want := speedContent(i)
			got, err := io.ReadAll(io.NewSectionReader(readerAt{r.OpenFile(n)}, 0, int64(n.Size)))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: file %d (%d bytes): read %d bytes, err %v, equal %v", what, i, len(want), len(got), err, bytes.Equal(got, want))
			}
			// Small reads at random offsets, through one reader.
			fr := r.OpenFile(n)
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for range 8 {
				off := rng.IntN(len(want))
				p := make([]byte, min(4096, len(want)-off))
				if k, err := fr.ReadAt(ctx, p, int64(off)); k != len(p) || (err != nil && err != io.EOF) || !bytes.Equal(p, want[off:off+len(p)]) {
					t.Fatalf("%s: file %d at %d: %d bytes, err %v, wrong bytes %v", what, i, off, k, err, !bytes.Equal(p[:k], want[off:off+k]))
				}
			}
		}
	}
	check("writer before flush", env.Repo)
	tree := &repo.Tree{}
	for i, n := range nodes {
		tree.Nodes = append(tree.Nodes, &repo.Node{Name: fmt.Appendf(nil, "f%03d", i), Type: repo.NodeFile, Mode: 0o644, Size: n.Size, Content: n.Content})
	}
	root, err := env.Repo.SaveTree(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: uint64(len(nodes))}); err != nil {
		t.Fatal(err)
	}
	check("writer after flush", env.Repo)
	for _, trust := range []bool{false, true} {
		r, err := repo.Open(ctx, testutil.NewRemote(t, env.Dir), unlock.WithCode(env.Code),
			repo.Options{CacheDir: t.TempDir(), CacheSize: 64 << 20, TrustSegments: trust})
		if err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("fresh client, trust %v", trust), r)
		check(fmt.Sprintf("fresh client again, trust %v", trust), r)
	}
}

type readerAt struct{ f *repo.FileReader }

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	return r.f.ReadAt(context.Background(), p, off)
}
