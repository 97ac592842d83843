package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
	"time"
)

// TestRetryAfter: a failing remote backs the commit loop off up to 5
// minutes; a full cache disk only up to 10 s, so that queued files go up
// soon after space is freed, not minutes later.
func TestRetryAfter(t *testing.T) {
	remoteDown := errors.New("failed to upload pack: connection refused")
	fullDisk := fmt.Errorf("failed to create journal: %w", &fs.PathError{Op: "write", Path: "work/journal.tmp", Err: syscall.ENOSPC})
	for _, c := range []struct {
		err   error
		limit time.Duration
	}{{remoteDown, 5 * time.Minute}, {fullDisk, 10 * time.Second}} {
		var d time.Duration
		var seen []time.Duration
		for range 20 {
			d = retryAfter(d, c.err)
			seen = append(seen, d)
		}
		if seen[0] != time.Second || seen[1] != 2*time.Second {
			t.Errorf("%v: starts %v, want 1s then 2s", c.err, seen[:2])
		}
		if d != c.limit {
			t.Errorf("%v: backs off to %v, want %v", c.err, d, c.limit)
		}
	}
	// After a long outage of the remote, a full disk waits 10 s at most.
	if d := retryAfter(5*time.Minute, fullDisk); d != 10*time.Second {
		t.Errorf("a full disk after a long remote outage waits %v, want 10s", d)
	}
}
