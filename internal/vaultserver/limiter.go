package vaultserver

import (
	"sync"
	"time"
)

// limiter is a token bucket per key, with at most max keys held. A bucket
// that has refilled to its burst is the same as no bucket, so it is
// dropped when room is needed: no key's state is ever lost or reset
// early. When the table is full of buckets still refilling, a new key is
// refused (rate-limited) until one refills: a flood of new keys cannot
// reset the limit of a key it targets, nor grow the table.
type limiter struct {
	mu        sync.Mutex
	rate      float64
	burst     float64
	max       int
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// defaultLimiterKeys bounds the keys of a limiter: at a few hundred bytes
// each (the keys are user ids of at most 128 bytes, or addresses), tens
// of MB at most.
const defaultLimiterKeys = 100000

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, max: defaultLimiterKeys, buckets: map[string]*bucket{}}
}

// full reports whether b has refilled to the burst by now.
func (l *limiter) full(b *bucket, now time.Time) bool {
	return b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst
}

// sweep drops the buckets that have refilled, at most ten times a second
// (each sweep walks the table).
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < 100*time.Millisecond {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if l.full(b, now) {
			delete(l.buckets, k)
		}
	}
}

func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweep(now)
			if len(l.buckets) >= l.max {
				return false
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// size returns how many keys the limiter holds.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
