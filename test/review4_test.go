package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatusConflictsWithEscapedNames (review 4): the status is one
// extended attribute of at most 64 KiB, and bounds its conflicts by their
// size; but JSON writes '&', '<', '>' and control characters in six bytes
// each. Four conflicts on files deep under folders named with '&' were
// within the bound by their names' bytes and made a status of over 64 KiB:
// `sealfs status` and `sealfs umount` failed on the mount (E2BIG). And
// `sealfs status` printed the conflicts' names raw: one holding a terminal
// escape (a snapshot may hold any byte but '/' and NUL) reached the
// terminal.
func TestStatusConflictsWithEscapedNames(t *testing.T) {
	needRoot(t)
	s3A := newFaultyS3(t)
	s3B := newFaultyS3Over(t, s3A.inner)
	a := s3A.initRepo(t, "escaped")
	b := cliRepo{remote: s3B.remote("escaped"), cache: t.TempDir(), codeFile: a.codeFile}
	mntA, mntB := mountpoint(t), mountpoint(t)

	// 8 folders of 200 '&': four conflicts of 3.2 KiB (path and the name
	// kept), 77 KiB in JSON.
	deep := strings.TrimSuffix(strings.Repeat(strings.Repeat("&", 200)+"/", 8), "/")
	files := []string{filepath.Join(deep, "f1"), filepath.Join(deep, "f2"), filepath.Join(deep, "f3"), filepath.Join(deep, "f4\x1b]0;owned\x07\x1b[2J")}
	expect(t, a.mount(t, mntA, "--commit-delay", "100ms"), 0, "")
	if err := os.MkdirAll(filepath.Join(mntA, deep), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		putText(t, filepath.Join(mntA, f), "first")
	}
	a.umount(t, mntA)

	s3A.setRate(1000) // A comes up offline and changes both
	expect(t, a.mount(t, mntA, "--commit-delay", "100ms"), 0, "")
	for _, f := range files {
		putText(t, filepath.Join(mntA, f), "A, offline")
	}
	expect(t, b.mount(t, mntB, "--commit-delay", "100ms"), 0, "")
	for _, f := range files {
		putText(t, filepath.Join(mntB, f), "B")
	}
	b.umount(t, mntB)

	s3A.setRate(0)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		st, err := readStatus(mntA)
		if err != nil {
			t.Fatalf("the status of a mount with conflicts does not read: %v", err)
		}
		if st.ConflictCount == len(files) && st.PendingFiles == 0 && !st.Committing && st.SnapshotSeq >= 3 {
			if len(st.Conflicts) == 0 {
				t.Fatalf("the status lists none of the %d conflicts", st.ConflictCount)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A did not commit its conflicts: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := sealfs(t, nil, "status", mntA)
	expect(t, r, 0, "")
	// A name's terminal escape is shown quoted, not sent to the terminal.
	if strings.Contains(r.stdout, "\x1b") || !strings.Contains(r.stdout, `f4\x1b]0;owned\a\x1b[2J`) {
		t.Fatalf("sealfs status shows a name's escape raw:\n%q", r.stdout)
	}
	expect(t, sealfs(t, nil, "status", "--json", mntA), 0, "")
	expect(t, a.umount(t, mntA), 0, "")
}
