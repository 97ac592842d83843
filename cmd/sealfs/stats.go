package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/internal/humanize"
	"github.com/sealfs/sealfs/internal/progress"
	"github.com/sealfs/sealfs/repo"
)

func newStatsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats [--json] REMOTE [SNAPSHOT...]",
		Short: "Show the logical and stored sizes, dedup and compression of snapshots",
		Long: `Show, for each retained snapshot (or each SNAPSHOT named: ` + snapshotSelectorHelp + `),
its files, their logical size (holes included), the distinct chunks they use and
those chunks' size before and after compression and sealing; then the snapshots
together (each chunk counted once): the dedup ratio (logical / unique) and the
compression ratio (unique / stored), and what the metadata and the whole remote take.
It only reads: it needs no lease and runs beside a mount.`,
		Args: minimumArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, args[0])
			if err != nil {
				return err
			}
			var snaps []*repo.Snapshot
			for _, sel := range args[1:] {
				s, err := readSnapshot(ctx, r, sel, args[0])
				if err != nil {
					return err
				}
				snaps = append(snaps, s)
			}
			if len(args) == 1 {
				all, err := r.Snapshots(ctx)
				if err != nil {
					return err
				}
				for _, s := range all {
					// A fork's blobs may be listed only by its own indexes.
					if err := r.LoadIndexesOf(ctx, s); err != nil {
						return err
					}
				}
				if len(all) == 0 {
					return usageError{errors.New("the repository has no snapshots yet")}
				}
			}
			m := progress.NewCount(cmd.ErrOrStderr(), g.quiet, "stats", "folders", 0)
			rep, err := r.SizeStats(ctx, snaps, m.Stages())
			m.Done()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), newStatsJSON(rep, r.Forks()))
			}
			printStats(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	addJSONFlag(cmd, &asJSON, false)
	return cmd
}

// ratio returns a / b, or nil when b is 0.
func ratio(a, b uint64) *float64 {
	if b == 0 {
		return nil
	}
	r := float64(a) / float64(b)
	return &r
}

// showRatio shows a ratio, or "-" when there is none.
func showRatio(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fx", *r)
}

// printStats prints a SizeStats report as a table and a summary.
func printStats(w io.Writer, rep *repo.StatsReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "seq\tid\tfiles\tlogical\tchunks\tunique\tstored\tdedup\tcompression\t")
	for _, s := range rep.Snapshots {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t\n", s.Snapshot.Seq, s.Snapshot.ID.Short(), s.Files,
			humanize.Bytes(s.LogicalBytes), s.Chunks, humanize.Bytes(s.RawBytes), humanize.Bytes(s.StoredBytes),
			showRatio(ratio(s.LogicalBytes, s.RawBytes)), showRatio(ratio(s.RawBytes, s.StoredBytes)))
	}
	tw.Flush()
	fmt.Fprintf(w, "total of %d snapshots: %s logical, %d chunks of %s unique data stored in %s: dedup %s, compression %s\n",
		len(rep.Snapshots), humanize.Bytes(rep.LogicalBytes), rep.Chunks, humanize.Bytes(rep.RawBytes), humanize.Bytes(rep.StoredBytes),
		showRatio(ratio(rep.LogicalBytes, rep.RawBytes)), showRatio(ratio(rep.RawBytes, rep.StoredBytes)))
	fmt.Fprintf(w, "metadata: %d trees (%s), %d index objects (%s), %d snapshot objects (%s); the remote holds %s\n",
		rep.TreeBlobs, humanize.Bytes(rep.TreeBytes), rep.IndexObjects, humanize.Bytes(rep.IndexBytes),
		rep.SnapshotObjects, humanize.Bytes(rep.SnapshotBytes), humanize.Bytes(rep.RemoteBytes))
}

// statsJSON is `sealfs stats --json`.
type statsJSON struct {
	Snapshots []snapshotStatsJSON `json:"snapshots"`
	Total     statsTotalJSON      `json:"total"`
}

// snapshotStatsJSON is one snapshot in `sealfs stats --json`.
type snapshotStatsJSON struct {
	Snapshot         snapshotJSON `json:"snapshot"`
	Files            uint64       `json:"files"`
	LogicalBytes     uint64       `json:"logical_bytes"`
	Chunks           int          `json:"chunks"`
	RawBytes         uint64       `json:"raw_bytes"`
	StoredBytes      uint64       `json:"stored_bytes"`
	DedupRatio       *float64     `json:"dedup_ratio"`
	CompressionRatio *float64     `json:"compression_ratio"`
}

// statsTotalJSON is the total in `sealfs stats --json`.
type statsTotalJSON struct {
	LogicalBytes     uint64   `json:"logical_bytes"`
	Chunks           int      `json:"chunks"`
	RawBytes         uint64   `json:"raw_bytes"`
	StoredBytes      uint64   `json:"stored_bytes"`
	DedupRatio       *float64 `json:"dedup_ratio"`
	CompressionRatio *float64 `json:"compression_ratio"`
	TreeBlobs        int      `json:"tree_blobs"`
	TreeBytes        uint64   `json:"tree_bytes"`
	IndexObjects     int      `json:"index_objects"`
	IndexBytes       uint64   `json:"index_bytes"`
	SnapshotObjects  int      `json:"snapshot_objects"`
	SnapshotBytes    uint64   `json:"snapshot_bytes"`
	RemoteBytes      uint64   `json:"remote_bytes"`
}

func newStatsJSON(rep *repo.StatsReport, forks []*repo.Snapshot) statsJSON {
	out := statsJSON{Snapshots: []snapshotStatsJSON{}, Total: statsTotalJSON{LogicalBytes: rep.LogicalBytes, Chunks: rep.Chunks,
		RawBytes: rep.RawBytes, StoredBytes: rep.StoredBytes, DedupRatio: ratio(rep.LogicalBytes, rep.RawBytes),
		CompressionRatio: ratio(rep.RawBytes, rep.StoredBytes), TreeBlobs: rep.TreeBlobs, TreeBytes: rep.TreeBytes,
		IndexObjects: rep.IndexObjects, IndexBytes: rep.IndexBytes, SnapshotObjects: rep.SnapshotObjects,
		SnapshotBytes: rep.SnapshotBytes, RemoteBytes: rep.RemoteBytes}}
	for _, s := range rep.Snapshots {
		out.Snapshots = append(out.Snapshots, snapshotStatsJSON{Snapshot: newSnapshotJSON(s.Snapshot, forks), Files: s.Files,
			LogicalBytes: s.LogicalBytes, Chunks: s.Chunks, RawBytes: s.RawBytes, StoredBytes: s.StoredBytes,
			DedupRatio: ratio(s.LogicalBytes, s.RawBytes), CompressionRatio: ratio(s.RawBytes, s.StoredBytes)})
	}
	return out
}
