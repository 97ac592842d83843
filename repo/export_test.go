package repo

import (
	"context"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
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

// IndexEntriesForTest reads index object id and returns its entries in
// the order its writer wrote them.
func IndexEntriesForTest(ctx context.Context, r *Repository, id crypt.ID) ([]format.IndexEntry, error) {
	sealed, err := readObject(ctx, r.remote, format.IndexName(id), -1, format.MaxIndexObject)
	if err != nil {
		return nil, err
	}
	pt, err := r.keys.Open(crypt.TypeIndex, id, sealed)
	if err != nil {
		return nil, err
	}
	return format.DecodeIndex(pt)
}

// RewriteIndexForTest reseals index object id under the same id with its
// entries changed by change: as an older writer (entries in any order) or
// a holder of the master key could have written it.
func RewriteIndexForTest(ctx context.Context, r *Repository, id crypt.ID, change func([]format.IndexEntry) []format.IndexEntry) error {
	entries, err := IndexEntriesForTest(ctx, r, id)
	if err != nil {
		return err
	}
	sealed, err := r.keys.Seal(nil, crypt.TypeIndex, id, format.EncodeIndex(change(entries)))
	if err != nil {
		return err
	}
	return r.remote.Put(ctx, format.IndexName(id), sealed)
}

// ColdLoadedForTest reports whether r's index holds the cold index
// objects (cold.go).
func ColdLoadedForTest(r *Repository) bool { return r.Index().coldLoaded() }
