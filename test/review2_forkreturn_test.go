package test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// TestDeadWriterReturnsAfterFork: as TestLateSnapshotAfterKillAndFreshCache,
// a daemon is killed while the remote holds its snapshot upload and
// another mount on a fresh cache takes over and commits; then the dead
// writer mounts again on its own cache, with the held upload landed before
// (its snapshot is a fork) or after it came back (it took the other's
// number first), or never (the remote dropped it). Either way the repository opens, the returning writer's
// files and the other's are all in its live tree and in the newest
// snapshot a fresh client reads, and check is clean: no file closed
// successfully is lost, and no state is fatal.
func TestDeadWriterReturnsAfterFork(t *testing.T) {
	needRoot(t)
	for _, c := range []struct {
		name                    string
		landFirst, first, never bool
	}{
		{name: "first snapshot, never lands", first: true, never: true},
		{name: "first snapshot, lands before the return", landFirst: true, first: true},
		{name: "first snapshot, lands after the return", first: true},
		{name: "lands before the return", landFirst: true},
		{name: "lands after the return"},
	} {
		landFirst, first, never := c.landFirst, c.first, c.never
		t.Run(c.name, func(t *testing.T) {
			gate := &holdGate{inner: gofakes3.New(s3mem.New()).Server(), prefix: "repo/snapshots/", land: !never}
			s3 := newFaultyS3Over(t, gate)
			c := s3.faultRepo(t, "bucket") // shadows the case: the repository
			mnt := mountpoint(t)
			t.Cleanup(func() { gate.heal(); stopMount(t, mnt) })
			rng := rand.New(rand.NewPCG(5, 5))
			files := fileSet{}
			expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
			if !first {
				if err := files.write(mnt, "a", rng, 3000); err != nil {
					t.Fatal(err)
				}
				stopMount(t, mnt)
				expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
			}
			gate.arm()
			if err := files.write(mnt, "k", rng, 5000); err != nil {
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
			land := func() {
				t.Helper()
				gate.heal()
				if never {
					return
				}
				for end := time.Now().Add(10 * time.Second); gate.landed.Load() == 0 && time.Now().Before(end); {
					time.Sleep(10 * time.Millisecond)
				}
				if gate.landed.Load() == 0 {
					t.Fatal("the held snapshot upload did not land")
				}
			}
			if landFirst {
				land()
			}
			// The dead writer comes back on its own cache.
			if r := c.mount(t, mnt, "--commit-delay", "100ms"); r.code != 0 {
				t.Fatalf("the dead writer's mount on its own cache: exit %d: %s", r.code, r.stderr)
			}
			if _, wrong := files.verify(t, mnt, true); wrong > 0 || t.Failed() {
				log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
				t.Logf("the returning writer's log:\n%s", log)
			}
			if err := files.write(mnt, "r", rng, 2000); err != nil {
				t.Fatal(err)
			}
			if r := stopMount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
				t.Fatalf("the returning writer's unmount said %q %q", r.stdout, r.stderr)
			}
			if !landFirst {
				land()
			}
			fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
			if r := fresh.mount(t, mnt, "--read-only"); r.code != 0 {
				t.Fatalf("a fresh client does not open: exit %d: %s", r.code, r.stderr)
			}
			files.verify(t, mnt, true)
			stopMount(t, mnt)
			expect(t, fresh.run(t, "check", "--read-data", c.remote), 0, "")
			// And the returning writer once more, on its cache, after the late landing.
			if r := c.mount(t, mnt, "--read-only"); r.code != 0 {
				t.Fatalf("the returning writer's cache does not open: exit %d: %s", r.code, r.stderr)
			}
			files.verify(t, mnt, true)
			stopMount(t, mnt)
		})
	}
}
