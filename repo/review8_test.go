package repo_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

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
			_, err := r.OpenFile(fileNode(t, r, name)).CopyTo(context.Background(), &got)
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
