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

// TestBlobCache: a second read of a file is served from the local cache of
// sealed blobs without a request; a cached blob damaged on local disk is
// fetched again, never returned; the cache stays under its limit.
func TestBlobCache(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	data := randomData(11, 8<<20)
	storeFile(t, env.Repo, "f", data)

	cache := t.TempDir()
	rem := testutil.NewRemote(t, env.Dir)
	r, err := repo.Open(ctx, rem, unlock.WithCode(env.Code), repo.Options{CacheDir: cache, CacheSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readFile(r, "f"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("first read: %v", err)
	}
	gets := rem.Stats().Gets
	if got, err := readFile(r, "f"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second read: %v", err)
	}
	if n := rem.Stats().Gets - gets; n != 0 {
		t.Fatalf("the second read made %d requests; want 0", n)
	}
	// A new client on the same cache directory reads from the disk cache.
	reopen := func() (*repo.Repository, *faultyCounter) {
		rem := testutil.NewRemote(t, env.Dir)
		r, err := repo.Open(ctx, rem, unlock.WithCode(env.Code), repo.Options{CacheDir: cache, CacheSize: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return r, &faultyCounter{start: rem.Stats().Gets, get: func() int64 { return rem.Stats().Gets }}
	}
	r2, gets2 := reopen()
	if got, err := readFile(r2, "f"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read from the disk cache: %v", err)
	}
	if n := gets2.since(); n > 2 { // the tree may come from the remote; no chunk does
		t.Fatalf("a read from the disk cache made %d requests", n)
	}
	// Damage every cached blob on local disk: reads refetch and stay right.
	blobs, _ := filepath.Glob(filepath.Join(r.StateDir(), "blobs", "*"))
	if len(blobs) == 0 {
		t.Fatal("nothing was cached")
	}
	var cached []byte
	for _, p := range blobs {
		b, _ := os.ReadFile(p)
		cached = append(cached, b...)
		b[len(b)/2] ^= 1
		os.WriteFile(p, b, 0o600)
	}
	if bytes.Contains(cached, data[:4096]) {
		t.Fatal("the cache holds plaintext")
	}
	r3, gets3 := reopen()
	if got, err := readFile(r3, "f"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with a damaged cache: %v", err)
	}
	if gets3.since() < int64(len(blobs))/2 {
		t.Fatalf("damaged cached blobs were not fetched again (%d requests)", gets3.since())
	}
	// A small limit keeps the cache small.
	small, err := repo.Open(ctx, testutil.NewRemote(t, env.Dir), unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir(), CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readFile(small, "f"); err != nil {
		t.Fatal(err)
	}
	var total int64
	files, _ := filepath.Glob(filepath.Join(small.StateDir(), "blobs", "*"))
	for _, p := range files {
		fi, _ := os.Stat(p)
		total += fi.Size()
	}
	if total > 1<<20 {
		t.Fatalf("cache holds %d bytes over its 1 MiB limit", total)
	}
}

type faultyCounter struct {
	start int64
	get   func() int64
}

func (c *faultyCounter) since() int64 { return c.get() - c.start }
