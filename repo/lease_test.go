package repo_test

import (
	"context"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
)

// TestLockRetriedAfterFailedRefresh: a Lock that wrote its lease and then
// failed to read the newest state (the remote failed a moment) does not
// lock its own next attempt out: the lease it left is its own.
func TestLockRetriedAfterFailedRefresh(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	if err := env.Repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	env.Remote.FailOn("list", "snapshots", 1, faulty.FailBefore)
	if err := env.Repo.Lock(ctx, false); err == nil {
		t.Fatal("Lock succeeded although it could not list the snapshots")
	}
	if err := env.Repo.Lock(ctx, false); err != nil {
		t.Fatalf("the next attempt: %v", err)
	}
}
