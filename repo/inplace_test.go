package repo_test

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// inPlaceFiles are contents whose chunks are opened in place (random: every
// segment stored raw) and not (a compressible first segment: the later
// segments' content would be moved over segments not yet opened).
func inPlaceFiles() map[string][]byte {
	mixed := randomData(71, 3<<20)
	for i := 0; i < len(mixed); i += 256 << 10 {
		clear(mixed[i : i+format.SegmentSize]) // compresses, and it comes first in many chunks
	}
	return map[string][]byte{"random": randomData(70, 3<<20), "mixed": mixed, "zeros": make([]byte, 1<<20)}
}

// TestWholeReadsInPlace: whole chunks opened in the buffer they were
// fetched into (or, when their segments do not allow it, as before) read
// back byte for byte, with and without recomputing their ids, from the
// remote and then from the disk cache the first reads filled (a second
// client on the same cache directory), and with NoCacheWrites, which
// leaves the cache empty.
func TestWholeReadsInPlace(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	files := inPlaceFiles()
	storeFiles(t, env.Repo, files)
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, o := range []repo.Options{{}, {TrustSegments: true}, {TrustSegments: true, NoCacheWrites: true}} {
		o.CacheDir, o.CacheSize = t.TempDir(), 64<<20
		for pass := range 2 { // the remote's, then the disk cache's
			r, err := repo.Open(context.Background(), testutil.NewRemote(t, env.Dir), unlock.WithCode(env.Code), o)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range files {
				var got bytes.Buffer
				if _, err := r.OpenFile(fileNode(t, r, name)).CopyTo(context.Background(), &got); err != nil {
					t.Fatalf("%+v pass %d: %s: %v", o, pass, name, err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Fatalf("%+v pass %d: %s read back different bytes", o, pass, name)
				}
			}
			s := r.CacheStats()
			if o.NoCacheWrites && s.Bytes != 0 || !o.NoCacheWrites && s.Bytes == 0 {
				t.Fatalf("%+v pass %d: the disk cache holds %d bytes", o, pass, s.Bytes)
			}
		}
		tmps, _ := filepath.Glob(filepath.Join(o.CacheDir, "*", "blobs", "*.tmp"))
		if len(tmps) > 0 {
			t.Fatalf("%+v: copies left staged in the cache: %v", o, tmps)
		}
	}
}

// TestWholeReadAllocations: a whole read from the remote allocates about
// one buffer per chunk: the one it was fetched into holds the content.
func TestWholeReadAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not counted under the race detector")
	}
	env := testutil.NewRepo(t, repo.InitOptions{})
	const size = 16 << 20
	storeFiles(t, env.Repo, map[string][]byte{"f": randomData(72, size)})
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), testutil.NewRemote(t, env.Dir), unlock.WithCode(env.Code),
		repo.Options{CacheDir: t.TempDir(), CacheSize: 64 << 20, TrustSegments: true, NoCacheWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	fr := r.OpenFile(fileNode(t, r, "f"))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := fr.CopyTo(context.Background(), discard{}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	ratio := float64(after.TotalAlloc-before.TotalAlloc) / size
	t.Logf("%.2f bytes allocated a byte read", ratio)
	if ratio > 1.4 { // 2.0 with a buffer for the content apart from the sealed one
		t.Fatalf("reading %d bytes allocated %.2f times as much", size, ratio)
	}
}

// discard is io.Discard without its pooled buffers.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
