package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo"
)

// faultAction is what a fault rule does to the request it matches.
type faultAction int

const (
	// failBefore answers 503 without passing the request on: nothing lands.
	failBefore faultAction = iota
	// failAfter passes the request on, then answers 503: it landed, but
	// the client is told it failed.
	failAfter
	// hang holds the request past the client's time-out, then passes it
	// on: it lands after the client gave up (and maybe after its retry).
	hang
	// kill passes the request on, then SIGKILLs the sealfs process that
	// sent it before it hears back.
	kill
)

var faultActions = []faultAction{failBefore, failAfter, hang, kill}

func (a faultAction) String() string {
	return [...]string{"fail-before", "landed-but-failed", "hang", "kill-after"}[a]
}

// faultRule picks a request: the nth (from 1) whose method and object key
// match. For a list request the key is the listed prefix.
type faultRule struct {
	method string // GET, PUT, HEAD, DELETE
	prefix string // object key prefix inside the bucket, e.g. "repo/data/"
	list   bool   // a listing (GET on the bucket with a prefix) rather than an object request
	nth    int
	action faultAction
}

func (r faultRule) String() string {
	op := r.method
	if r.list {
		op = "LIST"
	}
	return fmt.Sprintf("%s %s #%d %s", op, r.prefix, r.nth, r.action)
}

// faultProgram applies one faultRule once, for a faultyS3 server.
type faultProgram struct {
	rule    faultRule
	hangFor time.Duration // how long a hang holds the request

	mu      sync.Mutex
	seen    int      // requests that matched the rule so far
	fired   bool     // the fault was injected
	killed  int      // the pid killed, if any
	trace   []string // every request, when tracing
	tracing bool
	err     error // why a fault could not be injected
}

// requestKey returns the object key of a path-style S3 request and whether
// it is a listing.
func requestKey(r *http.Request) (key string, list bool) {
	_, key, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if key == "" && r.Method == http.MethodGet && (r.URL.Query().Has("prefix") || r.URL.Query().Has("list-type")) {
		return r.URL.Query().Get("prefix"), true
	}
	return key, false
}

// intercept injects the fault when r is the chosen request, and reports
// whether it answered r.
func (p *faultProgram) intercept(w http.ResponseWriter, r *http.Request, inner http.Handler) bool {
	key, list := requestKey(r)
	p.mu.Lock()
	if p.tracing {
		op := r.Method
		if list {
			op = "LIST"
		}
		p.trace = append(p.trace, fmt.Sprintf("%s %s %s", time.Now().Format("15:04:05.000"), op, key))
	}
	match := !p.fired && list == p.rule.list && r.Method == p.rule.method && strings.HasPrefix(key, p.rule.prefix)
	if match {
		p.seen++
		match = p.seen == p.rule.nth
		p.fired = match
	}
	p.mu.Unlock()
	if !match {
		return false
	}
	switch p.rule.action {
	case failBefore:
		w.WriteHeader(http.StatusServiceUnavailable)
	case failAfter:
		inner.ServeHTTP(discardResponse{}, r)
		w.WriteHeader(http.StatusServiceUnavailable)
	case hang:
		// Take the whole body first, so that it lands even though the
		// client has hung up by the time it is passed on.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			p.fail(fmt.Errorf("reading the body of a request to hold: %w", err))
			return true
		}
		time.Sleep(p.hangFor)
		r2 := r.Clone(context.Background())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(discardResponse{}, r2)
	case kill:
		inner.ServeHTTP(discardResponse{}, r)
		pid, err := requestPID(r.RemoteAddr)
		if err != nil {
			p.fail(err)
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		p.mu.Lock()
		p.killed = pid
		p.mu.Unlock()
		syscall.Kill(pid, syscall.SIGKILL)
		for processAliveTest(pid) {
			time.Sleep(5 * time.Millisecond)
		}
		// The connection died with the process; nothing to answer.
	}
	return true
}

// check fails the test when the fault was not injected, and counts it.
func (p *faultProgram) check(t *testing.T, tally *faultCounts) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tracing {
		t.Logf("requests under %s:\n%s", p.rule, strings.Join(p.trace, "\n"))
	}
	if p.err != nil {
		t.Fatalf("%s could not be injected: %v", p.rule, p.err)
	}
	if !p.fired {
		t.Fatalf("no request matched %s (%d matched the operation): the matrix does not exercise this cell", p.rule, p.seen)
	}
	tally.faults.Add(1)
	if p.killed != 0 {
		tally.kills.Add(1)
	}
}

func (p *faultProgram) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// discardResponse swallows the answer of a request passed on to the
// server whose client gets another answer (or none).
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}

// requestPID finds the process on this machine that holds the client end
// of a loopback connection to the server, through /proc/net/tcp and the
// processes' file descriptors. It only answers with a sealfs process of
// this test (running sealfsBin), so that nothing else is ever killed.
func requestPID(remoteAddr string) (int, error) {
	host, portStr, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return 0, err
	}
	port, _ := strconv.Atoi(portStr)
	inode := ""
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(table)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			_, lport, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(lport, 16, 16); err == nil && int(p) == port && f[9] != "0" {
				inode = f[9]
			}
		}
	}
	if inode == "" {
		return 0, fmt.Errorf("no socket for the client %s (%s)", remoteAddr, host)
	}
	want := "socket:[" + inode + "]"
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, proc := range procs {
		fds, _ := filepath.Glob(proc + "/fd/*")
		for _, fd := range fds {
			if l, _ := os.Readlink(fd); l == want {
				pid, _ := strconv.Atoi(filepath.Base(proc))
				if exe, _ := os.Readlink(proc + "/exe"); exe != sealfsBin {
					return 0, fmt.Errorf("the client %s is pid %d (%s), not sealfs", remoteAddr, pid, exe)
				}
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process holds the client socket %s", remoteAddr)
}

// faultTimeout is the client's time-out in the fault matrix (rclone's
// "timeout": for the response headers and between data); a hang holds a
// request twice as long.
const faultTimeout = 2 * time.Second

// faultRepo initialises a repository on the server with 1 MiB packs and
// small chunks, so that a few MiB give commits of several packs, and a
// remote spec whose requests time out after faultTimeout.
func (f *faultyS3) faultRepo(t *testing.T, bucket string) cliRepo {
	t.Helper()
	dir := t.TempDir()
	spec := strings.Replace(f.remote(bucket), "force_path_style=true,", fmt.Sprintf("force_path_style=true,override.timeout=%s,", faultTimeout), 1)
	c := cliRepo{remote: spec, cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	ctx := context.Background()
	rem, err := rcloneremote.Open(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	_, code, err := repo.Init(ctx, rem, repo.InitOptions{
		Options:  repo.Options{CacheDir: t.TempDir()},
		PackSize: 1 << 20, Chunking: chunker.Params{Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.codeFile, []byte(code.Reveal()), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// fileSet is the files a test closed successfully through a mount, with
// their content.
type fileSet map[string][]byte

// write writes files named prefix-i of the given sizes (random content)
// through the mount, each closed after an fsync, and remembers those whose
// write, fsync and close all returned success. It stops at the first
// failure (the daemon may be dead) and returns it.
func (fs fileSet) write(mnt, prefix string, rng *rand.Rand, sizes ...int) error {
	for i, n := range sizes {
		name := fmt.Sprintf("%s-%d", prefix, i)
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		if err := writeSynced(filepath.Join(mnt, name), data); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fs[name] = data
	}
	return nil
}

// verify reads every file back through the mount and counts the files read
// and the wrong bytes; a missing or unreadable file is an error when
// strict (otherwise it is only not counted).
func (fs fileSet) verify(t *testing.T, mnt string, strict bool) (files int, wrong int64) {
	t.Helper()
	names := make([]string, 0, len(fs))
	for name := range fs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := fs[name]
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil {
			if strict {
				t.Errorf("%s, closed successfully, does not read back: %v", name, err)
			}
			continue
		}
		files++
		if bytes.Equal(got, want) {
			continue
		}
		n := int64(len(got) - len(want))
		if n < 0 {
			n = -n
		}
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				n++
			}
		}
		if n > 0 {
			t.Errorf("%s reads back with %d wrong bytes (%d bytes, want %d)", name, n, len(got), len(want))
		}
		wrong += n
	}
	return files, wrong
}

// mountPID returns the pid of the daemon serving mnt, or 0.
func mountPID(mnt string) int {
	st, err := readStatus(mnt)
	if err != nil {
		return 0
	}
	return st.PID
}

// waitCommitted waits until the mount has nothing queued, its daemon died,
// or the deadline passed.
func waitCommitted(mnt string, deadline time.Duration) {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		st, err := readStatus(mnt)
		if err != nil || (st.PendingFiles == 0 && !st.Committing && st.LastError == "") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopMount leaves mnt unmounted and its daemon gone, whatever state the
// mount is in: a live daemon is unmounted with sealfs umount (which drains
// the queue) and waited for; a dead mount is detached.
// It returns what sealfs umount said, if it ran.
func stopMount(t *testing.T, mnt string) (r result) {
	t.Helper()
	if !isMounted(mnt) {
		return r
	}
	if pid := mountPID(mnt); pid != 0 {
		r = sealfs(t, nil, "umount", mnt)
		// umount returns once the daemon has exited; when it failed
		// instead, give the daemon a minute to let go of the lease.
		for end := time.Now().Add(time.Minute); processAliveTest(pid) && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if isMounted(mnt) {
		if out, err := exec.Command("fusermount3", "-uz", mnt).CombinedOutput(); err != nil {
			t.Logf("fusermount3 -uz %s: %v %s", mnt, err, out)
		}
	}
	if isMounted(mnt) {
		t.Fatalf("%s is still mounted", mnt)
	}
	return r
}

// checkSnapshots opens the repository as a new client and checks that its
// snapshots form one chain with sequence numbers 1, 2, 3... and that every
// snapshot object on the remote is one of them. It returns their number.
func checkSnapshots(t *testing.T, c cliRepo) int {
	t.Helper()
	ctx := context.Background()
	r, rem := c.openInProcess(t)
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range snaps {
		if s.Seq != uint64(i+1) {
			t.Errorf("snapshot %d of %d has sequence number %d", i+1, len(snaps), s.Seq)
		}
		if i > 0 && s.Parent != snaps[i-1].ID {
			t.Errorf("snapshot %d does not follow snapshot %d", s.Seq, snaps[i-1].Seq)
		}
	}
	objects := 0
	if err := rem.List(ctx, "snapshots", func(remote.Entry) error { objects++; return nil }); err != nil {
		t.Fatal(err)
	}
	// The snapshots up to the newest one's folded seq are in history
	// segments (SPEC §8.3); every other one is an object of its own.
	var folded uint64
	if len(snaps) > 0 {
		folded = snaps[len(snaps)-1].Folded()
	}
	unfolded := 0
	for _, s := range snaps {
		if s.Seq > folded {
			unfolded++
		}
	}
	if objects != unfolded {
		t.Errorf("%d snapshot objects on the remote, but the chain has %d snapshots above the %d folded ones", objects, unfolded, folded)
	}
	return len(snaps)
}

// faultCounts is the tally of a matrix run.
type faultCounts struct {
	cases, faults, kills, files atomic.Int64
	wrong                       atomic.Int64
}

// faultOp is one remote operation of a mount, commit, upload, unmount or
// read.
type faultOp struct {
	name   string
	method string
	prefix string
	list   bool
	nth    []int // which matching requests to fault
	writes bool  // a write: "landed but failed" means something
	read   bool  // faulted while a fresh mount reads the files back, not while they are written
	// renewal: faulted when the writer lease is first renewed, a third of
	// renewalTTL into a mount that runs with --lease-ttl renewalTTL.
	renewal bool
}

// faultOps are the operations faulted, with which occurrences. nth counts
// from the faulted mount on, retries included: the first config get is
// the mount command's own, the second its daemon's; the first lease stat,
// lease get and snapshot list are the mount's; the first pack, index and
// snapshot puts are the first commit's, the last ones (pack put 3, index
// and snapshot put 2 when nothing failed before) the commit at unmount.
var faultOps = []faultOp{
	{name: "pack put", method: "PUT", prefix: "repo/data/", nth: []int{1, 2, 3}, writes: true},
	{name: "pack stat", method: "HEAD", prefix: "repo/data/", nth: []int{1}},
	{name: "index put", method: "PUT", prefix: "repo/index/", nth: []int{1, 2}, writes: true},
	{name: "snapshot put", method: "PUT", prefix: "repo/snapshots/", nth: []int{1, 2}, writes: true},
	{name: "lease put", method: "PUT", prefix: "repo/lease", nth: []int{1}, writes: true},
	{name: "lease get", method: "GET", prefix: "repo/lease", nth: []int{1, 2}},
	{name: "lease stat", method: "HEAD", prefix: "repo/lease", nth: []int{1}},
	{name: "lease delete", method: "DELETE", prefix: "repo/lease", nth: []int{1}, writes: true},
	{name: "config get", method: "GET", prefix: "repo/config", nth: []int{1, 2}},
	{name: "key get", method: "GET", prefix: "repo/keys/", nth: []int{1}},
	{name: "key list", method: "GET", prefix: "repo/keys", list: true, nth: []int{1}},
	{name: "snapshot get", method: "GET", prefix: "repo/snapshots/", nth: []int{1}},
	{name: "snapshot list", method: "GET", prefix: "repo/snapshots", list: true, nth: []int{1, 2}},
	{name: "index get", method: "GET", prefix: "repo/index/", nth: []int{1}},
	{name: "pack get", method: "GET", prefix: "repo/data/", nth: []int{1, 3}, read: true},
	{name: "renewal lease stat", method: "HEAD", prefix: "repo/lease", nth: []int{1}, renewal: true},
	{name: "renewal lease get", method: "GET", prefix: "repo/lease", nth: []int{1}, renewal: true},
	{name: "renewal lease put", method: "PUT", prefix: "repo/lease", nth: []int{1}, writes: true, renewal: true},
}

// renewalTTL is the writer lease's lifetime in the renewal cells: short, so
// that renewals come every few seconds, and long enough that a renewal
// that hangs past the client's time-out still leaves the lease valid.
const renewalTTL = 12 * time.Second

// faultCase is one cell of the matrix.
type faultCase struct {
	op   faultOp
	rule faultRule
}

func faultCases() []faultCase {
	var cases []faultCase
	for _, op := range faultOps {
		for _, nth := range op.nth {
			for _, a := range faultActions {
				if a == failAfter && !op.writes {
					continue // for a read, landing changes nothing: same as fail-before
				}
				cases = append(cases, faultCase{op, faultRule{op.method, op.prefix, op.list, nth, a}})
			}
		}
	}
	return cases
}

// runFaultCase runs the workload of one cell: a repository with one
// snapshot; a mount, files written and committed, more files, an unmount,
// with the fault armed throughout; then recovery on the same cache (the
// journal replays), a clean unmount, and the checks on a fresh cache.
func runFaultCase(t *testing.T, fc faultCase, seed uint64, tally *faultCounts) {
	s3 := newFaultyS3(t)
	c := s3.faultRepo(t, "bucket")
	mnt := mountpoint(t)
	rng := rand.New(rand.NewPCG(seed, 8))
	files := fileSet{}
	mountArgs := []string{"--commit-delay", "100ms", "--drain-timeout", "30s"}
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
			t.Logf("daemon log:\n%s", tail(log, 8000))
		}
	})

	expect(t, c.mount(t, mnt, mountArgs...), 0, "")
	if err := files.write(mnt, "g0", rng, 3000, 70000, 2500000); err != nil {
		t.Fatal(err)
	}
	stopMount(t, mnt)

	p := &faultProgram{rule: fc.rule, hangFor: 2 * faultTimeout, tracing: os.Getenv("SEALFS_FAULT_TRACE") != ""}
	if fc.op.renewal {
		// The fault waits for the first renewal; the mount keeps working
		// (and committing) meanwhile, and renews twice more.
		start := time.Now()
		mountArgs = append(mountArgs, "--lease-ttl", renewalTTL.String())
		expect(t, c.mount(t, mnt, mountArgs...), 0, "")
		s3.program.Store(p)
		for i := 0; time.Since(start) < renewalTTL; i++ {
			if err := files.write(mnt, fmt.Sprintf("r%d", i), rng, 2000+i); err != nil {
				t.Logf("writing while the lease is renewed: %v", err)
				break
			}
			time.Sleep(2 * time.Second)
		}
		stopMount(t, mnt)
		s3.program.Store(nil)
		p.check(t, tally)
	} else if !fc.op.read {
		s3.program.Store(p)
		if r := c.mount(t, mnt, mountArgs...); r.code == 0 {
			err := files.write(mnt, "g1", rng, 5000, 1500000, 600000)
			if err == nil {
				waitCommitted(mnt, 20*time.Second)
				err = files.write(mnt, "g2", rng, 100, 40000)
			}
			if err != nil {
				t.Logf("writing under the fault: %v", err)
			}
		} else {
			t.Logf("mount under the fault: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
		}
		stopMount(t, mnt)
		s3.program.Store(nil)
		p.check(t, tally)
	}

	// Recovery on the same cache: what was queued goes up.
	if r := c.mount(t, mnt, mountArgs...); r.code != 0 {
		t.Fatalf("mounting again after %s: exit %d: %s", fc.rule, r.code, r.stderr)
	}
	if err := files.write(mnt, "g3", rng, 1234); err != nil {
		t.Fatal(err)
	}
	if r := stopMount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
		t.Fatalf("the unmount after recovery said %q %q; log:\n%s", r.stdout, r.stderr, tail(log, 3000))
	}

	// A new machine: the remote alone holds every closed file, whole.
	if fc.op.read {
		// Read back under the fault: a fault the retries absorb costs
		// nothing; a killed daemon fails the reads after it, but no
		// read returns wrong bytes.
		s3.program.Store(p)
		fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
		if r := fresh.mount(t, mnt, "--read-only"); r.code == 0 {
			_, wrong := files.verify(t, mnt, fc.rule.action != kill)
			tally.wrong.Add(wrong)
		} else if fc.rule.action != kill {
			t.Errorf("a fresh mount under %s failed: exit %d: %s", fc.rule, r.code, r.stderr)
		}
		stopMount(t, mnt)
		s3.program.Store(nil)
		p.check(t, tally)
	}
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	n, wrong := files.verify(t, mnt, true)
	stopMount(t, mnt)
	tally.files.Add(int64(n))
	tally.wrong.Add(wrong)
	r := c.run(t, "check", "--read-data", c.remote)
	if r.code != 0 || !strings.Contains(r.stdout, "no problems found") {
		t.Errorf("check --read-data after %s: exit %d\n%s%s", fc.rule, r.code, r.stdout, r.stderr)
	}
	checkSnapshots(t, c)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// TestFaultMatrix injects one fault at one remote operation of a mount, its
// commits and its unmount, for every operation, occurrence and kind of
// fault (fails before landing, lands but fails, hangs past the time-out,
// the process is killed right after it lands). Every cell must end with
// every closed file on the remote, byte-exact, a clean check and one chain
// of snapshots. SEALFS_SOAK=1 runs every cell three times with other data;
// SEALFS_FAULT_CASES=substring runs the matching cells only.
func TestFaultMatrix(t *testing.T) {
	needRoot(t)
	cases := faultCases()
	rounds := 1
	if os.Getenv("SEALFS_SOAK") != "" {
		rounds = 3
	}
	filter := os.Getenv("SEALFS_FAULT_CASES")
	var tally faultCounts
	work := make(chan func(), len(cases)*rounds)
	for round := range rounds {
		for i, fc := range cases {
			name := fmt.Sprintf("%s/%s/%d/%s", fc.op.name, fc.rule.action, fc.rule.nth, strconv.Itoa(round))
			if filter != "" && !strings.Contains(name, filter) {
				continue
			}
			seed := uint64(round*1000 + i)
			work <- func() {
				t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
					tally.cases.Add(1)
					runFaultCase(t, fc, seed, &tally)
				})
			}
		}
	}
	close(work)
	// Cells run a few at a time: they mostly wait on commit delays and
	// time-outs, not on the CPU.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range work {
				run()
			}
		}()
	}
	wg.Wait()
	t.Logf("fault matrix: %d cases, %d faults injected, %d kills, %d files verified, %d wrong bytes",
		tally.cases.Load(), tally.faults.Load(), tally.kills.Load(), tally.files.Load(), tally.wrong.Load())
	if tally.wrong.Load() != 0 {
		t.Errorf("%d wrong bytes read back", tally.wrong.Load())
	}
}

// crashWriter writes files through a mount as an application that cares
// does: each new file or new version is written, fsynced and closed; a
// new version of an existing file is written under a temporary name and
// renamed over it. Only what succeeded is expected to survive a crash; a
// file whose last operation failed (the daemon died under it) may hold
// either version, and is left alone from then on.
type crashWriter struct {
	mnt   string
	rng   *rand.Rand
	mu    sync.Mutex
	files fileSet // certain: the content of the last successful version
	next  int
	ops   int
}

func (w *crashWriter) content() []byte {
	n := w.rng.IntN(64 << 10)
	if w.rng.IntN(20) == 0 {
		n = 256<<10 + w.rng.IntN(1<<20)
	}
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], w.rng.Uint64())
	}
	return b[:n]
}

// pause says how long to wait before the next step: mostly not at all.
func (w *crashWriter) pause() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rng.IntN(6) != 0 {
		return 0
	}
	return time.Duration(w.rng.IntN(400)) * time.Millisecond
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// step writes one new file or one new version of a file, and reports
// whether it succeeded.
func (w *crashWriter) step() bool {
	w.mu.Lock()
	data := w.content()
	var name string
	// New files mostly; beyond a few hundred, new versions mostly, so
	// that reading everything back after each kill stays cheap.
	replace := len(w.files) > 10 && w.rng.IntN(4) == 0 || len(w.files) > 200 && w.rng.IntN(8) != 0
	if replace {
		names := make([]string, 0, len(w.files))
		for n := range w.files {
			names = append(names, n)
		}
		sort.Strings(names)
		name = names[w.rng.IntN(len(names))]
	} else {
		name = fmt.Sprintf("f%05d", w.next)
	}
	tmp := fmt.Sprintf(".tmp%05d", w.next)
	w.next++
	// Until it succeeds, the file is uncertain.
	delete(w.files, name)
	w.mu.Unlock()

	var err error
	if replace {
		if err = writeSynced(filepath.Join(w.mnt, tmp), data); err == nil {
			err = os.Rename(filepath.Join(w.mnt, tmp), filepath.Join(w.mnt, name))
		}
	} else {
		err = writeSynced(filepath.Join(w.mnt, name), data)
	}
	if err != nil {
		return false
	}
	w.mu.Lock()
	w.files[name] = data
	w.ops++
	w.mu.Unlock()
	return true
}

// TestCrashMatrix SIGKILLs the mount daemon at random moments while a
// writer creates and replaces files with fsync and close, at least 50
// times (SEALFS_CRASH_KILLS=N for more; SEALFS_SOAK=1 for 300). After each
// kill the dead mount is detached and the same cache mounted again (the
// journal replays): every file whose last write, fsync, close (and
// rename) succeeded reads back byte-exact. At the end a clean unmount
// commits everything, and a fresh cache reads it all from the remote.
func TestCrashMatrix(t *testing.T) {
	needRoot(t)
	kills := 50
	if os.Getenv("SEALFS_SOAK") != "" {
		kills = 300
	}
	if n, err := strconv.Atoi(os.Getenv("SEALFS_CRASH_KILLS")); err == nil && n > 0 {
		kills = n
	}
	c := initRepo(t)
	mnt := mountpoint(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	w := &crashWriter{mnt: mnt, rng: rand.New(rand.NewPCG(seed, 12)), files: fileSet{}}
	var verified, atCommit int
	var wrong int64
	for round := range kills {
		delay := []string{"0s", "50ms", "200ms", "1s"}[rng.IntN(4)]
		if r := c.mount(t, mnt, "--commit-delay", delay); r.code != 0 {
			t.Fatalf("round %d: mounting the same cache after a kill: exit %d: %s", round, r.code, r.stderr)
		}
		n, bad := w.files.verify(t, mnt, true)
		verified += n
		wrong += bad
		if t.Failed() {
			t.Fatalf("round %d: files closed before the kill are missing or wrong", round)
		}
		pid := mountPID(mnt)
		if pid == 0 {
			t.Fatalf("round %d: no daemon pid in the status", round)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !w.step() {
					return
				}
				// Pauses let commits start, so that kills hit them too.
				if pause := w.pause(); pause > 0 {
					select {
					case <-stop:
						return
					case <-time.After(pause):
					}
				}
			}
		}()
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		if rng.IntN(3) == 0 {
			// Aim at a commit: kill a few milliseconds into one.
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
				if st, err := readStatus(mnt); err != nil || st.Committing {
					atCommit++
					break
				}
			}
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		close(stop)
		<-done
		for processAliveTest(pid) {
			time.Sleep(5 * time.Millisecond)
		}
		if out, err := exec.Command("fusermount3", "-uz", mnt).CombinedOutput(); err != nil {
			t.Fatalf("round %d: fusermount3 -uz: %v %s", round, err, out)
		}
	}
	// A clean end: everything goes up; a new machine reads it all.
	expect(t, c.mount(t, mnt), 0, "")
	n, bad := w.files.verify(t, mnt, true)
	verified, wrong = verified+n, wrong+bad
	if r := stopMount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("the final unmount said %q %q", r.stdout, r.stderr)
	}
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	n, bad = w.files.verify(t, mnt, true)
	verified, wrong = verified+n, wrong+bad
	stopMount(t, mnt)
	r := c.run(t, "check", "--read-data", c.remote)
	if r.code != 0 || !strings.Contains(r.stdout, "no problems found") {
		t.Errorf("check --read-data after the kills: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	snaps := checkSnapshots(t, c)
	t.Logf("crash matrix: %d kills (%d aimed at a commit), %d writes that succeeded, %d files at the end, %d file reads verified, %d wrong bytes, %d snapshots",
		kills, atCommit, w.ops, len(w.files), verified, wrong, snaps)
	if w.ops < kills {
		t.Errorf("only %d writes succeeded in %d rounds: the kills did not hit a working writer", w.ops, kills)
	}
}
