package test

import (
	"os"
	"path/filepath"
	"testing"
)

// restoredContent restores the newest snapshot of c on a fresh cache and
// returns the content of name in it ("" with ok false when it holds none).
func restoredContent(t *testing.T, c cliRepo, name string) (content string, ok bool) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "d")
	expect(t, sealfs(t, nil, "restore", "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst), 0, "")
	b, err := os.ReadFile(filepath.Join(dst, name))
	return string(b), err == nil
}

// TestSyncRemoteCommitsOpenFile: with --sync=remote, fsync returns only
// once a snapshot on the remote holds what the file held, also while the
// file is still open for writing (a program fsyncs before it closes):
// before, the commit left out files open for writing, so fsync returned 0
// with the data only queued, and a restore elsewhere did not have it. And
// a directory's fsync right after a close holds the file closed, whose
// release the kernel sends later.
func TestSyncRemoteCommitsOpenFile(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--sync=remote", "--commit-delay", "1h"), 0, "")
	defer c.umount(t, mnt)
	path := filepath.Join(mnt, "doc")

	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("version 1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, ok := restoredContent(t, c, "doc"); !ok || got != "version 1" {
		t.Fatalf("after fsync of a new file still open: the remote's newest snapshot holds doc = %q (present %v), want \"version 1\"", got, ok)
	}

	// A new version written through the same descriptor.
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("version 2, longer"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, _ := restoredContent(t, c, "doc"); got != "version 2, longer" {
		t.Fatalf("after fsync of a changed file still open: the remote holds doc = %q, want the new version", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// Written, closed, then the folder fsynced at once (write-temp,
	// rename, fsync-the-directory).
	for i := range 20 {
		want := "version 3." + string(rune('a'+i))
		if err := os.WriteFile(filepath.Join(mnt, "tmp"), []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(mnt, "tmp"), path); err != nil {
			t.Fatal(err)
		}
		d, err := os.Open(mnt)
		if err != nil {
			t.Fatal(err)
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			if got, _ := restoredContent(t, c, "doc"); got != want {
				t.Fatalf("round %d: after the folder's fsync the remote holds doc = %q, want %q", i, got, want)
			}
		}
	}
}
