// Package counted wraps a remote.Remote and counts what crosses the link:
// the bytes and objects stored and fetched. The mount daemon puts it
// directly above the real remote, so that its counts are what went over
// the network (`sealfs status`, the metrics endpoint).
package counted

import (
	"context"
	"sync/atomic"

	"github.com/sealfs/sealfs/remote"
)

// Remote counts the traffic of the remote it wraps. It is safe for
// concurrent use.
type Remote struct {
	remote.Remote
	up, down, puts, gets atomic.Uint64
}

// Counts is what a Remote has counted since it was made.
type Counts struct {
	// UpBytes and Puts: bytes and objects stored (a Put that failed
	// counts nothing, even if part of it went out).
	UpBytes, Puts uint64
	// DownBytes and Gets: bytes and objects (or ranges) fetched.
	DownBytes, Gets uint64
}

// New returns r, counted.
func New(r remote.Remote) *Remote { return &Remote{Remote: r} }

// Put stores the object through the wrapped remote and counts it once it
// is stored.
func (c *Remote) Put(ctx context.Context, name string, data []byte) error {
	err := c.Remote.Put(ctx, name, data)
	if err == nil {
		c.up.Add(uint64(len(data)))
		c.puts.Add(1)
	}
	return err
}

// Get fetches through the wrapped remote and counts what it returned.
func (c *Remote) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	b, err := c.Remote.Get(ctx, name, offset, length)
	if err == nil {
		c.down.Add(uint64(len(b)))
		c.gets.Add(1)
	}
	return b, err
}

// Counts returns the counts so far.
func (c *Remote) Counts() Counts {
	return Counts{UpBytes: c.up.Load(), Puts: c.puts.Load(), DownBytes: c.down.Load(), Gets: c.gets.Load()}
}
