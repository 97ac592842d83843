package daemon

import (
	"os"
	"runtime/debug"
	"time"
)

// memoryBase is the Go heap a mount lets itself reach, over the packs it
// holds for upload, while it writes: its read caches (repo: 12 MiB of
// chunks and segments, 1 MiB of tables), the read-ahead in flight, the
// loaded trees, the chunk pipeline, and room for the garbage between two
// collections. Without a limit the collector lets the heap grow to twice
// what is live. Measured on a cold 512 MiB read (docs/BENCHMARKS.md): no
// limit, 100-112 MiB resident; 64 MiB, 88 MiB at the same speed; 56 MiB,
// 81 MiB and 5-10 % slower; 48 MiB, 73 MiB and 30 % slower; 40 MiB, 66
// MiB and 70 % slower (the collector runs nearly without pause, as 30 MiB
// or so is live). That was with 20 MiB of read caches and a buffer per
// segment opened; see memoryReading.
const memoryBase = 56 << 20

// memoryReading is the limit once no pack has been held for memoryCalm: a
// mount that only reads keeps little live (the read caches, the
// read-ahead in flight, whose buffers the collector does not scan), and
// 36 MiB keeps a cold sequential read at the speed it has with 56 while
// the daemon stays near 60 MiB resident, a third of it the program's own
// code. A writer's chunk pipeline makes more garbage: with 36 MiB a
// sequential write ran at half its speed, hence memoryBase while writing.
const memoryReading = 36 << 20

// memoryCalm is how long after the last pack held the limit stays at
// memoryBase.
const memoryCalm = 3 * time.Second

// memoryEvery is how often the governor follows the packs held.
const memoryEvery = 100 * time.Millisecond

// governMemory keeps the Go runtime's soft memory limit at memoryBase
// (memoryReading once nothing was written for a while) over the memory of
// the packs held for upload, until stop is closed: a limit
// below what is live would make the collector run without pause, so it
// rises while a writer holds packs and falls back once they are stored.
// A GOMEMLIMIT set by the user wins (a smaller one trades speed for
// memory): then it does nothing.
func governMemory(packs func() int64, stop <-chan struct{}) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	tick := time.NewTicker(memoryEvery)
	defer tick.Stop()
	last := int64(-1)
	var wrote time.Time // the first pack held raises the limit within memoryEvery
	for {
		held := packs()
		if held > 0 {
			wrote = time.Now()
		}
		limit := memoryReading + held
		if time.Since(wrote) < memoryCalm {
			limit = memoryBase + held
		}
		if limit != last {
			debug.SetMemoryLimit(limit)
			last = limit
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}
