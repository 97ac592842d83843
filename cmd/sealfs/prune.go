package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/sealfs/sealfs/internal/humanize"
	"github.com/sealfs/sealfs/internal/progress"
	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/shaped"
	"github.com/sealfs/sealfs/repo"
)

func newPruneCmd(g *globals) *cobra.Command {
	var dryRun, breakLease, asJSON bool
	var maxUnused int
	cmd := &cobra.Command{
		Use:   "prune [--dry-run] [--max-unused-pct N] REMOTE",
		Short: "Delete the data that no retained snapshot needs",
		Long: `Delete the packs that no retained snapshot needs, repack the packs that are mostly
unused (and small packs together), and rewrite the indexes to list exactly what is
left. The new state is stored as a snapshot (with the newest snapshot's content)
before anything is deleted, so an interrupted prune leaves a repository that opens
and checks clean; run it again to finish. It needs the writer lease: unmount first.
With --dry-run it only says what it would delete.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxUnused < 0 || maxUnused > 100 {
				return usageError{fmt.Errorf("--max-unused-pct must be 0 to 100, not %d", maxUnused)}
			}
			// Everything is read from the remote itself; the mount's copies
			// of the metadata are kept in step (deleted objects go).
			ctx := remote.WithoutLocalCopies(cmd.Context())
			rem, _, _, err := g.openMirrored(ctx, args[0], shaped.Shape{}, nil)
			if err != nil {
				return err
			}
			r, err := g.openRepoOn(ctx, rem)
			if err != nil {
				return err
			}
			if !dryRun {
				if err := r.Lock(ctx, breakLease); err != nil {
					if errors.Is(err, repo.ErrLocked) {
						return fmt.Errorf("%w; prune needs the repository to itself: if it is mounted, unmount it first (sealfs umount MOUNTPOINT)", err)
					}
					return err
				}
				defer r.Unlock(ctx) //nolint:errcheck // best effort; the lease expires anyway
			}
			m := progress.NewCount(cmd.ErrOrStderr(), g.quiet, "prune", "objects", 0)
			rep, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: maxUnused, DryRun: dryRun, Progress: m.Stages()})
			m.Done()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), newPruneJSON(rep))
			}
			printPrune(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only say what would be deleted and repacked; change nothing")
	cmd.Flags().IntVar(&maxUnused, "max-unused-pct", repo.DefaultMaxUnusedPct, "repack a pack when more than this percentage of its bytes is unused (100: never)")
	cmd.Flags().BoolVar(&breakLease, "break-lease", false, "take the writer lease even if another writer holds it (only if it is gone)")
	g.addTransfersFlag(cmd)
	g.addBwlimitFlag(cmd)
	addJSONFlag(cmd, &asJSON, false)
	return cmd
}

// printPrune prints what a prune did, or would do.
func printPrune(w io.Writer, p *repo.PruneReport) {
	verb := func(did, would string) string {
		if p.DryRun {
			return would
		}
		return did
	}
	fmt.Fprintf(w, "%d snapshots retained", p.Snapshots)
	if p.Forgotten > 0 {
		fmt.Fprintf(w, " (%d forgotten ones still present %s first)", p.Forgotten, verb("deleted", "would be deleted"))
	}
	fmt.Fprintf(w, "; %d blobs live (%s)\n", p.LiveBlobs, humanize.Bytes(uint64(p.LiveBytes)))
	fmt.Fprintf(w, "packs: %d, %d kept, %d %s (%s; %d of them named by no index), %d %s (%s, %s of it live)",
		p.Packs, p.KeptPacks, p.DeletedPacks, verb("deleted", "to delete"), humanize.Bytes(uint64(p.DeletedBytes)), p.UnreferencedPacks,
		p.RepackedPacks, verb("repacked", "to repack"), humanize.Bytes(uint64(p.RepackedBytes)), humanize.Bytes(uint64(p.CopiedBytes)))
	if !p.DryRun && p.RepackedPacks > 0 {
		fmt.Fprintf(w, " into %d new", p.NewPacks)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "indexes: %d %s", p.DeletedIndexes, verb("deleted", "to delete"))
	if p.Snapshot != nil {
		fmt.Fprintf(w, ", %d written, named by snapshot %d (%s)", p.NewIndexes, p.Snapshot.Seq, p.Snapshot.ID.Short())
	}
	fmt.Fprintln(w)
	if n := p.KeptUnreferencedPacks + p.KeptUnreferencedIndexes; n > 0 {
		fmt.Fprintf(w, "kept %d packs and %d indexes that no snapshot names: the lease was taken over from a writer that stopped without releasing it, and its last upload may still land; the next prune deletes them\n",
			p.KeptUnreferencedPacks, p.KeptUnreferencedIndexes)
	}
	if p.DryRun {
		fmt.Fprintf(w, "would free about %s: the remote holds %s, about %s after a prune; nothing was changed\n",
			humanize.Bytes(uint64(max(p.Freed(), 0))), humanize.Bytes(uint64(p.RemoteBefore)), humanize.Bytes(uint64(p.RemoteAfter)))
		return
	}
	fmt.Fprintf(w, "freed %s: the remote held %s, now %s\n",
		humanize.Bytes(uint64(max(p.Freed(), 0))), humanize.Bytes(uint64(p.RemoteBefore)), humanize.Bytes(uint64(p.RemoteAfter)))
}
