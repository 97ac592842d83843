package test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// review1Data is n bytes of random data from seed.
func review1Data(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 17))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestForgottenBaseKeepsUncommittedWrites: a mount killed before it
// committed a file leaves it in its journal, based on the newest snapshot
// of the time. Then, with the mount down, prune (whose snapshot follows
// that one with the same content) and a forget of the journal's base run
// on the same machine. The next mount must still
// show the file: before the fix it took the journal for one already
// committed (its base older than the newest snapshot, and not found), set
// it aside and deleted its staging files, and the file was gone.
func TestForgottenBaseKeepsUncommittedWrites(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	old, kept, mine := review1Data(1, 2<<20), review1Data(2, 1<<20), review1Data(3, 300<<10)
	// Snapshot 1: x = old; snapshot 2: x = kept (old's blobs become garbage).
	for _, data := range [][]byte{old, kept} {
		expect(t, c.mount(t, mnt), 0, "")
		if err := os.WriteFile(filepath.Join(mnt, "x"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		c.umount(t, mnt)
	}
	// Written, synced, never committed: the daemon dies first.
	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	if err := os.WriteFile(filepath.Join(mnt, "mine"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(mnt, "mine"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	killMount(t, mnt)
	expect(t, c.run(t, "forget", "--keep-last", "1", c.remote), 0, "")
	r := c.run(t, "prune", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "named by snapshot 3") {
		t.Fatalf("prune stored no snapshot 3:\n%s", r.stdout)
	}
	// Snapshot 2, the journal's base, by name: a policy keeps it, since
	// prune's snapshot 3 only repeats it (retention.PlanFor).
	expect(t, c.run(t, "forget", c.remote, "2"), 0, "")
	if got := snapshotSeqs(t, c); got != "3" {
		t.Fatalf("snapshots %s, want 3", got)
	}
	expect(t, c.mount(t, mnt), 0, "")
	for name, want := range map[string][]byte{"x": kept, "mine": mine} {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after the remount: %d bytes, %v (want %d bytes)", name, len(got), err, len(want))
		}
	}
	c.umount(t, mnt)
	checkClean(t, c)
}

// TestReadOnlyMountReadsAfterPrune: a read-only mount (another machine
// browsing the backups) that was up while a prune repacked the packs
// under it still reads every file of its snapshot afterwards: prune's
// snapshot keeps them all, in other packs. Before the fix the mount kept
// the index it opened with, which names the deleted packs: every file in
// them failed with EIO until it was mounted again.
func TestReadOnlyMountReadsAfterPrune(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	states := pruneHistory(t, c)
	mnt := mountpoint(t)
	ro := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, ro.mount(t, mnt, "--read-only"), 0, "")
	r := c.run(t, "prune", "--max-unused-pct", "10", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "repacked") {
		t.Fatalf("prune repacked nothing:\n%s", r.stdout)
	}
	for _, name := range []string{"kept", "small", "new"} {
		want, err := os.ReadFile(filepath.Join(states[3], name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s through the read-only mount after the prune: %d bytes, %v (want %d)", name, len(got), err, len(want))
		}
	}
	ro.umount(t, mnt)
}

// TestOfflineCopyOfPrunedDataIsStored: machine A mounts while the remote
// is down and writes a file whose content the repository holds already
// (a copy of an old version, as from /.snapshots): streamed while written,
// its chunks all matched A's index of the time. Meanwhile machine B
// commits, forgets the old snapshot that held that content and prunes:
// those chunks leave the remote. When A takes the lease and commits, the file
// must be stored with its content. Before the fix the streamer's chunks,
// matched without the lease against an index no longer the newest, were
// committed as they were: the snapshot named blobs that no longer exist,
// and the copy was lost.
func TestOfflineCopyOfPrunedDataIsStored(t *testing.T) {
	needRoot(t)
	s3A := newFaultyS3(t)
	s3B := newFaultyS3Over(t, s3A.inner)
	a := s3A.initRepo(t, "offline-prune")
	b := cliRepo{remote: s3B.remote("offline-prune"), cache: t.TempDir(), codeFile: a.codeFile}
	mntA, mntB := mountpoint(t), mountpoint(t)
	old := review1Data(4, 3<<20)

	// Snapshot 1 holds old; snapshot 2, A's base, no longer does.
	for _, keep := range []bool{true, false} {
		expect(t, a.mount(t, mntA, "--commit-delay", "100ms"), 0, "")
		if keep {
			if err := os.WriteFile(filepath.Join(mntA, "old"), old, 0o644); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Remove(filepath.Join(mntA, "old")); err != nil {
			t.Fatal(err)
		}
		a.umount(t, mntA)
	}

	s3A.setRate(1000)
	expect(t, a.mount(t, mntA, "--commit-delay", "100ms"), 0, "")
	if st := mountStatus(t, mntA); !strings.Contains(st.Lease, "not held yet") {
		t.Fatalf("A is not offline: %+v", st)
	}
	if err := os.WriteFile(filepath.Join(mntA, "copy"), old, 0o644); err != nil {
		t.Fatal(err)
	}

	expect(t, b.mount(t, mntB, "--commit-delay", "100ms"), 0, "")
	putText(t, filepath.Join(mntB, "b"), "from B")
	b.umount(t, mntB)
	expect(t, b.run(t, "forget", b.remote, "1"), 0, "")
	expect(t, b.run(t, "prune", b.remote), 0, "")

	s3A.setRate(0)
	fresh := commitThenCheck(t, a, mntA, b.remote, 5)
	defer fresh.umount(t, mntA)
	got, err := os.ReadFile(filepath.Join(mntA, "copy"))
	if err != nil || !bytes.Equal(got, old) {
		t.Errorf("the copy A made offline: %d bytes, %v (want %d)", len(got), err, len(old))
	}
}

// TestOfflineRebaseOnPrunedBase: machine A mounts while the remote is
// down, on snapshot 1, and writes y. Meanwhile machine B deletes x,
// forgets snapshot 1 (A's base) and prunes: x's data leaves the remote.
// When A takes the lease, its rebase has no base (forgotten), and x, which
// A never changed, must not come back naming data that is gone: before the
// fix A committed it, and the newest snapshot failed check --read-data
// (and every later prune refused to run).
func TestOfflineRebaseOnPrunedBase(t *testing.T) {
	needRoot(t)
	s3A := newFaultyS3(t)
	s3B := newFaultyS3Over(t, s3A.inner)
	a := s3A.initRepo(t, "offline-base")
	b := cliRepo{remote: s3B.remote("offline-base"), cache: t.TempDir(), codeFile: a.codeFile}
	mntA, mntB := mountpoint(t), mountpoint(t)
	x := review1Data(5, 2<<20)

	expect(t, a.mount(t, mntA, "--commit-delay", "100ms"), 0, "")
	if err := os.WriteFile(filepath.Join(mntA, "x"), x, 0o644); err != nil {
		t.Fatal(err)
	}
	putText(t, filepath.Join(mntA, "kept"), "kept by both")
	a.umount(t, mntA)

	s3A.setRate(1000)
	expect(t, a.mount(t, mntA, "--commit-delay", "100ms"), 0, "")
	if st := mountStatus(t, mntA); !strings.Contains(st.Lease, "not held yet") {
		t.Fatalf("A is not offline: %+v", st)
	}
	putText(t, filepath.Join(mntA, "y"), "y from A")

	expect(t, b.mount(t, mntB, "--commit-delay", "100ms"), 0, "")
	if err := os.Remove(filepath.Join(mntB, "x")); err != nil {
		t.Fatal(err)
	}
	b.umount(t, mntB)
	expect(t, b.run(t, "forget", b.remote, "1"), 0, "")
	expect(t, b.run(t, "prune", b.remote), 0, "")

	s3A.setRate(0)
	fresh := commitThenCheck(t, a, mntA, b.remote, 4)
	defer fresh.umount(t, mntA)
	expectFiles(t, mntA, map[string]string{"y": "y from A", "kept": "kept by both"})
	if _, err := os.Stat(filepath.Join(mntA, "x")); !os.IsNotExist(err) {
		t.Errorf("x, deleted by B and pruned, is back: %v", err)
	}
}

// TestForgetCountsPruneSnapshotOnce: prune's snapshot repeats the content
// of the one before it; a policy must not count it as one more version.
// Three backups, forget --keep-last 2, prune (its snapshot 4 repeats 3),
// then forget --keep-last 2 again: two versions must be left, 3's and 2's
// (and 4, the newest). Before the fix the second forget kept 4 and 3, one
// version twice, and forgot 2: the previous version was gone.
func TestForgetCountsPruneSnapshotOnce(t *testing.T) {
	c := initRepo(t)
	dirs := backupHistory(t, c, 3)
	expect(t, c.run(t, "forget", "--keep-last", "2", c.remote), 0, "")
	r := c.run(t, "prune", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "named by snapshot 4") {
		t.Fatalf("prune stored no snapshot 4:\n%s", r.stdout)
	}
	expect(t, c.run(t, "forget", "--keep-last", "2", c.remote), 0, "")
	if got := snapshotSeqs(t, c); got != "2 3 4" {
		t.Fatalf("after keep-last 2 with prune's snapshot newest: snapshots %s, want 2 3 4", got)
	}
	restoredSame(t, c, "2", dirs[1])
}

// commitThenCheck waits until the mount of a at mnt has committed all it
// queued (its snapshot at least minSeq, no error), unmounts it, checks the
// remote with --read-data on a fresh cache, and mounts it read-only there
// at mnt; the caller unmounts it.
func commitThenCheck(t *testing.T, a cliRepo, mnt, remote string, minSeq uint64) cliRepo {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		st := mountStatus(t, mnt)
		if st.PendingFiles == 0 && !st.Committing && st.LastError == "" && st.SnapshotSeq >= minSeq {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(a.cache, "test-mount.log"))
			t.Fatalf("A did not commit once the remote answered: %+v\nA's log:\n%s", st, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.umount(t, mnt)
	fresh := cliRepo{remote: remote, cache: t.TempDir(), codeFile: a.codeFile}
	if r := fresh.run(t, "check", "--read-data", fresh.remote); r.code != 0 {
		t.Errorf("check --read-data after A's commit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	return fresh
}
