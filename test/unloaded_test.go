package test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRemountKeepsUnlistedTree: the mount point's folder of a mount on a
// fresh cache is never listed; stopped, mounted again on that cache (its
// empty journal replayed), chmod-ed, stopped: the newest snapshot must
// still hold every file. It held none (the unloaded root was committed as
// an empty folder), a whole backup gone from its newest snapshot.
func TestRemountKeepsUnlistedTree(t *testing.T) {
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	if err := os.MkdirAll(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "d", "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)
	fresh := c
	fresh.cache = t.TempDir()
	for range 2 {
		expect(t, fresh.mount(t, mnt), 0, "")
		c.umount(t, mnt)
	}
	expect(t, fresh.mount(t, mnt), 0, "")
	if err := os.Chmod(mnt, 0o750); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)
	out := filepath.Join(t.TempDir(), "out")
	expect(t, c.run(t, "restore", c.remote, out), 0, "")
	if b, err := os.ReadFile(filepath.Join(out, "d", "f")); err != nil || string(b) != "kept" {
		t.Fatalf("d/f after the remounts: %q, %v", b, err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("root mode after chmod: %v, %v", fi.Mode(), err)
	}
}
