package repo_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// TestUnlockWithQueuedPackBehindHungUpload: with one transfer, one pack
// uploads (the remote holds it) and a second waits behind it. Unlock
// cancels the upload under way; the queued pack must not start then (with
// nothing left to cancel it, it would hang Unlock, and the daemon's stop,
// for good). Afterwards no goroutine of the uploads is left.
func TestUnlockWithQueuedPackBehindHungUpload(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20, Options: repo.Options{Transfers: 1}})
	r := env.Repo
	base := runtime.NumGoroutine()
	env.Remote.FailOn("put", "data/", 1000, faulty.Hang)
	t.Cleanup(env.Remote.Release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := r.SaveFile(ctx, bytes.NewReader(randomData(71, 6<<20)))
		done <- err
	}()
	waitHeld(t, env.Remote, 1)
	for end := time.Now().Add(30 * time.Second); repo.PacksInMemoryForTest(r) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d packs in memory, want 2", repo.PacksInMemoryForTest(r))
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write = %v", err)
	}
	within(t, "unlocking", func() {
		if err := r.Unlock(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if held := env.Remote.Held(); held != 0 {
		t.Fatalf("%d uploads still held after Unlock", held)
	}
	for end := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > base; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d goroutines after Unlock, %d before the writes", runtime.NumGoroutine(), base)
		}
	}
}
