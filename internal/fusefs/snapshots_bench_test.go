package fusefs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// history returns n snapshots, one a minute (a busy mount's), with a
// burst of several in one second now and then.
func history(n int) []*repo.Snapshot {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	snaps := make([]*repo.Snapshot, n)
	for i := range snaps {
		at := t0.Add(time.Duration(i) * time.Minute)
		if i%50 < 3 {
			at = t0.Add(time.Duration(i-i%50) * time.Minute).Add(time.Duration(i%50) * time.Millisecond)
		}
		s := snap(uint64(i+1), at, byte(i))
		s.ID[2], s.ID[3] = byte(i>>8), byte(i>>16)
		snaps[i] = s
	}
	return snaps
}

// BenchmarkSnapshotsListing measures what the daemon does for a listing
// of .snapshots with 10,000 snapshots (the kernel's part aside): the
// first (the folders made), one after a commit added a snapshot, and one
// with the list unchanged.
func BenchmarkSnapshotsListing(b *testing.B) {
	const n = 10000
	snaps := history(n + 1)
	list := func(k int) func() ([]*repo.Snapshot, error) {
		return func() ([]*repo.Snapshot, error) { return append([]*repo.Snapshot(nil), snaps[:k]...), nil }
	}
	newest := func(k int) func() *repo.Snapshot { return func() *repo.Snapshot { return snaps[k-1] } }
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			v := makeSnapshotsView(".snapshots", &worktree.Inos{}, list(n), newest(n))
			v.refresh()
			if got := len(v.entries(1)); got != n+3 {
				b.Fatalf("%d entries", got)
			}
		}
	})
	b.Run("after-a-commit", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			v := makeSnapshotsView(".snapshots", &worktree.Inos{}, list(n), newest(n))
			v.refresh()
			v.snaps, v.newest = list(n+1), newest(n+1)
			b.StartTimer()
			v.refresh()
			if got := len(v.entries(1)); got != n+4 {
				b.Fatalf("%d entries", got)
			}
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		v := makeSnapshotsView(".snapshots", &worktree.Inos{}, list(n), newest(n))
		v.refresh()
		for b.Loop() {
			v.refresh()
			if got := len(v.entries(1)); got != n+3 {
				b.Fatalf("%d entries", got)
			}
		}
	})
}

// BenchmarkSnapshotsListingMounted lists .snapshots with 10,000 snapshots
// through a real FUSE mount: ls's readdir and the kernel's part included.
func BenchmarkSnapshotsListingMounted(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("mounting needs root here")
	}
	env := testutil.NewRepo(b, repo.InitOptions{})
	tr, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	f := New(tr, Options{SnapshotsDir: ".snapshots"})
	const n = 10000
	snaps := history(n)
	f.view.snaps = func() ([]*repo.Snapshot, error) { return append([]*repo.Snapshot(nil), snaps...), nil }
	f.view.newest = func() *repo.Snapshot { return snaps[n-1] }
	dir := mountFS(b, f)
	for b.Loop() {
		names, err := os.ReadDir(filepath.Join(dir, ".snapshots"))
		if err != nil || len(names) != n+1 {
			b.Fatalf("%d entries, %v", len(names), err)
		}
	}
}

// mountFS mounts f at a fresh directory until the end of tb.
func mountFS(tb testing.TB, f *FS) string {
	tb.Helper()
	dir := tb.TempDir()
	srv, err := Mount(dir, f, fuse.MountOptions{FsName: "test", Name: "sealfs", DirectMount: true, Options: []string{"default_permissions"}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			tb.Errorf("unmount: %v", err)
		}
	})
	return dir
}
