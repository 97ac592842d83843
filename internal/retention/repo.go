package retention

import (
	"context"
	"slices"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// NewestReason is the reason shown for a repository's newest snapshot,
// which a plan keeps whatever its policy says: the newest snapshot is
// never forgotten (SPEC §8.1).
const NewestReason = "newest snapshot (never forgotten)"

// Of gives the policy's view of a repository's snapshots.
func Of(snaps []*repo.Snapshot) []Snapshot {
	out := make([]Snapshot, len(snaps))
	for i, s := range snaps {
		out[i] = Snapshot{ID: s.ID, Seq: s.Seq, Time: s.Time, Host: s.Host}
		if s.Prune {
			out[i].Repeats = s.Parent
		}
	}
	return out
}

// ForkReason is the reason shown for a snapshot on a fork (off the main
// line: docs/SPEC.md §8), which a plan keeps whatever its policy says: it
// may hold changes no snapshot of the main line has. It goes only when
// named (sealfs forget REMOTE ID).
const ForkReason = "on a fork (changes the newest snapshot may lack; forget it by its id)"

// PlanFor applies p to r's main line of snapshots as Apply does (grouped
// by by, periods in now's location), and keeps r's newest snapshot
// whatever p says. Snapshots on a fork are kept and not counted by p
// (ForkReason). Snapshots that a forget record names but that are still
// there (a forget was interrupted before its deletes) are not counted
// either: the plan removes them (Unfinished).
func PlanFor(ctx context.Context, r *repo.Repository, p Policy, by GroupBy, now time.Time) (Plan, error) {
	live, unfinished, err := Unfinished(ctx, r)
	if err != nil {
		return Plan{}, err
	}
	forks := map[crypt.ID]bool{}
	for _, s := range r.Forks() {
		forks[s.ID] = true
	}
	// A prune's snapshot that repeats a snapshot still there is not one
	// more version: the policy counts the one it repeats, and it goes
	// (unless it is the newest, below).
	there := map[crypt.ID]bool{}
	for _, s := range live {
		there[s.ID] = true
	}
	var repeats []Snapshot
	mainLine := slices.DeleteFunc(slices.Clone(live), func(s Snapshot) bool {
		if forks[s.ID] {
			return true
		}
		if !s.Repeats.IsZero() && there[s.Repeats] {
			repeats = append(repeats, s)
			return true
		}
		return false
	})
	plan, err := Apply(mainLine, p, by, now)
	if err != nil {
		return Plan{}, err
	}
	plan.Unfinished = unfinished
	for _, s := range repeats {
		plan.Drop(s)
	}
	for _, s := range live {
		if forks[s.ID] {
			plan.Add(s, ForkReason)
		}
	}
	if newest := r.Latest(); newest != nil {
		plan.Protect(newest.ID, NewestReason)
	}
	return plan, nil
}

// Unfinished splits r's snapshots into those that live and those a forget
// record names (left by a forget interrupted before its deletes).
func Unfinished(ctx context.Context, r *repo.Repository) (live, unfinished []Snapshot, err error) {
	forgotten := map[crypt.ID]bool{}
	for _, f := range r.Forgotten() {
		forgotten[f.ID] = true
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range Of(snaps) {
		if forgotten[s.ID] {
			unfinished = append(unfinished, s)
		} else {
			live = append(live, s)
		}
	}
	return live, unfinished, nil
}

// Forget forgets the snapshots plan removes from r (Repository.Forget: a
// forget record first, then the deletes). r must hold the writer lease.
func Forget(ctx context.Context, r *repo.Repository, plan Plan) error {
	removed := plan.Removed()
	if len(removed) == 0 {
		return nil
	}
	ids := make([]crypt.ID, len(removed))
	for i, s := range removed {
		ids[i] = s.ID
	}
	return r.Forget(ctx, ids)
}
