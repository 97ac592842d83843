package repo_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// TestColdDamagedKeepsCommitting: a cold index object deleted (or its
// bytes damaged) concerns only older snapshots: the writer goes on
// committing new changes — merges of the cold list never take it in —
// the newest snapshot reads on a fresh open, and check names the object.
// Before, every commit whose merge reached the object failed ("failed to
// merge history index objects: ... the index is missing"), so damage to
// old history stopped every backup.
func TestColdDamagedKeepsCommitting(t *testing.T) {
	for _, damage := range []string{"deleted", "damaged"} {
		t.Run(damage, func(t *testing.T) {
			env, _ := coldEnv(t, 40)
			head := env.Repo.Latest()
			name := format.IndexName(head.Cold[0])
			path := filepath.Join(env.Dir, name)
			if damage == "deleted" {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			} else {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 1
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			if err := env.Repo.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
			w, err := env.Reopen(t, t.TempDir(), false)
			if err != nil {
				t.Fatalf("open with a %s cold index object: %v", damage, err)
			}
			if err := w.Lock(ctx, false); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = w.Unlock(ctx) }()
			var last []byte
			for i := range 60 {
				last = randomData(uint64(5000+i), 200+i)
				if _, err := storeFileErr(w, "f", last); err != nil {
					t.Fatalf("commit %d after the cold index object was %s: %v", i+1, damage, err)
				}
			}
			if n := len(w.Latest().Cold); n > 24 {
				t.Fatalf("the newest snapshot names %d cold index objects", n)
			}
			fresh, err := env.Reopen(t, t.TempDir(), false)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := readFileIn(fresh, fresh.Latest(), "f"); err != nil || !bytes.Equal(got, last) {
				t.Fatalf("the newest snapshot: %d bytes, %v", len(got), err)
			}
			rep, err := fresh.Check(ctx, repo.CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || !strings.Contains(fmt.Sprint(rep.Problems), name) {
				t.Fatalf("check: %v, want a problem naming %s", rep.Problems, name)
			}
		})
	}
}
