package mirror_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/remote/mirror"
	"github.com/sealfs/sealfs/remote/remotetest"
)

// TestConformance: with the remote up, the mirror keeps every contract.
func TestConformance(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Remote { return mirror.New(remotetest.NewMemory(t), t.TempDir()) })
}

// TestServesCopiesWhenDown: metadata objects and listings written or read
// while the remote was up are served when it fails; data objects are not,
// and "not found" is never papered over.
func TestServesCopiesWhenDown(t *testing.T) {
	ctx := context.Background()
	f := faulty.New(remotetest.NewMemory(t), 1)
	m := mirror.New(f, t.TempDir())
	m.Mkdir(ctx)
	for name, data := range map[string]string{"config": "c", "keys/k1": "k", "snapshots/s1": "s", "data/00/p": "pack"} {
		if err := m.Put(ctx, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Get(ctx, "index/missing", 0, -1); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("missing object = %v", err)
	}
	f.SetFailRate(1)
	if b, err := m.Get(ctx, "config", 0, -1); err != nil || string(b) != "c" {
		t.Fatalf("config while down = %q, %v", b, err)
	}
	var names []string
	if err := m.List(ctx, "snapshots", func(e remote.Entry) error { names = append(names, e.Name); return nil }); err != nil || len(names) != 1 {
		t.Fatalf("snapshot listing while down = %v, %v", names, err)
	}
	if _, err := m.Get(ctx, "data/00/p", 0, -1); err == nil {
		t.Fatal("a data object was served from a copy")
	}
	if err := m.Put(ctx, "snapshots/s2", []byte("x")); err == nil {
		t.Fatal("a write succeeded while the remote is down")
	}
}
