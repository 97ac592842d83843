package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/internal/archiver"
	"github.com/sealfs/sealfs/internal/humanize"
	"github.com/sealfs/sealfs/internal/progress"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo"
)

func newInitCmd(g *globals) *cobra.Command {
	var compression string
	cmd := &cobra.Command{
		Use:   "init [--code-file FILE] [--vault URL[,URL...] [--vault-threshold K]] REMOTE",
		Short: "Create a repository and print its recovery code",
		Long: `Create a new encrypted repository on REMOTE with a random 256-bit key, and print
the 64-digit recovery code that unlocks it, once. With --code-file, the code is
also written to FILE (mode 0600; an existing file is never overwritten). With
--vault URL, the key is also protected by a password at that Backup Key Vault
(asked twice, or read from --password-file); with --vault URL1,URL2,URL3
--vault-threshold 2, at those vaults, any 2 of which recover it.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rem, err := g.openRemote(ctx, args[0])
			if err != nil {
				return err
			}
			if g.codeFile != "" {
				if _, err := os.Stat(g.codeFile); err == nil {
					return usageError{fmt.Errorf("%s exists already; choose a new file for the recovery code", g.codeFile)}
				}
			}
			var password []byte
			var vaults []*keyvault.Client
			var k int
			if g.vault != "" { // refuse the URLs and ask before anything is created
				if vaults, k, err = g.enrolTargets(); err != nil {
					return err
				}
				if password, err = g.sources().NewPassword(g.passwordFile); err != nil {
					return err
				}
			}
			opts, err := g.options()
			if err != nil {
				return err
			}
			r, code, err := repo.Init(ctx, rem, repo.InitOptions{Options: opts, Compression: compression})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Created repository %s at %s.\n\nRecovery code:\n\n", r.ID(), rcloneremote.Redact(args[0]))
			printCode(out, code)
			fmt.Fprintf(out, "\n%s\n", codeWarning)
			if g.codeFile != "" {
				if err := writeCodeFile(g.codeFile, code); err != nil {
					return err
				}
				fmt.Fprintf(out, "The code was also written to %s (mode 0600).\n", g.codeFile)
			}
			if g.vault != "" {
				if _, err := unlock.Enrol(ctx, r, vaults, k, password); err != nil {
					return fmt.Errorf("%w (the repository exists and opens with the recovery code; retry with: sealfs key add-vault %s %s)", err, g.vaultArgs(k), rcloneremote.Redact(args[0]))
				}
				fmt.Fprintf(out, "The key is also protected by your password %s.\n", vaultsPhrase(vaults, k))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&compression, "compression", repo.CompressionZstd, "compress chunks before encryption: zstd or none")
	addThresholdFlag(cmd, g)
	return cmd
}

func newSnapshotsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "snapshots REMOTE",
		Short: "List the snapshots",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.openRepo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			snaps, err := r.Snapshots(cmd.Context())
			if err != nil {
				return err
			}
			forks := r.Forks()
			if asJSON {
				return printJSON(cmd.OutOrStdout(), struct {
					Snapshots []snapshotJSON `json:"snapshots"`
				}{snapshotsJSON(snaps, forks)})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, snapshotHeader)
			for _, s := range snaps {
				fmt.Fprint(tw, snapshotRow(s))
				if slices.Contains(forks, s) {
					fmt.Fprint(tw, "	"+forkNote)
				}
				if s.Prune {
					fmt.Fprint(tw, "	"+pruneNote)
				}
				fmt.Fprintln(tw)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(forks) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "\n%s\n", forkAdvice(rcloneremote.Redact(args[0])))
			}
			return nil
		},
	}
	addJSONFlag(cmd, &asJSON, false)
	return cmd
}

// pruneNote marks the snapshot a prune stored in `sealfs snapshots`.
const pruneNote = "prune: the files of the snapshot before"

// forkNote marks a snapshot of a fork in `sealfs snapshots`.
const forkNote = "fork: not in the newest tree"

// forkAdvice says what a fork is and how to get its files back.
func forkAdvice(remote string) string {
	return fmt.Sprintf("Snapshots marked \"fork\" were stored by a writer whose snapshot number another writer's took (a writer that stopped while its upload was under way); the newest snapshot does not hold their changes. Restore one with: sealfs restore --snapshot ID %s DIR", remote)
}

func newCheckCmd(g *globals) *cobra.Command {
	var readData, asJSON bool
	var subsetArg string
	cmd := &cobra.Command{
		Use:   "check [--read-data | --read-data-subset SUBSET] REMOTE",
		Short: "Verify every object of the repository",
		Long: `Verify the key slots, snapshots, indexes, every pack header against the index,
and every directory tree. With --read-data, download and verify every chunk too;
with --read-data-subset, only those of some packs: n/t (group n of t, the
groups 1/t..t/t together read every pack once), a percentage (5%) or a byte
budget (500M), the last two chosen at random.
Each damaged or missing object is named; the exit code is 7 if any was found.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var subset *repo.DataSubset
			if cmd.Flags().Changed("read-data-subset") {
				if readData {
					return usageError{errors.New("give --read-data (every pack) or --read-data-subset (some), not both")}
				}
				d, err := repo.ParseDataSubset(subsetArg)
				if err != nil {
					return usageError{err}
				}
				subset, readData = &d, true
			}
			r, err := g.openRepo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var m *progress.Meter
			if readData { // without it a check reads headers only: quick
				m = progress.NewCount(cmd.ErrOrStderr(), g.quiet, "check", "packs", 0)
			}
			rep, err := r.Check(cmd.Context(), repo.CheckOptions{ReadData: readData, DataSubset: subset, Progress: m.Stages("packs")})
			m.Done()
			if err != nil {
				return err
			}
			// Damage is what failed verification; an object the remote
			// would not give (it failed, past the retries) is not known
			// to be damaged: then the check did not finish.
			var damaged int
			var unread []error
			for _, p := range rep.Problems {
				if errors.Is(p, repo.ErrIntegrity) {
					damaged++
				} else {
					unread = append(unread, p)
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				err = printJSON(out, newCheckJSON(rep))
			} else {
				printCheck(out, rep, rcloneremote.Redact(args[0]))
				if subset != nil {
					fmt.Fprintf(out, "read the data of %d of %d packs (subset %s)\n", len(rep.DataPacks), rep.Packs, subsetArg)
				}
			}
			if damaged > 0 {
				return fmt.Errorf("%w: %d problems found; the objects named above are damaged or missing", repo.ErrIntegrity, damaged)
			}
			if len(unread) > 0 {
				return fmt.Errorf("the check did not finish: the remote failed to give %d objects (nothing was found damaged); run it again: %w", len(unread), unread[0])
			}
			if asJSON {
				return err
			}
			fmt.Fprintln(out, "no problems found")
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "also download and verify every chunk")
	cmd.Flags().StringVar(&subsetArg, "read-data-subset", "", "download and verify the chunks of some packs only: n/t (pack groups 1/t..t/t cover all), a percentage (5%) or a byte budget (500M)")
	g.addBwlimitFlag(cmd)
	addJSONFlag(cmd, &asJSON, false)
	return cmd
}

// printCheck shows what a check found to a person.
func printCheck(out io.Writer, rep *repo.CheckReport, remoteName string) {
	fmt.Fprintf(out, "checked %d key slots, %d snapshots, %d indexes, %d packs, %d blobs, %d trees\n",
		rep.Slots, rep.Snapshots, rep.Indexes, rep.Packs, rep.Blobs, rep.Trees)
	if n := len(rep.Unreferenced) + len(rep.UnreferencedPacks); n > 0 {
		fmt.Fprintf(out, "%d objects are not referenced by any snapshot (left by interrupted commits or prunes; harmless: sealfs prune removes them)\n", n)
	}
	for _, s := range rep.Forks {
		fmt.Fprintf(out, "note: snapshot %d (%s, %s, host %s) is on a fork: not in the newest snapshot's history (not a problem)\n",
			s.Seq, s.ID.Short(), s.Time.Local().Format(time.DateTime), s.Host)
	}
	if len(rep.Forks) > 0 {
		fmt.Fprintln(out, "note: "+forkAdvice(remoteName))
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(out, "error: %v\n", p)
	}
}

func newBackupCmd(g *globals) *cobra.Command {
	var breakLease, asJSON bool
	cmd := &cobra.Command{
		Use:   "backup DIR REMOTE",
		Short: "Store a copy of a local directory as a new snapshot",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if fi, err := os.Stat(args[0]); err != nil || !fi.IsDir() {
				return usageError{fmt.Errorf("%s is not a directory", args[0])}
			}
			r, err := g.openRepo(ctx, args[1])
			if err != nil {
				return err
			}
			if err := r.Lock(ctx, breakLease); err != nil {
				return err
			}
			defer r.Unlock(ctx) //nolint:errcheck // best effort; the lease expires anyway
			s := archiver.NewSaver(r)
			m := progress.New(cmd.ErrOrStderr(), g.quiet, "backup", 0)
			s.OnFile = m.AddFile
			root, err := s.SaveDir(ctx, args[0])
			m.Done()
			if err != nil {
				return err
			}
			attrs, err := s.RootAttrs(args[0])
			if err != nil {
				return err
			}
			st := s.Stats()
			snap, err := r.Commit(ctx, root, repo.CommitInfo{Files: st.Files, Bytes: st.Bytes, Root: attrs})
			if err != nil {
				return err
			}
			ws := r.Stats()
			if asJSON {
				return printJSON(cmd.OutOrStdout(), backupJSON{Snapshot: newSnapshotJSON(snap, nil), Files: st.Files, Dirs: st.Dirs, Others: st.Others,
					Bytes: st.Bytes, UploadedBytes: ws.PackBytes, Packs: ws.Packs, NewChunks: ws.Blobs, StoredChunks: ws.DedupBlobs})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "snapshot %d (%s): %d files, %d directories, %s; uploaded %s in %d packs (%d chunks new, %d already stored)\n",
				snap.Seq, snap.ID.Short(), st.Files, st.Dirs, humanize.Bytes(st.Bytes), humanize.Bytes(ws.PackBytes), ws.Packs, ws.Blobs, ws.DedupBlobs)
			return nil
		},
	}
	cmd.Flags().BoolVar(&breakLease, "break-lease", false, "take the writer lease even if another writer holds it (only if it is gone)")
	g.addTransfersFlag(cmd)
	g.addBwlimitFlag(cmd)
	addJSONFlag(cmd, &asJSON, false)
	return cmd
}

func newRestoreCmd(g *globals) *cobra.Command {
	var sel string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "restore [--snapshot SNAPSHOT] REMOTE DIR",
		Short: "Restore a snapshot (the newest by default) into an empty directory",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, args[0])
			if err != nil {
				return err
			}
			snap, err := readSnapshot(ctx, r, sel, args[0])
			if err != nil {
				return err
			}
			dir := args[1]
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				return usageError{fmt.Errorf("%s is not empty; restore into an empty directory", dir)}
			}
			rs := archiver.NewRestorer(r)
			rs.Warn = func(err error) { fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err) }
			m := progress.New(cmd.ErrOrStderr(), g.quiet, "restore", int64(snap.Bytes))
			rs.OnFile = m.AddFile
			err = rs.RestoreTree(ctx, snap.Tree, dir)
			m.Done()
			if err != nil {
				return err
			}
			if snap.Root != nil {
				if err := rs.RestoreRoot(snap.Root, dir); err != nil {
					return err
				}
			}
			if asJSON {
				abs, err := filepath.Abs(dir)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), restoreJSON{Snapshot: newSnapshotJSON(snap, r.Forks()), Target: abs, Files: snap.Files, Bytes: snap.Bytes, Warnings: rs.Warnings()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored snapshot %d (%d files, %s) into %s\n", snap.Seq, snap.Files, humanize.Bytes(snap.Bytes), dir)
			if n := rs.Warnings(); n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %d extended attributes were not restored (listed above): the target's filesystem or your privileges refuse them\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&sel, "snapshot", "latest", "the snapshot to restore: "+snapshotSelectorHelp)
	g.addTransfersFlag(cmd)
	g.addBwlimitFlag(cmd)
	addJSONFlag(cmd, &asJSON, false)
	return cmd
}
