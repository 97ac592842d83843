package repo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/remote/mirror"
	"github.com/sealfs/sealfs/remote/retry"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// TestExpiredLeaseStoresNothing (issue 8 review): a writer whose lease
// has expired (it could not renew it: a suspended laptop, a remote down
// for minutes) stores no snapshot, not even the retry of one whose upload
// failed, until it has renewed it: another writer may have broken the
// lease and committed meanwhile, and two snapshots with one sequence
// number would make the repository refuse to open everywhere.
func TestExpiredLeaseStoresNothing(t *testing.T) {
	ctx := context.Background()
	for _, retry := range []bool{false, true} {
		env := testutil.NewRepo(t, repo.InitOptions{})
		storeFile(t, env.Repo, "one", []byte("first"))
		if retry {
			env.Remote.FailOn("put", "snapshots/", 1, faulty.FailBefore)
			if _, err := commitFile(t, env.Repo, "two", []byte("second")); !errors.Is(err, faulty.ErrInjected) {
				t.Fatalf("commit with a failing snapshot upload = %v", err)
			}
		}
		repo.ExpireLeaseForTest(env.Repo)
		// Another machine breaks the expired lease and commits.
		other, err := env.Reopen(t, t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Lock(ctx, true); err != nil {
			t.Fatal(err)
		}
		if _, err := commitFile(t, other, "theirs", []byte("theirs")); err != nil {
			t.Fatal(err)
		}
		other.Unlock(ctx)
		// The first writer, back, tries to commit.
		if _, err := commitFile(t, env.Repo, "two", []byte("second")); err == nil {
			t.Errorf("retry %v: a writer with an expired lease committed", retry)
		}
		// Its next renewal finds the lease gone (the other writer
		// released it): it must not take it back as if nothing happened.
		repo.RenewLeaseForTest(ctx, env.Repo)
		if _, err := commitFile(t, env.Repo, "two", []byte("second")); err == nil {
			t.Errorf("retry %v: a writer whose lease was broken and released committed after its renewal", retry)
		}
		if _, err := env.Reopen(t, t.TempDir(), false); err != nil {
			t.Errorf("retry %v: the repository no longer opens: %v", retry, err)
		}
		env.Repo.Unlock(ctx)
	}
}

// TestRenewalKeepsOthersLease (issue 8 review): a renewal that cannot read
// the lease (the remote failed a moment) does not write ours over it
// blindly: another writer may have broken it, and two writers would then
// each think they hold it.
func TestRenewalKeepsOthersLease(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	storeFile(t, env.Repo, "one", []byte("first"))
	other, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Lock(ctx, true); err != nil {
		t.Fatal(err)
	}
	defer other.Unlock(ctx)
	theirs, err := other.ReadLease(ctx)
	if err != nil || theirs == nil {
		t.Fatalf("their lease: %v, %v", theirs, err)
	}
	env.Remote.FailOn("stat", "lease", 1, faulty.FailBefore)
	env.Remote.FailOn("get", "lease", 1, faulty.FailBefore)
	repo.RenewLeaseForTest(ctx, env.Repo)
	now, err := other.ReadLease(ctx)
	if err != nil || now == nil || now.Holder != theirs.Holder {
		t.Fatalf("after a renewal that could not read the lease, the lease is %v (%v); want theirs, %v", now, err, theirs)
	}
}

// TestForgetThroughMirror (issue 8 review): a repository with a forget
// record opens through the metadata mirror a mount uses, and a writer
// opened through it can forget a snapshot: forget records are names of
// the repository's, not hostile names in a metadata folder.
func TestForgetThroughMirror(t *testing.T) {
	ctx := context.Background()
	env := chainEnv(t, 3)
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1)); err != nil {
		t.Fatal(err)
	}
	env.Repo.Unlock(ctx)
	names := mirror.Names{Object: format.MetadataName, Folder: format.MetadataFolder}
	f := faulty.New(testutil.NewRemote(t, env.Dir), 1)
	mdir, cache := t.TempDir(), t.TempDir()
	r, err := repo.Open(ctx, mirror.New(f, mdir, names), unlock.WithCode(env.Code), repo.Options{CacheDir: cache})
	if err != nil {
		t.Fatalf("open through the mirror after a forget: %v", err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, seqIDs(t, r, 2)); err != nil {
		t.Fatalf("forget through the mirror: %v", err)
	}
	r.Unlock(ctx)
	// An offline start checks the chain from the local copies.
	f.SetFailRate(1)
	r, err = repo.Open(ctx, mirror.New(f, mdir, names), unlock.WithCode(env.Code), repo.Options{CacheDir: cache})
	if err != nil {
		t.Fatalf("offline open from the mirror's copies after forgets: %v", err)
	}
	if got := r.Forgotten(); len(got) != 2 {
		t.Fatalf("offline open: forgotten %v, want snapshots 1 and 2", got)
	}
}

// halfListing fails the first listing of each folder half-way, after
// giving some of its entries: a connection dropped between two pages.
type halfListing struct {
	remote.Remote
	failed map[string]bool
}

func (h *halfListing) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	if h.failed[dir] {
		return h.Remote.List(ctx, dir, fn)
	}
	h.failed[dir] = true
	n := 0
	err := h.Remote.List(ctx, dir, func(e remote.Entry) error {
		if n++; n > 1 {
			return errHalf
		}
		return fn(e)
	})
	if err == errHalf {
		return errors.New("connection reset while listing (injected)")
	}
	return err
}

var errHalf = errors.New("half")

// TestRetriedListing (issue 8 review): a listing that fails half-way and
// is retried (as the CLI's retrying remote does) does not make a
// snapshot, key slot or forget record appear twice, which the chain check
// would report as a replayed snapshot: a transient error is never an
// integrity error.
func TestRetriedListing(t *testing.T) {
	ctx := context.Background()
	env := chainEnv(t, 3)
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1)); err != nil {
		t.Fatal(err)
	}
	env.Repo.Unlock(ctx)
	policy := retry.Policy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond}
	rem := retry.New(&halfListing{Remote: testutil.NewRemote(t, env.Dir), failed: map[string]bool{}}, policy)
	r, err := repo.Open(ctx, rem, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open through a listing retried half-way: %v", err)
	}
	rep, err := r.Check(ctx, repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("check through listings retried half-way: %v", p)
	}
}
