package fusefs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestPruneUnloaded: with a bound of 300 loaded entries, a walk of 2,000
// files written through the mount and committed leaves the kernel
// holding a few hundred of them, not all (the folders unloaded are
// pruned from the kernel's cache); every file reads back; a file and a
// folder held open keep their inode numbers through it. (A tree with hard
// links stays loaded: worktree's TestUnloadNotWithLinks.)
func TestPruneUnloaded(t *testing.T) {
	m := mountBounded(t, 300)
	tr, fs, dir := m.tr, m.fs, m.dir
	const folders, files = 20, 100
	for d := range folders {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range files {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), fmt.Appendf(nil, "d%02d/f%03d", d, f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	held, err := os.Open(filepath.Join(dir, "d01/f001"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldDir, err := os.Open(filepath.Join(dir, "d02"))
	if err != nil {
		t.Fatal(err)
	}
	defer heldDir.Close()
	ino := func(p string) uint64 {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	fino := func(f *os.File) uint64 {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	heldIno, heldDirIno := fino(held), fino(heldDir)
	if _, err := tr.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := fs.KernelNodes()
	for round := range 2 {
		// The first reads set access times (relatime): the folders are
		// saved again before they can be unloaded.
		if _, err := tr.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		for d := range folders {
			sub := filepath.Join(dir, fmt.Sprintf("d%02d", d))
			entries, err := os.ReadDir(sub)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				p := filepath.Join(sub, e.Name())
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("d%02d/%s", d, e.Name()); string(b) != want {
					t.Fatalf("round %d: %s reads %q", round, p, b)
				}
			}
		}
	}
	var after int
	for range 300 { // the kernel is told on a goroutine: up to 30 s on a loaded machine
		if after = fs.KernelNodes(); after < 800 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kernel nodes: %d after the writes, %d after two walks", before, after)
	if after >= 800 {
		t.Errorf("the kernel holds %d nodes of %d files after the walks with a bound of 300 loaded entries", after, folders*files)
	}
	if got := fino(held); got != heldIno || ino(filepath.Join(dir, "d01/f001")) != heldIno {
		t.Errorf("the open file's inode number changed: %d, then %d", heldIno, got)
	}
	if ino(filepath.Join(dir, "d02")) != heldDirIno {
		t.Error("the open folder's inode number changed")
	}
	// A change through the held descriptor after its folder was
	// unloaded lands.
	if _, err := held.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	if err := held.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "d01/f001")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("d01/f001 after a chmod through its descriptor: %v, %v", st.Mode(), err)
	}
}
