package worktree_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// smallDisk mounts a size-limited tmpfs (as root) and returns its path.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a small disk needs root (tmpfs)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot make a small disk with tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fillDisk takes all free space of dir's disk and returns a function that
// gives it back.
func fillDisk(t *testing.T, dir string) func() {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range []int{1 << 20, 4096, 1} {
		buf := make([]byte, n)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return func() {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// spendReserve takes the space a work folder keeps in reserve, as when it
// was used already.
func spendReserve(t *testing.T, work string) {
	t.Helper()
	if err := os.Remove(filepath.Join(work, "reserve")); err != nil {
		t.Fatal(err)
	}
}

// TestCommitOnFullDisk (issue 8, defect 9): a commit that cannot start its
// new journal on a full disk fails, leaves nothing behind, and the next
// commit once there is room stores everything; the work folder opens
// again at every point.
func TestCommitOnFullDisk(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	disk := smallDisk(t, "4m")
	work := filepath.Join(disk, "work")
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "queued", []byte("closed before the disk filled"), true)
	spendReserve(t, work)
	free := fillDisk(t, disk)
	if _, err := tr.Commit(ctx); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("commit on a full disk = %v, want ENOSPC", err)
	}
	if _, err := tr.Commit(ctx); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second commit on a full disk = %v, want ENOSPC", err)
	}
	free()
	if _, _, err := tr.Create(t.Context(), tr.Root(), "after", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
		t.Fatalf("create once there is room: %v", err)
	}
	writeFile(t, tr, tr.Root(), "written-after", []byte("written once there was room"), true)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatalf("commit once there is room: %v", err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	fresh := open(t, r2, t.TempDir())
	for name, want := range map[string]string{"queued": "closed before the disk filled", "written-after": "written once there was room"} {
		if got := readFile(t, fresh, name); string(got) != want {
			t.Fatalf("%s on the remote = %q", name, got)
		}
	}
	// And the work folder opens again.
	open(t, env.Repo, work)
}

// TestOpenOnFullDisk: opening a work folder whose journals must be
// rewritten fails on a full disk, saying so, and leaves the journals as
// they were: once there is room, it opens with everything queued.
func TestOpenOnFullDisk(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	disk := smallDisk(t, "4m")
	work := filepath.Join(disk, "work")
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "queued", []byte("queued before the crash"), true)
	spendReserve(t, work)
	free := fillDisk(t, disk)
	if _, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: work}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("open on a full disk = %v, want ENOSPC", err)
	}
	free()
	tr2 := open(t, env.Repo, work)
	if got := readFile(t, tr2, "queued"); string(got) != "queued before the crash" {
		t.Fatalf("queued file after the disk was freed = %q", got)
	}
}

// TestOpenWithEmptyJournal: an empty journal, as a full disk left it
// before this fix, does not keep the work folder from opening.
func TestOpenWithEmptyJournal(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "queued", []byte("queued"), true)
	if err := os.WriteFile(filepath.Join(work, "journal.0000000000000099"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tr2 := open(t, env.Repo, work)
	if got := readFile(t, tr2, "queued"); string(got) != "queued" {
		t.Fatalf("queued file = %q", got)
	}
	if _, err := os.Stat(filepath.Join(work, "journal.0000000000000099")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the empty journal is still there: %v", err)
	}
}

// TestReplayCutOffAfterRewrite: a crash after a replay wrote its new
// journal but before it removed the old ones replays both; the files'
// staging copies must survive that.
func TestReplayCutOffAfterRewrite(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "queued", []byte("queued content"), true)
	old, _ := filepath.Glob(filepath.Join(work, "journal.*"))
	saved := map[string][]byte{}
	for _, p := range old {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		saved[p] = b
	}
	open(t, env.Repo, work)   // replays and rewrites
	for p, b := range saved { // as if it had not removed the old ones yet
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tr3 := open(t, env.Repo, work)
	if got := readFile(t, tr3, "queued"); string(got) != "queued content" {
		t.Fatalf("queued file after a replay cut off = %q", got)
	}
}

// TestHostileJournalRecord (issue 8, defect 5): a journal record naming a
// staging file outside the staging area, or a path that is no path, is
// refused with a clear log line; nothing outside the work folder is read,
// written or removed. Sealed records cannot be forged without the key, so
// the hostile ones come in the plaintext journal of an older sealfs (the
// only unsealed journal a cache may hold, docs/SPEC.md §12.1).
func TestHostileJournalRecord(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	base := t.TempDir()
	work := filepath.Join(base, "work")
	if err := os.MkdirAll(filepath.Join(work, "staging"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "staging", "00112233445566778899aabbccddeeff"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(base, "outside")
	if err := os.WriteFile(outside, []byte("not sealfs' to touch"), 0o600); err != nil {
		t.Fatal(err)
	}
	var journal bytes.Buffer
	for _, line := range []string{
		`{"op":"base","seq":0}`,
		`{"op":"create","path":"dmljdGlt","meta":{"Type":1,"Mode":420}}`, // "victim"
		`{"op":"stage","path":"dmljdGlt","staging":"00112233445566778899aabbccddeeff"}`,
		`{"op":"stage","path":"dmljdGlt","staging":"../../outside"}`,
		`{"op":"stage","path":"dmljdGlt","staging":"/etc/passwd"}`,
		`{"op":"stage","path":"dmljdGlt","staging":"0123456789abcdef0123456789abcdef/../../../outside"}`,
		`{"op":"create","path":"Li4vZXNjYXBl","meta":{}}`,   // "../escape"
		`{"op":"create","path":"bm8tbWV0YQ=="}`,             // no attributes
		`{"op":"rename","path":"dmljdGlt","to":"YS8vYg=="}`, // "a//b"
		`{"op":"bogus"}`,
	} {
		journal.WriteString(line + "\n")
	}
	if err := os.WriteFile(filepath.Join(work, "journal.0000000000000001"), journal.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	tr2, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: work, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, tr2, "victim"); string(got) != "kept" {
		t.Fatalf("victim after hostile records = %q", got)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "not sealfs' to touch" {
		t.Fatalf("the file outside the work folder: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 2 {
		t.Fatalf("the folder around the work folder holds %d entries, want 2", len(entries))
	}
	for _, name := range []string{"escape", "no-meta"} {
		if _, _, err := tr2.Lookup(t.Context(), tr2.Root(), name); err == nil {
			t.Fatalf("a hostile record created %q", name)
		}
	}
	log := logBuf.String()
	if n := strings.Count(log, "malformed journal record"); n != 7 {
		t.Fatalf("%d malformed records logged, want 7:\n%s", n, log)
	}
}

// TestFullDiskOfOwnStaging: when the queued files themselves fill the
// cache disk, the journal falls back on its reserve: a file can still be
// deleted, and a commit still starts its journal, uploads the queue and so
// frees the disk.
func TestFullDiskOfOwnStaging(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	disk := smallDisk(t, "8m")
	work := filepath.Join(disk, "work")
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "kept", []byte("closed before the disk filled"), true)
	writeFile(t, tr, tr.Root(), "doomed", []byte("to be deleted on a full disk"), true)
	in, _, err := tr.Create(t.Context(), tr.Root(), "big", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.OpenFile(in, true, false)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte("b"), 256<<10)
	var off int64
	for {
		n, err := h.WriteAt(buf, off)
		off += int64(n)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	h.Close() // may fail: it met the full disk
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatalf("commit on a disk full of queued files: %v", err)
	}
	if err := tr.Unlink(t.Context(), tr.Root(), "doomed"); err != nil {
		t.Fatalf("unlink after the commit: %v", err)
	}
	writeFile(t, tr, tr.Root(), "after", []byte("written once the queue went up"), true)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	fresh := open(t, r2, t.TempDir())
	for name, want := range map[string]string{"kept": "closed before the disk filled", "after": "written once the queue went up"} {
		if got := readFile(t, fresh, name); string(got) != want {
			t.Fatalf("%s on the remote = %q", name, got)
		}
	}
	if _, _, err := fresh.Lookup(t.Context(), fresh.Root(), "doomed"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("the file deleted on a full disk: %v", err)
	}
}

// TestTruncatingOpenOnFullDisk: an open with O_TRUNC, a chmod or a
// truncate that cannot be journaled on a full disk fails with ENOSPC and
// leaves the file as it was.
func TestTruncatingOpenOnFullDisk(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	disk := smallDisk(t, "4m")
	work := filepath.Join(disk, "work")
	tr := open(t, env.Repo, work)
	writeFile(t, tr, tr.Root(), "precious", []byte("stored content"), true)
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	in, _, err := tr.Lookup(t.Context(), tr.Root(), "precious")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Create(t.Context(), tr.Root(), "a", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	spendReserve(t, work)
	free := fillDisk(t, disk)
	// Fill the journal's last page too, with records shorter than a
	// stage record: renames of a one-letter name, until one fails.
	names := []string{"a", "b"}
	for i := 0; ; i++ {
		if err := tr.Rename(t.Context(), tr.Root(), names[i%2], tr.Root(), names[(i+1)%2], 0); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
		if i > 1e6 {
			t.Fatal("the journal never met the full disk")
		}
	}
	if _, err := tr.OpenFile(in, true, true); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a truncating open on a full disk = %v, want ENOSPC", err)
	}
	mode, size := uint32(0o600), uint64(3)
	if _, err := tr.SetAttr(in, worktree.SetAttr{Mode: &mode}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("chmod on a full disk = %v, want ENOSPC", err)
	}
	if _, err := tr.SetAttr(in, worktree.SetAttr{Size: &size}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("truncate on a full disk = %v, want ENOSPC", err)
	}
	if a := tr.Attr(in); a.Mode != 0o644 || a.Size != uint64(len("stored content")) {
		t.Fatalf("after a failed chmod and truncate: mode %o, size %d", a.Mode, a.Size)
	}
	free()
	if got := readFile(t, tr, "precious"); string(got) != "stored content" {
		t.Fatalf("after a failed truncating open: %q", got)
	}
	if _, err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, open(t, r2, t.TempDir()), "precious"); string(got) != "stored content" {
		t.Fatalf("on the remote after a failed truncating open: %q", got)
	}
}
