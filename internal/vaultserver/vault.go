package vaultserver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sealfs/sealfs/keyvault"
)

// MaxAttempts is how many wrong guesses in a row destroy a user's key,
// unless its enrolment asked for fewer (userRecord.MaxAttempts).
const MaxAttempts = keyvault.MaxAttempts

// ErrBadRequest is returned (wrapped) for a request the vault refuses to
// act on: malformed, or a user id, point, tag or envelope out of shape.
var ErrBadRequest = errors.New("bad request")

// userRecord is what the database keeps per user: no password, no key,
// and not the unlock tag T, which proves the password: only its MAC under
// the HSM's tag key (HSM.TagMAC), which proves nothing and tests no guess
// without the HSM.
type userRecord struct {
	KeyLabel string `json:"key_label"` // the user's key in the HSM; new at every enrolment
	// Tag is T itself, as records made before the tag MAC kept it: read
	// only to replace it by TagMAC when the vault opens (migrateTags).
	Tag      []byte `json:"tag,omitempty"`
	TagMAC   []byte `json:"tag_mac,omitempty"`
	Envelope []byte `json:"envelope,omitempty"`
	Pending  bool   `json:"pending"`
	// MaxAttempts is the guess limit the enrolment asked for (protocol
	// 1.2), 1 to MaxAttempts; 0 for MaxAttempts (records made before).
	MaxAttempts uint32 `json:"max_attempts,omitempty"`
	// LockedOut marks a user whose key was destroyed, so that later
	// requests are told so (and the user may enrol again, with a new key).
	LockedOut bool `json:"locked_out,omitempty"`
	// Retired marks a locked-out user whose owner destroyed the key with
	// the password (Destroy): later requests are told it is not enrolled.
	Retired bool      `json:"retired,omitempty"`
	Created time.Time `json:"created"`
}

// Bounds of what unauthenticated clients can make the vault keep.
const (
	// MaxPending is how many enrolments may be started and not finished
	// at once: each holds a key in the token. More are refused
	// (ErrBusy) until some finish or expire.
	MaxPending = 1000
	// PendingTTL is how long a started enrolment may wait for its finish;
	// after it the key is destroyed and the enrolment forgotten.
	PendingTTL = 10 * time.Minute
)

// ErrBusy is returned when too many enrolments are in progress: the
// request did nothing; retry later.
var ErrBusy = errors.New("too many enrolments in progress at the vault; retry in a few minutes")

// Vault is the server half of the protocol, without the network: it keeps
// records and guess counters in a Store, anchors the counters in the HSM
// (counters.go), and serialises the requests of each user.
type Vault struct {
	hsm   HSM
	store Store
	limit uint32

	maxPending int
	pendingTTL time.Duration
	now        func() time.Time

	locksMu sync.Mutex
	locks   map[string]*userLock // only while held or waited for

	pendingMu sync.Mutex // serialises the count and start of enrolments

	commits    committer
	countersMu sync.Mutex  // the counters lock in this process (lockCounters)
	anchor     anchorCache // guarded by the counters lock
	// afterCounterCommit, when set (tests), runs between a counter
	// batch's store write and its anchor write.
	afterCounterCommit func()
}

// userLock serialises one user's requests; refs counts its holders and
// waiters, and the entry is dropped when it falls to 0.
type userLock struct {
	mu   sync.Mutex
	refs int
}

// NewVault opens (or creates) the bbolt database at dbPath and serves it
// (OpenVault).
func NewVault(h HSM, dbPath string) (*Vault, error) {
	s, err := OpenBoltStore(dbPath)
	if err != nil {
		return nil, err
	}
	if h != nil {
		// One process opens the file (bbolt locks it): no race to make the key.
		err := h.EnsureTagKey()
		migrated := 0
		if err == nil {
			migrated, err = s.migrateTags(h)
		}
		if err == nil && migrated > 0 {
			err = s.compact()
		}
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	v, err := OpenVault(h, s)
	if err != nil {
		s.Close()
	}
	return v, err
}

// OpenVault serves the records in s with h: it moves counters kept in the
// token by earlier versions into s, and checks s's counters against the
// token's anchor, refusing a store restored from an older copy or edited.
// With a nil HSM it only reads records (tests, tools). Close closes s.
func OpenVault(h HSM, s Store) (*Vault, error) {
	v := &Vault{hsm: h, store: s, limit: MaxAttempts, maxPending: MaxPending, pendingTTL: PendingTTL, now: time.Now, locks: map[string]*userLock{}}
	if h == nil {
		return v, nil
	}
	unlock, err := v.lockCounters()
	if err != nil {
		return nil, err
	}
	err = h.EnsureTagKey()
	unlock()
	if err != nil {
		return nil, err
	}
	if err := v.migrateCounters(); err != nil {
		return nil, err
	}
	if err := v.checkCounters(); err != nil {
		return nil, err
	}
	return v, nil
}

// Close closes the store.
func (v *Vault) Close() error { return v.store.Close() }

// lock serialises the requests of user, in this process and (through
// the store) across processes; the returned function unlocks. The table
// holds only users with a request in progress.
func (v *Vault) lock(user string) (func(), error) {
	v.locksMu.Lock()
	l := v.locks[user]
	if l == nil {
		l = &userLock{}
		v.locks[user] = l
	}
	l.refs++
	v.locksMu.Unlock()
	l.mu.Lock()
	unlock := v.unlocker(user, l)
	su, _, err := v.store.LockUser(user, true)
	if err != nil {
		unlock()
		return nil, err
	}
	return func() { su(); unlock() }, nil
}

// unlocker returns the function that unlocks l, user's lock, and drops
// it from the table when no one else holds or waits for it.
func (v *Vault) unlocker(user string, l *userLock) func() {
	return func() {
		l.mu.Unlock()
		v.locksMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(v.locks, user)
		}
		v.locksMu.Unlock()
	}
}

// tryLock is lock without waiting: ok is false, and nothing is held,
// when a request of user is in progress or waiting.
func (v *Vault) tryLock(user string) (unlock func(), ok bool, err error) {
	v.locksMu.Lock()
	if v.locks[user] != nil {
		v.locksMu.Unlock()
		return nil, false, nil
	}
	l := &userLock{refs: 1}
	l.mu.Lock() // new: never waits
	v.locks[user] = l
	v.locksMu.Unlock()
	local := v.unlocker(user, l)
	su, ok, err := v.store.LockUser(user, false)
	if err != nil || !ok {
		local()
		return nil, false, err
	}
	return func() { su(); local() }, true, nil
}

// lockedUsers returns how many users the lock table holds.
func (v *Vault) lockedUsers() int {
	v.locksMu.Lock()
	defer v.locksMu.Unlock()
	return len(v.locks)
}

func (v *Vault) load(user string) (*userRecord, error) { return v.store.Load(user) }

// put writes user's record, and lists the user as pending exactly while
// rec.Pending.
func (v *Vault) put(user string, rec *userRecord) error { return v.store.Put(user, rec) }

// pendingCount returns how many enrolments are started and not finished.
func (v *Vault) pendingCount() (int, error) { return v.store.PendingCount() }

// expired reports whether an enrolment started at t has expired.
func (v *Vault) expired(t time.Time) bool { return v.now().Sub(t) > v.pendingTTL }

// ExpirePending destroys the keys of the enrolments started more than
// the pending TTL ago and forgets them. It returns how many it expired.
func (v *Vault) ExpirePending() (int, error) {
	var users []string
	pending, err := v.store.Pending()
	for u, t := range pending {
		if t.IsZero() || v.expired(t) {
			users = append(users, u)
		}
	}
	n := 0
	for _, u := range users {
		if err != nil {
			break
		}
		var done bool
		done, err = v.expireOne(u)
		if done {
			n++
		}
	}
	return n, err
}

// expireOne expires user's enrolment if it is still pending and expired.
// A user with a request in progress is left for the next time: expiry
// runs while another user's lock is held (reservePending), and waiting
// here could deadlock with that user.
func (v *Vault) expireOne(user string) (bool, error) {
	unlock, ok, err := v.tryLock(user)
	if !ok {
		return false, err
	}
	defer unlock()
	rec, err := v.load(user)
	if errors.Is(err, keyvault.ErrNotEnrolled) {
		return false, v.store.ForgetPending(user) // a pending entry without a record
	}
	if err != nil || !rec.Pending || !v.expired(rec.Created) {
		return false, err
	}
	// The key first: a record is never forgotten while its key lives.
	if err := v.hsm.DestroyUserKey(rec.KeyLabel); err != nil {
		return false, err
	}
	return true, v.store.ForgetPending(user)
}

// destroy destroys the user's key in the HSM for good, then leaves a
// tombstone in the database.
func (v *Vault) destroy(user string, rec *userRecord) error {
	if err := v.hsm.DestroyUserKey(rec.KeyLabel); err != nil {
		return err
	}
	return v.put(user, &userRecord{KeyLabel: rec.KeyLabel, LockedOut: true, Created: rec.Created})
}

// limitOf returns how many wrong guesses in a row destroy rec's key: the
// limit its enrolment asked for, never more than the vault's own.
func (v *Vault) limitOf(rec *userRecord) uint32 {
	if rec.MaxAttempts > 0 && rec.MaxAttempts < v.limit {
		return rec.MaxAttempts
	}
	return v.limit
}

// EnrolStart makes a new HSM key for user and evaluates the blinded point
// with it. maxAttempts is the enrolment's guess limit (1 to MaxAttempts;
// 0 for MaxAttempts), kept with it and enforced instead of MaxAttempts;
// EnrolStart returns it as enforced. A user with a finished enrolment
// cannot enrol again.
func (v *Vault) EnrolStart(user string, blinded []byte, maxAttempts int) ([]byte, int, error) {
	if !keyvault.ValidUser(user) {
		return nil, 0, fmt.Errorf("%w: malformed user id", ErrBadRequest)
	}
	if maxAttempts < 0 || maxAttempts > MaxAttempts {
		return nil, 0, fmt.Errorf("%w: max_attempts %d is not 1 to %d", ErrBadRequest, maxAttempts, MaxAttempts)
	}
	if err := keyvault.ValidatePoint(blinded); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	unlock, err := v.lock(user)
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	rec, err := v.load(user)
	switch {
	case err == nil:
		if !rec.Pending && !rec.LockedOut {
			return nil, 0, keyvault.ErrEnrolled
		}
		// An abandoned enrolment, or a locked-out user: its old key goes.
		if err := v.hsm.DestroyUserKey(rec.KeyLabel); err != nil {
			return nil, 0, err
		}
	case !errors.Is(err, keyvault.ErrNotEnrolled):
		return nil, 0, err
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	label := user + "/" + hex.EncodeToString(nonce[:])
	// The record first, then the key: a key never lives without a record
	// that names it, so every key is found by expiry or destroyed.
	err = v.reservePending(user, func() error {
		return v.put(user, &userRecord{KeyLabel: label, Pending: true, MaxAttempts: uint32(maxAttempts), Created: v.now().UTC()})
	})
	if err != nil {
		return nil, 0, err
	}
	if err := v.hsm.NewUserKey(label); err != nil {
		return nil, 0, err
	}
	x, err := v.hsm.Evaluate(label, blinded)
	return x, int(v.limitOf(&userRecord{MaxAttempts: uint32(maxAttempts)})), err
}

// reservePending makes room for one more pending enrolment (user's own
// counts already if it is pending) and runs add, which records it, in
// the room: it expires old ones when the table is full, and refuses with
// ErrBusy when none has expired.
func (v *Vault) reservePending(user string, add func() error) error {
	v.pendingMu.Lock()
	defer v.pendingMu.Unlock()
	mine, err := v.store.IsPending(user)
	if err != nil {
		return err
	}
	if mine {
		return add()
	}
	n, err := v.pendingCount()
	if err != nil {
		return err
	}
	if n < v.maxPending {
		return add()
	}
	// Expiry takes other users' locks while user's is held: it only
	// tries them (expireOne), so it never waits for one.
	if _, err := v.ExpirePending(); err != nil {
		return err
	}
	if n, err = v.pendingCount(); err != nil {
		return err
	}
	if n < v.maxPending {
		return add()
	}
	return ErrBusy
}

// EnrolFinish stores the unlock tag and the sealed envelope.
func (v *Vault) EnrolFinish(user string, tag, envelope []byte) error {
	if !keyvault.ValidUser(user) || len(tag) != 32 || len(envelope) < 28 || len(envelope) > 4096 {
		return fmt.Errorf("%w: malformed enrolment", ErrBadRequest)
	}
	unlock, err := v.lock(user)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := v.load(user)
	if err != nil {
		return err
	}
	if !rec.Pending {
		return keyvault.ErrEnrolled
	}
	if v.expired(rec.Created) {
		if err := v.hsm.DestroyUserKey(rec.KeyLabel); err != nil {
			return err
		}
		if err := v.store.ForgetPending(user); err != nil {
			return err
		}
		return fmt.Errorf("%w: the enrolment was started more than %v ago; start again", keyvault.ErrNotEnrolled, v.pendingTTL)
	}
	mac, err := v.hsm.TagMAC(user, tag)
	if err != nil {
		return err
	}
	// The counter first: a finished enrolment always has one.
	if err := v.writeCounter(user, rec.KeyLabel, 0); err != nil {
		return err
	}
	rec.TagMAC, rec.Envelope, rec.Pending = mac, envelope, false
	return v.put(user, rec)
}

// writeCounter sets user's counter to n guesses at the key label, from
// whatever it was (another key's, after a new enrolment). The caller
// holds user's lock.
func (v *Vault) writeCounter(user, label string, n uint32) error {
	old, had, err := v.store.Counter(user)
	if err != nil {
		return err
	}
	return v.setCounter(user, had, old, counterValue{Label: label, Count: n})
}

// Evaluate counts a guess, durably and anchored in the HSM, before it evaluates the
// blinded point; it returns the evaluation and the attempts left if this
// guess is wrong. At the limit the key is destroyed instead.
func (v *Vault) Evaluate(user string, blinded []byte) ([]byte, int, error) {
	if !keyvault.ValidUser(user) {
		return nil, 0, fmt.Errorf("%w: malformed user id", ErrBadRequest)
	}
	if err := keyvault.ValidatePoint(blinded); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	unlock, err := v.lock(user)
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	rec, err := v.active(user)
	if err != nil {
		return nil, 0, err
	}
	n, err := v.counter(user, rec.KeyLabel)
	if err != nil {
		return nil, 0, err
	}
	limit := v.limitOf(rec)
	if n >= limit {
		v.destroy(user, rec)
		return nil, 0, keyvault.ErrLockedOut
	}
	if err := v.setCounter(user, true, counterValue{rec.KeyLabel, n}, counterValue{rec.KeyLabel, n + 1}); err != nil {
		return nil, 0, err
	}
	x, err := v.hsm.Evaluate(rec.KeyLabel, blinded)
	if errors.Is(err, ErrNoKey) { // destroyed, and the record not marked (destroy failed halfway)
		v.put(user, &userRecord{KeyLabel: rec.KeyLabel, LockedOut: true, Created: rec.Created})
		return nil, 0, keyvault.ErrLockedOut
	}
	if err != nil {
		return nil, 0, err
	}
	return x, int(limit - n - 1), nil
}

// active loads a finished enrolment. Its key is not looked for here (a
// search costs a walk of the token): a key destroyed without its record
// marked is found by Evaluate.
func (v *Vault) active(user string) (*userRecord, error) {
	rec, err := v.load(user)
	if err != nil {
		return nil, err
	}
	switch {
	case rec.Retired:
		return nil, fmt.Errorf("%w: its owner retired the enrolment", keyvault.ErrNotEnrolled)
	case rec.LockedOut:
		return nil, keyvault.ErrLockedOut
	case rec.Pending:
		return nil, keyvault.ErrNotEnrolled
	}
	return rec, nil
}

// Release returns the envelope if tag proves the password (see proved),
// which resets the counter. A wrong tag at the limit destroys the key.
func (v *Vault) Release(user string, tag []byte) ([]byte, error) {
	if !keyvault.ValidUser(user) || len(tag) != 32 {
		return nil, fmt.Errorf("%w: malformed release", ErrBadRequest)
	}
	unlock, err := v.lock(user)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err := v.proved(user, tag)
	if err != nil {
		return nil, err
	}
	if err := v.writeCounter(user, rec.KeyLabel, 0); err != nil {
		return nil, err
	}
	return rec.Envelope, nil
}

// Destroy retires user's enrolment for good if tag proves the password
// (see proved), as its owner does when the password changes: the key is
// destroyed in the HSM, then the record becomes a tombstone, and later
// requests are told the user is not enrolled. A wrong tag is answered as
// by Release.
func (v *Vault) Destroy(user string, tag []byte) error {
	if !keyvault.ValidUser(user) || len(tag) != 32 {
		return fmt.Errorf("%w: malformed destroy", ErrBadRequest)
	}
	unlock, err := v.lock(user)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := v.proved(user, tag)
	if err != nil {
		return err
	}
	if err := v.hsm.DestroyUserKey(rec.KeyLabel); err != nil {
		return err
	}
	return v.put(user, &userRecord{KeyLabel: rec.KeyLabel, LockedOut: true, Retired: true, Created: rec.Created})
}

// proved returns user's record if an evaluation was counted and tag's MAC
// in the HSM equals the stored one (in constant time). Otherwise it is a
// WrongPasswordError, or at the limit the key is destroyed and it is
// ErrLockedOut. The caller holds user's lock.
func (v *Vault) proved(user string, tag []byte) (*userRecord, error) {
	rec, err := v.active(user)
	if err != nil {
		return nil, err
	}
	n, err := v.counter(user, rec.KeyLabel)
	if err != nil {
		return nil, err
	}
	mac, err := v.hsm.TagMAC(user, tag)
	if err != nil {
		return nil, err
	}
	if n > 0 && subtle.ConstantTimeCompare(mac, rec.TagMAC) == 1 {
		return rec, nil
	}
	limit := v.limitOf(rec)
	if n >= limit {
		if err := v.destroy(user, rec); err != nil {
			return nil, err
		}
		return nil, keyvault.ErrLockedOut
	}
	return nil, &keyvault.WrongPasswordError{AttemptsLeft: int(limit - n)}
}
