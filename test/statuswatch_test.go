package test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestStatusWatch: status shows what the mount sent, the upload and the
// cache; status --watch prints a line per interval on a pipe (the queue,
// then what was sent once it is committed) and ends with exit 1 when the
// mount goes away; on a terminal it redraws the whole status until Ctrl-C
// (exit 0).
func TestStatusWatch(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "2s"), 0, "")
	expect(t, sealfs(t, nil, "status", "--watch", "--json", mnt), 2, "--watch is for people")
	expect(t, sealfs(t, nil, "status", "--watch", "--interval", "1ms", mnt), 2, "too short")

	watch := exec.Command(sealfsBin, "status", "--watch", "--interval", "200ms", mnt)
	out, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	watch.Stderr = &stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	b := make([]byte, 2<<20)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(mnt, "f"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	lineRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ snapshot \d+; queued (\d+) files, [^;]+; sent (\d+) files, [^;]+; uploaded [^;]+ at [^;]+/s(, ETA \S+)?; \d+ commits`)
	var got []string
	sawQueued, sawSent := false, false
	deadline := time.After(30 * time.Second)
	for !sawSent {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("status --watch ended: %v; lines %q; stderr %s", watch.Wait(), got, stderr.String())
			}
			got = append(got, l)
			m := lineRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("line %q is not a status line", l)
			}
			sawQueued = sawQueued || m[1] == "1"
			sawSent = m[2] == "1" && strings.Contains(l, "sent 1 files, 2.0 MiB") && m[1] == "0"
		case <-deadline:
			t.Fatalf("no line shows the file sent: %q", got)
		}
	}
	if !sawQueued {
		t.Errorf("no line shows the file queued: %q", got)
	}

	// The text status.
	r := sealfs(t, nil, "status", mnt)
	expect(t, r, 0, "")
	for _, want := range []string{"sent:        1 files, 2.0 MiB, since the mount (", "upload:      ", "commits:     1 since the mount", "cache:       "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}

	// On a terminal: redrawn, until Ctrl-C.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	onTTY := exec.Command(sealfsBin, "status", "--watch", "--interval", "200ms", mnt)
	onTTY.Stdout, onTTY.Stderr = tty, tty
	if err := onTTY.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&screen, ptmx); close(copied) }() //nolint:errcheck // ends with EIO when the child is gone
	time.Sleep(1500 * time.Millisecond)
	onTTY.Process.Signal(syscall.SIGINT)
	if err := onTTY.Wait(); err != nil {
		t.Errorf("status --watch on a terminal after Ctrl-C: %v", err)
	}
	<-copied
	if n := strings.Count(screen.String(), "\x1b[H\x1b[2J"); n < 4 || strings.Count(screen.String(), "sent:        1 files") != n {
		t.Errorf("%d redraws on the terminal in 1.5 s at 200ms:\n%q", n, screen.String())
	}

	// The mount goes away: the watch on the pipe ends, exit 1.
	expect(t, c.umount(t, mnt), 0, "")
	for range lines {
	}
	err = watch.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "no longer a live sealfs mount") {
		t.Errorf("status --watch after the unmount: %v, %s", err, stderr.String())
	}
}
