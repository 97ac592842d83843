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
	"github.com/sealfs/sealfs/repo/format"
)

// foldedCLIRepo is a repository made with `sealfs init` that holds n
// snapshots written in process, snapshot i holding /f with "snapshot i":
// enough (n > 2 × 16) for its older ones to be folded into history
// segments (docs/SPEC.md §8.3).
func foldedCLIRepo(t *testing.T, n int) (cliRepo, *repo.Snapshot) {
	t.Helper()
	c := initRepo(t)
	r, _ := c.openInProcess(t)
	ctx := context.Background()
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer r.Unlock(ctx)
	commitNumbered(t, r, 1, n)
	head := r.Latest()
	if head.Folded() < 3 {
		t.Fatalf("snapshot %d folds up to %d only", head.Seq, head.Folded())
	}
	return c, head
}

// commitNumbered commits snapshots from to to, snapshot i holding /f with
// "snapshot i".
func commitNumbered(t *testing.T, r *repo.Repository, from, to int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i <= to; i++ {
		data := []byte(fmt.Sprintf("snapshot %d", i))
		content, size, err := r.SaveFile(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		root, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: []byte("f"), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Commit(ctx, root, repo.CommitInfo{Files: 1, Bytes: size}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCLIHistorySegmentDamage: a history segment deleted, cut short or
// replaced by another segment of the same repository is, for every
// command that reads the old history — snapshots, restore --snapshot of a
// folded one, check, forget — exit 7 naming the segment, never a shorter
// history; the newest snapshot (which needs no segment) still restores.
func TestCLIHistorySegmentDamage(t *testing.T) {
	c, head := foldedCLIRepo(t, 140)
	seg := format.HistoryName(head.History[0].ID)
	path := filepath.Join(c.remote, seg)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, c.run(t, "snapshots", c.remote), 0, "")
	for _, how := range []string{"delete", "truncate", "flip", "other segment"} {
		t.Run(how, func(t *testing.T) {
			defer os.WriteFile(path, orig, 0o644)
			switch how {
			case "delete":
				os.Remove(path)
			case "truncate":
				os.WriteFile(path, orig[:len(orig)/2], 0o644)
			case "flip":
				b := bytes.Clone(orig)
				b[len(b)/2] ^= 1
				os.WriteFile(path, b, 0o644)
			case "other segment":
				if len(head.History) < 2 {
					t.Skip("one segment")
				}
				b, _ := os.ReadFile(filepath.Join(c.remote, format.HistoryName(head.History[1].ID)))
				os.WriteFile(path, b, 0o644)
			}
			fresh := func(args ...string) result {
				return sealfs(t, nil, append([]string{"--cache-dir", t.TempDir(), "--code-file", c.codeFile}, args...)...)
			}
			expect(t, fresh("snapshots", c.remote), 7, seg)
			expect(t, fresh("restore", "--snapshot", "2", c.remote, filepath.Join(t.TempDir(), "d")), 7, seg)
			// check lists its problems on stdout.
			if r := fresh("check", c.remote); r.code != 7 || !strings.Contains(r.stdout, seg) {
				t.Fatalf("check: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			expect(t, fresh("forget", "--keep-last", "3", c.remote), 7, seg)
			dst := filepath.Join(t.TempDir(), "d")
			expect(t, fresh("restore", c.remote, dst), 0, "")
			if got, _ := os.ReadFile(filepath.Join(dst, "f")); string(got) != fmt.Sprintf("snapshot %d", head.Seq) {
				t.Fatalf("the newest snapshot restores %q", got)
			}
		})
	}
	// Intact again: every snapshot restores, a folded one too.
	dst := filepath.Join(t.TempDir(), "d")
	expect(t, c.run(t, "restore", "--snapshot", "2", c.remote, dst), 0, "")
	if got, _ := os.ReadFile(filepath.Join(dst, "f")); string(got) != "snapshot 2" {
		t.Fatalf("folded snapshot 2 restores %q", got)
	}
	expect(t, c.run(t, "check", "--read-data", c.remote), 0, "")
}

// TestMountHistorySegmentDeleted: with a history segment deleted, a mount
// serves the newest tree, and its /.snapshots view fails (EIO) instead of
// showing a history with a gap; once the segment is back, the view lists
// every snapshot, the folded ones with their content.
func TestMountHistorySegmentDeleted(t *testing.T) {
	c, head := foldedCLIRepo(t, 140)
	seg := filepath.Join(c.remote, format.HistoryName(head.History[0].ID))
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(seg)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--read-only"), 0, "")
	defer c.umount(t, mnt)
	if got, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(got) != fmt.Sprintf("snapshot %d", head.Seq) {
		t.Fatalf("the newest tree reads %q, %v", got, err)
	}
	if entries, err := os.ReadDir(filepath.Join(mnt, ".snapshots")); err == nil {
		t.Fatalf("/.snapshots lists %d entries with a history segment missing", len(entries))
	}
	if err := os.WriteFile(seg, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(mnt, ".snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != int(head.Seq)+1 { // and latest
		t.Fatalf("/.snapshots lists %d entries, want %d", len(entries), head.Seq+1)
	}
	found := false
	for _, e := range entries {
		if got, _ := os.ReadFile(filepath.Join(mnt, ".snapshots", e.Name(), "f")); string(got) == "snapshot 2" {
			found = true
		}
	}
	if !found {
		t.Fatal("no folder of /.snapshots holds folded snapshot 2")
	}
}

// TestMountReadOnlyAfterFold: a read-only mount that opened before
// another writer's fold (which deleted the snapshot objects the mount had
// listed) still lists every snapshot in /.snapshots, and the folded ones
// read their content.
func TestMountReadOnlyAfterFold(t *testing.T) {
	c := initRepo(t)
	r, _ := c.openInProcess(t)
	ctx := context.Background()
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer r.Unlock(ctx)
	commitNumbered(t, r, 1, 32)
	if r.Latest().Folded() != 0 {
		t.Fatal("folded already")
	}
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--read-only"), 0, "")
	defer c.umount(t, mnt)
	commitNumbered(t, r, 33, 34)
	if r.Latest().Folded() == 0 {
		t.Fatal("no fold")
	}
	entries, err := os.ReadDir(filepath.Join(mnt, ".snapshots"))
	if err != nil {
		t.Fatalf("/.snapshots of a read-only mount after another writer's fold: %v", err)
	}
	if len(entries) < 33 {
		t.Fatalf("/.snapshots lists %d entries", len(entries))
	}
	found := false
	for _, e := range entries {
		if got, _ := os.ReadFile(filepath.Join(mnt, ".snapshots", e.Name(), "f")); string(got) == "snapshot 2" {
			found = true
		}
	}
	if !found {
		t.Fatal("no folder of /.snapshots holds folded snapshot 2")
	}
}
