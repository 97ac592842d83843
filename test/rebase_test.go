package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOfflineWriterRebases (issue 8, defect 8): machine A mounts while the
// remote is down (from local state) and changes x and writes y; meanwhile
// machine B, which reaches the remote, commits z and its own change to x.
// When the remote answers again, A takes the lease and commits on top of
// B's snapshot: the newest tree holds y, z, B's x under its name and A's x
// as x.conflict-HOST-TIME; A's log and `sealfs status` say so.
func TestOfflineWriterRebases(t *testing.T) {
	needRoot(t)
	s3A := newFaultyS3(t)
	s3B := newFaultyS3Over(t, s3A.inner) // the same store, reached by B
	a := s3A.initRepo(t, "rebase")
	b := cliRepo{remote: s3B.remote("rebase"), cache: t.TempDir(), codeFile: a.codeFile}
	mntA, mntB := mountpoint(t), mountpoint(t)

	expect(t, a.mount(t, mntA, "--commit-delay", "100ms"), 0, "")
	putText(t, filepath.Join(mntA, "x"), "x as first committed")
	a.umount(t, mntA)

	// A comes up offline and changes x, and writes y.
	s3A.setRate(1000)
	expect(t, a.mount(t, mntA, "--commit-delay", "100ms"), 0, "")
	if st := mountStatus(t, mntA); !strings.Contains(st.Lease, "not held yet") {
		t.Fatalf("A is not offline: %+v", st)
	}
	putText(t, filepath.Join(mntA, "x"), "x as changed by A, offline")
	putText(t, filepath.Join(mntA, "y"), "y from A")

	// B commits z and its own x.
	expect(t, b.mount(t, mntB, "--commit-delay", "100ms"), 0, "")
	putText(t, filepath.Join(mntB, "x"), "x as changed by B")
	putText(t, filepath.Join(mntB, "z"), "z from B")
	b.umount(t, mntB)

	// The remote answers A again.
	s3A.setRate(0)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		st := mountStatus(t, mntA)
		if st.ConflictCount > 0 && st.PendingFiles == 0 && !st.Committing && st.LastError == "" && st.SnapshotSeq >= 3 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(a.cache, "test-mount.log"))
			t.Fatalf("A did not commit once the remote answered: %+v\nA's log:\n%s", st, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	st := mountStatus(t, mntA)
	host, _ := os.Hostname()
	if st.ConflictCount != 1 || len(st.Conflicts) != 1 || st.Conflicts[0].Path != "x" ||
		!strings.HasPrefix(st.Conflicts[0].Kept, "x.conflict-"+host+"-") {
		t.Fatalf("status conflicts: %d %+v", st.ConflictCount, st.Conflicts)
	}
	kept := st.Conflicts[0].Kept
	r := sealfs(t, nil, "status", mntA)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "conflicts:") || !strings.Contains(r.stdout, "/"+kept) {
		t.Fatalf("sealfs status does not show the conflict:\n%s", r.stdout)
	}
	log, _ := os.ReadFile(filepath.Join(a.cache, "test-mount.log"))
	if !strings.Contains(string(log), "conflict") || !strings.Contains(string(log), kept) {
		t.Fatalf("A's log does not name the conflict:\n%s", log)
	}
	want := map[string]string{
		"x": "x as changed by B", kept: "x as changed by A, offline",
		"y": "y from A", "z": "z from B",
	}
	expectFiles(t, mntA, want)
	a.umount(t, mntA)

	// The newest snapshot, seen from a fresh cache, holds it all.
	fresh := cliRepo{remote: a.remote, cache: t.TempDir(), codeFile: a.codeFile}
	expect(t, fresh.mount(t, mntA, "--read-only"), 0, "")
	defer fresh.umount(t, mntA)
	if entries, _ := os.ReadDir(mntA); len(entries) != len(want) {
		t.Errorf("the newest snapshot holds %d entries, want %d", len(entries), len(want))
	}
	expectFiles(t, mntA, want)
}

func putText(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func expectFiles(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	for name, content := range want {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != content {
			t.Errorf("%s = %q, %v; want %q", name, got, err, content)
		}
	}
}
