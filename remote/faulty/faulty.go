// Package faulty wraps a remote.Remote for tests: it injects transient
// errors at a chosen rate, adds latency, makes failed writes leave a partial
// object behind, and counts requests and bytes in each direction.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealfs/sealfs/remote"
)

// ErrInjected is the transient error this wrapper injects.
var ErrInjected = errors.New("injected fault")

// Remote injects faults into the remote it wraps. The zero rates inject
// nothing; a Remote is safe for concurrent use.
type Remote struct {
	inner remote.Remote

	mu       sync.Mutex
	rng      *rand.Rand
	failRate float64       // share of operations that fail, 0..1
	latency  time.Duration // added before every operation
	partial  bool          // a failed Put first writes half of the object

	// Counters, read with Stats.
	puts, gets, lists, deletes, failures atomic.Int64
	bytesPut, bytesGot                   atomic.Int64
}

var _ remote.Remote = (*Remote)(nil)

// New wraps inner; seed makes the injected faults repeatable.
func New(inner remote.Remote, seed uint64) *Remote {
	return &Remote{inner: inner, rng: rand.New(rand.NewPCG(seed, seed^0x5ea1f5))}
}

// SetFailRate makes a share p (0..1) of operations fail with ErrInjected.
func (r *Remote) SetFailRate(p float64) { r.mu.Lock(); r.failRate = p; r.mu.Unlock() }

// SetLatency adds d before every operation.
func (r *Remote) SetLatency(d time.Duration) { r.mu.Lock(); r.latency = d; r.mu.Unlock() }

// SetPartialWrites makes a failing Put leave the first half of the object.
func (r *Remote) SetPartialWrites(on bool) { r.mu.Lock(); r.partial = on; r.mu.Unlock() }

// Stats is a snapshot of the counters.
type Stats struct {
	Puts, Gets, Lists, Deletes, Failures int64
	BytesPut, BytesGot                   int64
}

// Stats returns the counters so far.
func (r *Remote) Stats() Stats {
	return Stats{
		Puts: r.puts.Load(), Gets: r.gets.Load(), Lists: r.lists.Load(), Deletes: r.deletes.Load(),
		Failures: r.failures.Load(), BytesPut: r.bytesPut.Load(), BytesGot: r.bytesGot.Load(),
	}
}

// before sleeps the latency and decides whether this operation fails.
func (r *Remote) before(ctx context.Context, op, name string) (fail, partial bool, err error) {
	r.mu.Lock()
	lat, p := r.latency, r.failRate
	fail = p > 0 && r.rng.Float64() < p
	partial = r.partial
	r.mu.Unlock()
	if lat > 0 {
		select {
		case <-ctx.Done():
			return false, false, ctx.Err()
		case <-time.After(lat):
		}
	}
	if fail {
		r.failures.Add(1)
		return true, partial, fmt.Errorf("%s %s: %w", op, name, ErrInjected)
	}
	return false, false, nil
}

// String names the wrapped remote.
func (r *Remote) String() string { return r.inner.String() }

// Mkdir passes through, with faults.
func (r *Remote) Mkdir(ctx context.Context) error {
	if _, _, err := r.before(ctx, "mkdir", ""); err != nil {
		return err
	}
	return r.inner.Mkdir(ctx)
}

// Put passes through, with faults; it counts the bytes handed to the remote.
func (r *Remote) Put(ctx context.Context, name string, data []byte) error {
	r.puts.Add(1)
	fail, partial, err := r.before(ctx, "put", name)
	if fail {
		if partial && len(data) > 1 {
			r.bytesPut.Add(int64(len(data) / 2))
			_ = r.inner.Put(ctx, name, data[:len(data)/2])
		}
		return err
	}
	if err != nil {
		return err
	}
	r.bytesPut.Add(int64(len(data)))
	return r.inner.Put(ctx, name, data)
}

// Get passes through, with faults; it counts the bytes returned.
func (r *Remote) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	r.gets.Add(1)
	if _, _, err := r.before(ctx, "get", name); err != nil {
		return nil, err
	}
	b, err := r.inner.Get(ctx, name, offset, length)
	r.bytesGot.Add(int64(len(b)))
	return b, err
}

// Stat passes through, with faults.
func (r *Remote) Stat(ctx context.Context, name string) (int64, error) {
	if _, _, err := r.before(ctx, "stat", name); err != nil {
		return 0, err
	}
	return r.inner.Stat(ctx, name)
}

// List passes through, with faults.
func (r *Remote) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	r.lists.Add(1)
	if _, _, err := r.before(ctx, "list", dir); err != nil {
		return err
	}
	return r.inner.List(ctx, dir, fn)
}

// Delete passes through, with faults.
func (r *Remote) Delete(ctx context.Context, name string) error {
	r.deletes.Add(1)
	if _, _, err := r.before(ctx, "delete", name); err != nil {
		return err
	}
	return r.inner.Delete(ctx, name)
}
