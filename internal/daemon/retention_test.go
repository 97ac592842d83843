package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/retention"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// waitStatus polls the mount's status until ok holds, and returns it.
func waitStatus(t *testing.T, mnt, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := ReadStatus(mnt, StatusWait)
		if err == nil && ok(*st) {
			return *st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v, %v", what, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunThinsSnapshots: a mount with a retention policy (keep the last
// 2) forgets its own older snapshots after its commits, at most once per
// interval; a forget that fails (its record cannot be stored) is shown in
// the status and tried again after a later commit, and commits go on
// meanwhile. Another client then sees the two newest snapshots only, the
// forget records name the others, and check --read-data is clean.
func TestRunThinsSnapshots(t *testing.T) {
	e := newMountEnv(t)
	cfg := e.config()
	cfg.CommitDelay = 20 * time.Millisecond
	cfg.Retention = retention.Policy{Last: 2}
	cfg.ForgetInterval = 100 * time.Millisecond
	e.remote.FailOn("put", "snapshots/forget/", 1, faulty.FailBefore)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := run(ctx, cfg, nil)
	st := waitStatus(t, e.mnt, "the mount", func(Status) bool { return true })
	if st.Forget == nil || st.Forget.Policy != "keep 2 last snapshots (by host)" || !st.Forget.Last.IsZero() {
		t.Fatalf("forget status before any commit: %+v", st.Forget)
	}
	var last time.Time
	for i := 1; i <= 5; i++ {
		if err := os.WriteFile(filepath.Join(e.mnt, "f"), fmt.Appendf(nil, "version %d", i), 0o644); err != nil {
			t.Fatal(err)
		}
		// The commit, then the forget it started.
		st = waitStatus(t, e.mnt, fmt.Sprintf("commit %d and a forget after it", i), func(s Status) bool {
			return s.SnapshotSeq == uint64(i) && s.Forget.Last.After(last)
		})
		last = st.Forget.Last
		if st.LastError != "" {
			t.Fatalf("commit %d: %s", i, st.LastError)
		}
		f := st.Forget
		switch i {
		case 1, 2:
			if f.Error != "" || f.Total != 0 {
				t.Fatalf("after commit %d, with nothing to forget: %+v", i, f)
			}
		case 3: // the record's Put fails
			if f.Error == "" || f.Total != 0 {
				t.Fatalf("after commit 3, with the record failing: %+v", f)
			}
		case 4: // tried again: 1 and 2 go
			if f.Error != "" || f.Forgotten != 2 || f.Total != 2 {
				t.Fatalf("after commit 4: %+v", f)
			}
		case 5:
			if f.Error != "" || f.Forgotten != 1 || f.Total != 3 {
				t.Fatalf("after commit 5: %+v", f)
			}
		}
		time.Sleep(cfg.ForgetInterval)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkStopped(t, e, 5)
	var seqs []uint64
	snaps, err := e.env.Repo.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		seqs = append(seqs, s.Seq)
	}
	var forgot []uint64
	for _, f := range e.env.Repo.Forgotten() {
		forgot = append(forgot, f.Seq)
	}
	if !slices.Equal(seqs, []uint64{4, 5}) || !slices.Equal(forgot, []uint64{1, 2, 3}) {
		t.Fatalf("another client sees snapshots %v, forgotten %v; want [4 5] and [1 2 3]", seqs, forgot)
	}
	rep, err := e.env.Repo.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v, %v", err, rep.Problems)
	}
}

// TestRunThinningOnlyWithPolicy: without a policy the status has no
// forget part, and nothing is forgotten.
func TestRunThinningOnlyWithPolicy(t *testing.T) {
	e := newMountEnv(t)
	cfg := e.config()
	cfg.CommitDelay = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := run(ctx, cfg, nil)
	waitStatus(t, e.mnt, "the mount", func(Status) bool { return true })
	for i := 1; i <= 3; i++ {
		if err := os.WriteFile(filepath.Join(e.mnt, "f"), fmt.Appendf(nil, "version %d", i), 0o644); err != nil {
			t.Fatal(err)
		}
		if st := waitStatus(t, e.mnt, "a commit", func(s Status) bool { return s.SnapshotSeq == uint64(i) }); st.Forget != nil {
			t.Fatalf("a forget status without a policy: %+v", st.Forget)
		}
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkStopped(t, e, 3)
	snaps, err := e.env.Repo.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snaps); n != 3 || len(e.env.Repo.Forgotten()) != 0 {
		t.Fatalf("%d snapshots, %d forgotten; want 3 and 0", n, len(e.env.Repo.Forgotten()))
	}
}

// TestThinningHungRemoteKeepsMountAnswering: while the forget record of a
// mount's thinning hangs on the remote, the mount still answers: its
// status (which reads the newest snapshot), and reads of stored files.
// Before the fix the record's upload held the repository's lock, which
// both need.
func TestThinningHungRemoteKeepsMountAnswering(t *testing.T) {
	e := newMountEnv(t)
	cfg := e.config()
	cfg.CommitDelay = 20 * time.Millisecond
	cfg.Retention = retention.Policy{Last: 1}
	cfg.ForgetInterval = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := run(ctx, cfg, nil)
	waitStatus(t, e.mnt, "the mount", func(Status) bool { return true })
	if err := os.WriteFile(filepath.Join(e.mnt, "f"), []byte("version 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e.mnt, "commit 1", func(s Status) bool { return s.SnapshotSeq == 1 })
	e.remote.FailOn("put", "snapshots/forget/", 1, faulty.Hang)
	defer e.remote.Release()
	if err := os.WriteFile(filepath.Join(e.mnt, "g"), []byte("version 2"), 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); e.remote.Held() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the forget record was never sent")
		}
	}
	if _, err := ReadStatus(e.mnt, 5*time.Second); err != nil {
		t.Errorf("status while the forget record hangs: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		b, err := os.ReadFile(filepath.Join(e.mnt, "f"))
		if err == nil && string(b) != "version 1" {
			err = fmt.Errorf("read %q", b)
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("reading a stored file while the forget record hangs: %v", err)
		}
		e.remote.Release()
	case <-time.After(10 * time.Second):
		t.Error("reading a stored file hangs while the forget record does")
		e.remote.Release()
		<-got
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
