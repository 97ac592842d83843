package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/repo"
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
	var asJSON bool
	cmd := &cobra.Command{
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
			if asJSON {
				doc := struct {
					Slots []slotJSON `json:"slots"`
				}{[]slotJSON{}}
				for _, s := range slots {
					doc.Slots = append(doc.Slots, slotJSON{ID: jsonID(s.ID), Kind: string(s.Slot.Kind), Created: jsonTime(s.Slot.Created)})
				}
				return printJSON(cmd.OutOrStdout(), doc)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SLOT\tKIND\tCREATED")
			for _, s := range slots {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID.Short(), s.Slot.Kind, s.Slot.Created.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	addJSONFlag(cmd, &asJSON, false)
	return cmd
}

func newKeyRemoveCmd(g *globals) *cobra.Command {
	var keepAtVault bool
	cmd := &cobra.Command{
		Use:   "remove SLOT REMOTE",
		Short: "Remove a key slot (by the id or a prefix of it shown by key list); a vault slot is retired at its vault first",
		Long: `Remove a key slot, by the id or a prefix of it shown by key list. A vault slot's
enrolment is destroyed at its vaults first, proved with its password: give
the slot's vaults with --vault (the password then unlocks: --password-file,
or asked), so that the password no longer recovers it from any copy of the
slot. Only vaults named with --vault are asked, never the URLs a slot on the
remote names: without them the slot is left as it is, and the error says
what to run. --keep-at-vault removes the slot only.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rem, err := g.openRemote(ctx, args[1])
			if err != nil {
				return err
			}
			r, secret, err := g.openRepoSecret(ctx, rem)
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
			slot := slots[slices.IndexFunc(slots, func(s repo.SlotInfo) bool { return s.ID == match[0] })]
			if p, err := unlock.ParseVaultParams(slot.Slot); err == nil && !keepAtVault {
				if err := g.retire(ctx, secret, p, r.ID(), slot); err != nil {
					return err
				}
			}
			if err := r.RemoveSlot(ctx, match[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed key slot %s; what opened it no longer opens the repository.\n", match[0].Short())
			return nil
		},
	}
	cmd.Flags().BoolVar(&keepAtVault, "keep-at-vault", false, "remove a vault slot without retiring its enrolment at the vault (when its password is lost, or the vault is too old to retire)")
	return cmd
}

// retire destroys, at its vaults, the enrolment behind the vault slot
// with parameters p of repository rid, proved with secret, which must be
// a password for vaults the user named with --vault (unlock.Secret.Retire
// asks only those). A slot's own URLs are never contacted: they come from
// the remote, whose keeper could plant a slot naming a vault of its own,
// which would then get what the password derives (a tag to test guesses
// offline). Without the slot's vaults named it retires nothing and says
// what to run.
func (g *globals) retire(ctx context.Context, secret unlock.Secret, p unlock.VaultParams, rid crypt.RepoID, slot repo.SlotInfo) error {
	err := secret.Retire(ctx, rid, slot)
	if !errors.Is(err, unlock.ErrNotVaultPassword) {
		return err
	}
	urls := strings.Join(p.URLs(), ",")
	return usageError{fmt.Errorf("key slot %s is kept at the vaults %s, which --vault does not name: sealfs asks only vaults you name, never the ones a slot on the remote names (a storage provider could plant a slot naming a vault of its own, and test your password offline with what sealfs sends it). If %s are your vaults, retire the slot there and remove it with: sealfs key remove %s --vault %s REMOTE (it asks for their password); to remove the slot from the remote only, leaving its enrolment at the vaults: sealfs key remove --keep-at-vault %s REMOTE", slot.ID.Short(), urls, urls, slot.ID.Short(), urls, slot.ID.Short())}
}

// errNoVault: a command that enrols at a vault was not told which.
var errNoVault = usageError{errors.New("give the vault with --vault URL (or several: --vault URL1,URL2,URL3 --vault-threshold 2)")}

// addThresholdFlag adds --vault-threshold to a command that enrols.
func addThresholdFlag(cmd *cobra.Command, g *globals) {
	cmd.Flags().IntVar(&g.vaultThreshold, "vault-threshold", 0, "with several vaults in --vault: how many of them recover the key (k of n; each then allows 10/(n-k+1) wrong guesses)")
}

// enrolTargets returns a client for each vault of --vault and the
// threshold: 1 for one vault, --vault-threshold for several (required).
func (g *globals) enrolTargets() ([]*keyvault.Client, int, error) {
	if g.vault == "" {
		return nil, 0, errNoVault
	}
	clients, err := g.sources().VaultClients(g.vault)
	if err != nil {
		return nil, 0, usageError{err}
	}
	n, k := len(clients), g.vaultThreshold
	switch {
	case n == 1 && k <= 1:
		return clients, 1, nil
	case n > 1 && k == 0:
		return nil, 0, usageError{fmt.Errorf("with %d vaults, give --vault-threshold K: how many of them recover the key (for 2 of 3: --vault-threshold 2)", n)}
	case k < 1 || k > n:
		return nil, 0, usageError{fmt.Errorf("--vault-threshold %d: it must be 1 to %d, the number of vaults in --vault", k, n)}
	}
	return clients, k, nil
}

// vaultArgs is --vault (and --vault-threshold K) as given, for a message.
func (g *globals) vaultArgs(k int) string {
	if k > 1 || strings.Contains(g.vault, ",") {
		return fmt.Sprintf("--vault %s --vault-threshold %d", g.vault, k)
	}
	return "--vault " + g.vault
}

// vaultsPhrase says where a password is kept: "at the vault URL", or
// "at the vaults URL1, URL2, URL3 (any 2 of them recover the key, ...)".
func vaultsPhrase(clients []*keyvault.Client, k int) string {
	if len(clients) == 1 {
		return "at the vault " + clients[0].URL
	}
	urls := make([]string, len(clients))
	for i, c := range clients {
		urls[i] = c.URL
	}
	return fmt.Sprintf("at the vaults %s (any %d of them recover the key; each allows %d wrong guesses in a row)", strings.Join(urls, ", "), k, keyvault.SharedAttempts(k, len(clients)))
}

func newKeyAddVaultCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add-vault --vault URL[,URL...] [--vault-threshold K] REMOTE",
		Short: "Protect the key with a password at a Backup Key Vault, or at k of n vaults (unlocks with the code)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vaults, k, err := g.enrolTargets()
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
			id, err := unlock.Enrol(cmd.Context(), r, vaults, k, pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added vault key slot %s: the password now opens the repository, kept %s.\n", id.Short(), vaultsPhrase(vaults, k))
			return nil
		},
	}
	addThresholdFlag(cmd, g)
	return cmd
}

func newKeyPasswdCmd(g *globals) *cobra.Command {
	var newPasswordFile string
	cmd := &cobra.Command{
		Use:   "passwd --vault URL[,URL...] [--vault-threshold K] REMOTE",
		Short: "Change the vault password (a new slot replaces the old; data untouched)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			vaults, k, err := g.enrolTargets()
			if err != nil {
				return err
			}
			rem, err := g.openRemote(ctx, args[0])
			if err != nil {
				return err
			}
			r, old, err := g.openRepoSecret(ctx, rem) // with the current password
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
			id, err := unlock.Enrol(ctx, r, vaults, k, pw)
			if err != nil {
				return err
			}
			// Retire the old enrolments at the vaults, then remove their
			// slots: the old password then opens no copy of them either.
			var kept []string
			urls := make([]string, len(vaults))
			for i, c := range vaults {
				urls[i] = c.URL
			}
			for _, s := range unlock.VaultSlots(slots, urls...) {
				switch err := old.Retire(ctx, r.ID(), s); {
				case errors.Is(err, keyvault.ErrWrongPassword), errors.Is(err, keyvault.ErrNoDestroy):
					fmt.Fprintf(cmd.ErrOrStderr(), "sealfs: warning: %v; the slot is removed, but a copy of it still opens with its password at the vault\n", err)
				case err != nil:
					fmt.Fprintf(cmd.ErrOrStderr(), "sealfs: %v\n", err)
					kept = append(kept, s.ID.Short())
					continue
				}
				if err := r.RemoveSlot(ctx, s.ID); err != nil {
					return err
				}
			}
			if len(kept) > 0 {
				return fmt.Errorf("the new password works (key slot %s), but the old password still opens key slots %s: retire each with: sealfs key remove SLOT --vault %s REMOTE", id.Short(), strings.Join(kept, ", "), g.vault)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Changed the vault password (new key slot %s); the old password no longer opens the repository, nor any copy of its old key slots.\n", id.Short())
			return nil
		},
	}
	cmd.Flags().StringVar(&newPasswordFile, "new-password-file", "", "file holding the new password (default: asked twice)")
	addThresholdFlag(cmd, g)
	return cmd
}
