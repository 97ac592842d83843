package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/humanize"
	"github.com/sealfs/sealfs/internal/retention"
	"github.com/sealfs/sealfs/repo"
)

// policyFlags are the retention flags of forget and mount.
type policyFlags struct {
	policy  retention.Policy
	groupBy string
}

// addPolicyFlags gives fs the --keep-* and --group-by flags.
func addPolicyFlags(fs *pflag.FlagSet, pf *policyFlags) {
	p := &pf.policy
	fs.IntVar(&p.Last, "keep-last", 0, "keep the newest N snapshots (-1: all)")
	fs.IntVar(&p.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the newest N hours that have one (-1: of every hour)")
	fs.IntVar(&p.Daily, "keep-daily", 0, "keep the newest snapshot of each of the newest N days that have one (-1: of every day)")
	fs.IntVar(&p.Weekly, "keep-weekly", 0, "keep the newest snapshot of each of the newest N ISO weeks that have one (-1: of every week)")
	fs.IntVar(&p.Monthly, "keep-monthly", 0, "keep the newest snapshot of each of the newest N months that have one (-1: of every month)")
	fs.IntVar(&p.Yearly, "keep-yearly", 0, "keep the newest snapshot of each of the newest N years that have one (-1: of every year)")
	fs.Var(&p.Within, "keep-within", "keep every snapshot made within this of the newest: 2y5m7d3h (years, months, days, hours) or a Go duration (90m0s)")
	fs.StringVar(&pf.groupBy, "group-by", string(retention.ByHost), "apply the policy to each host's snapshots apart (host) or to all together (none)")
}

// parse checks the flags and returns the policy and grouping.
func (pf *policyFlags) parse() (retention.Policy, retention.GroupBy, error) {
	by, err := retention.ParseGroupBy(pf.groupBy)
	if err != nil {
		return retention.Policy{}, "", usageError{err}
	}
	if err := pf.policy.Validate(); err != nil {
		return retention.Policy{}, "", usageError{err}
	}
	return pf.policy, by, nil
}

func newForgetCmd(g *globals) *cobra.Command {
	var pf policyFlags
	var dryRun, breakLease, asJSON bool
	cmd := &cobra.Command{
		Use:   "forget [--keep-last N] [--keep-daily N ...] [--dry-run] REMOTE [SNAPSHOT...]",
		Short: "Remove snapshots by a retention policy, or the ones named",
		Long: `Remove the snapshots a retention policy does not keep, as restic's forget does:
snapshots are grouped by host (--group-by none: all together); in each group,
walking from the newest, --keep-last N keeps the newest N, and --keep-hourly,
--keep-daily, --keep-weekly, --keep-monthly and --keep-yearly N keep the
newest snapshot of each of the newest N hours, days, ISO weeks, months or
years that have one (-1: of every one), counted in local time; a rule with
counts left also keeps the oldest snapshot. --keep-within D keeps every
snapshot made within D of the group's newest. A snapshot kept by several rules
is kept once, with every reason. The repository's newest snapshot is always
kept. A snapshot prune stored repeats the one before it: the rules count
that one, and the prune's goes unless it is the newest. Without a policy, name the snapshots to remove instead (SNAPSHOT: a
sequence number, latest, or an id prefix); with neither, nothing is done.

A forget record is stored first, then the snapshots are deleted, so that
'sealfs check' tells a forgotten snapshot from a deleted one; interrupted,
run it again to finish. The data only forgotten snapshots used stays on the
remote (prune removes it). --dry-run prints the same tables and changes
nothing.`,
		Args: minimumArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, by, err := pf.parse()
			if err != nil {
				return err
			}
			named := args[1:]
			switch {
			case len(named) > 0 && !p.Empty():
				return usageError{errors.New("give either a policy (--keep-*) or the snapshots to forget, not both")}
			case len(named) == 0 && p.Empty():
				return usageError{retention.ErrEmptyPolicy}
			}
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, args[0])
			if err != nil {
				return err
			}
			if !dryRun {
				if err := r.Lock(ctx, breakLease); err != nil {
					return err
				}
				defer r.Unlock(ctx) //nolint:errcheck // best effort; the lease expires anyway
			}
			var plan retention.Plan
			if len(named) > 0 {
				plan, err = namedPlan(ctx, r, named, args[0])
			} else {
				plan, err = retention.PlanFor(ctx, r, p, by, time.Now())
			}
			if err != nil {
				return err
			}
			if asJSON {
				return forgetWithJSON(ctx, cmd.OutOrStdout(), r, plan, len(named) > 0, dryRun)
			}
			return forgetWithText(ctx, cmd.OutOrStdout(), r, plan, len(named) > 0, dryRun)
		},
	}
	f := cmd.Flags()
	addPolicyFlags(f, &pf)
	f.BoolVar(&dryRun, "dry-run", false, "print what would be kept and forgotten, and change nothing (takes no lease)")
	f.BoolVar(&breakLease, "break-lease", false, "take the writer lease even if another writer holds it (only if it is gone)")
	addJSONFlag(cmd, &asJSON, false)
	return cmd
}

// forgetWithText prints plan for people and carries it out (unless
// dryRun); named: it names the snapshots to remove.
func forgetWithText(ctx context.Context, out io.Writer, r *repo.Repository, plan retention.Plan, named, dryRun bool) error {
	if err := printPlan(ctx, out, r, plan, named); err != nil {
		return err
	}
	removed := len(plan.Removed())
	switch {
	case removed == 0:
		fmt.Fprintln(out, "nothing to forget")
	case dryRun:
		fmt.Fprintf(out, "would forget %d snapshots (dry run: nothing was changed)\n", removed)
	default:
		if err := retention.Forget(ctx, r, plan); err != nil {
			return err
		}
		fmt.Fprintf(out, "forgot %d snapshots; the data only they used stays on the remote until it is pruned\n", removed)
	}
	return nil
}

// forgetWithJSON carries out plan (unless dryRun) and prints it as JSON
// (newForgetJSON), with the snapshots as they were before.
func forgetWithJSON(ctx context.Context, out io.Writer, r *repo.Repository, plan retention.Plan, named, dryRun bool) error {
	removed := len(plan.Removed())
	doc, err := newForgetJSON(ctx, r, plan, named, dryRun, removed)
	if err != nil {
		return err
	}
	if !dryRun && removed > 0 {
		if err := retention.Forget(ctx, r, plan); err != nil {
			return err
		}
	}
	return printJSON(out, doc)
}

// namedPlan is the plan that removes the snapshots named by sels and keeps
// every other one; naming the newest is a usage error.
func namedPlan(ctx context.Context, r *repo.Repository, sels []string, remoteName string) (retention.Plan, error) {
	drop := map[crypt.ID]bool{}
	latest := r.Latest()
	for _, sel := range sels {
		s, err := selectSnapshot(ctx, r, sel, remoteName)
		if err != nil {
			return retention.Plan{}, err
		}
		if s == latest {
			return retention.Plan{}, usageError{fmt.Errorf("snapshot %d (%s) is the newest, which is never forgotten", s.Seq, s.ID.Short())}
		}
		drop[s.ID] = true
	}
	var g retention.Group
	live, unfinished, err := retention.Unfinished(ctx, r)
	if err != nil {
		return retention.Plan{}, err
	}
	for i := len(live) - 1; i >= 0; i-- {
		if s := live[i]; drop[s.ID] {
			g.Remove = append(g.Remove, s)
		} else {
			g.Keep = append(g.Keep, retention.Kept{Snapshot: s})
		}
	}
	return retention.Plan{Groups: []retention.Group{g}, Unfinished: unfinished}, nil
}

// printPlan prints, group by group, the snapshots kept (with their reasons)
// and those removed, as tables; named: the plan names what to remove, and
// the kept ones are not listed.
func printPlan(ctx context.Context, w io.Writer, r *repo.Repository, plan retention.Plan, named bool) error {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	byID := map[crypt.ID]*repo.Snapshot{}
	for _, s := range snaps {
		byID[s.ID] = s
	}
	if !named {
		fmt.Fprintf(w, "Applying policy: %s\n", plan.Policy)
	}
	for _, g := range plan.Groups {
		if !named {
			if g.Host != "" {
				fmt.Fprintf(w, "\nhost %s: keep %d snapshots:\n", g.Host, len(g.Keep))
			} else {
				fmt.Fprintf(w, "\nkeep %d snapshots:\n", len(g.Keep))
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, snapshotHeader+"\tREASONS")
			for _, k := range g.Keep {
				fmt.Fprintf(tw, "%s\t%s\n", snapshotRow(byID[k.ID]), strings.Join(k.Reasons, ", "))
			}
			tw.Flush()
		}
		if len(g.Remove) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nremove %d snapshots:\n", len(g.Remove))
		printSnapshotTable(w, g.Remove, byID)
	}
	if len(plan.Unfinished) > 0 {
		fmt.Fprintf(w, "\nfinish forgetting %d snapshots (recorded as forgotten by a forget that was interrupted):\n", len(plan.Unfinished))
		printSnapshotTable(w, plan.Unfinished, byID)
	}
	fmt.Fprintln(w)
	return nil
}

// snapshotHeader and snapshotRow are the columns of `sealfs snapshots`,
// for tabwriter.
const snapshotHeader = "SEQ\tID\tTIME\tHOST\tFILES\tSIZE"

func snapshotRow(s *repo.Snapshot) string {
	return fmt.Sprintf("%d\t%s\t%s\t%s\t%d\t%s", s.Seq, s.ID.Short(), s.Time.Local().Format(time.DateTime), s.Host, s.Files, humanize.Bytes(s.Bytes))
}

// printSnapshotTable prints snaps as rows of the snapshots table, from the
// whole snapshots in byID.
func printSnapshotTable(w io.Writer, snaps []retention.Snapshot, byID map[crypt.ID]*repo.Snapshot) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, snapshotHeader)
	for _, s := range snaps {
		fmt.Fprintln(tw, snapshotRow(byID[s.ID]))
	}
	tw.Flush()
}
