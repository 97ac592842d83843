package daemon

import (
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// TestGovernMemory: the soft memory limit is memoryReading while no pack
// is held, follows the packs held for upload over memoryBase, rising and
// falling with them, and goes back to memoryReading once none was held
// for memoryCalm; a GOMEMLIMIT of the user's is left alone.
func TestGovernMemory(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	var packs atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { governMemory(packs.Load, stop); close(done) }()
	waitLimit := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if debug.SetMemoryLimit(-1) == want {
				return
			}
		}
		t.Fatalf("memory limit %d, want %d", debug.SetMemoryLimit(-1), want)
	}
	waitLimit(memoryReading)
	packs.Store(3 * 9 << 20)
	waitLimit(memoryBase + 3*9<<20)
	packs.Store(0)
	waitLimit(memoryBase)
	waitLimit(memoryReading)
	close(stop)
	<-done

	debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "1GiB")
	governMemory(func() int64 { return 0 }, nil) // returns at once
	if got := debug.SetMemoryLimit(-1); got != old {
		t.Fatalf("with GOMEMLIMIT set, the limit became %d", got)
	}
}
