package test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMountRemoteShape: --remote-shape reaches the daemon as given (its log
// names the shape) and a mount through the shaped link reads back what one
// wrote; a shape written wrong is a usage error that shows the syntax.
func TestMountRemoteShape(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	bad := c.mount(t, mnt, "--remote-shape", "latency=2ms,up=100")
	expect(t, bad, 2, "a shape is comma-separated key=value pairs")

	const shape = "latency=2ms,up=800Mbit,down=1Gbit"
	data := make([]byte, 3<<20)
	rand.Read(data)
	expect(t, c.mount(t, mnt, "--remote-shape", shape), 0, "")
	if err := os.WriteFile(filepath.Join(mnt, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)
	log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
	if !strings.Contains(string(log), `shape="`+shape+`"`) {
		t.Fatalf("the daemon's log does not name the shape %s:\n%s", shape, log)
	}

	c.cache = t.TempDir() // nothing local: every byte comes through the link
	expect(t, c.mount(t, mnt, "--remote-shape", shape), 0, "")
	got, err := os.ReadFile(filepath.Join(mnt, "f"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back through the shaped link: %d bytes, %v; want the %d written", len(got), err, len(data))
	}
	c.umount(t, mnt)
}
