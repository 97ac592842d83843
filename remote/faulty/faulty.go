// Package faulty wraps a remote.Remote for tests: it injects transient
// errors at a chosen rate or on chosen operations, adds latency, makes failed
// writes leave a partial object behind or land whole, and counts requests and
// bytes in each direction.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
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
	rules    []*rule       // programmed faults, see FailOn
	release  chan struct{} // closed by Release: lets held operations go on

	// Counters, read with Stats.
	held                                 atomic.Int64 // operations a Hang holds now
	puts, gets, lists, deletes, failures atomic.Int64
	bytesPut, bytesGot                   atomic.Int64
}

var _ remote.Remote = (*Remote)(nil)

// New wraps inner; seed makes the injected faults repeatable.
func New(inner remote.Remote, seed uint64) *Remote {
	return &Remote{inner: inner, rng: rand.New(rand.NewPCG(seed, seed^0x5ea1f5)), release: make(chan struct{})}
}

// SetFailRate makes a share p (0..1) of operations fail with ErrInjected.
func (r *Remote) SetFailRate(p float64) { r.mu.Lock(); r.failRate = p; r.mu.Unlock() }

// SetLatency adds d before every operation.
func (r *Remote) SetLatency(d time.Duration) { r.mu.Lock(); r.latency = d; r.mu.Unlock() }

// SetPartialWrites makes a failing Put leave the first half of the object.
func (r *Remote) SetPartialWrites(on bool) { r.mu.Lock(); r.partial = on; r.mu.Unlock() }

// Mode says how a programmed fault (FailOn) behaves.
type Mode int

const (
	// FailBefore fails the operation without passing it on.
	FailBefore Mode = iota
	// FailAfter passes the operation on and then reports ErrInjected: a
	// write lands although its caller is told it failed.
	FailAfter
	// FailPartial makes a Put store the first half of the object and then
	// report ErrInjected, as a write cut off mid-way does. Other operations
	// fail as with FailBefore.
	FailPartial
	// Hang holds the operation, as a remote that stopped answering does,
	// until Release is called (then it is passed on) or its context ends
	// (then it fails with the context's error). Held counts them.
	Hang
)

type rule struct {
	op, prefix string
	left       int
	mode       Mode
}

// FailOn makes the next n operations op ("put", "get", "stat", "list",
// "delete") on names starting with prefix fail in mode m. Rules are matched
// in the order they were added; each is dropped once used up.
func (r *Remote) FailOn(op, prefix string, n int, m Mode) {
	r.mu.Lock()
	r.rules = append(r.rules, &rule{op: op, prefix: prefix, left: n, mode: m})
	r.mu.Unlock()
}

// programmed reports the mode of the programmed fault matching op on name,
// using it up, or ok false when none matches.
func (r *Remote) programmed(op, name string) (m Mode, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ru := range r.rules {
		if ru.op == op && strings.HasPrefix(name, ru.prefix) {
			if ru.left--; ru.left <= 0 {
				r.rules = append(r.rules[:i], r.rules[i+1:]...)
			}
			r.failures.Add(1)
			return ru.mode, true
		}
	}
	return 0, false
}

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

// fault is what before decided for one operation.
type fault struct {
	fail    bool // fail now, with err
	partial bool // a failing Put leaves the first half of the object
	late    bool // pass the operation on, then report ErrInjected
	err     error
}

// before sleeps the latency and decides whether this operation fails.
func (r *Remote) before(ctx context.Context, op, name string) fault {
	injected := fmt.Errorf("%s %s: %w", op, name, ErrInjected)
	if m, ok := r.programmed(op, name); ok {
		switch m {
		case Hang:
			return r.hang(ctx)
		case FailAfter:
			return fault{late: true, err: fmt.Errorf("%s %s (it was done): %w", op, name, ErrInjected)}
		case FailPartial:
			return fault{fail: true, partial: op == "put", err: injected}
		default:
			return fault{fail: true, err: injected}
		}
	}
	r.mu.Lock()
	lat, p := r.latency, r.failRate
	fail := p > 0 && r.rng.Float64() < p
	partial := r.partial
	r.mu.Unlock()
	if lat > 0 {
		select {
		case <-ctx.Done():
			return fault{fail: true, err: ctx.Err()}
		case <-time.After(lat):
		}
	}
	if fail {
		r.failures.Add(1)
		return fault{fail: true, partial: partial, err: injected}
	}
	return fault{}
}

// hang holds an operation until Release or the end of ctx.
func (r *Remote) hang(ctx context.Context) fault {
	r.mu.Lock()
	release := r.release
	r.mu.Unlock()
	r.held.Add(1)
	defer r.held.Add(-1)
	select {
	case <-release:
		return fault{}
	case <-ctx.Done():
		return fault{fail: true, err: ctx.Err()}
	}
}

// Release lets every operation that a Hang holds go on, and drops the Hang
// rules still programmed: the remote answers again.
func (r *Remote) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.release)
	r.release = make(chan struct{})
	keep := r.rules[:0]
	for _, ru := range r.rules {
		if ru.mode != Hang {
			keep = append(keep, ru)
		}
	}
	r.rules = keep
}

// Held returns how many operations a Hang holds now.
func (r *Remote) Held() int64 { return r.held.Load() }

// done returns err, or the injected error of a late fault.
func (f fault) done(err error) error {
	if f.late && err == nil {
		return f.err
	}
	return err
}

// String names the wrapped remote.
func (r *Remote) String() string { return r.inner.String() }

// Mkdir passes through, with faults.
func (r *Remote) Mkdir(ctx context.Context) error {
	f := r.before(ctx, "mkdir", "")
	if f.fail {
		return f.err
	}
	return f.done(r.inner.Mkdir(ctx))
}

// Put passes through, with faults; it counts the bytes handed to the remote.
func (r *Remote) Put(ctx context.Context, name string, data []byte) error {
	r.puts.Add(1)
	f := r.before(ctx, "put", name)
	if f.fail {
		if f.partial && len(data) > 1 {
			r.bytesPut.Add(int64(len(data) / 2))
			_ = r.inner.Put(ctx, name, data[:len(data)/2])
		}
		return f.err
	}
	r.bytesPut.Add(int64(len(data)))
	return f.done(r.inner.Put(ctx, name, data))
}

// Get passes through, with faults; it counts the bytes returned.
func (r *Remote) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	r.gets.Add(1)
	f := r.before(ctx, "get", name)
	if f.fail {
		return nil, f.err
	}
	b, err := r.inner.Get(ctx, name, offset, length)
	r.bytesGot.Add(int64(len(b)))
	if err = f.done(err); err != nil {
		return nil, err
	}
	return b, nil
}

// Stat passes through, with faults.
func (r *Remote) Stat(ctx context.Context, name string) (int64, error) {
	f := r.before(ctx, "stat", name)
	if f.fail {
		return 0, f.err
	}
	n, err := r.inner.Stat(ctx, name)
	if err = f.done(err); err != nil {
		return 0, err
	}
	return n, nil
}

// List passes through, with faults.
func (r *Remote) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	r.lists.Add(1)
	f := r.before(ctx, "list", dir)
	if f.fail {
		return f.err
	}
	return f.done(r.inner.List(ctx, dir, fn))
}

// Delete passes through, with faults.
func (r *Remote) Delete(ctx context.Context, name string) error {
	r.deletes.Add(1)
	f := r.before(ctx, "delete", name)
	if f.fail {
		return f.err
	}
	return f.done(r.inner.Delete(ctx, name))
}
