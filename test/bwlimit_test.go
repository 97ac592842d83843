package test

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// timed runs the real binary and returns how long it took.
func timed(t *testing.T, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	expect(t, sealfs(t, nil, args...), 0, "")
	return time.Since(start)
}

// within fails unless got is want ±20 %.
func within(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if got < want*8/10 || got > want*12/10 {
		t.Errorf("%s took %v, want %v ±20 %%", what, got.Round(10*time.Millisecond), want)
	} else {
		t.Logf("%s took %v (want %v ±20 %%)", what, got.Round(10*time.Millisecond), want)
	}
}

// TestBwlimit: --bwlimit UP:DOWN holds a backup's uploads and a restore's
// downloads to their rates against a local remote (6 MiB of incompressible
// data at 1 MiB/s: 6 s), and limits only its own direction.
func TestBwlimit(t *testing.T) {
	c := initRepo(t)
	src := t.TempDir()
	data := make([]byte, 6<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(src, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := 6 * time.Second
	within(t, "backup of 6 MiB at --bwlimit 1M:off", timed(t, append(c.flags(), "backup", "--bwlimit", "1M:off", src, c.remote)...), want)
	if d := timed(t, append(c.flags(), "backup", "--bwlimit", "off:1M", src, c.remote)...); d > want/2 {
		t.Errorf("backup at --bwlimit off:1M (downloads only) took %v", d)
	}
	restore := func(limit string) time.Duration {
		dst := filepath.Join(t.TempDir(), "dst")
		d := timed(t, "restore", "--bwlimit", limit, "--cache-dir", t.TempDir(), "--code-file", c.codeFile, c.remote, dst)
		if got, err := os.ReadFile(filepath.Join(dst, "big")); err != nil || string(got) != string(data) {
			t.Fatalf("restore at %s: %d bytes, %v", limit, len(got), err)
		}
		return d
	}
	within(t, "restore of 6 MiB at --bwlimit off:1M", restore("off:1M"), want)
	if d := restore("1M:off"); d > want/2 {
		t.Errorf("restore at --bwlimit 1M:off (uploads only) took %v", d)
	}
}

// TestBwlimitStatus: a mount's status shows its --transfers and
// --bwlimit, and the limits in force; a limit written wrong is a usage
// error that shows the syntax.
func TestBwlimitStatus(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--bwlimit", "08:00,1X"), 2, "a rate like 1M, UP:DOWN like 1M:off")
	expect(t, c.mount(t, mnt, "--bwlimit", "2M:off", "--transfers", "3"), 0, "")
	defer c.umount(t, mnt)
	st := mountStatus(t, mnt)
	if st.Transfers != 3 || st.BwLimit != "2M:off" || st.BwLimitUp != 2<<20 || st.BwLimitDown != 0 {
		t.Errorf("status: transfers %d, bwlimit %q, up %d, down %d; want 3, 2M:off, %d, 0", st.Transfers, st.BwLimit, st.BwLimitUp, st.BwLimitDown, 2<<20)
	}
	r := sealfs(t, nil, "status", "--json", mnt)
	expect(t, r, 0, "")
	var js map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		t.Fatal(err)
	}
	if js["transfers"] != 3.0 || js["bwlimit"] != "2M:off" || js["bwlimit_up"] != float64(2<<20) || js["bwlimit_down"] != 0.0 {
		t.Errorf("status --json: %s", r.stdout)
	}
	r = sealfs(t, nil, "status", mnt)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "bwlimit:     2M:off (now: up 2.0 MiB/s, down unlimited)") || !strings.Contains(r.stdout, "transfers:   3") {
		t.Errorf("status:\n%s", r.stdout)
	}
}
