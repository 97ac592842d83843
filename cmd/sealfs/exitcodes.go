package main

import (
	"errors"
	"fmt"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// Exit codes of the sealfs command. They are stable: scripts may rely on
// them, and docs/CLI.md lists them.
const (
	exitOK           = 0
	exitError        = 1  // any other failure
	exitUsage        = 2  // bad arguments or flags, or no key given
	exitCodeTypo     = 3  // the recovery code has a typo
	exitWrongKey     = 4  // the code does not belong to this repository
	exitNoRepository = 5  // no repository at the remote
	exitRepoExists   = 6  // init found a repository already
	exitIntegrity    = 7  // an object failed verification
	exitUnreachable  = 8  // the remote could not be reached
	exitLocked       = 9  // another writer holds the lease
	exitRollback     = 10 // the remote went back to an older state
	exitWrongPass    = 11 // wrong vault password (attempts are left)
	exitLockedOut    = 12 // the vault destroyed the key after too many wrong passwords
	exitQueued       = 13 // unmounted, but changes stay queued locally, not on the remote yet
)

// errStillQueued says that a mount stopped with changes that are not on the
// remote yet: they stay queued in the cache and go up at the next mount.
var errStillQueued = errors.New("not everything is on the remote yet: the changes listed above stay queued in the cache directory and go up at the next mount of it")

// usageError marks errors in how the command was called.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// failure is what the command does about one kind of error: the exit
// code (docs/CLI.md), and the advice printed under the error, if any.
type failure struct {
	match func(error) bool
	code  int
	hint  string
}

// is matches errors that are, or wrap, target.
func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

// failures map errors to exit codes and advice, most specific first: the
// first that matches decides. Libraries return plain errors; what to do
// next is said here, once.
var failures = []failure{
	{isUsage, exitUsage, ""},
	{is(errStillQueued), exitQueued, ""},
	{is(keyvault.ErrWrongPassword), exitWrongPass, "when no attempts are left the vault destroys the key for good (after 10 wrong passwords in a row at one vault, fewer at each of k of n vaults); if unsure, unlock with the recovery code instead (--code-file, without --vault)"},
	{is(keyvault.ErrLockedOut), exitLockedOut, "the recovery code is now the only way back: unlock with it (--code-file), then enrol a new password with: sealfs key add-vault --vault URL REMOTE"},
	{is(keyvault.ErrPlainHTTP), exitUsage, "give the vault's https:// URL (sealfs-vault serve --tls-cert F --tls-key F); plain http:// is for a vault on this machine only"},
	{is(keyvault.ErrBadURL), exitUsage, ""},
	{is(keyvault.ErrUntrustedCertificate), exitError, "pin the vault's certificate with --vault-pin sha256:HEX (sealfs-vault serve prints its pin at start; get it from the vault's operator, not from this connection), or give the CA that signed it with --vault-ca-file FILE"},
	{is(keyvault.ErrNoDestroy), exitError, "to remove the slot without retiring it: sealfs key remove --keep-at-vault SLOT REMOTE (a copy of the slot then still opens with its password)"},
	{is(crypt.ErrCodeTypo), exitCodeTypo, "check each group of four digits against what you wrote down; case, spaces and dashes do not matter"},
	{is(unlock.ErrNoCode), exitUsage, "pass --code-file FILE or set " + unlock.CodeEnv + " (or run on a terminal to be asked)"},
	{is(unlock.ErrNoPassword), exitUsage, "pass --password-file FILE (or run on a terminal to be asked)"},
	{is(unlock.ErrCodeFile), exitUsage, ""},
	{is(unlock.ErrPasswordFile), exitUsage, ""},
	{is(unlock.ErrShortPassword), exitUsage, fmt.Sprintf("choose one of at least %d characters; a passphrase of a few words is best", unlock.MinPassword)},
	{is(unlock.ErrPasswordsDiffer), exitUsage, ""},
	{is(unlock.ErrWrongCode), exitWrongKey, "this code is valid but belongs to another repository, or its key slot was removed; try another code you have for this one"},
	{is(unlock.ErrNoVaultSlot), exitWrongKey, "unlock with the recovery code, and add a vault key slot with: sealfs key add-vault --vault URL REMOTE"},
	{is(unlock.ErrWrongVaultSecret), exitWrongKey, "the password is right, but the key slot it opened is not this repository's; unlock with the recovery code instead (--code-file, without --vault)"},
	{is(repo.ErrWrongKey), exitWrongKey, ""},
	{is(repo.ErrNoRepository), exitNoRepository, "check the remote's name; to create a repository there, run: sealfs init REMOTE"},
	{is(repo.ErrRepositoryExists), exitRepoExists, "to use it, run a command that opens it (sealfs snapshots REMOTE); to start afresh, choose another remote path"},
	{is(format.ErrVersion), exitIntegrity, "a newer sealfs wrote this repository: upgrade sealfs to open it"},
	{is(repo.ErrLeaseDamaged), exitIntegrity, "a writer may have crashed while renewing the lease: if no other writer is running, run again with --break-lease"},
	{is(repo.ErrIntegrity), exitIntegrity, "the storage returned data that fails verification; nothing wrong was read. Run: sealfs check --read-data REMOTE, to list every damaged object"},
	{is(repo.ErrLeaseExpired), exitLocked, "if that writer is gone for good, run again with --break-lease"},
	{is(repo.ErrLocked), exitLocked, "another sealfs is writing to this repository: wait for it to finish, or mount with --read-only to look without writing"},
	{is(repo.ErrRollback), exitRollback, "if you know why (for example, you restored the remote from a backup), run again with --accept-rollback"},
	{is(repo.ErrLastSlot), exitError, "add another first: sealfs key add-code REMOTE (or key add-vault)"},
	{is(repo.ErrNoSlot), exitError, "the key slots are listed by: sealfs key list REMOTE"},
	{is(daemon.ErrNoAnswer), exitError, "to detach the mount anyway: umount -l MOUNTPOINT (what it queued goes up at the next mount)"},
	{is(daemon.ErrDaemonGone), exitError, "detach the mount with: umount -l MOUNTPOINT"},
	{is(daemon.ErrNotDaemon), exitError, "to unmount anyway, run: umount MOUNTPOINT (a sealfs daemon then uploads what is queued and exits by itself)"},
	{is(errNoVaultServer), exitError, "install it next to sealfs: make install installs both commands (sealfs-vault is built with cgo: go build ./cmd/sealfs-vault)"},
	{is(errNoCacheDir), exitError, "set XDG_CACHE_HOME, or give --cache-dir DIR"},
	{remote.IsUnreachable, exitUnreachable, "the remote could not be reached: check the network, the remote's address, and your rclone config (rclone lsd REMOTE)"},
}

// outcome returns the exit code for err (docs/CLI.md) and the advice to
// print under it ("" for none). A background daemon's verdict brings both.
func outcome(err error) (code int, hint string) {
	var ee daemonExit
	switch {
	case err == nil:
		return exitOK, ""
	case errors.As(err, &ee):
		return ee.code, ee.hint
	}
	for _, f := range failures {
		if f.match(err) {
			return f.code, f.hint
		}
	}
	return exitError, ""
}
