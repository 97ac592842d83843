package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunCommitsBatches: files keep coming with no quiet period (the
// commit delay is an hour), and a commit starts once commitBatch of them
// wait in the staging area, not a minute after the first (each holds
// memory until a commit stores it); the rest goes up at the stop.
func TestRunCommitsBatches(t *testing.T) {
	e := newMountEnv(t)
	defer func(n int) { commitBatch = n }(commitBatch)
	commitBatch = 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := newRecorder(0)
	done := run(ctx, e.config(), rec)
	rec.waitFor(t, "READY", func(m string) bool { return strings.HasPrefix(m, "READY=1") })
	for i := range 60 {
		if err := os.WriteFile(filepath.Join(e.mnt, fmt.Sprintf("f%03d", i)), []byte("a small file"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var seq uint64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := ReadStatus(e.mnt, StatusWait)
		if err == nil && st.SnapshotSeq >= 1 && st.PendingFiles < 50 {
			seq = st.SnapshotSeq
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60 files staged with a batch of 50, and no commit within 30 s: %+v, %v", st, err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.mnt, "last"), []byte("after the batch"), 0o644); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var final Status
	b, err := os.ReadFile(filepath.Join(e.repo.StateDir(), ExitStatusFile))
	if err != nil || json.Unmarshal(b, &final) != nil {
		t.Fatalf("exit status: %v %s", err, b)
	}
	if final.SnapshotSeq <= seq {
		t.Fatalf("the stop committed nothing: snapshot %d, %d before", final.SnapshotSeq, seq)
	}
	checkStopped(t, e, final.SnapshotSeq)
}
