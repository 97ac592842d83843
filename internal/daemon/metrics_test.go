package daemon

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sealfs/sealfs/repo"
)

// TestRateMeter: the rate is the growth from the oldest sample of the
// last 10 s to now; older samples are dropped.
func TestRateMeter(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(1000, 0)
	if r := m.rate(t0, 5); r != 0 {
		t.Errorf("no samples: %v", r)
	}
	for i := range 30 { // 1000 bytes a second for 30 s
		m.observe(t0.Add(time.Duration(i)*time.Second), uint64(i)*1000)
	}
	if r := m.rate(t0.Add(30*time.Second), 30000); r != 1000 {
		t.Errorf("steady: %v, want 1000", r)
	}
	// Nothing more after the last sample (29 s), asked at 34 s: from the
	// oldest kept (19 s), 10,000 bytes in 15 s.
	if r := m.rate(t0.Add(34*time.Second), 29000); r < 666 || r > 667 {
		t.Errorf("slowing: %v", r)
	}
	if len(m.samples) > 12 {
		t.Errorf("%d samples kept for a 10 s window at 1/s", len(m.samples))
	}
}

func TestFailureCause(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", repo.ErrIntegrity), CauseIntegrity},
		{repo.ErrLeaseDamaged, CauseIntegrity},
		{fmt.Errorf("x: %w", repo.ErrLeaseExpired), CauseLease},
		{fmt.Errorf("write: %w", syscall.ENOSPC), CauseNoSpace},
		{context.Canceled, CauseCanceled},
		{fmt.Errorf("odd"), CauseOther},
	} {
		if got := failureCause(c.err); got != c.want {
			t.Errorf("%v: %s, want %s", c.err, got, c.want)
		}
	}
}
