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

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/bwlimit"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/remote/retry"
	"github.com/sealfs/sealfs/remote/shaped"
	"github.com/sealfs/sealfs/repo"
)

// globals are the flags every command takes.
type globals struct {
	cacheDir       string
	rcloneConfig   string
	codeFile       string
	acceptRollback bool
	vault          string // unlock through these vaults (comma-separated URLs) with a password
	vaultThreshold int    // --vault-threshold: how many of the vaults recover the key (init, key add-vault, key passwd)
	vaultCAFile    string // --vault-ca-file
	vaultPin       string // --vault-pin: pins, comma-separated
	passwordFile   string
	transfers      int               // --transfers of the commands that take it
	quiet          bool              // --quiet: no progress
	bwlimit        bwlimit.Timetable // --bwlimit of the commands that take it
}

// addBwlimitFlag gives cmd the --bwlimit flag: the commands that move
// bulk data to or from the remote.
func (g *globals) addBwlimitFlag(cmd *cobra.Command) {
	cmd.Flags().Var(&g.bwlimit, "bwlimit", `bandwidth limit to and from the remote, as rclone's: a rate in bytes per second (512k, 1M), UP:DOWN (1M:off), or a timetable of local times ("08:00,512k 19:00,off")`)
}

// addTransfersFlag gives cmd the --transfers flag.
func (g *globals) addTransfersFlag(cmd *cobra.Command) {
	cmd.Flags().IntVar(&g.transfers, "transfers", repo.DefaultTransfers, "parallel remote requests: pack uploads, and fetches of read-ahead (up to N+1 packs are held in memory)")
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
	pf.StringVar(&g.vault, "vault", "", "unlock with a password through this Backup Key Vault (URL), or these (URL1,URL2,...: k of n vaults), instead of the recovery code")
	pf.StringVar(&g.vaultCAFile, "vault-ca-file", "", "trust a vault's TLS certificate if this PEM file's CA signed it (instead of the system's CAs; for every vault of --vault)")
	pf.StringVar(&g.vaultPin, "vault-pin", "", "trust a vault's TLS certificate if it matches one of these pins (sha256:HEX, printed by sealfs-vault serve; several: comma-separated; with several vaults, one pin of each)")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "print no progress (backup, restore, check, prune, umount show it on stderr)")
	pf.StringVar(&g.passwordFile, "password-file", "", "file holding the vault password (default: asked on the terminal)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newVaultCmd(g), newKeyCmd(g), newSnapshotsCmd(g), newCheckCmd(g), newPruneCmd(g), newBackupCmd(g), newRestoreCmd(g), newMountCmd(g), newUmountCmd(g), newStatusCmd(g), newInitCmd(g), newForgetCmd(g), newLsCmd(g), newDiffCmd(g), newStatsCmd(g))
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

// minimumArgs is cobra.MinimumNArgs with a usage error.
func minimumArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MinimumNArgs(n)(cmd, args); err != nil {
			return usageError{fmt.Errorf("%v (usage: %s)", err, cmd.UseLine())}
		}
		return nil
	}
}

// cliRetry is shorter than the daemon's: a person is waiting.
var cliRetry = retry.Policy{Attempts: 4, Base: 200 * time.Millisecond, Max: 2 * time.Second}

func (g *globals) openRemote(ctx context.Context, spec string) (remote.Remote, error) {
	return g.openShapedRemote(ctx, spec, shaped.Shape{})
}

// openShapedRemote opens the remote spec names behind a link shaped as
// shape (nothing for the zero Shape), under the --bwlimit limits, with the
// command's retries above it.
func (g *globals) openShapedRemote(ctx context.Context, spec string, shape shaped.Shape) (remote.Remote, error) {
	r, _, err := g.openShapedRemoteDir(ctx, spec, shape)
	return r, err
}

// openShapedRemoteDir is openShapedRemote, and returns the directory the
// remote is when it is a local directory that nothing slows (no shape, no
// --bwlimit), "" otherwise.
func (g *globals) openShapedRemoteDir(ctx context.Context, spec string, shape shaped.Shape) (_ remote.Remote, dir string, _ error) {
	if err := rcloneremote.Setup(g.rcloneConfig); err != nil {
		return nil, "", err
	}
	rr, err := rcloneremote.Open(ctx, spec)
	if err != nil {
		return nil, "", err
	}
	var r remote.Remote = rr
	if shape.IsZero() && g.bwlimit.IsZero() {
		dir = rr.LocalRoot()
	}
	if !shape.IsZero() {
		r = shaped.New(r, shape)
	}
	if !g.bwlimit.IsZero() {
		r = bwlimit.New(r, g.bwlimit)
	}
	return retry.New(r, cliRetry), dir, nil
}

// errNoCacheDir: no --cache-dir, and no place for the default one.
var errNoCacheDir = errors.New("failed to find a cache directory")

// cacheBase returns the base cache directory: --cache-dir, else
// $XDG_CACHE_HOME/sealfs (or ~/.cache/sealfs), found once. Each
// repository's state lives in a subdirectory named by its id.
func (g *globals) cacheBase() (string, error) {
	if g.cacheDir != "" {
		return g.cacheDir, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNoCacheDir, err)
	}
	g.cacheDir = filepath.Join(dir, "sealfs")
	return g.cacheDir, nil
}

func (g *globals) options() (repo.Options, error) {
	dir, err := g.cacheBase()
	return repo.Options{CacheDir: dir, AcceptRollback: g.acceptRollback, Transfers: g.transfers}, err
}

// sources says where this command finds the secret that unlocks.
func (g *globals) sources() unlock.Sources {
	return unlock.Sources{CodeFile: g.codeFile, Vault: g.vault, VaultTrust: g.vaultTrust(), PasswordFile: g.passwordFile, Terminal: os.Stdin, Out: os.Stderr}
}

// vaultTrust is the vault certificate's trust that --vault-ca-file and
// --vault-pin give.
func (g *globals) vaultTrust() keyvault.Trust {
	t := keyvault.Trust{CAFile: g.vaultCAFile}
	for p := range strings.SplitSeq(g.vaultPin, ",") {
		if p = strings.TrimSpace(p); p != "" {
			t.Pins = append(t.Pins, p)
		}
	}
	return t
}

// openRepo opens and unlocks the repository at spec.
func (g *globals) openRepo(ctx context.Context, spec string) (*repo.Repository, error) {
	rem, err := g.openRemote(ctx, spec)
	if err != nil {
		return nil, err
	}
	return g.openRepoOn(ctx, rem)
}

// openRepoOn opens and unlocks the repository on rem.
func (g *globals) openRepoOn(ctx context.Context, rem remote.Remote) (*repo.Repository, error) {
	r, _, err := g.openRepoSecret(ctx, rem)
	return r, err
}

// openRepoSecret opens and unlocks the repository on rem, and returns
// the secret that unlocked it too.
func (g *globals) openRepoSecret(ctx context.Context, rem remote.Remote) (*repo.Repository, unlock.Secret, error) {
	// Say "no repository" before asking for a key it would not need.
	found, err := repo.Find(ctx, rem)
	if err != nil {
		return nil, unlock.Secret{}, err
	}
	opts, err := g.options()
	if err != nil {
		return nil, unlock.Secret{}, err
	}
	secret, err := g.sources().Read()
	if err != nil {
		return nil, unlock.Secret{}, err
	}
	r, err := found.Open(ctx, secret.Unlocker(), opts)
	return r, secret, err
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
