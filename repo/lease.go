package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// LeaseTTL is how long a writer lease is valid without renewal, unless
// Options.LeaseTTL says otherwise; a holder renews it every third of that.
const LeaseTTL = 3 * time.Minute

// leaseTTL is the lease lifetime this client writes.
func (r *Repository) leaseTTL() time.Duration {
	if r.opts.LeaseTTL > 0 {
		return r.opts.LeaseTTL
	}
	return LeaseTTL
}

type leaseHolder struct {
	r      *Repository
	lease  format.Lease
	ttl    time.Duration // the lifetime each renewal gives the lease
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	lastErr error // the last renewal failure; cleared by a success
	lost    bool  // another writer took the lease
}

// ReadLease returns the current lease, or nil when there is none. A lease
// that fails authentication is reported as an error wrapping ErrIntegrity.
func (r *Repository) ReadLease(ctx context.Context) (*format.Lease, error) {
	sealed, err := readObject(ctx, r.remote, format.LeaseName, -1, format.MaxLeaseObject)
	if errors.Is(err, remote.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pt, err := r.keys.Open(crypt.TypeLease, crypt.ID{}, sealed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", format.LeaseName, ErrLeaseDamaged, err)
	}
	l, err := format.DecodeLease(pt)
	if err != nil {
		return nil, integrityError(format.LeaseName, "%v", err)
	}
	return l, nil
}

func (r *Repository) writeLease(ctx context.Context, l *format.Lease) error {
	pt, err := format.EncodeLease(l)
	if err != nil {
		return err
	}
	sealed, err := r.keys.Seal(nil, crypt.TypeLease, crypt.ID{}, pt)
	if err != nil {
		return err
	}
	return r.remote.Put(ctx, format.LeaseName, sealed)
}

// processAlive reports whether pid runs on this host; a zombie (killed,
// not yet reaped) is not running.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // cannot tell: assume it runs
	}
	_, state, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(state, "Z")
}

// Lock takes the writer lease and keeps renewing it until Close. It fails
// with ErrLocked while another writer holds a valid lease. A lease of a dead
// process on this host is taken over; any other lease, even an expired one,
// is only broken when breakLease is set.
func (r *Repository) Lock(ctx context.Context, breakLease bool) error {
	r.mu.Lock()
	held := r.lease != nil
	r.mu.Unlock()
	if held {
		return nil
	}
	cur, err := r.ReadLease(ctx)
	if err != nil && !(breakLease && errors.Is(err, ErrIntegrity)) {
		return err
	}
	host, _ := os.Hostname()
	r.mu.Lock()
	ours := cur != nil && !r.tried.IsZero() && cur.Holder == r.tried
	r.mu.Unlock()
	if cur != nil && !breakLease && !ours {
		deadHere := cur.Host == host && !processAlive(cur.PID)
		switch {
		case time.Now().Before(cur.Expires) && !deadHere:
			return fmt.Errorf("%w: %s", ErrLocked, cur)
		case !deadHere:
			return fmt.Errorf("%w: %s", ErrLeaseExpired, cur)
		}
	}
	// Another writer's lease (of a process gone, or broken): that writer
	// may have sent an upload the remote has yet to apply.
	tookOver := (cur != nil && !ours) || err != nil
	holder, err := crypt.NewRandomID()
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	h := &leaseHolder{r: r, lease: format.Lease{Holder: holder, Host: host, PID: os.Getpid(), Acquired: now, Expires: now.Add(r.leaseTTL())}, ttl: r.leaseTTL(), done: make(chan struct{})}
	// If this attempt fails from here on, the lease it may leave is ours.
	r.mu.Lock()
	r.tried = holder
	r.mu.Unlock()
	if err := r.writeLease(ctx, &h.lease); err != nil {
		return fmt.Errorf("failed to take the writer lease: %w", err)
	}
	// Read it back: of two writers racing, only the one whose lease stayed wins.
	got, err := r.ReadLease(ctx)
	if err != nil {
		return err
	}
	if got == nil || got.Holder != holder {
		return fmt.Errorf("%w: another writer took the lease at the same time", ErrLocked)
	}
	// A writer must build on the newest state: the remote's own, never a
	// local copy kept for offline starts.
	if err := r.Refresh(remote.WithoutLocalCopies(ctx)); err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go h.renew(rctx)
	r.mu.Lock()
	r.lease, r.tried, r.stopped, r.tookOver = h, crypt.ID{}, false, tookOver
	r.mu.Unlock()
	return nil
}

func (h *leaseHolder) renew(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !h.renewOnce(ctx) {
			return
		}
	}
}

// renewOnce renews the lease once; it reports false when the lease is
// lost for good. A lease that is gone from the remote, or another
// writer's, was broken: another writer may have committed since, so it is
// not written again. Nor is it written when the remote cannot tell whose
// it is (the next tick tries again; the lease is valid for two more);
// only a damaged lease, most likely our own renewal cut off, is written
// over, unless it has expired.
func (h *leaseHolder) renewOnce(ctx context.Context) bool {
	cur, err := h.r.ReadLease(ctx)
	h.mu.Lock()
	l := h.lease
	expired := time.Now().After(l.Expires)
	if err == nil && (cur == nil || cur.Holder != l.Holder) {
		h.lost = true
	}
	lost := h.lost
	skip := err != nil && (expired || !errors.Is(err, ErrIntegrity))
	if skip {
		h.lastErr = err
	}
	h.mu.Unlock()
	if lost || skip {
		return !lost
	}
	l.Expires = time.Now().UTC().Add(h.ttl)
	err = h.r.writeLease(ctx, &l)
	h.mu.Lock()
	h.lastErr = err
	if err == nil {
		// Only a renewal that is stored extends what check allows.
		h.lease.Expires = l.Expires
	}
	h.mu.Unlock()
	return true
}

// A lease that could not be renewed stops counting as ours a sixth of its
// lifetime before it expires: a commit under way, and clocks that differ
// between machines, must not reach past its expiry.

// check fails when another writer broke our lease, or when it could not be
// renewed and has (nearly) expired: another writer may have broken it by
// now, so nothing may be committed until a renewal is stored.
func (h *leaseHolder) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return fmt.Errorf("%w: our writer lease was broken by another writer; nothing more is committed", ErrLocked)
	}
	if time.Now().After(h.lease.Expires.Add(-h.ttl / 6)) {
		return fmt.Errorf("%w: our writer lease expires at %s and could not be renewed (%v); nothing is committed until it is, since another writer may take it",
			ErrLocked, h.lease.Expires.Local().Format(time.DateTime), h.lastErr)
	}
	return nil
}

// Unlock stops renewing the lease and removes it, if it is still ours.
func (r *Repository) Unlock(ctx context.Context) error {
	r.mu.Lock()
	h := r.lease
	r.lease = nil
	r.mu.Unlock()
	if h == nil {
		return nil
	}
	// Packs still uploading stay in memory, not stored.
	r.stopUploads()
	h.cancel()
	<-h.done
	cur, err := r.ReadLease(ctx)
	if err != nil || cur == nil || cur.Holder != h.lease.Holder {
		return err
	}
	return r.remote.Delete(ctx, format.LeaseName)
}
