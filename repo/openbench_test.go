package repo

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo/format"
)

// benchCommits lists the histories BenchmarkOpenHistory opens: the same
// files committed in that many commits each.
var benchCommits = flag.String("bench-commits", "10,10000", "BenchmarkOpenHistory: comma-separated numbers of commits the same files are stored in")

// benchFixtures is where BenchmarkOpenHistory keeps the repositories it
// builds, so that a rerun does not build them again (the 10,000-commit
// one takes minutes); empty: build them in temporary folders every run.
var benchFixtures = flag.String("bench-fixtures", filepath.Join(os.TempDir(), "sealfs-openbench"),
	"BenchmarkOpenHistory: folder that keeps the repositories it builds between runs (empty: none)")

// openBenchFixtureVersion names the kept fixtures: raise it when what a
// commit writes changes (an index or snapshot format), so that a rerun
// builds them again with the writer under test.
const openBenchFixtureVersion = 4

// Files of BenchmarkOpenHistory: openBenchFiles files of openBenchFileSize
// random bytes, openBenchPerDir to a directory below the root, so that a
// commit rewrites a few small trees, whatever the history's length.
const (
	openBenchFiles    = 10000
	openBenchFileSize = 1024
	openBenchPerDir   = 100
)

// BenchmarkOpenHistory opens a repository whose files were stored in 10
// commits and one whose same files were stored in 10,000 (-bench-commits),
// on a local-directory remote: what a mount does before it serves (Refresh
// — listing and reading the snapshots and the newest one's indexes — and
// loading the root directory), on the cache directory of the client that
// wrote it ("warm") and on an empty one ("fresh", a new machine). The
// unlock (a key slot and the config) is left out: it does not depend on
// the history. retained-B is the live heap the opened repository holds,
// after a garbage collection; B/snapshot what its list of snapshots holds,
// by snapshot; list-ms one listing of snapshots/ alone, the part of an open
// that grows with the history; cpu-ms the CPU time (user and system) the
// process spent during an open, which a busy machine inflates far less than
// the time it takes (it includes the garbage collector's, over the whole
// heap of the benchmark); again-cpu-ms the CPU time of a second Refresh of
// the opened repository, as a mount does when it takes the writer lease;
// B/op what an open allocates.
func BenchmarkOpenHistory(b *testing.B) {
	for _, f := range strings.Split(*benchCommits, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > openBenchFiles {
			b.Fatalf("-bench-commits: %q is not a number of commits from 1 to %d", f, openBenchFiles)
		}
		b.Run(fmt.Sprintf("commits=%d", n), func(b *testing.B) {
			fx := openBenchFixture(b, n)
			for _, warm := range []bool{true, false} {
				name := "fresh"
				if warm {
					name = "warm"
				}
				b.Run(name, func(b *testing.B) {
					var retained, perSnap uint64
					var cpu, again time.Duration
					b.ReportAllocs()
					for b.Loop() {
						dir := fx.cacheDir
						if !warm {
							b.StopTimer()
							dir = b.TempDir()
							b.StartTimer()
						}
						r, before, used := fx.open(b, dir)
						b.StopTimer()
						cpu += used
						// A mount opens twice: again when it takes the
						// lease.
						start := cpuTime()
						if err := r.Refresh(context.Background()); err != nil {
							b.Fatal(err)
						}
						again += cpuTime() - start
						after := heapAfterGC()
						retained = max(retained, after-before)
						// What the list of snapshots holds, each.
						n := len(r.snapshots)
						r.mu.Lock()
						r.snapshots, r.legacy = nil, nil
						r.mu.Unlock()
						perSnap = max(perSnap, (after-min(after, heapAfterGC()))/uint64(n))
						runtime.KeepAlive(r)
						b.StartTimer()
					}
					b.ReportMetric(float64(retained), "retained-B")
					b.ReportMetric(float64(perSnap), "B/snapshot")
					b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms")
					b.ReportMetric(float64(again.Microseconds())/1000/float64(b.N), "again-cpu-ms")
					// The part of an open that grows with the history:
					// one listing of the snapshots.
					start := time.Now()
					if err := fx.rem.List(context.Background(), format.SnapshotsDir, func(remote.Entry) error { return nil }); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "list-ms")
				})
			}
		})
	}
}

// openFixture is a repository on a local directory written by
// buildOpenFixture, and the cache directory of its writer.
type openFixture struct {
	rem      remote.Remote
	cfg      *format.Config
	id       crypt.RepoID
	mk       crypt.MasterKey
	cacheDir string
	tree     crypt.ID // the newest snapshot's root tree
}

// open opens the fixture as a mount does before it serves, on cache
// directory dir, and returns the repository, the live heap before it and
// the CPU time the process spent opening it.
func (fx *openFixture) open(b *testing.B, dir string) (*Repository, uint64, time.Duration) {
	b.StopTimer()
	before := heapAfterGC()
	b.StartTimer()
	start := cpuTime()
	ctx := context.Background()
	r, err := newRepository(fx.rem, fx.cfg, fx.id, fx.mk, Options{CacheDir: dir, CacheSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	l := r.Latest()
	if l == nil || l.Tree != fx.tree {
		b.Fatalf("opened %v, want the snapshot of tree %s", l, fx.tree.Short())
	}
	if _, err := r.LoadTree(ctx, l.Tree); err != nil {
		b.Fatal(err)
	}
	return r, before, cpuTime() - start
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// openBenchFixture returns a repository of openBenchFiles files stored in
// n commits: the one kept in -bench-fixtures, or one built there now
// (buildOpenFixture; in temporary folders of b without -bench-fixtures).
// Its key and id are fixed: a kept one opens without its writer.
func openBenchFixture(b *testing.B, n int) *openFixture {
	ctx := context.Background()
	mk, _ := crypt.MasterKeyFromBytes(bytes.Repeat([]byte{0x5e}, crypt.KeySize))
	id := crypt.RepoID{0x5e, byte(n >> 8), byte(n)}
	cfg := &format.Config{Version: format.FormatVersion, Repository: id.String(), ChunkMin: 64 << 10, ChunkAvg: 1 << 20,
		ChunkMax: 8 << 20, PackSize: DefaultPackSize, Compression: CompressionZstd}
	fx := &openFixture{cfg: cfg, id: id, mk: mk}
	dir := b.TempDir()
	if *benchFixtures != "" {
		dir = filepath.Join(*benchFixtures, fmt.Sprintf("v%d-%d-commits", openBenchFixtureVersion, n))
	}
	fx.cacheDir = filepath.Join(dir, "cache")
	treeFile := filepath.Join(dir, "tree")
	if t, err := os.ReadFile(treeFile); err == nil {
		if fx.tree, err = crypt.ParseID(string(t)); err != nil {
			b.Fatalf("%s: %v (delete %s)", treeFile, err, dir)
		}
		if fx.rem, err = rcloneremote.Open(ctx, filepath.Join(dir, "remote")); err != nil {
			b.Fatal(err)
		}
		b.Logf("kept fixture %s", dir)
		return fx
	}
	// An interrupted build leaves no tree file: start again.
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	for _, d := range []string{fx.cacheDir, filepath.Join(dir, "remote")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	var err error
	if fx.rem, err = rcloneremote.Open(ctx, filepath.Join(dir, "remote")); err != nil {
		b.Fatal(err)
	}
	buildOpenFixture(b, fx, n)
	if err := os.WriteFile(treeFile, []byte(fx.tree.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return fx
}

// buildOpenFixture stores openBenchFiles files in n commits on fx's
// remote, through the library's commit path (blobs, trees, Commit, as a
// mount's commit does), and sets fx.tree to the newest root tree.
func buildOpenFixture(b *testing.B, fx *openFixture, n int) {
	start := time.Now()
	ctx := context.Background()
	rem := fx.rem
	r, err := newRepository(rem, fx.cfg, fx.id, fx.mk, Options{CacheDir: fx.cacheDir})
	if err != nil {
		b.Fatal(err)
	}
	r.lease = &leaseHolder{lease: format.Lease{Expires: time.Now().Add(24 * time.Hour)}, ttl: time.Hour}
	rng := mrand.New(mrand.NewPCG(7, 8))
	dirs := make([]Tree, openBenchFiles/openBenchPerDir)
	subtrees := make([]crypt.ID, len(dirs))
	buf := make([]byte, openBenchFileSize)
	for c := range n {
		lo, hi := c*openBenchFiles/n, (c+1)*openBenchFiles/n
		for i := lo; i < hi; i++ {
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
			bid, err := r.SaveBlob(ctx, crypt.TypeDataBlob, buf)
			if err != nil {
				b.Fatal(err)
			}
			d := &dirs[i/openBenchPerDir]
			d.Nodes = append(d.Nodes, &Node{Name: fmt.Appendf(nil, "f%05d", i), Type: NodeFile, Mode: 0o644, MtimeNs: int64(i),
				Size: openBenchFileSize, Content: []Extent{{ID: bid, Size: openBenchFileSize}}})
		}
		var root Tree
		for d := range dirs {
			if d >= lo/openBenchPerDir && d <= (hi-1)/openBenchPerDir {
				if subtrees[d], err = r.SaveTree(ctx, &dirs[d]); err != nil {
					b.Fatal(err)
				}
			}
			if !subtrees[d].IsZero() {
				root.Nodes = append(root.Nodes, &Node{Name: fmt.Appendf(nil, "d%03d", d), Type: NodeDir, Mode: 0o755, Subtree: subtrees[d]})
			}
		}
		if fx.tree, err = r.SaveTree(ctx, &root); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Commit(ctx, fx.tree, CommitInfo{Host: "bench", Files: uint64(hi), Bytes: uint64(hi) * openBenchFileSize}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d files in %d commits stored in %s", openBenchFiles, n, time.Since(start).Round(time.Millisecond))
}
