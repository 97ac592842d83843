package test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sealfs/sealfs/crypt"
)

// TestLateSnapshotAfterKillAndFreshCache: the daemon is killed while the
// remote holds its snapshot upload; another mount of the repository, on a
// fresh cache, takes the dead writer's lease at once and commits; then the
// held upload lands (the server had the whole request). Two snapshots have
// one sequence number: a fork (SPEC §8), which must not make the
// repository unopenable. The second writer's files are in the newest
// snapshot; the dead writer's are in the fork's snapshot, which a mount
// names in its log and shows in /.snapshots, `snapshots` marks, `check` notes (exit 0), and
// `restore --snapshot ID` restores (its number names the other writer's);
// the next commit records the fork.
func TestLateSnapshotAfterKillAndFreshCache(t *testing.T) {
	needRoot(t)
	gate := &holdGate{inner: gofakes3.New(s3mem.New()).Server(), prefix: "repo/snapshots/", land: true}
	s3 := newFaultyS3Over(t, gate)
	c := s3.faultRepo(t, "bucket")
	mnt := mountpoint(t)
	t.Cleanup(func() { gate.heal(); stopMount(t, mnt) })
	rng := rand.New(rand.NewPCG(4, 4))
	dead, files := fileSet{}, fileSet{}
	expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	gate.arm()
	if err := dead.write(mnt, "k", rng, 5000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "held snapshot upload", &gate.held, 1, 60*time.Second)
	killMount(t, mnt)
	gate.open.Store(true)

	other := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, other.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	if err := files.write(mnt, "o", rng, 6000); err != nil {
		t.Fatal(err)
	}
	if r := stopMount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("the other writer's unmount said %q %q", r.stdout, r.stderr)
	}
	gate.heal() // the dead writer's snapshot lands now
	for end := time.Now().Add(10 * time.Second); gate.landed.Load() == 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if gate.landed.Load() == 0 {
		t.Fatal("the held snapshot upload did not land")
	}
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	if r := fresh.mount(t, mnt, "--read-only"); r.code != 0 {
		t.Fatalf("after a dead writer's held snapshot landed, the repository does not open: exit %d: %s", r.code, r.stderr)
	}
	files.verify(t, mnt, true)
	if _, err := os.Stat(filepath.Join(mnt, "k-0")); err == nil {
		t.Error("the dead writer's file is in the newest snapshot")
	}
	// The fork's folder in /.snapshots holds the dead writer's files.
	for name, want := range dead {
		got, err := filepath.Glob(filepath.Join(mnt, ".snapshots", "*", name))
		if err != nil || len(got) != 1 {
			t.Errorf("%s is in %d folders of /.snapshots (%v), want the fork's", name, len(got), got)
			continue
		}
		if b, err := os.ReadFile(got[0]); err != nil || string(b) != string(want) {
			t.Errorf("%s read %d bytes, %v", got[0], len(b), err)
		}
	}
	stopMount(t, mnt)
	if log, _ := os.ReadFile(filepath.Join(fresh.cache, "test-mount.log")); !strings.Contains(string(log), "is on a fork") || !strings.Contains(string(log), "sealfs restore --snapshot") {
		t.Errorf("the mount did not log the fork:\n%s", log)
	}

	// The listing marks the dead writer's snapshot; check notes it.
	forkID := forkSnapshot(t, fresh)
	r := fresh.run(t, "check", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "note: snapshot 1 ("+forkID) || !strings.Contains(r.stdout, "no problems found") {
		t.Errorf("check with a fork said %q", r.stdout)
	}
	// Its number names the main line's snapshot; its id names it.
	rf, _ := fresh.openInProcess(t)
	forks := rf.Forks()
	if len(forks) != 1 || forks[0].ID.Short() != forkID {
		t.Fatalf("forks %v, want %s", forks, forkID)
	}
	if s, err := rf.SnapshotBySeq(t.Context(), 1); err != nil || s.ID == forks[0].ID {
		t.Fatalf("snapshot 1 by number: %v, %v; want the main line's", s, err)
	}
	restoreFork := func() {
		t.Helper()
		dir := t.TempDir()
		expect(t, fresh.run(t, "restore", "--snapshot", forks[0].ID.String(), c.remote, dir), 0, "")
		for name, want := range dead {
			if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != string(want) {
				t.Errorf("the dead writer's %s restored from the fork: %d bytes, %v", name, len(got), err)
			}
		}
	}
	restoreFork()

	// The next commit records the fork (and its indexes); it stays
	// marked and restorable.
	expect(t, other.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	if err := files.write(mnt, "p", rng, 3000); err != nil {
		t.Fatal(err)
	}
	stopMount(t, mnt)
	rp, _ := other.openInProcess(t)
	if head := rp.Latest(); !slices.ContainsFunc(head.Forks, func(id crypt.ID) bool { return id.Short() == forkID }) {
		t.Errorf("the newest snapshot %d records forks %v, not %s", head.Seq, head.Forks, forkID)
	}
	if got := forkSnapshot(t, fresh); got != forkID {
		t.Errorf("after a commit, the fork is %s, want %s", got, forkID)
	}
	restoreFork()
	expect(t, fresh.run(t, "check", "--read-data", c.remote), 0, "")
}

var forkLine = regexp.MustCompile(`(?m)^1\s+([0-9a-f]{8})\s.*fork: not in the newest tree$`)

// forkSnapshot returns the short id of the one snapshot `sealfs snapshots`
// marks as a fork.
func forkSnapshot(t *testing.T, c cliRepo) string {
	t.Helper()
	r := c.run(t, "snapshots", c.remote)
	expect(t, r, 0, "")
	m := forkLine.FindAllStringSubmatch(r.stdout, -1)
	if len(m) != 1 || !strings.Contains(r.stdout, "sealfs restore --snapshot ID") {
		t.Fatalf("snapshots does not mark one fork snapshot 1:\n%s", r.stdout)
	}
	return m[0][1]
}
