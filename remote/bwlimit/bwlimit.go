// Package bwlimit wraps a remote.Remote so that its bulk data keeps under
// the bandwidth the user allows (--bwlimit): a rate, or a timetable of rates
// that change at given local times of the day or week, separately for
// uploads (Put) and downloads (Get), written as rclone writes its --bwlimit
// ("1M", "1M:off", "08:00,512k 19:00,off", "Mon-08:00,1M:256k Sat-00:00,off";
// rclone's parser, github.com/rclone/rclone/fs.BwTimetable, reads it).
//
// The bytes of each direction go through one token bucket (shaped.Link)
// shared by every concurrent transfer, so --transfers parallel requests
// share the limit instead of multiplying it. Before every piece (64 KiB) the
// wrapper looks up the timetable's slot for the time now, so a long
// transfer slows down or speeds up at the slot's boundary. Put passes the
// object's bytes through the up bucket before storing it; Get fetches, then
// passes what it fetched through the down bucket before returning it.
// Stat, List, Delete and Mkdir pass on unlimited: they carry no bulk data.
package bwlimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rclone/rclone/fs"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/shaped"
)

// Timetable is a --bwlimit value: a constant rate or a timetable, in
// rclone's syntax. It is a pflag.Value; the zero Timetable is unlimited.
type Timetable struct {
	tt   fs.BwTimetable
	text string // as given
}

// Parse reads a --bwlimit value (rclone's syntax): "off" or a rate ("512k",
// "1.5M"; bytes per second, binary units, "b" for bytes), "UP:DOWN" for two
// rates ("1M:off"), or a timetable of "[DAY-]HH:MM,RATE" slots separated by
// spaces or semicolons, each holding from its time until the next one
// (local time; a slot without a day holds on every day).
func Parse(text string) (Timetable, error) {
	var tt fs.BwTimetable
	if err := tt.Set(text); err != nil {
		return Timetable{}, fmt.Errorf("--bwlimit %q: %w (a rate like 1M, UP:DOWN like 1M:off, or a timetable like \"08:00,512k 19:00,off\")", text, err)
	}
	return Timetable{tt: tt, text: text}, nil
}

// Set parses text into t (pflag.Value).
func (t *Timetable) Set(text string) error {
	v, err := Parse(text)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// String is the value as given; "off" for the zero Timetable.
func (t *Timetable) String() string {
	if t.text == "" {
		return "off"
	}
	return t.text
}

// Type names the flag's value kind in help texts.
func (t *Timetable) Type() string { return "rate|timetable" }

// IsZero reports whether t limits nothing at any time.
func (t Timetable) IsZero() bool {
	for _, s := range t.tt {
		if s.Bandwidth.IsSet() {
			return false
		}
	}
	return true
}

// Limits are the rates in force, in bytes per second; 0 is unlimited.
type Limits struct {
	Up, Down int64
}

// At returns the limits of the timetable's slot at now (local time).
func (t Timetable) At(now time.Time) Limits {
	if len(t.tt) == 0 {
		return Limits{}
	}
	b := t.tt.LimitAt(now.Local()).Bandwidth
	return Limits{Up: max(int64(b.Tx), 0), Down: max(int64(b.Rx), 0)}
}

// Remote keeps the bulk data of the remote it wraps under a Timetable's
// limits. It is safe for concurrent use.
type Remote struct {
	inner    remote.Remote
	tt       Timetable
	clock    shaped.Clock
	up, down *shaped.Link

	mu  sync.Mutex
	cur Limits // the limits the links have
}

var _ remote.Remote = (*Remote)(nil)

// New wraps inner in t's limits.
func New(inner remote.Remote, t Timetable) *Remote { return newWithClock(inner, t, shaped.RealClock{}) }

func newWithClock(inner remote.Remote, t Timetable, c shaped.Clock) *Remote {
	r := &Remote{inner: inner, tt: t, clock: c, up: shaped.NewLink(0, c), down: shaped.NewLink(0, c)}
	r.Limits()
	return r
}

// Limits returns the limits in force now, and puts them on the links if
// the timetable moved on to another slot.
func (r *Remote) Limits() Limits {
	l := r.tt.At(r.clock.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	if l != r.cur {
		r.up.SetRate(float64(l.Up))
		r.down.SetRate(float64(l.Down))
		r.cur = l
	}
	return l
}

// Timetable returns the limits r keeps to.
func (r *Remote) Timetable() Timetable { return r.tt }

// transfer passes n bytes through link, a piece at a time, each piece at
// the rate in force when it starts.
func (r *Remote) transfer(ctx context.Context, link *shaped.Link, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for n > 0 {
		p := min(n, shaped.Piece)
		r.Limits()
		if err := link.Transfer(ctx, p); err != nil {
			return err
		}
		n -= p
	}
	return nil
}

// String names the wrapped remote.
func (r *Remote) String() string { return r.inner.String() }

// Put sends data through the up limit, then stores it.
func (r *Remote) Put(ctx context.Context, name string, data []byte) error {
	if err := r.transfer(ctx, r.up, len(data)); err != nil {
		return err
	}
	return r.inner.Put(ctx, name, data)
}

// Get fetches, then receives what it fetched through the down limit.
func (r *Remote) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	b, err := r.inner.Get(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	if err := r.transfer(ctx, r.down, len(b)); err != nil {
		return nil, err
	}
	return b, nil
}

// Mkdir passes on.
func (r *Remote) Mkdir(ctx context.Context) error { return r.inner.Mkdir(ctx) }

// Stat passes on.
func (r *Remote) Stat(ctx context.Context, name string) (int64, error) {
	return r.inner.Stat(ctx, name)
}

// List passes on.
func (r *Remote) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	return r.inner.List(ctx, dir, fn)
}

// Delete passes on.
func (r *Remote) Delete(ctx context.Context, name string) error { return r.inner.Delete(ctx, name) }
