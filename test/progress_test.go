package test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// sealfsOnPty runs the binary with its stderr on a real pseudo-terminal
// and stdout on a pipe; it returns stdout, what the terminal showed, and
// the exit code.
func sealfsOnPty(t *testing.T, args ...string) (stdout, screen string, code int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sealfsBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TERM=xterm"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var scr bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&scr, ptmx); close(done) }() //nolint:errcheck // ends with EIO when the child is gone
	err = cmd.Wait()
	<-done
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), scr.String(), code
}

// TestProgress: backup, restore and check --read-data draw a bar on a
// terminal, print plain lines when stderr is not one, nothing with
// --quiet; stdout (and --json) stays free of it.
func TestProgress(t *testing.T) {
	c := initRepo(t)
	src := t.TempDir()
	for i, size := range []int{3 << 20, 1 << 20, 5} {
		if err := os.WriteFile(filepath.Join(src, string(rune('a'+i))), bytes.Repeat([]byte{byte(i + 1)}, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bar := func(screen string) bool {
		return strings.Contains(screen, "100%") && strings.Contains(screen, "|") && strings.Contains(screen, "\r")
	}

	// On a terminal: a bar, on stderr only.
	out, screen, code := sealfsOnPty(t, append(c.flags(), "backup", src, c.remote)...)
	if code != 0 || !strings.Contains(screen, "backup 3 files") || !strings.Contains(out, "snapshot 1") || strings.Contains(out, "backup 3 files") {
		t.Fatalf("backup on a terminal: exit %d, stdout %q, screen %q", code, out, screen)
	}
	out, screen, code = sealfsOnPty(t, append(c.flags(), "restore", "--json", c.remote, filepath.Join(t.TempDir(), "r1"))...)
	var js map[string]any
	if code != 0 || !bar(screen) || !strings.Contains(screen, "restore 3 files") || json.Unmarshal([]byte(out), &js) != nil {
		t.Fatalf("restore --json on a terminal: exit %d, stdout %q, screen %q", code, out, screen)
	}
	t.Logf("restore on a terminal:\n%s", screen)
	out, screen, code = sealfsOnPty(t, append(c.flags(), "check", "--read-data", "--json", c.remote)...)
	if code != 0 || !bar(screen) || !strings.Contains(screen, "packs") || json.Unmarshal([]byte(out), &js) != nil {
		t.Fatalf("check --read-data --json on a terminal: exit %d, stdout %q, screen %q", code, out, screen)
	}
	// --quiet: nothing on the terminal.
	_, screen, code = sealfsOnPty(t, append(c.flags(), "--quiet", "restore", c.remote, filepath.Join(t.TempDir(), "r2"))...)
	if code != 0 || screen != "" {
		t.Fatalf("restore --quiet on a terminal: exit %d, screen %q", code, screen)
	}

	// Not a terminal (a journal): plain lines, the last at the end.
	r := c.run(t, "restore", "--json", c.remote, filepath.Join(t.TempDir(), "r3"))
	expect(t, r, 0, "restore: 3 files, 4.0 MiB of 4.0 MiB (100%)")
	if strings.Contains(r.stderr, "\r") || json.Unmarshal([]byte(r.stdout), &js) != nil {
		t.Fatalf("restore without a terminal: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	t.Logf("restore without a terminal: %s", r.stderr)
	r = c.run(t, "check", "--read-data", c.remote)
	expect(t, r, 0, "check packs: ")
	r = c.run(t, "backup", src, c.remote)
	expect(t, r, 0, "backup: 3 files, 4.0 MiB")
	for _, args := range [][]string{{"backup", src, c.remote}, {"restore", c.remote, filepath.Join(t.TempDir(), "r4")}, {"check", "--read-data", c.remote}} {
		r = c.run(t, append([]string{"-q"}, args...)...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("%s --quiet: exit %d, stderr %q", args[0], r.code, r.stderr)
		}
	}
}
