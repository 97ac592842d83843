package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/archiver"
	"github.com/sealfs/sealfs/internal/humanize"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo"
)

func newInitCmd(g *globals) *cobra.Command {
	var compression string
	cmd := &cobra.Command{
		Use:   "init [--code-file FILE] [--vault URL] REMOTE",
		Short: "Create a repository and print its recovery code",
		Long: `Create a new encrypted repository on REMOTE with a random 256-bit key, and print
the 64-digit recovery code that unlocks it, once. With --code-file, the code is
also written to FILE (mode 0600; an existing file is never overwritten). With
--vault URL, the key is also protected by a password at that Backup Key Vault
(asked twice, or read from --password-file).`,
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
			if g.vault != "" { // ask before anything is created
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
				if _, err := unlock.Enrol(ctx, r, g.vault, password); err != nil {
					return fmt.Errorf("%w (the repository exists and opens with the recovery code; retry with: sealfs key add-vault --vault %s %s)", err, g.vault, rcloneremote.Redact(args[0]))
				}
				fmt.Fprintf(out, "The key is also protected by your password at the vault %s.\n", g.vault)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&compression, "compression", repo.CompressionZstd, "compress chunks before encryption: zstd or none")
	return cmd
}

func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the key slots that unlock a repository",
		Long: `A repository's key is wrapped in key slots; each slot is opened either by one
recovery code (add-code) or by a password kept at a Backup Key Vault (add-vault,
passwd). Adding or removing a slot never touches the data.`,
	}
	var newCodeFile string
	add := &cobra.Command{
		Use:   "add-code REMOTE",
		Short: "Add a slot with a new recovery code, and print the code",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.openRepo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			code, id, err := r.AddCodeSlot(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Added key slot %s. Its recovery code:\n\n", id.Short())
			printCode(out, code)
			fmt.Fprintf(out, "\n%s\n", codeWarning)
			if newCodeFile != "" {
				if err := writeCodeFile(newCodeFile, code); err != nil {
					return err
				}
				fmt.Fprintf(out, "The code was also written to %s (mode 0600).\n", newCodeFile)
			}
			return nil
		},
	}
	add.Flags().StringVar(&newCodeFile, "new-code-file", "", "also write the new code to this file (mode 0600)")
	list := &cobra.Command{
		Use:   "list REMOTE",
		Short: "List the key slots",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.openRepo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			slots, err := r.Slots(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SLOT\tKIND\tCREATED")
			for _, s := range slots {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID.Short(), s.Slot.Kind, s.Slot.Created.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use:   "remove SLOT REMOTE",
		Short: "Remove a key slot (by the id or a prefix of it shown by key list)",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.openRepo(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			slots, err := r.Slots(cmd.Context())
			if err != nil {
				return err
			}
			var match []crypt.ID
			for _, s := range slots {
				if strings.HasPrefix(s.ID.String(), strings.ToLower(args[0])) {
					match = append(match, s.ID)
				}
			}
			if len(match) != 1 {
				return usageError{fmt.Errorf("%q matches %d key slots; give more of the id shown by: sealfs key list", args[0], len(match))}
			}
			if err := r.RemoveSlot(cmd.Context(), match[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed key slot %s; its recovery code no longer opens the repository.\n", match[0].Short())
			return nil
		},
	}
	addVault := &cobra.Command{
		Use:   "add-vault --vault URL REMOTE",
		Short: "Protect the key with a password at a Backup Key Vault (unlocks with the code)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url := g.vault
			if url == "" {
				return usageError{errors.New("give the vault with --vault URL")}
			}
			g.vault = "" // unlock with the recovery code
			r, err := g.openRepo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			pw, err := g.sources().NewPassword(g.passwordFile)
			if err != nil {
				return err
			}
			id, err := unlock.Enrol(cmd.Context(), r, url, pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added vault key slot %s: the password now opens the repository through %s.\n", id.Short(), url)
			return nil
		},
	}
	var newPasswordFile string
	passwd := &cobra.Command{
		Use:   "passwd --vault URL REMOTE",
		Short: "Change the vault password (a new slot replaces the old; data untouched)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.vault == "" {
				return usageError{errors.New("give the vault with --vault URL")}
			}
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, args[0]) // with the current password
			if err != nil {
				return err
			}
			pw, err := g.sources().NewPassword(newPasswordFile)
			if err != nil {
				return err
			}
			slots, err := r.Slots(ctx)
			if err != nil {
				return err
			}
			id, err := unlock.Enrol(ctx, r, g.vault, pw)
			if err != nil {
				return err
			}
			for _, s := range unlock.VaultSlots(slots, g.vault) {
				if err := r.RemoveSlot(ctx, s.ID); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Changed the vault password (new key slot %s); the old password no longer opens the repository.\n", id.Short())
			return nil
		},
	}
	passwd.Flags().StringVar(&newPasswordFile, "new-password-file", "", "file holding the new password (default: asked twice)")
	cmd.AddCommand(add, list, remove, addVault, passwd)
	return cmd
}

func newSnapshotsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "snapshots REMOTE",
		Short: "List the snapshots",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.openRepo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tID\tTIME\tHOST\tFILES\tSIZE")
			for _, s := range r.Snapshots() {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", s.Seq, s.ID.Short(), s.Time.Local().Format(time.DateTime), s.Host, s.Files, humanize.Bytes(s.Bytes))
			}
			return tw.Flush()
		},
	}
}

func newCheckCmd(g *globals) *cobra.Command {
	var readData bool
	cmd := &cobra.Command{
		Use:   "check [--read-data] REMOTE",
		Short: "Verify every object of the repository",
		Long: `Verify the key slots, snapshots, indexes, every pack header against the index,
and every directory tree. With --read-data, download and verify every chunk too.
Each damaged or missing object is named; the exit code is 7 if any was found.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.openRepo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			rep, err := r.Check(cmd.Context(), repo.CheckOptions{ReadData: readData})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "checked %d key slots, %d snapshots, %d indexes, %d packs, %d blobs, %d trees\n",
				rep.Slots, rep.Snapshots, rep.Indexes, rep.Packs, rep.Blobs, rep.Trees)
			if n := len(rep.Unreferenced) + len(rep.UnreferencedPacks); n > 0 {
				fmt.Fprintf(out, "%d objects are not referenced by any snapshot (left by interrupted commits; harmless)\n", n)
			}
			for _, p := range rep.Problems {
				fmt.Fprintf(out, "error: %v\n", p)
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
			if damaged > 0 {
				return fmt.Errorf("%w: %d problems found; the objects named above are damaged or missing", repo.ErrIntegrity, damaged)
			}
			if len(unread) > 0 {
				return fmt.Errorf("the check did not finish: the remote failed to give %d objects (nothing was found damaged); run it again: %w", len(unread), unread[0])
			}
			fmt.Fprintln(out, "no problems found")
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "also download and verify every chunk")
	return cmd
}

func newBackupCmd(g *globals) *cobra.Command {
	var breakLease bool
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
			root, err := s.SaveDir(ctx, args[0])
			if err != nil {
				return err
			}
			st := s.Stats()
			snap, err := r.Commit(ctx, root, repo.CommitInfo{Files: st.Files, Bytes: st.Bytes})
			if err != nil {
				return err
			}
			ws := r.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "snapshot %d (%s): %d files, %d directories, %s; uploaded %s in %d packs (%d chunks new, %d already stored)\n",
				snap.Seq, snap.ID.Short(), st.Files, st.Dirs, humanize.Bytes(st.Bytes), humanize.Bytes(ws.PackBytes), ws.Packs, ws.Blobs, ws.DedupBlobs)
			return nil
		},
	}
	cmd.Flags().BoolVar(&breakLease, "break-lease", false, "take the writer lease even if another writer holds it (only if it is gone)")
	return cmd
}

func newRestoreCmd(g *globals) *cobra.Command {
	var seq uint64
	cmd := &cobra.Command{
		Use:   "restore [--snapshot SEQ] REMOTE DIR",
		Short: "Restore a snapshot (the newest by default) into an empty directory",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, args[0])
			if err != nil {
				return err
			}
			snaps := r.Snapshots()
			if len(snaps) == 0 {
				return fmt.Errorf("the repository has no snapshots yet")
			}
			snap := snaps[len(snaps)-1]
			if seq != 0 {
				// A snapshot that should be there and is not is an
				// integrity error; one never made or forgotten on
				// purpose is a usage error.
				if snap, err = r.SnapshotBySeq(seq); errors.Is(err, repo.ErrNoSnapshot) {
					return usageError{fmt.Errorf("%w (see: sealfs snapshots %s)", err, rcloneremote.Redact(args[0]))}
				} else if err != nil {
					return err
				}
			}
			dir := args[1]
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				return usageError{fmt.Errorf("%s is not empty; restore into an empty directory", dir)}
			}
			if err := archiver.NewRestorer(r).RestoreTree(ctx, snap.Tree, dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored snapshot %d (%d files, %s) into %s\n", snap.Seq, snap.Files, humanize.Bytes(snap.Bytes), dir)
			return nil
		},
	}
	cmd.Flags().Uint64Var(&seq, "snapshot", 0, "sequence number of the snapshot to restore (see: sealfs snapshots)")
	return cmd
}
