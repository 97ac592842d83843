package shaped

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/remotetest"
)

// TestConformance: a shaped remote keeps every contract of the remote it
// wraps.
func TestConformance(t *testing.T) {
	s := Shape{Latency: time.Millisecond, Up: 1e9, Down: 1e9}
	remotetest.Run(t, func(t *testing.T) remote.Remote { return New(remotetest.NewMemory(t), s) })
}

// fakeClock records the waits; it advances by each of them, or stays put
// when frozen (as if every caller ran at once).
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	frozen bool
	slept  []time.Duration
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.slept = append(c.slept, d)
		if !c.frozen {
			c.now = c.now.Add(d)
		}
	}
	return nil
}

// take returns the waits so far, total and longest, and forgets them.
func (c *fakeClock) take() (total, longest time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.slept {
		total += d
		longest = max(longest, d)
	}
	c.slept = nil
	return total, longest
}

// near fails unless got is want within 10 µs (the token bucket computes in
// floating point).
func near(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if diff := got - want; diff > 10*time.Microsecond || diff < -10*time.Microsecond {
		t.Errorf("%s waited %v, want %v", what, got, want)
	}
}

// bytesAt is how long n bytes take at bitsPerSecond.
func bytesAt(n int, bitsPerSecond int64) time.Duration {
	return time.Duration(float64(n) * 8 / float64(bitsPerSecond) * float64(time.Second))
}

// TestWaits: each request waits the latency once; a Put's bytes go
// through the up link and a Get's through the down link, each starting
// with one piece lent by its idle bucket; listings wait once per page.
func TestWaits(t *testing.T) {
	ctx := context.Background()
	c := &fakeClock{now: time.Unix(1e9, 0)}
	s := Shape{Latency: 40 * time.Millisecond, Up: 8e6, Down: 16e6}
	r := newWithClock(remotetest.NewMemory(t), s, c)
	if err := r.Mkdir(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := c.take()
	near(t, "Mkdir", got, s.Latency)

	data := make([]byte, 1<<20)
	if err := r.Put(ctx, "packs/a", data); err != nil {
		t.Fatal(err)
	}
	got, _ = c.take()
	near(t, "Put of 1 MiB at 8 Mbit/s", got, s.Latency+bytesAt(len(data)-piece, s.Up))

	if _, err := r.Get(ctx, "packs/a", 0, -1); err != nil {
		t.Fatal(err)
	}
	got, _ = c.take()
	near(t, "Get of 1 MiB at 16 Mbit/s", got, s.Latency+bytesAt(len(data)-piece, s.Down))

	if _, err := r.Get(ctx, "packs/a", 100, 10); err != nil {
		t.Fatal(err)
	}
	got, _ = c.take()
	near(t, "Get of 10 bytes right after", got, s.Latency+bytesAt(10, s.Down))

	if _, err := r.Stat(ctx, "packs/a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "packs/a"); err != nil {
		t.Fatal(err)
	}
	got, _ = c.take()
	near(t, "Stat and Delete", got, 2*s.Latency)

	for i := range 2500 {
		if err := r.inner.Put(ctx, fmt.Sprintf("index/%04d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := r.List(ctx, "", func(remote.Entry) error { n++; return nil }); err != nil || n != 2500 {
		t.Fatalf("List: %d entries, %v", n, err)
	}
	got, _ = c.take()
	near(t, "List of 2500 entries", got, 3*s.Latency)
}

// TestLinkShared: concurrent Puts share one up link: with the clock
// frozen, the last piece to go waits for all the bytes before it, whatever
// the order the requests ran in, and the down link is untouched by them.
func TestLinkShared(t *testing.T) {
	ctx := context.Background()
	c := &fakeClock{now: time.Unix(1e9, 0), frozen: true}
	s := Shape{Up: 100e6, Down: 100e6}
	r := newWithClock(remotetest.NewMemory(t), s, c)
	const writers, size = 4, 1 << 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() { errs <- r.Put(ctx, fmt.Sprintf("packs/%d", i), make([]byte, size)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, longest := c.take()
	near(t, "the last piece of 4 concurrent 1 MiB Puts", longest, bytesAt(writers*size-piece, s.Up))

	if _, err := r.Get(ctx, "packs/0", 0, piece); err != nil {
		t.Fatal(err)
	}
	if total, _ := c.take(); total != 0 {
		t.Errorf("a Get of one piece on an idle down link waited %v", total)
	}
}

// TestCancel: a cancelled wait, for the latency or for bandwidth, returns
// ctx's error at once, and a Put cancelled so stores nothing.
func TestCancel(t *testing.T) {
	mem := remotetest.NewMemory(t)
	if err := mem.Mkdir(context.Background()); err != nil {
		t.Fatal(err)
	}
	slow := New(mem, Shape{Latency: time.Hour})
	narrow := New(mem, Shape{Up: 8, Down: 8}) // one byte per second
	if err := mem.Put(context.Background(), "packs/old", make([]byte, 2*piece)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"Put waiting for the latency", func(ctx context.Context) error { return slow.Put(ctx, "packs/new", []byte("x")) }},
		{"Get waiting for the latency", func(ctx context.Context) error { _, err := slow.Get(ctx, "packs/old", 0, -1); return err }},
		{"List waiting for the latency", func(ctx context.Context) error {
			return slow.List(ctx, "", func(remote.Entry) error { return nil })
		}},
		{"Put waiting for bandwidth", func(ctx context.Context) error { return narrow.Put(ctx, "packs/new", make([]byte, 2*piece)) }},
		{"Get waiting for bandwidth", func(ctx context.Context) error { _, err := narrow.Get(ctx, "packs/old", 0, -1); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			if err := c.op(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if err := c.op(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("with ctx already cancelled: got %v, want context.Canceled", err)
			}
		})
	}
	if _, err := mem.Stat(context.Background(), "packs/new"); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("a cancelled Put stored its object: Stat = %v", err)
	}
}

// TestParse: the flag's syntax, strictly, and String reads back the same.
func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Shape
		out  string
	}{
		{"", Shape{}, ""},
		{"latency=40ms,up=100Mbit,down=100Mbit", Shape{40 * time.Millisecond, 100e6, 100e6}, "latency=40ms,up=100Mbit,down=100Mbit"},
		{"down=2.5Mbit/s", Shape{Down: 2_500_000}, "down=2500kbit"},
		{"up=1Gbit,latency=0s", Shape{Up: 1e9}, "up=1Gbit"},
		{"up=64bit", Shape{Up: 64}, "up=64bit"},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		if got.String() != c.out {
			t.Errorf("Parse(%q).String() = %q, want %q", c.in, got.String(), c.out)
		}
		if back, err := Parse(got.String()); err != nil || back != got {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", got.String(), back, err, got)
		}
	}
	for _, bad := range []string{
		"latency", "latency=", "latency=40", "latency=-1s", "up=100", "up=100MB", "up=0Mbit",
		"up=-5Mbit", "up= 5Mbit", "up=1bit", "up=100Mbit,up=1Mbit", "speed=1Mbit", "up=100Mbit,",
		",up=1Mbit", "up=NaNMbit", "up=InfMbit", "up=1e20Gbit", "up=100mbit",
	} {
		if s, err := Parse(bad); err == nil || !errors.Is(err, errSyntax) {
			t.Errorf("Parse(%q) = %+v, %v; want an error that shows the syntax", bad, s, err)
		}
	}
}
