// Package shaped wraps a remote.Remote so that it behaves like one across a
// slow network link: every request waits a fixed latency (a round trip)
// before it is passed on, and the bytes of each direction go through a
// token bucket shared by all concurrent requests of that direction, so
// parallel transfers share the link's bandwidth as they would on a real one.
// Benchmarks use it to make a local-directory remote cloud-shaped; users can
// try a slow link with it (sealfs mount --remote-shape).
//
// What costs what: Put waits the latency, sends the object's bytes up, then
// stores it; Get waits the latency, fetches, then receives the bytes down;
// Stat, Delete and Mkdir wait the latency; List waits it once per page of
// 1000 entries, as object stores page their listings. Request headers and
// listings cost no bandwidth. An idle link lends one piece (64 KiB) at once,
// the token bucket's burst. Every wait ends at once with ctx's error when
// ctx is cancelled; a Put cancelled while it waits stores nothing.
package shaped

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sealfs/sealfs/remote"
)

// Piece is how many bytes one reservation of a Link's token bucket covers,
// and its burst: concurrent transfers interleave piece by piece.
const Piece = 64 << 10

// piece is Piece, as this file names it.
const piece = Piece

// listPage is how many entries one listing request returns.
const listPage = 1000

// Remote delays the requests to the remote it wraps as Shape says. It is
// safe for concurrent use.
type Remote struct {
	inner    remote.Remote
	shape    Shape
	clock    Clock
	up, down *Link // nil: unlimited
}

var _ remote.Remote = (*Remote)(nil)

// New wraps inner in a link shaped as s.
func New(inner remote.Remote, s Shape) *Remote { return newWithClock(inner, s, RealClock{}) }

func newWithClock(inner remote.Remote, s Shape, c Clock) *Remote {
	return &Remote{inner: inner, shape: s, clock: c, up: newLink(s.Up, c), down: newLink(s.Down, c)}
}

// Clock is time as a Link sees it; tests replace it.
type Clock interface {
	// Now is the time now.
	Now() time.Time
	// Sleep waits d, or returns ctx's error as soon as ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the Clock of the system's time.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits d on a timer, or until ctx is done.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Link is one direction's bandwidth: a token bucket of bytes, shared by
// every transfer through it. A nil *Link is unlimited. It is safe for
// concurrent use.
type Link struct {
	mu    sync.Mutex // orders reservations with the clock's reading
	lim   *rate.Limiter
	clock Clock
}

// newLink returns a link of bitsPerSecond, or nil (unlimited) for 0.
func newLink(bitsPerSecond int64, c Clock) *Link {
	if bitsPerSecond <= 0 {
		return nil
	}
	return NewLink(float64(bitsPerSecond)/8, c)
}

// NewLink returns a link of bytesPerSecond; 0 or less is unlimited, until
// SetRate says otherwise.
func NewLink(bytesPerSecond float64, c Clock) *Link {
	return &Link{lim: rate.NewLimiter(limit(bytesPerSecond), piece), clock: c}
}

// limit is bytesPerSecond as a token bucket's rate: 0 or less is none.
func limit(bytesPerSecond float64) rate.Limit {
	if bytesPerSecond <= 0 {
		return rate.Inf
	}
	return rate.Limit(bytesPerSecond)
}

// SetRate changes the link's rate from now on to bytesPerSecond (0 or
// less: unlimited). Pieces already reserved keep their times.
func (l *Link) SetRate(bytesPerSecond float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := limit(bytesPerSecond); r != l.lim.Limit() {
		l.lim.SetLimitAt(l.clock.Now(), r)
	}
}

// Transfer waits until n bytes have crossed the link, piece by piece, each
// piece queued behind the pieces other transfers reserved before it. It
// returns ctx's error as soon as ctx is done.
func (l *Link) Transfer(ctx context.Context, n int) error { return l.transfer(ctx, n) }

func (l *Link) transfer(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for l != nil && n > 0 {
		p := min(n, piece)
		l.mu.Lock()
		now := l.clock.Now()
		res := l.lim.ReserveN(now, p) // p <= burst: always granted
		l.mu.Unlock()
		if err := l.clock.Sleep(ctx, res.DelayFrom(now)); err != nil {
			res.CancelAt(l.clock.Now())
			return err
		}
		n -= p
	}
	return nil
}

// wait is the latency of one request.
func (r *Remote) wait(ctx context.Context) error { return r.clock.Sleep(ctx, r.shape.Latency) }

// String names the wrapped remote.
func (r *Remote) String() string { return r.inner.String() }

// Mkdir waits the latency, then passes on.
func (r *Remote) Mkdir(ctx context.Context) error {
	if err := r.wait(ctx); err != nil {
		return err
	}
	return r.inner.Mkdir(ctx)
}

// Put waits the latency and sends data up, then stores it.
func (r *Remote) Put(ctx context.Context, name string, data []byte) error {
	if err := r.wait(ctx); err != nil {
		return err
	}
	if err := r.up.transfer(ctx, len(data)); err != nil {
		return err
	}
	return r.inner.Put(ctx, name, data)
}

// Get waits the latency, fetches, and receives what it fetched down.
func (r *Remote) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if err := r.wait(ctx); err != nil {
		return nil, err
	}
	b, err := r.inner.Get(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	if err := r.down.transfer(ctx, len(b)); err != nil {
		return nil, err
	}
	return b, nil
}

// Stat waits the latency, then passes on.
func (r *Remote) Stat(ctx context.Context, name string) (int64, error) {
	if err := r.wait(ctx); err != nil {
		return 0, err
	}
	return r.inner.Stat(ctx, name)
}

// List waits the latency before every page of entries it passes on.
func (r *Remote) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	if err := r.wait(ctx); err != nil {
		return err
	}
	n := 0
	return r.inner.List(ctx, dir, func(e remote.Entry) error {
		if n++; n > listPage && n%listPage == 1 {
			if err := r.wait(ctx); err != nil {
				return err
			}
		}
		return fn(e)
	})
}

// Delete waits the latency, then passes on.
func (r *Remote) Delete(ctx context.Context, name string) error {
	if err := r.wait(ctx); err != nil {
		return err
	}
	return r.inner.Delete(ctx, name)
}
