package test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
)

// objectFiles lists every file under dir with its size, by path relative
// to dir.
func objectFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func total(files map[string]int64) (n int64) {
	for _, size := range files {
		n += size
	}
	return n
}

// pruneHistory makes three snapshots by `sealfs backup` of a directory
// that changes between them, keeping a copy of each state, and forgets
// the first two: a file of 3 MiB only they held is garbage then. It
// returns the copies of the retained snapshots, by sequence number.
func pruneHistory(t *testing.T, c cliRepo) map[uint64]string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, size int) {
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	states := map[uint64]string{}
	backup := func(seq uint64) {
		expect(t, c.run(t, "backup", src, c.remote), 0, "")
		cp := filepath.Join(t.TempDir(), "state")
		if r := run(t, exec.Command("cp", "-a", src, cp)); r.code != 0 {
			t.Fatalf("cp: %s", r.stderr)
		}
		states[seq] = cp
	}
	write("old", 3<<20)
	write("kept", 1500<<10)
	backup(1)
	write("small", 1000)
	backup(2)
	if err := os.Remove(filepath.Join(src, "old")); err != nil {
		t.Fatal(err)
	}
	write("new", 700<<10)
	backup(3)
	expect(t, c.run(t, "forget", c.remote, "1", "2"), 0, "")
	delete(states, 1)
	delete(states, 2)
	return states
}

// verifyRestores checks the repository with --read-data (clean, and
// nothing unreferenced unless unreferenced) and restores every retained snapshot, comparing it with
// the state it was made from; a snapshot a prune added has the content of
// the newest before it.
func verifyRestores(t *testing.T, c cliRepo, states map[uint64]string, unreferenced bool) {
	t.Helper()
	r := c.run(t, "check", "--read-data", c.remote)
	if r.code != 0 || !strings.Contains(r.stdout, "no problems found") || !unreferenced && strings.Contains(r.stdout, "not referenced") {
		t.Fatalf("check --read-data: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = c.run(t, "snapshots", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "prune: the files of the snapshot before") {
		t.Errorf("sealfs snapshots does not mark prune's snapshot:\n%s", r.stdout)
	}
	var seqs []uint64
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		seq, err := strconv.ParseUint(strings.Fields(line)[0], 10, 64)
		if err != nil {
			t.Fatalf("snapshots: %q", line)
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	var last string
	for _, seq := range seqs {
		want, ok := states[seq]
		if !ok {
			want = last // a prune's snapshot: the content of the one before
		}
		last = want
		dir := filepath.Join(t.TempDir(), "restored")
		expect(t, c.run(t, "restore", "--snapshot", fmt.Sprint(seq), c.remote, dir), 0, "")
		if testutil.CompareTrees(t, want, dir) == 0 {
			t.Fatalf("snapshot %d restored nothing", seq)
		}
	}
	if len(seqs) < len(states)+1 {
		t.Errorf("snapshots %v: want the retained ones and prune's", seqs)
	}
}

// TestPruneCLI: sealfs prune on a real local remote. A dry run changes no
// object; on a mounted repository prune fails with exit 9 and says to
// unmount; after unmounting it deletes what only forgotten snapshots
// used: the remote's directory shrinks by at least the 3 MiB file they
// alone held, the mount's local copies of deleted index objects go, check
// --read-data is clean and every retained snapshot restores byte for
// byte; a second prune frees nothing.
func TestPruneCLI(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	states := pruneHistory(t, c)

	expect(t, c.run(t, "prune", "--max-unused-pct", "101", c.remote), 2, "0 to 100")
	before := objectFiles(t, c.remote)
	r := c.run(t, "prune", "--dry-run", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "would free about") || !strings.Contains(r.stdout, "nothing was changed") {
		t.Errorf("dry run said:\n%s", r.stdout)
	}
	if after := objectFiles(t, c.remote); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a dry run changed the remote:\n%v\n%v", before, after)
	}

	// A mount holds the lease (and fills its copy of the metadata).
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	r = c.run(t, "prune", c.remote)
	expect(t, r, 9, "unmount it first")
	stopMount(t, mnt)
	mirrors, _ := filepath.Glob(filepath.Join(c.cache, "remotes", "*", "index"))
	if len(mirrors) != 1 || len(objectFiles(t, mirrors[0])) == 0 {
		t.Fatalf("no local copy of the indexes: %v", mirrors)
	}

	before = objectFiles(t, c.remote)
	r = c.run(t, "prune", c.remote)
	expect(t, r, 0, "")
	after := objectFiles(t, c.remote)
	t.Logf("prune: %s%s; remote %d -> %d bytes", r.stdout, r.stderr, total(before), total(after))
	if !strings.Contains(r.stdout, "freed ") || !strings.Contains(r.stderr, "delete: ") {
		t.Errorf("prune said:\n%s\n%s", r.stdout, r.stderr)
	}
	if total(before)-total(after) < 3<<20 {
		t.Errorf("the remote shrank by %d bytes, less than the 3 MiB only forgotten snapshots held", total(before)-total(after))
	}
	for name := range objectFiles(t, mirrors[0]) {
		if _, ok := after[filepath.Join("index", name)]; !ok {
			t.Errorf("the mount's copy of index/%s stayed after prune deleted it", name)
		}
	}
	verifyRestores(t, c, states, false)

	r = c.run(t, "prune", c.remote)
	expect(t, r, 0, "")
	if again := objectFiles(t, c.remote); total(again) != total(after) {
		t.Errorf("a second prune changed the remote: %d -> %d bytes\n%s", total(after), total(again), r.stdout)
	}
}

// TestPruneKilled: sealfs prune SIGKILLed at each of its steps (while it
// walks the snapshots, at its first repacked pack's upload, at the upload
// of its index, of its snapshot, and in the middle of its deletes), each
// time on a new repository over an S3 server: the next prune finishes
// (check --read-data clean, every retained snapshot restores byte for
// byte), keeping the objects no snapshot names since it took the dead
// one's lease over; a prune after it deletes those too.
func TestPruneKilled(t *testing.T) {
	for _, rule := range []faultRule{
		{method: "GET", prefix: "repo/data/", nth: 1, action: kill},
		{method: "PUT", prefix: "repo/data/", nth: 1, action: kill},
		{method: "PUT", prefix: "repo/index/", nth: 1, action: kill},
		{method: "PUT", prefix: "repo/snapshots/", nth: 1, action: kill},
		{method: "DELETE", prefix: "repo/index/", nth: 1, action: kill},
		{method: "DELETE", prefix: "repo/data/", nth: 2, action: kill},
	} {
		t.Run(rule.String(), func(t *testing.T) {
			s3 := newFaultyS3(t)
			c := s3.faultRepo(t, "bucket")
			states := pruneHistory(t, c)
			p := &faultProgram{rule: rule, tracing: os.Getenv("SEALFS_FAULT_TRACE") != ""}
			s3.program.Store(p)
			r := c.run(t, "prune", "--max-unused-pct", "10", c.remote)
			s3.program.Store(nil)
			if r.code == 0 {
				t.Fatalf("prune was not killed:\n%s", r.stdout)
			}
			p.check(t, &faultCounts{})
			// The next prune takes over the dead one's lease: it finishes,
			// but keeps what no snapshot names (a dead writer's upload may
			// still land); the repository is sound already.
			r = c.run(t, "prune", "--max-unused-pct", "10", c.remote)
			expect(t, r, 0, "")
			t.Logf("prune after the kill:\n%s", r.stdout)
			verifyRestores(t, c, states, true)
			// One more, under a lease it took from no one, deletes them.
			r = c.run(t, "prune", "--max-unused-pct", "10", c.remote)
			expect(t, r, 0, "")
			if strings.Contains(r.stdout, "kept ") {
				t.Errorf("a prune under a clean lease kept objects:\n%s", r.stdout)
			}
			verifyRestores(t, c, states, false)
		})
	}
}

// TestPruneAfterMountKilled: a mount is killed with a new file written
// and fsynced but not committed (its chunks partly uploaded in packs no
// snapshot names). sealfs prune on the same cache takes the dead mount's
// lease over, deletes what only forgotten snapshots held, and keeps those
// packs; the next mount replays the journal onto prune's snapshot and
// commits the file; check --read-data is clean, the newest snapshot
// restores with every file, and a last prune deletes the kept packs.
func TestPruneAfterMountKilled(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	old, kept, late := random(3<<20), random(1<<20), random(12<<20)
	expect(t, c.mount(t, mnt, "--commit-delay", "100ms"), 0, "")
	if err := writeSynced(filepath.Join(mnt, "old"), old); err != nil {
		t.Fatal(err)
	}
	waitCommitted(mnt, 20*time.Second)
	if err := os.Remove(filepath.Join(mnt, "old")); err != nil {
		t.Fatal(err)
	}
	if err := writeSynced(filepath.Join(mnt, "kept"), kept); err != nil {
		t.Fatal(err)
	}
	if r := stopMount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("umount: %s %s", r.stdout, r.stderr)
	}
	expect(t, c.run(t, "forget", "--keep-last", "1", c.remote), 0, "")

	expect(t, c.mount(t, mnt, "--commit-delay", "1h"), 0, "")
	if err := writeSynced(filepath.Join(mnt, "late"), late); err != nil {
		t.Fatal(err)
	}
	killMount(t, mnt)

	before := total(objectFiles(t, c.remote))
	r := c.run(t, "prune", c.remote)
	expect(t, r, 0, "")
	t.Logf("prune after the killed mount:\n%s", r.stdout)
	if after := total(objectFiles(t, c.remote)); before-after < 3<<20 {
		t.Errorf("the remote shrank by %d bytes, less than the forgotten file", before-after)
	}

	expect(t, c.mount(t, mnt), 0, "")
	got, err := os.ReadFile(filepath.Join(mnt, "late"))
	if err != nil || !bytes.Equal(got, late) {
		t.Fatalf("the file written before the kill, after prune: %d bytes, %v", len(got), err)
	}
	if r := stopMount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("umount: %s %s", r.stdout, r.stderr)
	}
	r = c.run(t, "check", "--read-data", c.remote)
	if r.code != 0 || !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check --read-data: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	expect(t, c.run(t, "restore", c.remote, dir), 0, "")
	for name, want := range map[string][]byte{"kept": kept, "late": late} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("restored %s: %d bytes, %v", name, len(got), err)
		}
	}
	r = c.run(t, "prune", c.remote)
	expect(t, r, 0, "")
	if strings.Contains(r.stdout, "kept ") {
		t.Errorf("a prune under a clean lease kept objects:\n%s", r.stdout)
	}
	r = c.run(t, "check", "--read-data", c.remote)
	if r.code != 0 || !strings.Contains(r.stdout, "no problems found") || strings.Contains(r.stdout, "not referenced") {
		t.Fatalf("check --read-data after the last prune: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
