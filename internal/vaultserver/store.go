package vaultserver

import (
	"errors"
	"time"
)

// Store keeps the vault's records: a userRecord per user, the list of
// pending enrolments, and the guess counters with the head of their
// chain of batches (counters.go). Two implementations: bbolt, an embedded
// file for one serving process (OpenBoltStore), and PostgreSQL, shared by
// several serving processes in front of one HSM (OpenPostgresStore).
//
// A Store serialises nothing by itself beyond its own transactions: the
// vault takes LockUser around every request of a user and LockCounters
// around every counter batch; across processes those locks are the
// store's (PostgreSQL advisory locks), within one process the vault's.
type Store interface {
	// Load returns user's record, or keyvault.ErrNotEnrolled.
	Load(user string) (*userRecord, error)
	// Put writes user's record and lists user as pending exactly while
	// rec.Pending, with rec.Created as its start.
	Put(user string, rec *userRecord) error
	// ForgetPending deletes user's record and pending entry.
	ForgetPending(user string) error
	// IsPending reports whether user is listed as pending.
	IsPending(user string) (bool, error)
	// PendingCount returns how many users are listed as pending.
	PendingCount() (int, error)
	// forEachUser calls fn for every record (to migrate them).
	forEachUser(fn func(user string, rec *userRecord) error) error
	// Pending returns the pending users with their starts (the zero time
	// for an entry that is unreadable).
	Pending() (map[string]time.Time, error)

	// Counter returns user's counter, ok false if it has none.
	Counter(user string) (c counterValue, ok bool, err error)
	// Counters calls fn for every counter, in no particular order.
	Counters(fn func(user string, c counterValue) error) error
	// CounterHead returns the epoch of the last counter batch committed
	// and its encoding (nil, 0 before the first).
	CounterHead() (epoch uint64, last []byte, err error)
	// CommitCounters applies batch b (encoded as enc) in one transaction:
	// it fails, changing nothing, unless the head's epoch is b.Epoch-1 and
	// every change's old value is the counter's current one; then b
	// becomes the head.
	CommitCounters(b *counterBatch, enc []byte) error

	// LockUser takes the cross-process lock of user (without waiting
	// when wait is false: ok is then false if another holds it).
	LockUser(user string, wait bool) (unlock func(), ok bool, err error)
	// LockCounters takes the cross-process lock of the counter chain.
	LockCounters() (unlock func(), err error)

	// Close releases the store.
	Close() error
}

// errStaleCounters is returned by CommitCounters when the store's head
// or a counter is not what the batch was computed from.
var errStaleCounters = errors.New("the counters changed under a batch")

// noLock is the unlock of a lock that a store does not need to take
// (one process: the vault's own locks do).
func noLock() {}
