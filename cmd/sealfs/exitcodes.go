package main

import (
	"errors"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
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

// exitCode maps an error to the exit code documented in docs/CLI.md.
func exitCode(err error) int {
	var ue usageError
	var ee daemonExit
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errStillQueued):
		return exitQueued
	case errors.Is(err, keyvault.ErrWrongPassword):
		return exitWrongPass
	case errors.Is(err, keyvault.ErrLockedOut):
		return exitLockedOut
	case errors.Is(err, crypt.ErrCodeTypo):
		return exitCodeTypo
	case errors.Is(err, repo.ErrWrongKey):
		return exitWrongKey
	case errors.Is(err, repo.ErrNoRepository):
		return exitNoRepository
	case errors.Is(err, repo.ErrRepositoryExists):
		return exitRepoExists
	case errors.Is(err, repo.ErrIntegrity):
		return exitIntegrity
	case errors.Is(err, repo.ErrLocked):
		return exitLocked
	case errors.Is(err, repo.ErrRollback):
		return exitRollback
	case remote.IsUnreachable(err):
		return exitUnreachable
	}
	return exitError
}
