// Package retry wraps a remote.Remote so that transient errors (everything
// but not-found, permanent and short-read errors, see remote.IsTransient)
// are retried with exponential backoff and jitter.
package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sealfs/sealfs/remote"
)

// Policy says how often and how patiently to retry.
type Policy struct {
	Attempts int           // total tries, at least 1
	Base     time.Duration // first backoff
	Max      time.Duration // largest backoff
}

// DefaultPolicy suits cloud backends: 8 tries over about a minute.
var DefaultPolicy = Policy{Attempts: 8, Base: 250 * time.Millisecond, Max: 15 * time.Second}

// Remote retries the operations of the remote it wraps.
type Remote struct {
	inner  remote.Remote
	policy Policy
	// OnRetry, if set, is called before each retry with the error that caused it.
	OnRetry func(op, name string, err error)
}

var _ remote.Remote = (*Remote)(nil)

// New wraps inner with policy p.
func New(inner remote.Remote, p Policy) *Remote {
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	return &Remote{inner: inner, policy: p}
}

func (r *Remote) do(ctx context.Context, op, name string, fn func() error) error {
	backoff := r.policy.Base
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(); err == nil || !remote.IsTransient(err) || attempt >= r.policy.Attempts {
			return err
		}
		if r.OnRetry != nil {
			r.OnRetry(op, name, err)
		}
		// Full jitter: sleep a random time up to the current backoff.
		sleep := time.Duration(rand.Int64N(int64(backoff) + 1))
		select {
		case <-ctx.Done():
			// The caller gave up: say so (it is not transient), and
			// what the remote said last.
			return fmt.Errorf("%w (the last try failed: %v)", context.Cause(ctx), err)
		case <-time.After(sleep):
		}
		if backoff *= 2; backoff > r.policy.Max {
			backoff = r.policy.Max
		}
	}
}

// String names the wrapped remote.
func (r *Remote) String() string { return r.inner.String() }

// Mkdir retries inner.Mkdir.
func (r *Remote) Mkdir(ctx context.Context) error {
	return r.do(ctx, "mkdir", "", func() error { return r.inner.Mkdir(ctx) })
}

// Put retries inner.Put.
func (r *Remote) Put(ctx context.Context, name string, data []byte) error {
	return r.do(ctx, "put", name, func() error { return r.inner.Put(ctx, name, data) })
}

// Get retries inner.Get.
func (r *Remote) Get(ctx context.Context, name string, offset, length int64) (b []byte, err error) {
	err = r.do(ctx, "get", name, func() error {
		b, err = r.inner.Get(ctx, name, offset, length)
		return err
	})
	return b, err
}

// Stat retries inner.Stat.
func (r *Remote) Stat(ctx context.Context, name string) (size int64, err error) {
	err = r.do(ctx, "stat", name, func() error {
		size, err = r.inner.Stat(ctx, name)
		return err
	})
	return size, err
}

// List retries inner.List from the start. An entry that an attempt which
// failed half-way gave already is not given again: fn sees each name once,
// as from one listing (a name given twice would look like a replayed
// object to the repository). An error from fn itself is returned at once,
// never retried.
func (r *Remote) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	var fnErr error
	seen := map[string]bool{}
	err := r.do(ctx, "list", dir, func() error {
		err := r.inner.List(ctx, dir, func(e remote.Entry) error {
			if seen[e.Name] {
				return nil
			}
			seen[e.Name] = true
			fnErr = fn(e)
			return fnErr
		})
		if fnErr != nil {
			return nil // stop retrying; fnErr is returned below
		}
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// Delete retries inner.Delete.
func (r *Remote) Delete(ctx context.Context, name string) error {
	return r.do(ctx, "delete", name, func() error { return r.inner.Delete(ctx, name) })
}
