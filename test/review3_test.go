package test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo/format"
)

// TestDeletedBesideForgottenForkCLI: a fork (a second writer on a copy of
// the remote, its objects landed on it), recorded by later commits, is
// forgotten with sealfs forget; then the storage deletes the main line's
// snapshot of the fork's number. The forget record still holds that
// number: only the parent of the snapshot above tells. sealfs snapshots
// on a fresh cache must report it (integrity, exit 7), as check does.
func TestDeletedBesideForgottenForkCLI(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	rng := rand.New(rand.NewPCG(31, 31))
	files := fileSet{}
	session := func(c cliRepo, prefix string) {
		t.Helper()
		expect(t, c.mount(t, mnt), 0, "")
		if err := files.write(mnt, prefix, rng, 3000); err != nil {
			t.Fatal(err)
		}
		stopMount(t, mnt)
	}
	session(c, "a")
	fork := filepath.Join(t.TempDir(), "fork")
	if err := os.MkdirAll(fork, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.CopyMissing(t, c.remote, fork)
	session(c, "b")
	session(cliRepo{remote: fork, cache: t.TempDir(), codeFile: c.codeFile}, "theirs")
	testutil.CopyMissing(t, fork, c.remote)
	for _, p := range []string{"c", "d", "e", "f"} {
		session(c, p)
	}
	r, _ := c.openInProcess(t)
	forks := r.Forks()
	if len(forks) == 0 {
		t.Fatal("no fork")
	}
	args := []string{"forget", c.remote}
	low := forks[0].Seq
	for _, f := range forks {
		args = append(args, f.ID.String())
		low = min(low, f.Seq)
	}
	expect(t, c.run(t, args...), 0, "")
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.run(t, "snapshots", c.remote), 0, "")
	main, err := r.SnapshotBySeq(t.Context(), low)
	if err != nil {
		t.Fatal(err)
	}
	if head := r.Latest(); head.Seq <= low+1 {
		t.Fatalf("the newest snapshot is %d, the fork at %d: not enough history above it", head.Seq, low)
	}
	if err := os.Remove(filepath.Join(c.remote, format.SnapshotSeqName(main.Seq, main.ID))); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []string{c.cache, t.TempDir()} {
		cl := cliRepo{remote: c.remote, cache: cache, codeFile: c.codeFile}
		expect(t, cl.run(t, "snapshots", c.remote), 7, "missing")
	}
	expect(t, fresh.run(t, "check", c.remote), 7, "missing")
}
