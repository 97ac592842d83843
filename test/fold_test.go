package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/repo"
)

// TestFoldedHistoryThroughBinary: a history long enough to be folded into
// history segments (SPEC §8.3: 150 commits, made in process) is listed,
// checked with --read-data, restored (a folded snapshot and the newest),
// browsed in a mount's snapshots view, and a folded snapshot forgotten,
// through the real binary; snapshots/ holds about 128 objects.
func TestFoldedHistoryThroughBinary(t *testing.T) {
	const n = 150
	c := initRepo(t)
	ctx := context.Background()
	r, _ := c.openInProcess(t)
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		data := fmt.Appendf(nil, "version %d", i)
		content, size, err := r.SaveFile(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		root, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: []byte("doc"), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Commit(ctx, root, repo.CommitInfo{Host: "fold", Files: 1, Bytes: size}); err != nil {
			t.Fatal(err)
		}
	}
	if f := r.Latest().Folded(); f == 0 {
		t.Fatal("150 commits folded nothing")
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if got := snapshotObjects(t, c); got > 130 {
		t.Fatalf("%d snapshot objects", got)
	}
	seqs := strings.Fields(snapshotSeqs(t, c))
	if len(seqs) != n || seqs[0] != "1" || seqs[n-1] != fmt.Sprint(n) {
		t.Fatalf("sealfs snapshots lists %d: %v", len(seqs), seqs)
	}
	checkClean(t, c)
	for _, seq := range []int{3, n} {
		dst := filepath.Join(t.TempDir(), "dst")
		expect(t, sealfs(t, nil, "restore", "--snapshot", fmt.Sprint(seq), "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst), 0, "")
		if b, err := os.ReadFile(filepath.Join(dst, "doc")); err != nil || string(b) != fmt.Sprintf("version %d", seq) {
			t.Fatalf("restore of snapshot %d: %q, %v", seq, b, err)
		}
	}
	expect(t, c.run(t, "forget", c.remote, "3"), 0, "")
	if seqs := strings.Fields(snapshotSeqs(t, c)); len(seqs) != n-1 || seqs[2] != "4" {
		t.Fatalf("after forgetting 3: %v", seqs)
	}
	checkClean(t, c)

	needRoot(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--read-only"), 0, "")
	defer c.umount(t, mnt)
	folders := snapshotFolders(t, filepath.Join(mnt, ".snapshots"))
	if len(folders) != n-1 {
		t.Fatalf("the snapshots view shows %d folders, want %d", len(folders), n-1)
	}
	b, err := os.ReadFile(filepath.Join(mnt, ".snapshots", folders[0], "doc"))
	if err != nil || string(b) != "version 1" {
		t.Fatalf("the oldest snapshot's doc: %q, %v", b, err)
	}
}
