package test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// getGate is a front to an S3 server that, while armed, holds every GET of
// an object under prefix until it is released or its client gives up: a
// remote that hangs. It counts the requests it held and those whose client
// went away while held (the daemon cancelled its request).
type getGate struct {
	inner  http.Handler
	prefix string

	gateLatch

	held      atomic.Int64
	abandoned atomic.Int64
}

func (g *getGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, list := requestKey(r)
	release := g.armed()
	if release != nil && !list && r.Method == http.MethodGet && strings.HasPrefix(key, g.prefix) {
		g.held.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
			g.abandoned.Add(1)
			return
		}
	}
	g.inner.ServeHTTP(w, r)
}

// gateLatch is the switch of a gate that holds requests: arm makes the
// remote hang, heal lets held and later requests through.
type gateLatch struct {
	mu      sync.Mutex
	release chan struct{} // nil while disarmed
}

// armed returns the channel a request to hold waits on until heal closes
// it, or nil while disarmed.
func (l *gateLatch) armed() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.release
}

func (l *gateLatch) arm() {
	l.mu.Lock()
	l.release = make(chan struct{})
	l.mu.Unlock()
}

func (l *gateLatch) heal() {
	l.mu.Lock()
	if l.release != nil {
		close(l.release)
		l.release = nil
	}
	l.mu.Unlock()
}

// waitFor waits until n reaches want, or fails the test after d.
func waitFor(t *testing.T, what string, n *atomic.Int64, want int64, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); n.Load() < want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: %d, want %d", what, n.Load(), want)
		}
	}
}

// The helper process of TestInterruptedRead: it runs in place of the tests
// when SEALFS_INTERRUPT_HELPER names an operation.
func init() {
	if op := os.Getenv("SEALFS_INTERRUPT_HELPER"); op != "" {
		os.Exit(interruptHelper(op, os.Getenv("SEALFS_INTERRUPT_PATH")))
	}
}

// interruptHelper does op ("pread": a 64 KiB read at 0 with O_DIRECT, so
// that the kernel sends the daemon a READ it waits for rather than
// read-ahead it does not; "stat": a lookup) on path twice, on one thread
// whose id it prints first so that a signal can be sent to that thread
// (a signal for the process may go to any of a Go program's threads). It
// installs a handler for SIGUSR1 and makes the system calls itself, so
// that an interrupted call shows as EINTR rather than being retried. It
// prints each outcome ("EINTR", "ok <sha256>" or "error ..."), and reads a
// line from stdin between the two attempts.
func interruptHelper(op, path string) int {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGUSR1)
	runtime.LockOSThread()
	fmt.Printf("tid %d\n", syscall.Gettid())
	fd := -1
	if op == "pread" {
		var err error
		if fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECT, 0); err != nil {
			fmt.Printf("error open: %v\n", err)
			return 1
		}
	}
	attempt := func() string {
		var err error
		var got []byte
		switch op {
		case "pread":
			buf := make([]byte, 64<<10)
			var n int
			n, err = syscall.Pread(fd, buf, 0)
			got = buf[:max(n, 0)]
		case "stat":
			var st syscall.Stat_t
			err = syscall.Stat(path, &st)
		}
		switch {
		case errors.Is(err, syscall.EINTR):
			return "EINTR"
		case err != nil:
			return "error " + err.Error()
		}
		sum := sha256.Sum256(got)
		return "ok " + hex.EncodeToString(sum[:])
	}
	fmt.Println(attempt())
	bufio.NewReader(os.Stdin).ReadString('\n')
	fmt.Println(attempt())
	return 0
}

// interruptee is a running helper process.
type interruptee struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	tid   int
	done  chan struct{}
}

// startInterruptee starts a helper doing op on path. At cleanup the remote
// heals first: a reader stuck in a read the kernel waits for cannot be
// killed before the daemon answers it.
func startInterruptee(t *testing.T, gate *getGate, op, path string) *interruptee {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SEALFS_INTERRUPT_HELPER="+op, "SEALFS_INTERRUPT_PATH="+path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &interruptee{t: t, cmd: cmd, in: in, lines: make(chan string, 4), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
		cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		gate.heal()
		cmd.Process.Kill()
		<-h.done
	})
	first := h.line("its thread id", 30*time.Second)
	if h.tid, err = strconv.Atoi(strings.TrimPrefix(first, "tid ")); err != nil {
		t.Fatalf("helper said %q", first)
	}
	return h
}

// line returns the helper's next line, failing the test after d.
func (h *interruptee) line(what string, d time.Duration) string {
	h.t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("the helper ended before telling %s", what)
		}
		return l
	case <-time.After(d):
		h.t.Fatalf("no answer from the helper for %s within %v", what, d)
		return ""
	}
}

// TestInterruptedRead: a read or a lookup blocked on a remote that hangs
// is interrupted by a signal to the reader: the kernel sends INTERRUPT,
// the daemon cancels its remote request and answers EINTR, and the reader
// is not stuck until the remote gives up. The next read on the same open
// file, once the remote answers again, returns the right bytes: nothing
// half fetched was kept. A reader killed outright is let go at once too.
func TestInterruptedRead(t *testing.T) {
	needRoot(t)
	gate := &getGate{inner: gofakes3.New(s3mem.New()).Server(), prefix: "repo/data/"}
	s3 := newFaultyS3Over(t, gate)
	c := s3.initRepo(t, "bucket")
	mnt := mountpoint(t)
	t.Cleanup(gate.heal) // before the unmount at cleanup

	files := map[string][]byte{}
	for _, name := range []string{"f", "killed", "dir/g"} {
		files[name] = make([]byte, 100<<10) // one chunk each
		rand.Read(files[name])
	}
	expect(t, c.mount(t, mnt), 0, "")
	if err := os.Mkdir(filepath.Join(mnt, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(mnt, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r := c.umount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("umount said %q", r.stdout)
	}
	// A new client, with nothing cached: every chunk comes from the remote.
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	if _, err := os.Stat(filepath.Join(mnt, "dir")); err != nil {
		t.Fatal(err)
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return "ok " + hex.EncodeToString(s[:]) }

	interrupted := int64(0)
	interrupt := func(op, name string, sig syscall.Signal) *interruptee {
		t.Helper()
		h := startInterruptee(t, gate, op, filepath.Join(mnt, name))
		gate.arm()
		waitFor(t, op+" "+name+": requests held by the hanging remote", &gate.held, gate.held.Load()+1, 30*time.Second)
		if sig == syscall.SIGKILL {
			h.cmd.Process.Kill()
		} else if err := syscall.Tgkill(h.cmd.Process.Pid, h.tid, sig); err != nil {
			t.Fatal(err)
		}
		interrupted++
		return h
	}

	// A read: EINTR, then the right bytes from the same descriptor.
	h := interrupt("pread", "f", syscall.SIGUSR1)
	if got := h.line("the interrupted read", 30*time.Second); got != "EINTR" {
		t.Fatalf("an interrupted read returned %q, want EINTR", got)
	}
	waitFor(t, "remote requests the daemon cancelled", &gate.abandoned, interrupted, 30*time.Second)
	gate.heal()
	fmt.Fprintln(h.in, "again")
	if got, want := h.line("the read after the remote healed", 30*time.Second), sum(files["f"][:64<<10]); got != want {
		t.Fatalf("the read after the interrupted one returned %q, want %q", got, want)
	}

	// A lookup that loads a directory from the remote: likewise.
	h = interrupt("stat", "dir/g", syscall.SIGUSR1)
	if got := h.line("the interrupted lookup", 30*time.Second); got != "EINTR" {
		t.Fatalf("an interrupted lookup returned %q, want EINTR", got)
	}
	waitFor(t, "remote requests the daemon cancelled", &gate.abandoned, interrupted, 30*time.Second)
	gate.heal()
	fmt.Fprintln(h.in, "again")
	if got := h.line("the lookup after the remote healed", 30*time.Second); !strings.HasPrefix(got, "ok ") {
		t.Fatalf("the lookup after the interrupted one returned %q", got)
	}

	// A reader killed while it waits: the kernel waits for the daemon's
	// answer before it lets the process go.
	h = interrupt("pread", "killed", syscall.SIGKILL)
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a killed reader is still stuck in its read while the remote hangs")
	}
	waitFor(t, "remote requests the daemon cancelled", &gate.abandoned, interrupted, 30*time.Second)
	gate.heal()

	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s after the interrupts: %v (%d bytes, want %d)", name, err, len(got), len(data))
		}
	}
	t.Logf("%d requests interrupted; the remote held %d requests, %d of them cancelled by the daemon", interrupted, gate.held.Load(), gate.abandoned.Load())
	fresh.umount(t, mnt)
}
