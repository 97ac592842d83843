package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/remote/retry"
	"github.com/sealfs/sealfs/repo"
)

// codeEnv is the environment variable that may hold the recovery code.
const codeEnv = "SEALFS_RECOVERY_CODE"

// Credential names under $CREDENTIALS_DIRECTORY (systemd's LoadCredential=).
const (
	codeCredential     = "sealfs-recovery-code"
	passwordCredential = "sealfs-vault-password"
)

// credential returns the path of a systemd credential, or "".
func credential(name string) string {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// globals are the flags every command takes.
type globals struct {
	cacheDir       string
	rcloneConfig   string
	codeFile       string
	acceptRollback bool
	vault          string // unlock through this vault with a password
	passwordFile   string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "sealfs",
		Short: "End-to-end encrypted backups on any rclone remote",
		Long: `sealfs keeps backups end-to-end encrypted on storage that cannot read them:
Google Drive, iCloud Drive, S3, WebDAV, SFTP, or a local directory.

A REMOTE is named as rclone names it: "gdrive:backups" from your rclone.conf,
a connection string like ":s3,provider=Other,...:bucket", or a local path.

Commands that need the key read the recovery code from --code-file FILE, from
the SEALFS_RECOVERY_CODE environment variable, or from a prompt on the terminal;
with --vault URL they ask for the vault password instead (or read --password-file).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.cacheDir, "cache-dir", "", "local state and cache directory (default $XDG_CACHE_HOME/sealfs)")
	pf.StringVar(&g.rcloneConfig, "rclone-config", "", "rclone config file (default: $RCLONE_CONFIG, then rclone's usual place)")
	pf.StringVar(&g.codeFile, "code-file", "", "file holding the recovery code")
	pf.BoolVar(&g.acceptRollback, "accept-rollback", false, "accept a remote whose newest snapshot is older than one seen before")
	pf.StringVar(&g.vault, "vault", "", "unlock with a password through this Backup Key Vault (URL) instead of the recovery code")
	pf.StringVar(&g.passwordFile, "password-file", "", "file holding the vault password (default: asked on the terminal)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newVaultCmd(g), newKeyCmd(g), newSnapshotsCmd(g), newCheckCmd(g), newBackupCmd(g), newRestoreCmd(g), newMountCmd(g), newUmountCmd(g), newStatusCmd(g), newInitCmd(g))
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{fmt.Errorf("%v (usage: %s)", err, cmd.UseLine())}
		}
		return nil
	}
}

// cliRetry is shorter than the daemon's: a person is waiting.
var cliRetry = retry.Policy{Attempts: 4, Base: 200 * time.Millisecond, Max: 2 * time.Second}

func (g *globals) openRemote(ctx context.Context, spec string) (remote.Remote, error) {
	if err := rcloneremote.Setup(g.rcloneConfig); err != nil {
		return nil, err
	}
	r, err := rcloneremote.Open(ctx, spec)
	if err != nil {
		return nil, err
	}
	return retry.New(r, cliRetry), nil
}

func (g *globals) options() repo.Options {
	return repo.Options{CacheDir: g.cacheDir, AcceptRollback: g.acceptRollback}
}

// readCode gets the recovery code from --code-file, the environment, or a
// prompt with no echo; never from an argument.
func (g *globals) readCode() (crypt.RecoveryCode, error) {
	var text string
	if g.codeFile == "" {
		g.codeFile = credential(codeCredential)
	}
	switch {
	case g.codeFile != "":
		warnIfReadable(g.codeFile, "the recovery code file")
		b, err := os.ReadFile(g.codeFile)
		if err != nil {
			return crypt.RecoveryCode{}, usageError{fmt.Errorf("failed to read the recovery code: %w", err)}
		}
		text = string(b)
	case os.Getenv(codeEnv) != "":
		text = os.Getenv(codeEnv)
	case term.IsTerminal(int(os.Stdin.Fd())):
		fmt.Fprint(os.Stderr, "Recovery code (64 digits; spaces and dashes are ignored): ")
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return crypt.RecoveryCode{}, fmt.Errorf("failed to read the recovery code: %w", err)
		}
		text = string(b)
	default:
		return crypt.RecoveryCode{}, usageError{errors.New("no recovery code: pass --code-file FILE or set " + codeEnv + " (or run on a terminal to be asked)")}
	}
	return crypt.ParseRecoveryCode(text)
}

// warnIfReadable warns on stderr when a file holding a secret can be read
// by its group or by others, and says how to fix it.
func warnIfReadable(path, what string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o044 == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "sealfs: warning: %s %s can be read by other users (mode %04o); whoever reads it can open your backups. Make it private with: chmod 600 %s\n",
		what, path, fi.Mode().Perm(), path)
}

// openRepo opens and unlocks the repository at spec.
func (g *globals) openRepo(ctx context.Context, spec string) (*repo.Repository, error) {
	rem, err := g.openRemote(ctx, spec)
	if err != nil {
		return nil, err
	}
	// Say "no repository" before asking for a code it would not need.
	if _, err := repo.ReadConfig(ctx, rem); err != nil {
		return nil, err
	}
	secret, err := g.readUnlockSecret()
	if err != nil {
		return nil, err
	}
	return repo.Open(ctx, rem, g.unlocker(secret), g.options())
}

// printCode shows a recovery code to its owner, four groups a line.
func printCode(w io.Writer, code crypt.RecoveryCode) {
	groups := strings.Fields(code.Reveal())
	for i := 0; i < len(groups); i += 4 {
		fmt.Fprintf(w, "    %s\n", strings.Join(groups[i:i+4], "  "))
	}
}

// writeCodeFile writes a new code to path with mode 0600, refusing to
// overwrite a file (which might hold the only copy of another code).
func writeCodeFile(path string, code crypt.RecoveryCode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("failed to write the recovery code to %s: %w", path, err)
	}
	if _, err := fmt.Fprintln(f, code.Reveal()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

const codeWarning = `Write this recovery code down and keep it somewhere safe. It is the only way
to open your backups: sealfs cannot recover it, and nobody else has a copy.`
