package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/unlock"
)

func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the key slots that unlock a repository",
		Long: `A repository's key is wrapped in key slots; each slot is opened either by one
recovery code (add-code) or by a password kept at a Backup Key Vault (add-vault,
passwd). Adding or removing a slot never touches the data.`,
	}
	cmd.AddCommand(newKeyAddCodeCmd(g), newKeyListCmd(g), newKeyRemoveCmd(g), newKeyAddVaultCmd(g), newKeyPasswdCmd(g))
	return cmd
}

func newKeyAddCodeCmd(g *globals) *cobra.Command {
	var newCodeFile string
	cmd := &cobra.Command{
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
	cmd.Flags().StringVar(&newCodeFile, "new-code-file", "", "also write the new code to this file (mode 0600)")
	return cmd
}

func newKeyListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
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
}

func newKeyRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
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
			fmt.Fprintf(cmd.OutOrStdout(), "Removed key slot %s; what opened it no longer opens the repository.\n", match[0].Short())
			return nil
		},
	}
}

// errNoVault: a command that enrols at a vault was not told which.
var errNoVault = usageError{errors.New("give the vault with --vault URL")}

func newKeyAddVaultCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "add-vault --vault URL REMOTE",
		Short: "Protect the key with a password at a Backup Key Vault (unlocks with the code)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url := g.vault
			if url == "" {
				return errNoVault
			}
			vault, err := g.sources().VaultClient(url)
			if err != nil {
				return err
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
			id, err := unlock.Enrol(cmd.Context(), r, vault, pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added vault key slot %s: the password now opens the repository through %s.\n", id.Short(), url)
			return nil
		},
	}
}

func newKeyPasswdCmd(g *globals) *cobra.Command {
	var newPasswordFile string
	cmd := &cobra.Command{
		Use:   "passwd --vault URL REMOTE",
		Short: "Change the vault password (a new slot replaces the old; data untouched)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.vault == "" {
				return errNoVault
			}
			ctx := cmd.Context()
			vault, err := g.sources().VaultClient(g.vault)
			if err != nil {
				return err
			}
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
			id, err := unlock.Enrol(ctx, r, vault, pw)
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
	cmd.Flags().StringVar(&newPasswordFile, "new-password-file", "", "file holding the new password (default: asked twice)")
	return cmd
}
