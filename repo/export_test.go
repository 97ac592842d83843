package repo

import (
	"context"
	"time"
)

// SetLeasePIDForTest rewrites the held lease as if a process pid held it.
func SetLeasePIDForTest(ctx context.Context, r *Repository, pid int) error {
	r.mu.Lock()
	h := r.lease
	r.lease = nil
	r.mu.Unlock()
	h.cancel()
	<-h.done
	l := h.lease
	l.PID = pid
	return r.writeLease(ctx, &l)
}

// ExpireLeaseForTest makes the held lease look as if its last renewal was
// longer ago than LeaseTTL (a machine suspended, a remote down for long):
// another writer may take it now.
func ExpireLeaseForTest(r *Repository) {
	r.mu.Lock()
	h := r.lease
	r.mu.Unlock()
	h.mu.Lock()
	h.lease.Expires = time.Now().Add(-time.Second)
	h.mu.Unlock()
}

// RenewLeaseForTest runs one renewal of the held lease, as its timer would.
func RenewLeaseForTest(ctx context.Context, r *Repository) {
	r.mu.Lock()
	h := r.lease
	r.mu.Unlock()
	h.renewOnce(ctx)
}

// PacksInMemoryForTest returns how many packs are in memory: the one being
// built and those not stored yet.
func PacksInMemoryForTest(r *Repository) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packSlots
}

// SetFoldKeepForTest sets how many snapshots below the newest a fold
// leaves unfolded (fold.go), until the test ends.
func SetFoldKeepForTest(t interface{ Cleanup(func()) }, n uint64) {
	old := foldKeep
	foldKeep = n
	t.Cleanup(func() { foldKeep = old })
}

// LoadedSnapshotsForTest is how many snapshots r holds in its list.
func LoadedSnapshotsForTest(r *Repository) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snapshots)
}
