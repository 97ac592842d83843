package test

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// putGate is a front to an S3 server that, while armed, holds every PUT of
// an object under prefix until it is released or its client gives up: a
// remote whose uploads hang.
type putGate struct {
	inner  http.Handler
	prefix string

	gateLatch
	held atomic.Int64
}

func (g *putGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, _ := requestKey(r)
	release := g.armed()
	if release != nil && r.Method == http.MethodPut && strings.HasPrefix(key, g.prefix) {
		g.held.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	g.inner.ServeHTTP(w, r)
}

// TestMountReadsDuringHungUpload: while the remote holds every pack
// upload, a file being written goes on, and reads through the mount do
// not wait for the uploads: a file stored before (fetched from the
// remote, nothing cached), a listing, and the new file. Once the remote
// answers, everything is committed, and a new client reads both files.
func TestMountReadsDuringHungUpload(t *testing.T) {
	needRoot(t)
	gate := &putGate{inner: gofakes3.New(s3mem.New()).Server(), prefix: "repo/data/"}
	s3 := newFaultyS3Over(t, gate)
	c := s3.initRepo(t, "bucket")
	mnt := mountpoint(t)
	t.Cleanup(gate.heal) // before the unmount at cleanup

	old := make([]byte, 3<<20)
	rand.Read(old)
	expect(t, c.mount(t, mnt), 0, "")
	if err := os.WriteFile(filepath.Join(mnt, "old"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := c.umount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("umount said %q", r.stdout)
	}

	// A writer with nothing cached: "old" comes from the remote.
	w := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, w.mount(t, mnt, "--commit-delay", "200ms"), 0, "")
	gate.arm()
	fresh := make([]byte, 40<<20) // packs of 8 MiB: several uploads
	rand.Read(fresh)
	written := make(chan error, 1)
	go func() { written <- os.WriteFile(filepath.Join(mnt, "new"), fresh, 0o644) }()
	waitFor(t, "pack uploads held by the remote", &gate.held, 1, 60*time.Second)

	reads := map[string]func() error{
		"reading a stored file": func() error { return sameContent(filepath.Join(mnt, "old"), old) },
		"listing the folder": func() error {
			_, err := os.ReadDir(mnt)
			return err
		},
	}
	for what, read := range reads {
		done := make(chan error, 1)
		go func() { done <- read() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s while uploads hang: %v", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s waits for an upload that hangs", what)
		}
	}
	select {
	case err := <-written:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("writing a file waits for an upload that hangs")
	}
	if err := sameContent(filepath.Join(mnt, "new"), fresh); err != nil {
		t.Fatalf("reading the new file while its uploads hang: %v", err)
	}
	gate.heal()
	if r := w.umount(t, mnt); !strings.Contains(r.stdout, "everything is committed") {
		t.Fatalf("umount said %q", r.stdout)
	}
	reader := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	expect(t, reader.mount(t, mnt, "--read-only"), 0, "")
	for name, want := range map[string][]byte{"old": old, "new": fresh} {
		if err := sameContent(filepath.Join(mnt, name), want); err != nil {
			t.Errorf("%s on a new client: %v", name, err)
		}
	}
}

// sameContent reads path and compares it with want.
func sameContent(path string, want []byte) error {
	got, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return &os.PathError{Op: "compare", Path: path, Err: os.ErrInvalid}
	}
	return nil
}
