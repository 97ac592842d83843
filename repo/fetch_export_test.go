package repo

import (
	"context"

	"github.com/sealfs/sealfs/crypt"
)

// FetchWaitersForTest returns how many callers wait on the fetch of blob
// id under way, or 0.
func FetchWaitersForTest(r *Repository, id crypt.ID) int {
	r.fetches.mu.Lock()
	defer r.fetches.mu.Unlock()
	if c := r.fetches.calls[id]; c != nil {
		return c.waiters
	}
	return 0
}

// ReadAheadMinForTest is the read-ahead window a sequential reader starts
// with.
const ReadAheadMinForTest = readAheadMin

// WholeDataBlobsForTest makes r write data blobs whole, as format version
// 1 first did, instead of segmented (docs/SPEC.md §6.2): a repository
// holding both is what a repository written before segmented blobs and
// added to since looks like.
func WholeDataBlobsForTest(r *Repository, whole bool) { r.wholeDataBlobs = whole }

// PrefetchRunForTest starts read-ahead of ids as a sequential reader
// does (prefetchRun) and returns how many of them it dealt with.
func PrefetchRunForTest(r *Repository, ids []crypt.ID) int {
	return r.prefetchRun(context.Background(), ids)
}
