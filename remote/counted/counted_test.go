package counted

import (
	"context"
	"errors"
	"testing"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/remotetest"
)

// TestConformance: a counted remote keeps every contract of the remote it
// wraps.
func TestConformance(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Remote { return New(remotetest.NewMemory(t)) })
}

// TestCounts: what was stored and fetched, and nothing for a failed call.
func TestCounts(t *testing.T) {
	ctx := context.Background()
	c := New(remotetest.NewMemory(t))
	if err := c.Put(ctx, "a", make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "b", make([]byte, 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "a", 10, 30); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "missing", 0, -1); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	if _, err := c.Get(ctx, "b", 0, 50); err == nil {
		t.Fatal("a range past the end was read")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	c.Put(cancelled, "c", make([]byte, 7)) // fails or stores: counted only if stored
	want := Counts{UpBytes: 120, Puts: 2, DownBytes: 30, Gets: 1}
	if _, err := c.Stat(ctx, "c"); err == nil {
		want.UpBytes, want.Puts = 127, 3
	}
	if got := c.Counts(); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}
