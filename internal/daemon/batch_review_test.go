package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunBatchOpenFiles (review): files still open for writing wait in
// the staging area, but no commit can store them (Commit leaves them to a
// later one): more of them than commitBatch, written now and then, must
// not start a commit at every tick of the loop while a few other changes
// keep coming (a snapshot every 250 ms, a new journal and a walk of the
// namespace each, for as long as the files stay open), when the commit
// delay says to wait for a quiet period.
func TestRunBatchOpenFiles(t *testing.T) {
	e := newMountEnv(t)
	defer func(n int) { commitBatch = n }(commitBatch)
	commitBatch = 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := newRecorder(0)
	done := run(ctx, e.config(), rec)
	rec.waitFor(t, "READY", func(m string) bool { return strings.HasPrefix(m, "READY=1") })
	var files []*os.File
	for i := range 60 {
		f, err := os.Create(filepath.Join(e.mnt, fmt.Sprintf("open%03d", i)))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		if _, err := f.Write([]byte("held open")); err != nil {
			t.Fatal(err)
		}
	}
	seq := func() uint64 {
		t.Helper()
		st, err := ReadStatus(e.mnt, StatusWait)
		if err != nil {
			t.Fatal(err)
		}
		return st.SnapshotSeq
	}
	time.Sleep(time.Second) // a first commit of the new names may run
	before := seq()
	for i := range 30 {
		// Changes keep coming, too few to fill a batch.
		if err := os.WriteFile(filepath.Join(e.mnt, fmt.Sprintf("closed%03d", i)), []byte("closed"), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := seq()
	for _, f := range files {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("snapshots %d -> %d", before, after)
	if after > before+1 {
		t.Fatalf("%d commits in 3 s while %d files were open for writing and the commit delay is an hour", after-before, len(files))
	}
}
