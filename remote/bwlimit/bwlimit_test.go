package bwlimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/remotetest"
)

// fakeClock advances by every wait.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
		c.slept += d
	}
	return nil
}

func (c *fakeClock) take() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.slept
	c.slept = 0
	return d
}

const (
	ki = 1 << 10
	mi = 1 << 20
)

// at is a local time on Tuesday 2026-12-01 (the timetable's days are local).
func at(hh, mm, ss int) time.Time { return time.Date(2026, 12, 1, hh, mm, ss, 0, time.Local) }

// TestParse reads rclone's documented --bwlimit examples and looks up
// their limits at given times.
func TestParse(t *testing.T) {
	tue := func(hh, mm int) time.Time { return at(hh, mm, 0) }
	day := func(d, hh, mm int) time.Time { return time.Date(2026, 11, 29+d, hh, mm, 0, 0, time.Local) } // 29 Nov 2026: a Sunday
	type check struct {
		when time.Time
		want Limits
	}
	for _, tc := range []struct {
		text   string
		zero   bool
		checks []check
	}{
		{"off", true, []check{{tue(12, 0), Limits{}}}},
		{"10M", false, []check{{tue(0, 0), Limits{10 * mi, 10 * mi}}, {tue(23, 59), Limits{10 * mi, 10 * mi}}}},
		{"512k", false, []check{{tue(3, 0), Limits{512 * ki, 512 * ki}}}},
		{"10M:100k", false, []check{{tue(3, 0), Limits{10 * mi, 100 * ki}}}},
		{"1M:off", false, []check{{tue(3, 0), Limits{mi, 0}}}},
		{"off:1M", false, []check{{tue(3, 0), Limits{0, mi}}}},
		{"100", false, []check{{tue(3, 0), Limits{100 * ki, 100 * ki}}}}, // rclone: no suffix is KiB
		{"100B", false, []check{{tue(3, 0), Limits{100, 100}}}},
		{"08:00,512k 19:00,off", false, []check{
			{tue(7, 59), Limits{}}, {tue(8, 0), Limits{512 * ki, 512 * ki}}, {tue(18, 59), Limits{512 * ki, 512 * ki}}, {tue(19, 0), Limits{}}}},
		{"08:00,512k 12:00,10M 13:00,512k 18:00,30M 23:00,off", false, []check{
			{tue(0, 30), Limits{}}, {tue(8, 30), Limits{512 * ki, 512 * ki}}, {tue(12, 30), Limits{10 * mi, 10 * mi}},
			{tue(13, 0), Limits{512 * ki, 512 * ki}}, {tue(18, 0), Limits{30 * mi, 30 * mi}}, {tue(23, 0), Limits{}}}},
		{"08:00,512k;19:00,off", false, []check{{tue(9, 0), Limits{512 * ki, 512 * ki}}, {tue(20, 0), Limits{}}}},
		{"Mon-00:00,512 Fri-23:59,10M Sat-10:00,1M Sun-20:00,off", false, []check{
			{day(1, 0, 0), Limits{512 * ki, 512 * ki}}, {day(4, 12, 0), Limits{512 * ki, 512 * ki}}, {day(5, 23, 59), Limits{10 * mi, 10 * mi}},
			{day(6, 9, 59), Limits{10 * mi, 10 * mi}}, {day(6, 10, 0), Limits{mi, mi}}, {day(0, 19, 0), Limits{mi, mi}}, {day(0, 20, 0), Limits{}}}},
		{"Mon-08:00,1M:256k Mon-18:00,off", false, []check{{day(1, 9, 0), Limits{mi, 256 * ki}}, {day(2, 9, 0), Limits{}}}},
		{"08:00,off 19:00,off", true, []check{{tue(9, 0), Limits{}}}},
	} {
		tt, err := Parse(tc.text)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.text, err)
			continue
		}
		if tt.String() != tc.text {
			t.Errorf("Parse(%q).String() = %q", tc.text, tt.String())
		}
		if tt.IsZero() != tc.zero {
			t.Errorf("Parse(%q).IsZero() = %v", tc.text, tt.IsZero())
		}
		for _, c := range tc.checks {
			if got := tt.At(c.when); got != c.want {
				t.Errorf("%q at %s: %+v, want %+v", tc.text, c.when.Format("Mon 15:04"), got, c.want)
			}
		}
	}
	for _, bad := range []string{"", "fast", "1X", "1M:2M:3M", "25:00,1M", "08:60,1M", "8:00,1M", "08:00,1M,2M", "Moo-08:00,1M", "Mon-08,1M", "08:00,fast", "-1M"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
	var zero Timetable
	if !zero.IsZero() || zero.String() != "off" || zero.At(tue(1, 0)) != (Limits{}) {
		t.Errorf("the zero Timetable is not unlimited")
	}
}

// FuzzParse: Parse never panics, and what it accepts gives limits of no
// negative rate, none at all for a timetable that is zero.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"off", "10M", "1M:off", "08:00,512k 19:00,off", "Mon-00:00,512 Fri-23:59,10M Sat-10:00,1M Sun-20:00,off", "08:00,512k;12:00,1M:2M", "Sun-23:59,1.5G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tt, err := Parse(s)
		if err != nil {
			return
		}
		for d := range 7 {
			for _, hm := range [][2]int{{0, 0}, {7, 59}, {12, 0}, {23, 59}} {
				l := tt.At(time.Date(2026, 11, 29+d, hm[0], hm[1], 0, 0, time.Local))
				if l.Up < 0 || l.Down < 0 || (tt.IsZero() && l != Limits{}) {
					t.Fatalf("%q: limits %+v", s, l)
				}
			}
		}
	})
}

// TestRates: Put's bytes go through the up limit and Get's through the
// down one, as UP:DOWN says; metadata requests cost nothing.
func TestRates(t *testing.T) {
	ctx := context.Background()
	c := &fakeClock{now: at(12, 0, 0)}
	tt, err := Parse("256k:128k")
	if err != nil {
		t.Fatal(err)
	}
	r := newWithClock(remotetest.NewMemory(t), tt, c)
	data := make([]byte, mi)
	if err := r.Put(ctx, "a", data); err != nil {
		t.Fatal(err)
	}
	// 16 pieces of 64 KiB: the first lent by the idle bucket, 15 at 4 a second.
	if got, want := c.take(), 15*time.Second/4; got != want {
		t.Errorf("Put of 1 MiB at 256k waited %v, want %v", got, want)
	}
	if _, err := r.Get(ctx, "a", 0, 512*ki); err != nil {
		t.Fatal(err)
	}
	// 8 pieces: the first lent, 7 at 2 a second.
	if got, want := c.take(), 7*time.Second/2; got != want {
		t.Errorf("Get of 512 KiB at 128k waited %v, want %v", got, want)
	}
	if _, err := r.Stat(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := r.List(ctx, "", func(remote.Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := c.take(); got != 0 {
		t.Errorf("Stat, List and Delete waited %v", got)
	}
}

// TestBoundary: a transfer under way when the timetable reaches its next
// slot goes on at the new slot's rate from there, and the limits say so.
func TestBoundary(t *testing.T) {
	ctx := context.Background()
	c := &fakeClock{now: at(10, 0, 58)}
	tt, err := Parse("10:00,256k 10:01,64k 10:02,off")
	if err != nil {
		t.Fatal(err)
	}
	r := newWithClock(remotetest.NewMemory(t), tt, c)
	if got := r.Limits(); got != (Limits{256 * ki, 256 * ki}) {
		t.Fatalf("limits at 10:00:58: %+v", got)
	}
	if err := r.Put(ctx, "a", make([]byte, mi)); err != nil {
		t.Fatal(err)
	}
	// The first piece lent, 8 at 256k (2 s, up to 10:01:00), then the
	// other 7 at 64k, a second each.
	if got, want := c.take(), 9*time.Second; got != want {
		t.Errorf("Put of 1 MiB across the boundary waited %v, want %v", got, want)
	}
	if got := r.Limits(); got != (Limits{64 * ki, 64 * ki}) {
		t.Errorf("limits at %s: %+v, want 64k", c.Now().Format(time.TimeOnly), got)
	}
	c.mu.Lock()
	c.now = at(10, 2, 0)
	c.mu.Unlock()
	if err := r.Put(ctx, "b", make([]byte, 4*mi)); err != nil {
		t.Fatal(err)
	}
	if got := c.take(); got != 0 {
		t.Errorf("Put after 10:02 (off) waited %v", got)
	}
	if got := r.Limits(); got != (Limits{}) {
		t.Errorf("limits at 10:02: %+v, want none", got)
	}
}

// TestCancel: a transfer waiting for its turn ends with ctx's error, and a
// cancelled Put stores nothing.
func TestCancel(t *testing.T) {
	tt, err := Parse("1k")
	if err != nil {
		t.Fatal(err)
	}
	inner := remotetest.NewMemory(t)
	r := New(inner, tt)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Put(ctx, "a", make([]byte, 256*ki)); err == nil {
		t.Fatal("Put at 1k of 256 KiB did not end at its deadline")
	}
	if _, err := inner.Stat(context.Background(), "a"); err == nil {
		t.Error("a cancelled Put stored the object")
	}
}

// TestConformance: the wrapper keeps the remote contract.
func TestConformance(t *testing.T) {
	tt, err := Parse("100M:200M")
	if err != nil {
		t.Fatal(err)
	}
	remotetest.Run(t, func(t *testing.T) remote.Remote { return New(remotetest.NewMemory(t), tt) })
}
