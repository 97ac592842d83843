package repo

import "context"

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
