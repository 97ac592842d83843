// Package remotetest is the conformance suite every remote.Remote
// implementation runs: it checks the contracts written in package remote.
package remotetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/rcloneremote"
)

// Run runs the suite on remotes made by newRemote; each call must return an
// empty remote of its own.
func Run(t *testing.T, newRemote func(t *testing.T) remote.Remote) {
	fresh := func(t *testing.T) remote.Remote {
		ctx := context.Background()
		r := newRemote(t)
		if err := r.Mkdir(ctx); err != nil {
			t.Fatalf("Mkdir: %v", err)
		}
		if err := r.Mkdir(ctx); err != nil {
			t.Fatalf("second Mkdir is not idempotent: %v", err)
		}
		return r
	}
	for _, c := range []struct {
		name string
		test func(t *testing.T, r remote.Remote)
	}{
		{"PutGet", testPutGet},
		{"Range", testRange},
		{"Overwrite", testOverwrite},
		{"NotFound", testNotFound},
		{"ListDelete", testListDelete},
		{"Concurrent", testConcurrent},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, fresh(t)) })
	}
}

// testPutGet: objects of any size, the empty one included, read back whole
// and report their size.
func testPutGet(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	for _, size := range []int{0, 1, 1000, 3 << 20} {
		data := randomBytes(t, size)
		name := fmt.Sprintf("data/ab/obj-%d", size)
		mustPut(t, r, name, data)
		got, err := r.Get(ctx, name, 0, -1)
		if err != nil {
			t.Fatalf("Get(%s): %v", name, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("Get(%s) returned %d bytes that differ from the %d put", name, len(got), len(data))
		}
		if n, err := r.Stat(ctx, name); err != nil || n != int64(size) {
			t.Fatalf("Stat(%s) = %d, %v; want %d", name, n, err, size)
		}
	}
}

// testRange: range reads return exactly the bytes asked for, to the end
// with a negative length, and a range past the end is ErrShortRead.
func testRange(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	data := randomBytes(t, 100000)
	mustPut(t, r, "packs/p", data)
	for _, c := range []struct{ off, n int64 }{{0, 1}, {0, 100000}, {99999, 1}, {5000, 12345}, {40000, 0}, {100000, 0}} {
		got, err := r.Get(ctx, "packs/p", c.off, c.n)
		if err != nil {
			t.Fatalf("Get(off=%d,n=%d): %v", c.off, c.n, err)
		}
		if !bytes.Equal(got, data[c.off:c.off+c.n]) {
			t.Fatalf("Get(off=%d,n=%d) returned wrong bytes", c.off, c.n)
		}
	}
	got, err := r.Get(ctx, "packs/p", 99000, -1)
	if err != nil || !bytes.Equal(got, data[99000:]) {
		t.Fatalf("Get to end: %d bytes, %v", len(got), err)
	}
	for _, c := range []struct{ off, n int64 }{{99999, 2}, {100001, 1}, {0, 100001}} {
		if _, err := r.Get(ctx, "packs/p", c.off, c.n); !errors.Is(err, remote.ErrShortRead) {
			t.Fatalf("Get past the end (off=%d,n=%d) = %v; want ErrShortRead", c.off, c.n, err)
		}
	}
}

// testOverwrite: a Put replaces an object whole (the lease is rewritten so).
func testOverwrite(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	mustPut(t, r, "lease", []byte("first version, long"))
	mustPut(t, r, "lease", []byte("second"))
	got, err := r.Get(ctx, "lease", 0, -1)
	if err != nil || string(got) != "second" {
		t.Fatalf("after overwrite Get = %q, %v", got, err)
	}
	n := 0
	if err := r.List(ctx, "", func(e remote.Entry) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("after overwrite List found %d objects (%v); want 1", n, err)
	}
}

// testNotFound: a missing object is ErrNotFound, which is not transient,
// and deleting one is no error.
func testNotFound(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	if _, err := r.Get(ctx, "missing", 0, -1); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Get(missing) = %v; want ErrNotFound", err)
	}
	if _, err := r.Get(ctx, "no/such/dir/obj", 0, 10); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Get(no/such/dir/obj) = %v; want ErrNotFound", err)
	}
	if _, err := r.Stat(ctx, "missing"); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Stat(missing) = %v; want ErrNotFound", err)
	}
	if remote.IsTransient(remote.ErrNotFound) {
		t.Fatal("ErrNotFound must not be transient")
	}
	if err := r.Delete(ctx, "missing"); err != nil {
		t.Fatalf("Delete(missing) = %v; want nil", err)
	}
}

// testListDelete: List gives every object below a folder with its size,
// sees a Delete, and passes on the callback's error.
func testListDelete(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	want := map[string]int64{"config": 3, "keys/k1": 5, "data/00/p1": 7, "data/ff/p2": 11, "snapshots/s1": 13}
	for name, size := range want {
		mustPut(t, r, name, randomBytes(t, int(size)))
	}
	got := list(t, r, "")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List(\"\") = %v; want %v", got, want)
	}
	if got := list(t, r, "data"); len(got) != 2 || got["data/00/p1"] != 7 || got["data/ff/p2"] != 11 {
		t.Fatalf("List(data) = %v", got)
	}
	if got := list(t, r, "nothing-here"); len(got) != 0 {
		t.Fatalf("List(nothing-here) = %v; want empty", got)
	}
	if err := r.Delete(ctx, "data/00/p1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := r.Stat(ctx, "data/00/p1"); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v; want ErrNotFound", err)
	}
	if got := list(t, r, "data"); len(got) != 1 {
		t.Fatalf("List(data) after Delete = %v", got)
	}
	stop := errors.New("stop")
	if err := r.List(ctx, "", func(remote.Entry) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("List did not return the callback's error: %v", err)
	}
}

// testConcurrent: Puts and Gets of different objects may run at once.
func testConcurrent(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("data/%02x/c%d", i, i)
			data := bytes.Repeat([]byte{byte(i)}, 10000+i)
			if err := r.Put(ctx, name, data); err != nil {
				errs <- err
				return
			}
			got, err := r.Get(ctx, name, 0, -1)
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("%s: wrong bytes", name)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(list(t, r, "data")); n != 16 {
		t.Fatalf("List found %d objects; want 16", n)
	}
}

func mustPut(t *testing.T, r remote.Remote, name string, data []byte) {
	t.Helper()
	if err := r.Put(context.Background(), name, data); err != nil {
		t.Fatalf("Put(%s): %v", name, err)
	}
}

func list(t *testing.T, r remote.Remote, dir string) map[string]int64 {
	t.Helper()
	var mu sync.Mutex
	got := map[string]int64{}
	err := r.List(context.Background(), dir, func(e remote.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		got[e.Name] = e.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", dir, err)
	}
	return got
}

// Names returns the sorted names of all objects on r, for tests.
func Names(t *testing.T, r remote.Remote) []string {
	t.Helper()
	var names []string
	for n := range list(t, r, "") {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

var memorySeq atomic.Int64

// NewMemory returns an empty remote on rclone's memory backend, a bucket of
// its own per call.
func NewMemory(t *testing.T) remote.Remote {
	t.Helper()
	r, err := rcloneremote.Open(context.Background(), fmt.Sprintf(":memory:test%d", memorySeq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
