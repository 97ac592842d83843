package repo

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is; the cmd layer maps each to an exit code.
var (
	// ErrNoRepository: the remote holds no sealfs repository.
	ErrNoRepository = errors.New("no sealfs repository")
	// ErrRepositoryExists: init found a repository already.
	ErrRepositoryExists = errors.New("a sealfs repository already exists here")
	// ErrWrongKey: the key given to an Unlocker is well-formed but opens
	// no key slot. Unlockers return errors that match it and say which key
	// it was (internal/unlock: a recovery code, a vault's secret).
	ErrWrongKey = errors.New("the key given opens no key slot of this repository")
	// ErrIntegrity: an object failed verification (changed, truncated,
	// swapped, missing or replayed). The error names the object.
	ErrIntegrity = errors.New("integrity check failed")
	// ErrRollback: the remote's newest snapshot is older than one this
	// client has seen.
	ErrRollback = errors.New("the repository went back to an older state")
	// ErrLocked: another writer holds the lease.
	ErrLocked = errors.New("the repository is locked by another writer")
	// ErrLeaseExpired: another writer's lease has expired, but that writer
	// may still be running (on another host, or alive here). It matches
	// ErrLocked.
	ErrLeaseExpired = fmt.Errorf("%w: its lease has expired, but that writer may still be running", ErrLocked)
	// ErrLeaseDamaged: the lease object fails authentication. It matches
	// ErrIntegrity.
	ErrLeaseDamaged = fmt.Errorf("%w: the writer lease does not open", ErrIntegrity)
	// ErrReadOnly: a write was attempted without holding the lease.
	ErrReadOnly = errors.New("the repository is open read-only")
	// ErrNoSnapshot: the snapshot asked for does not exist (it was never
	// made, or was forgotten on purpose).
	ErrNoSnapshot = errors.New("no such snapshot")
	// ErrAmbiguousSnapshot: the sequence number asked for names several
	// snapshots of forks, none of them on the main line (name one by id).
	ErrAmbiguousSnapshot = errors.New("more than one snapshot matches")
	// ErrLastSlot: removing the key slot would leave none.
	ErrLastSlot = errors.New("cannot remove the last key slot")
	// ErrNoSlot: the key slot named does not exist.
	ErrNoSlot = errors.New("no such key slot in this repository")
)

// integrityError says which object failed and why; it wraps ErrIntegrity.
func integrityError(object string, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", object, ErrIntegrity, fmt.Sprintf(format, args...))
}
