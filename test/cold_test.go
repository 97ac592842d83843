package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/repo"
)

// TestMountColdKilled SIGKILLs the daemon again and again while it commits
// every change at once (each commit merges index objects and moves the
// older snapshots' trees into cold index objects, docs/SPEC.md §7), then
// checks that the remote passes check --read-data and that every snapshot
// of the history, read by a new client that loads the cold objects only
// when it misses, reads whole: no blob of an old snapshot was lost or
// named by no index.
func TestMountColdKilled(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	written := 0
	for round := range 10 {
		expect(t, c.mount(t, mnt, "--commit-delay", "5ms"), 0, "")
		pid := mountPID(mnt)
		if pid == 0 {
			t.Fatalf("round %d: no daemon pid in the status", round)
		}
		deadline := time.Now().Add(time.Duration(300+round*200) * time.Millisecond)
		for time.Now().Before(deadline) {
			dir := filepath.Join(mnt, fmt.Sprintf("d%d", written%4), fmt.Sprintf("e%d", written%3))
			if os.MkdirAll(dir, 0o755) != nil {
				break
			}
			if os.WriteFile(filepath.Join(dir, "f"), fmt.Appendf(nil, "version %d", written), 0o644) != nil {
				break
			}
			written++
			time.Sleep(20 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		for processAliveTest(pid) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	expect(t, c.mount(t, mnt), 0, "")
	c.umount(t, mnt)
	expect(t, c.run(t, "check", "--read-data", c.remote), 0, "")
	r, _ := c.openInProcess(t)
	ctx := context.Background()
	if len(r.Latest().Cold) == 0 {
		t.Fatalf("after %d commits the newest snapshot names no cold index object", r.Latest().Seq)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) < 10 {
		t.Fatalf("only %d snapshots: the test did not exercise much", len(snaps))
	}
	files := 0
	for _, s := range snaps {
		if err := r.LoadIndexesOf(ctx, s); err != nil {
			t.Fatalf("snapshot %d: %v", s.Seq, err)
		}
		n, err := readSnapshotFiles(ctx, r, s.Tree)
		if err != nil {
			t.Fatalf("snapshot %d: %v", s.Seq, err)
		}
		files += n
	}
	t.Logf("%d files written in 10 killed runs; %d snapshots, %d files read from them", written, len(snaps), files)
}

// readSnapshotFiles reads every file below tree id whole and returns how
// many there were; each holds "version N".
func readSnapshotFiles(ctx context.Context, r *repo.Repository, id [32]byte) (int, error) {
	tree, err := r.LoadTree(ctx, id)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, node := range tree.Nodes {
		switch node.Type {
		case repo.NodeDir:
			m, err := readSnapshotFiles(ctx, r, node.Subtree)
			if err != nil {
				return n, fmt.Errorf("%s/%w", node.Name, err)
			}
			n += m
		case repo.NodeFile:
			var buf bytes.Buffer
			if _, err := r.OpenFile(node).CopyTo(ctx, &buf); err != nil {
				return n, fmt.Errorf("%s: %w", node.Name, err)
			}
			if !bytes.HasPrefix(buf.Bytes(), []byte("version ")) {
				return n, fmt.Errorf("%s holds %q", node.Name, buf.Bytes())
			}
			n++
		}
	}
	return n, nil
}
