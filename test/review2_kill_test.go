package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// holdGate is a front to an S3 server that, while armed, lets the first
// pass PUTs under prefix through and holds every later one until it is
// healed or its client hangs up. With land set, a held PUT lands even when
// its client is gone (the client, killed, never heard that it did).
type holdGate struct {
	inner  http.Handler
	prefix string
	pass   int64
	land   bool

	gateLatch
	open   atomic.Bool // new requests pass; those held stay held
	seen   atomic.Int64
	held   atomic.Int64
	landed atomic.Int64
}

func (g *holdGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, _ := requestKey(r)
	release := g.armed()
	if release == nil || g.open.Load() || r.Method != http.MethodPut || !strings.HasPrefix(key, g.prefix) || g.seen.Add(1) <= g.pass {
		g.inner.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	g.held.Add(1)
	select {
	case <-release:
	case <-r.Context().Done():
		if !g.land {
			return
		}
		<-release
	}
	r2 := r.Clone(context.Background())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	if r.Context().Err() != nil {
		g.landed.Add(1)
		g.inner.ServeHTTP(discardResponse{}, r2)
		return
	}
	g.inner.ServeHTTP(w, r2)
}

// killMount SIGKILLs the daemon of mnt and detaches the dead mount.
func killMount(t *testing.T, mnt string) {
	t.Helper()
	pid := mountPID(mnt)
	if pid == 0 {
		t.Fatal("no daemon to kill")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for processAliveTest(pid) {
		time.Sleep(5 * time.Millisecond)
	}
	if out, err := exec.Command("fusermount3", "-uz", mnt).CombinedOutput(); err != nil {
		t.Logf("fusermount3 -uz: %v %s", err, out)
	}
}

// verifyFresh mounts the repository read-only on a new cache and reads
// files back: those in must are errors when missing or different, those
// in may only when different. It returns the files read and wrong bytes.
func verifyFresh(t *testing.T, c cliRepo, mnt string, must, may fileSet) (int, int64) {
	t.Helper()
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	if r := fresh.mount(t, mnt, "--read-only"); r.code != 0 {
		t.Fatalf("a fresh read-only mount: exit %d: %s", r.code, r.stderr)
	}
	defer stopMount(t, mnt)
	n, wrong := must.verify(t, mnt, true)
	m, w2 := may.verify(t, mnt, false)
	return n + m, wrong + w2
}

// TestKillWhileUploadsHeld SIGKILLs the mount daemon while the remote
// holds the uploads of a commit (packs after the first few, the index, or
// the snapshot), with held requests that land after the kill or never.
// Then: a fresh client sees every file committed before, whole, and no
// file written since with a wrong byte, and check --read-data is clean;
// a remount on the same cache uploads the files written since from its
// journal; a fresh client then reads every file byte-exact.
func TestKillWhileUploadsHeld(t *testing.T) {
	needRoot(t)
	type hold struct {
		prefix string
		pass   int64
	}
	holds := map[string]hold{
		"packs":       {"repo/data/", 0},
		"later-packs": {"repo/data/", 2},
		"index":       {"repo/index/", 0},
		"snapshot":    {"repo/snapshots/", 0},
	}
	var files, kills, wrong atomic.Int64
	for name, h := range holds {
		for _, land := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/land=%v", name, land), func(t *testing.T) {
				gate := &holdGate{inner: gofakes3.New(s3mem.New()).Server(), prefix: h.prefix, pass: h.pass, land: land}
				s3 := newFaultyS3Over(t, gate)
				c := s3.faultRepo(t, "bucket")
				mnt := mountpoint(t)
				t.Cleanup(func() { gate.heal(); stopMount(t, mnt) })
				args := []string{"--commit-delay", "100ms", "--transfers", "2", "--drain-timeout", "20s"}
				rng := rand.New(rand.NewPCG(uint64(len(name)), 5))
				before, since := fileSet{}, fileSet{}

				expect(t, c.mount(t, mnt, args...), 0, "")
				if err := before.write(mnt, "a", rng, 3000, 70000, 2500000, 0, 1<<20); err != nil {
					t.Fatal(err)
				}
				waitCommitted(mnt, 30*time.Second)
				if st := mountStatus(t, mnt); st.PendingFiles != 0 || st.LastError != "" {
					t.Fatalf("not committed: %+v", st)
				}
				gate.arm()
				if err := since.write(mnt, "b", rng, 5000, 1500000, 3000000, 600000, 100); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "held uploads", &gate.held, 1, 60*time.Second)
				time.Sleep(300 * time.Millisecond) // more uploads reach the gate
				killMount(t, mnt)
				kills.Add(1)
				gate.heal() // held requests land (land) or are gone

				n, w := verifyFresh(t, c, mnt, before, since)
				files.Add(int64(n))
				wrong.Add(w)
				if r := c.run(t, "check", "--read-data", c.remote); r.code != 0 || !strings.Contains(r.stdout, "no problems found") {
					t.Errorf("check --read-data after the kill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
				}

				expect(t, c.mount(t, mnt, args...), 0, "")
				if r := stopMount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
					log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
					t.Fatalf("the unmount after recovery said %q %q; log:\n%s", r.stdout, r.stderr, tail(log, 3000))
				}
				all := fileSet{}
				for k, v := range before {
					all[k] = v
				}
				for k, v := range since {
					all[k] = v
				}
				n, w = verifyFresh(t, c, mnt, all, nil)
				files.Add(int64(n))
				wrong.Add(w)
				if r := c.run(t, "check", "--read-data", c.remote); r.code != 0 || !strings.Contains(r.stdout, "no problems found") {
					t.Errorf("check --read-data after recovery: exit %d\n%s%s", r.code, r.stdout, r.stderr)
				}
				checkSnapshots(t, c)
			})
		}
	}
	t.Logf("kills while uploads held: %d kills, %d files verified, %d wrong bytes", kills.Load(), files.Load(), wrong.Load())
}

// TestUmountWhileUploadsHang: the remote holds every pack upload and never
// answers; sealfs umount stops the daemon within its drain timeout (with
// one transfer, so that packs queue behind the held one), names the files
// still queued, and the next mount of the same cache, with the remote
// answering again, uploads them: a fresh client reads every file.
func TestUmountWhileUploadsHang(t *testing.T) {
	needRoot(t)
	gate := &holdGate{inner: gofakes3.New(s3mem.New()).Server(), prefix: "repo/data/"}
	s3 := newFaultyS3Over(t, gate)
	c := s3.initRepo(t, "bucket") // 8 MiB packs; rclone's own time-out (5 minutes)
	mnt := mountpoint(t)
	t.Cleanup(func() { gate.heal(); stopMount(t, mnt) })
	rng := rand.New(rand.NewPCG(3, 3))
	files := fileSet{}
	args := []string{"--commit-delay", "100ms", "--transfers", "1"}
	expect(t, c.mount(t, mnt, append(args, "--drain-timeout", "3s")...), 0, "")
	gate.arm()
	if err := files.write(mnt, "h", rng, 2000, 12<<20, 9<<20, 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "held uploads", &gate.held, 1, 60*time.Second)
	time.Sleep(time.Second) // a second pack queues behind the held one
	pid := mountPID(mnt)
	start := time.Now()
	r := sealfs(t, nil, "umount", "--timeout", "60s", mnt)
	took := time.Since(start)
	for processAliveTest(pid) {
		if time.Since(start) > 60*time.Second {
			syscall.Kill(pid, syscall.SIGQUIT)
			time.Sleep(time.Second)
			log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
			t.Logf("daemon log:\n%s", tail(log, 60000))
			t.Fatalf("the daemon still runs %v after sealfs umount (drain timeout 3s): %+v", time.Since(start), r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.code == 0 || !strings.Contains(r.stdout, "queued: /h-1") {
		t.Errorf("sealfs umount with uploads held (%v): exit %d, %q %q", took, r.code, r.stdout, r.stderr)
	}
	gate.heal()
	expect(t, c.mount(t, mnt, args...), 0, "")
	if r := stopMount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("the unmount after recovery said %q %q", r.stdout, r.stderr)
	}
	if n, wrong := verifyFresh(t, c, mnt, files, nil); n != len(files) || wrong != 0 {
		t.Fatalf("%d files of %d read back, %d wrong bytes", n, len(files), wrong)
	}
}
