package repo

import "github.com/sealfs/sealfs/crypt"

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
