package rcloneremote_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
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
