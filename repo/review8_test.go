package repo_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/repo"
)

// TestDamagedChunkNotCached (session 8 review): a chunk fetched whole is
// opened in the buffer it came in, and its copy for the disk cache is
// written before it is opened. A chunk damaged on the remote must fail
// the read, leave nothing in the disk cache (neither an entry nor a staged
// copy), and once the remote holds it intact again, read back intact, in
// place (random content) and not (compressible segments first).
func TestDamagedChunkNotCached(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	files := inPlaceFiles()
	storeFiles(t, env.Repo, files)
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	packs, err := filepath.Glob(filepath.Join(env.Dir, "data", "*", "*"))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no packs: %v", err)
	}
	for _, trust := range []bool{false, true} {
		cache := t.TempDir()
		o := repo.Options{CacheDir: cache, CacheSize: 64 << 20, TrustSegments: trust}
		r, err := repo.Open(context.Background(), testutil.NewRemote(t, env.Dir), unlock.WithCode(env.Code), o)
		if err != nil {
			t.Fatal(err)
		}
		// The files' nodes, while every pack is intact: the damage is
		// for their chunks; a tree blob can share a small pack with
		// nothing else and lie where the damage starts.
		nodes := map[string]*repo.Node{}
		for name := range files {
			nodes[name] = fileNode(t, r, name)
		}
		// Damage every pack in its middle, read every file (all fail),
		// then mend the packs.
		orig := map[string][]byte{}
		for _, p := range packs {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			orig[p] = b
			d := bytes.Clone(b)
			for i := len(d) / 3; i < len(d); i += 64 << 10 {
				d[i] ^= 0x40
			}
			if err := os.WriteFile(p, d, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		failed := 0
		for name, want := range files {
			var got bytes.Buffer
			_, err := r.OpenFile(nodes[name]).CopyTo(context.Background(), &got)
			if err == nil && !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("trust %v: %s: damaged packs read back as other bytes with no error", trust, name)
			}
			if err != nil {
				failed++
			}
		}
		if failed == 0 {
			t.Fatalf("trust %v: no read met the damage", trust)
		}
		// Every copy the cache holds is a blob as stored, undamaged.
		cached, _ := filepath.Glob(filepath.Join(cache, "*", "blobs", "*"))
		if len(cached) == 0 {
			t.Fatalf("trust %v: nothing cached (the blobs before the damage should be)", trust)
		}
		for _, c := range cached {
			b, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			intact := false
			for _, o := range orig {
				intact = intact || bytes.Contains(o, b)
			}
			if !intact {
				t.Fatalf("trust %v: the cache holds a damaged copy: %s", trust, filepath.Base(c))
			}
		}
		tmps, _ := filepath.Glob(filepath.Join(cache, "*", "blobs", "*.tmp"))
		if len(tmps) > 0 {
			t.Fatalf("trust %v: copies left staged in the cache: %v", trust, tmps)
		}
		for p, b := range orig {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// A new client on the same cache: whatever the cache kept must
		// be good, and the rest comes intact from the remote.
		r2, err := repo.Open(context.Background(), testutil.NewRemote(t, env.Dir), unlock.WithCode(env.Code), o)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range files {
			var got bytes.Buffer
			if _, err := r2.OpenFile(fileNode(t, r2, name)).CopyTo(context.Background(), &got); err != nil {
				t.Fatalf("trust %v: %s after the packs were mended: %v", trust, name, err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("trust %v: %s read back different bytes after the packs were mended", trust, name)
			}
		}
	}
}

// TestPooledWriteBuffers (session 8 review): a sequential write gives the
// chunks' copies and the sealed data blobs back to pools once packed, and
// a pack stored at its first try lends its buffer to the next pack. Six
// writers store files at once (half of their chunks shared, so that some
// are found stored already) with small packs, uploads slowed down, and each file is read back
// while the others are written (from the pack being built, the packs on
// their way up, or the remote); then every file reads back from a new
// client. A buffer given back while still in use shows as other bytes.
func TestPooledWriteBuffers(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	env.Remote.SetLatency(2 * time.Millisecond) // packs on their way up while others are built
	shared := randomData(500, 2<<20)
	const writers, each = 6, 3
	files := map[string][]byte{}
	contents := map[string][]repo.Extent{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range each {
				name := fmt.Sprintf("w%d-%d", w, k)
				data := append(bytes.Clone(shared[:(1+w)<<18]), randomData(uint64(w*10+k), 1<<20+w*12345)...)
				content, size, err := env.Repo.SaveFile(ctx, bytes.NewReader(data))
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				n := &repo.Node{Name: []byte(name), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}
				var got bytes.Buffer
				if _, err := env.Repo.OpenFile(n).CopyTo(ctx, &got); err != nil {
					t.Errorf("%s read back while others write: %v", name, err)
					return
				}
				if !bytes.Equal(got.Bytes(), data) {
					t.Errorf("%s read back while others write: other bytes", name)
					return
				}
				mu.Lock()
				files[name], contents[name] = data, content
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	tree := &repo.Tree{}
	for name, data := range files {
		tree.Nodes = append(tree.Nodes, &repo.Node{Name: []byte(name), Type: repo.NodeFile, Mode: 0o644, Size: uint64(len(data)), Content: contents[name]})
	}
	slices.SortFunc(tree.Nodes, func(a, b *repo.Node) int { return bytes.Compare(a.Name, b.Name) })
	root, err := env.Repo.SaveTree(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: uint64(len(files))}); err != nil {
		t.Fatal(err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := readFile(r2, name)
		if err != nil {
			t.Fatalf("%s from a new client: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s from a new client: other bytes", name)
		}
	}
}
