package test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo"
)

// backupHistory stores n snapshots of a changing tree through the binary,
// each version kept in a folder of its own for comparison; it returns the
// folders, the i-th holding snapshot i+1.
func backupHistory(t *testing.T, c cliRepo, n int) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	var dirs []string
	for i := 1; i <= n; i++ {
		dir := t.TempDir()
		big[i*1000] ^= 0xff // a change inside a shared big file
		files := map[string][]byte{
			"a.txt":                        fmt.Appendf(nil, "version %d", i),
			"big.bin":                      big,
			"same/kept.txt":                []byte("never changes"),
			fmt.Sprintf("sub/only-%d", i):  fmt.Appendf(nil, "only in %d", i),
			"sub/deeper/changes-each-time": fmt.Appendf(nil, "%d%d%d", i, i, i),
		}
		for name, data := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		expect(t, c.run(t, "backup", dir, c.remote), 0, "")
		dirs = append(dirs, dir)
	}
	return dirs
}

// remoteListing is every object of a local remote: its name and a hash of
// its content.
func remoteListing(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshotSeqs are the sequence numbers `sealfs snapshots` lists.
func snapshotSeqs(t *testing.T, c cliRepo) string {
	t.Helper()
	r := c.run(t, "snapshots", c.remote)
	expect(t, r, 0, "")
	var seqs []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		seqs = append(seqs, strings.Fields(line)[0])
	}
	return strings.Join(seqs, " ")
}

// restoredSame restores snapshot sel on a fresh cache and compares the
// result with dir, byte for byte.
func restoredSame(t *testing.T, c cliRepo, sel, dir string) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "dst")
	expect(t, sealfs(t, nil, "restore", "--snapshot", sel, "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst), 0, "")
	sameShape(t, "restore of snapshot "+sel, treeShape(t, dir), treeShape(t, dst))
}

// snapshotObjects counts the snapshot objects on c's remote.
func snapshotObjects(t *testing.T, c cliRepo) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(c.remote, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() {
			n++
		}
	}
	return n
}

// checkClean runs check --read-data and wants it clean.
func checkClean(t *testing.T, c cliRepo) {
	t.Helper()
	r := c.run(t, "check", "--read-data", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check: %s", r.stdout)
	}
}

// TestForgetCommand: sealfs forget refuses what would be a mistake (no
// policy, a policy and names at once, the newest snapshot, bad flags);
// --dry-run prints the plan and changes no object of the remote; a real
// run forgets what the policy does not keep, then check --read-data is
// clean, the kept snapshots restore byte for byte, and a forgotten one is
// a usage error; a snapshot named by an id prefix is forgotten too.
func TestForgetCommand(t *testing.T) {
	c := initRepo(t)
	dirs := backupHistory(t, c, 5)
	before := remoteListing(t, c.remote)

	expect(t, c.run(t, "forget", c.remote), 2, "no policy given")
	expect(t, c.run(t, "forget", "--keep-last", "1", c.remote, "2"), 2, "not both")
	expect(t, c.run(t, "forget", c.remote, "5"), 2, "the newest")
	expect(t, c.run(t, "forget", c.remote, "latest"), 2, "the newest")
	expect(t, c.run(t, "forget", c.remote, "9"), 2, "no snapshot 9")
	expect(t, c.run(t, "forget", "--keep-daily", "-2", c.remote), 2, "-1 for all")
	expect(t, c.run(t, "forget", "--keep-within", "3x", c.remote), 2, "unknown unit")
	expect(t, c.run(t, "forget", "--keep-last", "1", "--group-by", "paths", c.remote), 2, "host or none")

	r := c.run(t, "forget", "--keep-last", "2", "--dry-run", c.remote)
	expect(t, r, 0, "")
	for _, want := range []string{"would forget 3 snapshots", "keep 2 snapshots", "remove 3 snapshots", "last snapshot"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("dry run says no %q:\n%s", want, r.stdout)
		}
	}
	if after := remoteListing(t, c.remote); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the dry run changed the remote:\nbefore %v\nafter  %v", before, after)
	}
	if got := snapshotSeqs(t, c); got != "1 2 3 4 5" {
		t.Fatalf("after the dry run: snapshots %s", got)
	}

	r = c.run(t, "forget", "--keep-last", "2", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "forgot 3 snapshots") {
		t.Fatalf("forget:\n%s", r.stdout)
	}
	if got := snapshotSeqs(t, c); got != "4 5" {
		t.Fatalf("after forget --keep-last 2: snapshots %s", got)
	}
	records, _ := filepath.Glob(filepath.Join(c.remote, "snapshots", "forget", "*"))
	if len(records) != 1 {
		t.Fatalf("%d forget records, want 1", len(records))
	}
	checkClean(t, c)
	restoredSame(t, c, "4", dirs[3])
	restoredSame(t, c, "latest", dirs[4])
	expect(t, sealfs(t, nil, "restore", "--snapshot", "2", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, filepath.Join(t.TempDir(), "d")), 2, "was forgotten")

	// By id prefix; a second run of the same policy has nothing to do.
	list := c.run(t, "snapshots", c.remote).stdout
	m := regexp.MustCompile(`(?m)^4\s+([0-9a-f]{8})`).FindStringSubmatch(list)
	if m == nil {
		t.Fatalf("no snapshot 4 in:\n%s", list)
	}
	prefix := idPrefix(t, c, m[1])
	r = c.run(t, "forget", c.remote, prefix)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "forgot 1 snapshots") {
		t.Fatalf("forget %s:\n%s", prefix, r.stdout)
	}
	if got := snapshotSeqs(t, c); got != "5" {
		t.Fatalf("after forget of snapshot 4: snapshots %s", got)
	}
	r = c.run(t, "forget", "--keep-last", "1", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "nothing to forget") {
		t.Fatalf("forget with nothing to do:\n%s", r.stdout)
	}
	checkClean(t, c)
	restoredSame(t, c, "5", dirs[4])
}

// TestForgetInterrupted: a forget that stored its record but deleted none
// of the snapshots (as one killed between the two does) leaves a valid
// repository; sealfs forget then finishes the job, whatever its policy
// says of those snapshots, and check is clean.
func TestForgetInterrupted(t *testing.T) {
	c := initRepo(t)
	dirs := backupHistory(t, c, 4)
	ctx := context.Background()
	rem, err := rcloneremote.Open(ctx, c.remote)
	if err != nil {
		t.Fatal(err)
	}
	f := faulty.New(rem, 1)
	f.FailOn("delete", "snapshots/", 2, faulty.FailBefore) // both
	raw, _ := os.ReadFile(c.codeFile)
	code, err := crypt.ParseRecoveryCode(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, f, unlock.WithCode(code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	var first2 []crypt.ID
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps[:2] {
		first2 = append(first2, s.ID)
	}
	if err := r.Forget(ctx, first2); err == nil {
		t.Fatal("Forget succeeded with a failing delete")
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	records, _ := filepath.Glob(filepath.Join(c.remote, "snapshots", "forget", "*"))
	if n := snapshotObjects(t, c); len(records) != 1 || n != 4 {
		t.Fatalf("after the interrupted forget: %d records, %d snapshot objects; want 1 and 4", len(records), n)
	}
	checkClean(t, c)

	// keep-last 4 would keep all four: the two recorded go all the same.
	out := c.run(t, "forget", "--keep-last", "4", c.remote)
	expect(t, out, 0, "")
	for _, want := range []string{"finish forgetting 2 snapshots", "forgot 2 snapshots"} {
		if !strings.Contains(out.stdout, want) {
			t.Fatalf("forget says no %q:\n%s", want, out.stdout)
		}
	}
	if n := snapshotObjects(t, c); n != 2 {
		t.Fatalf("%d snapshot objects left, want 2", n)
	}
	if got := snapshotSeqs(t, c); got != "3 4" {
		t.Fatalf("after the second forget: snapshots %s", got)
	}
	records, _ = filepath.Glob(filepath.Join(c.remote, "snapshots", "forget", "*"))
	if len(records) != 1 {
		t.Fatalf("%d forget records, want 1 (the second run records nothing new)", len(records))
	}
	checkClean(t, c)
	restoredSame(t, c, "3", dirs[2])
	restoredSame(t, c, "4", dirs[3])
}

// TestMountThinsItsSnapshots: a mount given a retention policy (keep the
// last 2, at most every second) forgets its older snapshots as it commits;
// sealfs status says so; after the unmount another client sees the two
// newest, check --read-data is clean and both restore byte for byte. A
// policy on a read-only mount is refused.
func TestMountThinsItsSnapshots(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--read-only", "--keep-last", "2"), 2, "read-only")
	expect(t, c.mount(t, mnt, "--keep-last", "2", "--forget-interval", "1s", "--commit-delay", "100ms"), 0, "")
	want := map[int]string{}
	for i := 1; i <= 5; i++ {
		want[i] = fmt.Sprintf("version %d of the file", i)
		if err := os.WriteFile(filepath.Join(mnt, "f"), []byte(want[i]), 0o644); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); mountStatus(t, mnt).SnapshotSeq != uint64(i); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("commit %d did not come", i)
			}
		}
		time.Sleep(1100 * time.Millisecond) // the interval
	}
	var st daemon.Status
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st = mountStatus(t, mnt); st.Forget != nil && st.Forget.Total == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount did not forget 3 snapshots: %+v", st.Forget)
		}
	}
	// The mount's own view of its history follows (snapview): the two
	// kept snapshots and latest.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		entries, err := os.ReadDir(filepath.Join(mnt, ".snapshots"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) == 3 && slices.Contains(names, "latest") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/.snapshots holds %q after the mount forgot 3 of 5", names)
		}
	}
	r := sealfs(t, nil, "status", mnt)
	expect(t, r, 0, "")
	for _, w := range []string{"retention:   keep 2 last snapshots (by host), at most every 1s", "since the mount"} {
		if !strings.Contains(r.stdout, w) {
			t.Fatalf("status says no %q:\n%s", w, r.stdout)
		}
	}
	c.umount(t, mnt)
	if got := snapshotSeqs(t, c); got != "4 5" {
		t.Fatalf("after the mount: snapshots %s", got)
	}
	checkClean(t, c)
	for _, seq := range []int{4, 5} {
		dst := filepath.Join(t.TempDir(), "dst")
		expect(t, sealfs(t, nil, "restore", "--snapshot", fmt.Sprint(seq), "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst), 0, "")
		if err := sameContent(filepath.Join(dst, "f"), []byte(want[seq])); err != nil {
			t.Fatalf("snapshot %d: %v", seq, err)
		}
	}
}

// TestLsAndDiff: sealfs ls and diff through the binary on a known history
// (one folder backed up, changed in place, backed up again), against
// listings written out by hand.
func TestLsAndDiff(t *testing.T) {
	c := initRepo(t)
	dir := t.TempDir()
	files := map[string]string{"a.txt": "first", "old.txt": "old", "same/kept.txt": "kept", "same/deep/k2": "k2", "sub/x": "x", "link": ""}
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if name == "link" {
			if err := os.Symlink("a.txt", p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, c.run(t, "backup", dir, c.remote), 0, "")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "a.txt"), []byte("second!"), 0o644))
	must(os.Remove(filepath.Join(dir, "old.txt")))
	must(os.MkdirAll(filepath.Join(dir, "new/in"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "new/in/y"), []byte("y"), 0o644))
	must(os.Chmod(filepath.Join(dir, "sub/x"), os.ModeSetuid|0o755))
	must(os.WriteFile(filepath.Join(dir, "bad\x1b[2Jname"), nil, 0o644))
	expect(t, c.run(t, "backup", dir, c.remote), 0, "")

	r := c.run(t, "diff", c.remote, "1", "latest")
	expect(t, r, 0, "")
	want := "M    /a.txt\n" +
		"+    \"/bad\\x1b[2Jname\"\n" +
		"+    /new/\n" +
		"+    /new/in/\n" +
		"+    /new/in/y\n" +
		"-    /old.txt\n" +
		"M    /sub/x\n" +
		"\nfrom snapshot 1 to 2:\nfiles: 2 new, 1 removed, 2 changed\nfolders: 2 new, 0 removed, 0 changed\n"
	if r.stdout != want {
		t.Fatalf("diff 1 2:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = c.run(t, "diff", c.remote, "2", "2")
	expect(t, r, 0, "")
	if !strings.HasPrefix(r.stdout, "\nfrom snapshot 2 to 2:\nfiles: 0 new, 0 removed, 0 changed") {
		t.Fatalf("diff 2 2:\n%s", r.stdout)
	}

	r = c.run(t, "ls", c.remote, "1")
	expect(t, r, 0, "")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	shape := regexp.MustCompile(`^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+(.*)$`)
	var got []string
	for _, l := range lines {
		m := shape.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("ls line %q is not as ls -l", l)
		}
		got = append(got, m[1]+" "+m[4]+" "+m[5])
		if m[2] != fmt.Sprint(os.Getuid()) || m[3] != fmt.Sprint(os.Getgid()) {
			t.Errorf("ls line %q: owner %s:%s", l, m[2], m[3])
		}
	}
	wantLs := []string{"-rw-r--r-- 5 /a.txt", "lrwxrwxrwx 5 /link -> a.txt", "-rw-r--r-- 3 /old.txt", "drwxr-xr-x 0 /same", "drwxr-xr-x 0 /sub"}
	if strings.Join(got, "\n") != strings.Join(wantLs, "\n") {
		t.Fatalf("ls 1:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLs, "\n"))
	}
	r = c.run(t, "ls", "-R", c.remote, "latest", "/sub")
	expect(t, r, 0, "")
	if !regexp.MustCompile(`^-rwsr-xr-x\s+\d+\s+\d+\s+1\s+\S+ \S+\s+/sub/x\n$`).MatchString(r.stdout) {
		t.Fatalf("ls -R 2 /sub:\n%s", r.stdout)
	}
	r = c.run(t, "ls", "--recursive", c.remote, "2", "same")
	expect(t, r, 0, "")
	if n := strings.Count(r.stdout, "\n"); n != 3 || !strings.Contains(r.stdout, "/same/deep/k2\n") {
		t.Fatalf("ls -R 2 same:\n%s", r.stdout)
	}
	r = c.run(t, "ls", c.remote, "2", "new/in/y")
	expect(t, r, 0, "")
	if !strings.HasSuffix(r.stdout, " /new/in/y\n") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("ls of a file:\n%s", r.stdout)
	}
	expect(t, c.run(t, "ls", c.remote, "1", "new"), 2, "no such file or directory")
	expect(t, c.run(t, "ls", c.remote, "7"), 2, "no snapshot 7")
	expect(t, c.run(t, "diff", c.remote, "1"), 2, "usage")
}

// TestForgetKeepsForks: a snapshot on a fork (a writer's late upload beside
// the main line's snapshot of its number) may hold changes no snapshot of
// the main line has: a policy keeps it, whatever it says, and does not
// count it; it goes only when named. check stays clean throughout.
func TestForgetKeepsForks(t *testing.T) {
	c := initRepo(t)
	backupHistory(t, c, 1)
	fork := filepath.Join(t.TempDir(), "fork")
	copyRemote(t, c.remote, fork)
	backupHistory(t, c, 2) // snapshots 2 and 3 on the main line
	theirs := t.TempDir()
	if err := os.WriteFile(filepath.Join(theirs, "theirs"), []byte("only on the fork"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := sealfs(t, nil, "backup", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, theirs, fork); r.code != 0 || !strings.HasPrefix(r.stdout, "snapshot 2 ") {
		t.Fatalf("backup on the copy: %+v", r)
	}
	os.Remove(filepath.Join(fork, "lease"))
	if out, err := exec.Command("cp", "-an", fork+"/.", c.remote).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	list := c.run(t, "snapshots", c.remote)
	expect(t, list, 0, "")
	if n := snapshotObjects(t, c); n != 4 {
		t.Fatalf("%d snapshot objects, want 4:\n%s", n, list.stdout)
	}

	r := c.run(t, "forget", "--keep-last", "1", "--group-by", "none", c.remote)
	expect(t, r, 0, "")
	for _, want := range []string{"on a fork", "forgot 2 snapshots"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("forget says no %q:\n%s", want, r.stdout)
		}
	}
	if n := snapshotObjects(t, c); n != 2 {
		t.Fatalf("%d snapshot objects after the forget, want 2 (the newest and the fork's)", n)
	}
	checkClean(t, c)
	var forkID string
	for _, line := range strings.Split(c.run(t, "snapshots", c.remote).stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "2" {
			forkID = f[1]
		}
	}
	if forkID == "" {
		t.Fatal("the fork's snapshot 2 is not listed")
	}
	restored := filepath.Join(t.TempDir(), "r")
	expect(t, sealfs(t, nil, "restore", "--snapshot", forkID, "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, restored), 0, "")
	if err := sameContent(filepath.Join(restored, "theirs"), []byte("only on the fork")); err != nil {
		t.Fatal(err)
	}
	// Named, it goes.
	r = c.run(t, "forget", c.remote, forkID)
	expect(t, r, 0, "")
	if got := snapshotSeqs(t, c); got != "3" || snapshotObjects(t, c) != 1 {
		t.Fatalf("after forgetting the fork by id: snapshots %s", got)
	}
	checkClean(t, c)
}

// idPrefix returns a prefix of the snapshot id that starts with short (as
// `sealfs snapshots` shows it) which a selector reads as an id: at least 6
// hex digits and one of them a letter, since a selector of decimal digits
// alone is a sequence number. It takes the whole id from the remote's
// snapshot names when the 8 digits shown are all decimal.
func idPrefix(t *testing.T, c cliRepo, short string) string {
	t.Helper()
	for n := 6; n <= len(short); n++ {
		if strings.ContainsAny(short[:n], "abcdef") {
			return short[:n]
		}
	}
	names, err := os.ReadDir(filepath.Join(c.remote, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names {
		name := e.Name()
		if i := strings.LastIndexByte(name, '-'); i >= 0 {
			name = name[i+1:]
		}
		if len(name) == 64 && strings.HasPrefix(name, short) {
			return name
		}
	}
	t.Fatalf("no snapshot object in %s has an id starting with %s", c.remote, short)
	return ""
}
