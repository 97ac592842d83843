package worktree_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestUnloadHeldFolderRebased (review): a folder held (the kernel's node of
// a shell's working directory) whose folder was unloaded, and whose
// content another writer changed meanwhile, is still that folder once a
// rebase brought the change in: a file made in it lands in the tree, and
// its files read as the other writer left them; as without unloading.
func TestUnloadHeldFolderRebased(t *testing.T) {
	for _, max := range []int{-1, 4} {
		t.Run(fmt.Sprintf("max%d", max), func(t *testing.T) {
			env := testutil.NewRepo(t, repo.InitOptions{})
			tr, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: t.TempDir(), MaxLoaded: max})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			d := mkdir(t, tr, mkdir(t, tr, tr.Root(), "p"), "d")
			writeFile(t, tr, d, "f", []byte("ours"), true)
			// Held from here on, as the kernel holds a working directory.
			held := lookup(t, tr, "p", "d")
			if held != d {
				t.Fatal("not the same inode")
			}
			for i := range 8 {
				o := mkdir(t, tr, tr.Root(), fmt.Sprintf("o%d", i))
				for j := range 3 {
					writeFile(t, tr, o, fmt.Sprintf("f%d", j), []byte("x"), true)
				}
			}
			commitAndLeave(t, env.Repo, tr)
			if max > 0 && (tr.LoadedChildren(lookup(t, tr, "p")) || tr.LoadedChildren(held)) {
				t.Fatal("p and p/d still loaded: the test unloads nothing")
			}

			r2, other := otherWriter(t, env)
			overwrite(t, other, "theirs", true, "p", "d", "f")
			commitAndLeave(t, r2, other)
			other.Close()

			comeBackAndCommit(t, env.Repo, tr)
			if _, _, err := tr.Create(t.Context(), held, "new", worktree.NewEntry{Type: repo.NodeFile, Mode: 0o644}); err != nil {
				t.Fatalf("create in the held folder: %v", err)
			}
			in, _, err := tr.Lookup(t.Context(), held, "f")
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Attr(in).Size; got != uint64(len("theirs")) {
				t.Errorf("p/d/f through the held folder: size %d, want %d (theirs)", got, len("theirs"))
			}
			if got := string(readFile(t, tr, "p", "d", "f")); got != "theirs" {
				t.Errorf("p/d/f = %q, want theirs", got)
			}
			if _, err := tr.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			lookup(t, tr, "p", "d", "new")
		})
	}
}
