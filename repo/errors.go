package repo

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is; the cmd layer maps each to an exit code.
var (
	// ErrNoRepository: the remote holds no sealfs repository.
	ErrNoRepository = errors.New("no sealfs repository here")
	// ErrRepositoryExists: init found a repository already.
	ErrRepositoryExists = errors.New("a sealfs repository already exists here")
	// ErrWrongKey: the code or secret is well-formed but opens no key slot.
	ErrWrongKey = errors.New("this recovery code does not belong to this repository")
	// ErrIntegrity: an object failed verification (changed, truncated,
	// swapped, missing or replayed). The error names the object.
	ErrIntegrity = errors.New("integrity check failed")
	// ErrRollback: the remote's newest snapshot is older than one this
	// client has seen.
	ErrRollback = errors.New("the repository went back to an older state")
	// ErrLocked: another writer holds the lease.
	ErrLocked = errors.New("the repository is locked by another writer")
	// ErrReadOnly: a write was attempted without holding the lease.
	ErrReadOnly = errors.New("the repository is open read-only")
	// ErrNoSnapshot: the snapshot asked for does not exist (it was never
	// made, or was forgotten on purpose).
	ErrNoSnapshot = errors.New("no such snapshot")
	// ErrLastSlot: removing the key slot would leave none.
	ErrLastSlot = errors.New("cannot remove the last key slot")
)

// integrityError says which object failed and why; it wraps ErrIntegrity.
func integrityError(object string, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", object, ErrIntegrity, fmt.Sprintf(format, args...))
}
