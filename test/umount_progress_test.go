package test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestUmountProgress: while sealfs umount waits for the daemon's drain
// (24 MiB queued behind --bwlimit, uploaded as three 8 MiB packs one at
// a time), it draws a bar that moves on a terminal, prints plain lines
// on a pipe, nothing with --quiet; stdout and the exit code stay as they
// were, and every byte ends committed.
func TestUmountProgress(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	fill := func(round int, mib int) {
		t.Helper()
		for i := range mib / 8 {
			data := make([]byte, 8<<20)
			rand.Read(data)
			if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("r%d-%d", round, i)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	mountArgs := func(limit string) []string {
		return []string{"--commit-delay", "10m", "--transfers", "1", "--bwlimit", limit}
	}
	percent := regexp.MustCompile(`(\d+)%`)

	// On a terminal: a bar whose percentage moves, on stderr only.
	expect(t, c.mount(t, mnt, mountArgs("4M:off")...), 0, "")
	fill(1, 24)
	out, screen, code := sealfsOnPty(t, "umount", mnt)
	seen := map[string]bool{}
	for _, m := range percent.FindAllStringSubmatch(screen, -1) {
		seen[m[1]] = true
	}
	if code != 0 || !strings.Contains(out, "everything is committed as snapshot 1") || !strings.Contains(screen, "umount (") ||
		!strings.Contains(screen, "\r") || !strings.Contains(screen, "|") || !seen["100"] || len(seen) < 3 || strings.Contains(out, "umount (") {
		t.Fatalf("umount on a terminal: exit %d, stdout %q, percentages %v, screen %q", code, out, seen, screen)
	}
	t.Logf("umount on a terminal:\n%s", screen)

	// On a pipe (12 s at 2 MiB/s): a plain line every 10 s and one at the end.
	expect(t, c.mount(t, mnt, mountArgs("2M:off")...), 0, "")
	fill(2, 24)
	r := sealfs(t, nil, "umount", mnt)
	expect(t, r, 0, "umount (0 files queued): 3 files, 24.0 MiB of 24.0 MiB (100%)")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[1], "umount (") || strings.Contains(lines[1], "(100%)") || strings.Contains(r.stderr, "\r") ||
		!strings.Contains(r.stdout, "everything is committed as snapshot 2") {
		t.Fatalf("umount on a pipe: stdout %q, stderr:\n%s", r.stdout, r.stderr)
	}
	t.Logf("umount on a pipe:\n%s", r.stderr)

	// --quiet: no progress, only the line saying what umount does.
	expect(t, c.mount(t, mnt, mountArgs("off")...), 0, "")
	fill(3, 8)
	r = sealfs(t, nil, "--quiet", "umount", mnt)
	expect(t, r, 0, "")
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "unmounting ") || !strings.Contains(r.stdout, "everything is committed as snapshot 3") {
		t.Fatalf("umount --quiet: stdout %q, stderr %q", r.stdout, r.stderr)
	}

	// The reads of the status never kept the mount busy at its unmount.
	if log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log")); strings.Contains(string(log), "mount point is busy") {
		t.Errorf("a daemon found its mount point busy at the unmount:\n%s", log)
	}

	// Everything is on the remote: a restore has every file.
	dst := filepath.Join(t.TempDir(), "dst")
	expect(t, c.run(t, "-q", "restore", c.remote, dst), 0, "")
	names, err := os.ReadDir(dst)
	if err != nil || len(names) != 7 {
		t.Fatalf("restored %d files (%v), want 7", len(names), err)
	}
}
