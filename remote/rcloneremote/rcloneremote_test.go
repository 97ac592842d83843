package rcloneremote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/remote/remotetest"
)

func open(t *testing.T, spec string) remote.Remote {
	t.Helper()
	r, err := rcloneremote.Open(context.Background(), spec)
	if err != nil {
		t.Fatalf("Open(%q): %v", spec, err)
	}
	return r
}

func TestLocalConformance(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Remote {
		return open(t, filepath.Join(t.TempDir(), "repo"))
	})
}

var bucketSeq atomic.Int64

func TestMemoryConformance(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Remote {
		return open(t, fmt.Sprintf(":memory:bucket%d/repo", bucketSeq.Add(1)))
	})
}

// TestS3Conformance runs the suite through rclone's s3 backend against an
// in-process S3 server on loopback.
func TestS3Conformance(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	remotetest.Run(t, func(t *testing.T) remote.Remote {
		spec := fmt.Sprintf(":s3,provider=Other,access_key_id=test,secret_access_key=test,region=us-east-1,force_path_style=true,endpoint='%s':bucket%d/repo",
			srv.URL, bucketSeq.Add(1))
		return open(t, spec)
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := rcloneremote.Open(ctx, "nosuchremote-xyz:path"); err == nil {
		t.Fatal("Open of an unconfigured remote succeeded")
	}
}

// TestLocalPackReads: on a local directory, a pack is read with a pread of
// its file (getLocal); it answers as the rclone path does: the same
// bytes for every range, ErrShortRead past the end, ErrNotFound for a
// missing pack.
func TestLocalPackReads(t *testing.T) {
	ctx := context.Background()
	r, err := rcloneremote.Open(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	name := "data/ab/ab" + strings.Repeat("0", 62)
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := r.Put(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	if !rcloneremote.ReadsLocallyForTest(r) {
		t.Fatal("a local directory is not read directly")
	}
	for _, c := range []struct{ off, n int64 }{{0, -1}, {0, 100000}, {5, 10}, {99999, 1}, {65536, 34464}, {100000, 0}} {
		got, err := r.Get(ctx, name, c.off, c.n)
		end := int64(len(data))
		if c.n >= 0 {
			end = c.off + c.n
		}
		if err != nil || !bytes.Equal(got, data[c.off:end]) {
			t.Fatalf("Get(%d, %d): %d bytes, %v", c.off, c.n, len(got), err)
		}
	}
	for _, c := range []struct{ off, n int64 }{{99999, 2}, {100001, -1}, {-1, 5}} {
		if _, err := r.Get(ctx, name, c.off, c.n); !errors.Is(err, remote.ErrShortRead) {
			t.Fatalf("Get(%d, %d) = %v, want ErrShortRead", c.off, c.n, err)
		}
	}
	if _, err := r.Get(ctx, "data/cd/cd"+strings.Repeat("0", 62), 0, 10); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Get of a missing pack = %v, want ErrNotFound", err)
	}
	mem, err := rcloneremote.Open(ctx, fmt.Sprintf(":memory:bucket%d/repo", bucketSeq.Add(1)))
	if err != nil || rcloneremote.ReadsLocallyForTest(mem) {
		t.Fatalf("the memory backend is read as a local directory (%v)", err)
	}
}
