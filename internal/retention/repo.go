package retention

import (
	"context"
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
	}
	return out
}

// PlanFor applies p to r's snapshots as Apply does (grouped by by, periods
// in now's location), and keeps r's newest snapshot whatever p says.
// Snapshots that a forget record names but that are still there (a forget
// was interrupted before its deletes) are not counted by p: the plan
// removes them (Unfinished).
func PlanFor(r *repo.Repository, p Policy, by GroupBy, now time.Time) (Plan, error) {
	live, unfinished := Unfinished(r)
	plan, err := Apply(live, p, by, now)
	if err != nil {
		return Plan{}, err
	}
	plan.Unfinished = unfinished
	if newest := r.Latest(); newest != nil {
		plan.Protect(newest.ID, NewestReason)
	}
	return plan, nil
}

// Unfinished splits r's snapshots into those that live and those a forget
// record names (left by a forget interrupted before its deletes).
func Unfinished(r *repo.Repository) (live, unfinished []Snapshot) {
	forgotten := map[crypt.ID]bool{}
	for _, f := range r.Forgotten() {
		forgotten[f.ID] = true
	}
	for _, s := range Of(r.Snapshots()) {
		if forgotten[s.ID] {
			unfinished = append(unfinished, s)
		} else {
			live = append(live, s)
		}
	}
	return live, unfinished
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
