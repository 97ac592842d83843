package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// TestColdPruneRefusesBadCold: a prune (that would rewrite, after a
// forget) while a cold index object the newest snapshot names is gone, or
// holds another index object's bytes, fails with an integrity error and
// deletes nothing: once the object is back, every retained snapshot reads
// byte for byte and check --read-data is clean.
func TestColdPruneRefusesBadCold(t *testing.T) {
	for _, damage := range []string{"delete", "swap"} {
		t.Run(damage, func(t *testing.T) {
			env, contents := coldEnvSized(t, 40, 300<<10, 1<<20)
			ctx := context.Background()
			byTree := map[crypt.ID][]byte{}
			var forget []crypt.ID
			for _, s := range snapshots(t, env.Repo) {
				byTree[s.Tree] = contents[s.Seq-1]
				if s.Seq%3 == 0 && s.Seq < 39 {
					forget = append(forget, s.ID)
				}
			}
			if err := env.Repo.Forget(ctx, forget); err != nil {
				t.Fatal(err)
			}
			head := env.Repo.Latest()
			cold := filepath.Join(env.Dir, format.IndexName(head.Cold[0]))
			saved, err := os.ReadFile(cold)
			if err != nil {
				t.Fatal(err)
			}
			if damage == "delete" {
				os.Remove(cold)
			} else {
				other, err := os.ReadFile(filepath.Join(env.Dir, format.IndexName(head.Indexes[0])))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(cold, other, 0o600)
			}
			r, err := env.Reopen(t, t.TempDir(), false)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Lock(ctx, false); err != nil {
				env.Repo.Unlock(ctx)
				if err := r.Lock(ctx, false); err != nil {
					t.Fatal(err)
				}
			}
			_, err = r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 0})
			if !errors.Is(err, repo.ErrIntegrity) {
				t.Errorf("prune with a %sd cold index object: %v, want an integrity error", damage, err)
			}
			r.Unlock(ctx)
			if err := os.WriteFile(cold, saved, 0o600); err != nil {
				t.Fatal(err)
			}
			checkRetained(t, env, byTree, 40-len(forget))
		})
	}
}
