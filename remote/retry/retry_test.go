package retry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/remote/remotetest"
	"github.com/sealfs/sealfs/remote/retry"
)

var fast = retry.Policy{Attempts: 12, Base: time.Millisecond, Max: 5 * time.Millisecond}

// TestConformanceThroughFaults: with a fifth of all requests failing, and
// failed writes leaving half an object behind, the retrying remote still
// keeps every contract.
func TestConformanceThroughFaults(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Remote {
		f := faulty.New(remotetest.NewMemory(t), 7)
		f.SetFailRate(0.2)
		f.SetPartialWrites(true)
		return retry.New(f, fast)
	})
}

func TestNotFoundIsNotRetried(t *testing.T) {
	f := faulty.New(remotetest.NewMemory(t), 1)
	r := retry.New(f, fast)
	retries := 0
	r.OnRetry = func(string, string, error) { retries++ }
	if _, err := r.Get(context.Background(), "missing", 0, -1); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Get(missing) = %v", err)
	}
	if retries != 0 || f.Stats().Gets != 1 {
		t.Fatalf("not-found was retried: %d retries, %d gets", retries, f.Stats().Gets)
	}
}

func TestGivesUpAfterAttempts(t *testing.T) {
	f := faulty.New(remotetest.NewMemory(t), 1)
	f.SetFailRate(1)
	r := retry.New(f, retry.Policy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond})
	err := r.Put(context.Background(), "x", []byte("x"))
	if !errors.Is(err, faulty.ErrInjected) || f.Stats().Puts != 3 {
		t.Fatalf("Put = %v after %d tries; want the injected error after 3", err, f.Stats().Puts)
	}
}

func TestStopsOnCancel(t *testing.T) {
	f := faulty.New(remotetest.NewMemory(t), 1)
	f.SetFailRate(1)
	r := retry.New(f, retry.Policy{Attempts: 100, Base: time.Second, Max: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.Put(ctx, "x", []byte("x"))
	if err == nil {
		t.Fatal("Put succeeded on a remote that always fails")
	}
	// The caller learns that it gave up (an interrupted FUSE request
	// answers EINTR), not a remote failure to retry or report; the last
	// remote error is still said.
	if !errors.Is(err, context.DeadlineExceeded) || remote.IsTransient(err) || !strings.Contains(err.Error(), faulty.ErrInjected.Error()) {
		t.Fatalf("Put = %v; want the context's error, not transient, naming the last failure", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("retry did not stop when the context was cancelled")
	}
}
