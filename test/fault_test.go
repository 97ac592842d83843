package test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// faultyS3 is an in-process S3 server on loopback that fails a chosen share
// of requests with 503 Service Unavailable, as a throttling or failing
// cloud does.
type faultyS3 struct {
	srv      *httptest.Server
	inner    http.Handler
	rate     atomic.Int64 // per mille
	failures atomic.Int64
	program  atomic.Pointer[faultProgram] // one-shot faults by request (fault_matrix_test.go)
}

func newFaultyS3(t *testing.T) *faultyS3 {
	return newFaultyS3Over(t, gofakes3.New(s3mem.New()).Server())
}

// newFaultyS3Over is a faulty front to the S3 server inner.
func newFaultyS3Over(t *testing.T, inner http.Handler) *faultyS3 {
	f := &faultyS3{inner: inner}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rand.Int64N(1000) < f.rate.Load() {
			f.failures.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if p := f.program.Load(); p != nil && p.intercept(w, r, inner) {
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *faultyS3) setRate(perMille int64) { f.rate.Store(perMille) }

// initRepo creates a repository in a bucket of the server with sealfs init.
func (f *faultyS3) initRepo(t *testing.T, bucket string) cliRepo {
	t.Helper()
	dir := t.TempDir()
	c := cliRepo{remote: f.remote(bucket), cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, c.remote), 0, "")
	return c
}

func (f *faultyS3) remote(bucket string) string {
	return fmt.Sprintf(":s3,provider=Other,access_key_id=k,secret_access_key=s,region=us-east-1,force_path_style=true,endpoint='%s':%s/repo", f.srv.URL, bucket)
}

// TestMountFaultyRemote: with half the requests to the remote failing, a
// workload through the mount completes; the queue survives an unmount that
// could not drain it; once the faults stop, everything arrives.
func TestMountFaultyRemote(t *testing.T) {
	needRoot(t)
	s3 := newFaultyS3(t)
	c := s3.initRepo(t, "bucket")
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--commit-delay", "200ms", "--drain-timeout", "2s"), 0, "")

	files := map[string][]byte{}
	write := func(prefix string, n int) {
		for i := range n {
			name := fmt.Sprintf("%s-%03d", prefix, i)
			data := bytes.Repeat([]byte(name+" "), 1000+i*500)
			if err := os.WriteFile(filepath.Join(mnt, name), data, 0o644); err != nil {
				t.Fatalf("writing %s while the remote fails: %v", name, err)
			}
			files[name] = data
			if i%10 == 0 {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	s3.setRate(500)
	write("a", 60)
	// The remote goes down entirely; unmounting cannot drain, and says so.
	s3.setRate(1000)
	write("b", 30)
	r := c.umount(t, mnt)
	if r.code != 13 || !strings.Contains(r.stdout, "not everything is on the remote yet") {
		t.Fatalf("umount with a dead remote said %q", r.stdout)
	}
	// Restart with the remote half up, write more, then let it recover.
	s3.setRate(0)
	expect(t, c.mount(t, mnt, "--commit-delay", "200ms"), 0, "")
	s3.setRate(500)
	write("c", 30)
	s3.setRate(0)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := mountStatus(t, mnt)
		if st.PendingFiles == 0 && !st.Committing && st.LastError == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not drain once the remote recovered: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r = c.umount(t, mnt)
	if !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("final umount said %q", r.stdout)
	}
	if s3.failures.Load() < 10 {
		t.Fatalf("only %d requests failed: the faults did not bite", s3.failures.Load())
	}
	// Everything is on the remote: a fresh client sees every file.
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	defer fresh.umount(t, mnt)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s is missing or wrong on the remote: %v", name, err)
		}
	}
	expect(t, c.run(t, "check", "--read-data", c.remote), 0, "")
}
