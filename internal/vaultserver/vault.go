package vaultserver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sealfs/sealfs/internal/atomicfile"
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

// The database's buckets: users holds a userRecord per user id; pending
// holds the ids whose enrolment is started and not finished, each with
// its start (8-byte big-endian Unix nanoseconds), so that they are
// counted and expired without a walk over every user.
var (
	usersBucket   = []byte("users")
	pendingBucket = []byte("pending")
)

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
// records in an embedded database, counts guesses in the HSM, and
// serialises the guesses of each user.
type Vault struct {
	hsm   HSM
	db    *bolt.DB
	limit uint32

	maxPending int
	pendingTTL time.Duration
	now        func() time.Time

	locksMu sync.Mutex
	locks   map[string]*userLock // only while held or waited for

	pendingMu sync.Mutex // serialises the count and start of enrolments
}

// userLock serialises one user's requests; refs counts its holders and
// waiters, and the entry is dropped when it falls to 0.
type userLock struct {
	mu   sync.Mutex
	refs int
}

// NewVault opens (or creates) the database at dbPath.
func NewVault(h HSM, dbPath string) (*Vault, error) {
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("failed to open the vault database %s: %w", dbPath, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(usersBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(pendingBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	v := &Vault{hsm: h, db: db, limit: MaxAttempts, maxPending: MaxPending, pendingTTL: PendingTTL, now: time.Now, locks: map[string]*userLock{}}
	if h == nil {
		return v, nil
	}
	migrated, err := v.migrateTags()
	if err == nil && migrated > 0 {
		err = v.compact(dbPath)
	}
	if err != nil {
		v.db.Close()
		return nil, err
	}
	return v, nil
}

// compact rewrites the database at dbPath into a new file that holds only
// live values, and puts it in place (bbolt keeps overwritten values in
// free pages of the file: after migrateTags, the tags T). A crash leaves
// the old file or the new one.
func (v *Vault) compact(dbPath string) error {
	tmp := dbPath + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("failed to compact the vault database: %w", err)
	}
	err = bolt.Compact(dst, v.db, 1<<20)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if cerr := v.db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dbPath)
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(dbPath))
	}
	os.Remove(tmp)
	db, oerr := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if oerr != nil {
		return fmt.Errorf("failed to reopen the vault database %s: %w", dbPath, oerr)
	}
	v.db = db
	if err != nil {
		return fmt.Errorf("failed to compact the vault database: %w", err)
	}
	return nil
}

// migrateTags replaces the unlock tag T of records made before the tag
// MAC by its MAC, in one transaction, and returns how many it changed.
// It also lists in the pending bucket the enrolments started before it
// existed.
// Copies of the database made before still hold T (docs/VAULT.md §3).
func (v *Vault) migrateTags() (int, error) {
	n := 0
	err := v.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(usersBucket)
		type change struct {
			user string
			val  []byte
		}
		var changes, unlisted []change
		err := b.ForEach(func(k, val []byte) error {
			var rec userRecord
			if err := json.Unmarshal(val, &rec); err != nil {
				return fmt.Errorf("vault database record %q is unreadable: %w", k, err)
			}
			if rec.Pending && tx.Bucket(pendingBucket).Get(k) == nil {
				// Started before the pending bucket: listed from now, so
				// that it is counted and expires.
				unlisted = append(unlisted, change{string(k), binary.BigEndian.AppendUint64(nil, uint64(rec.Created.UnixNano()))})
			}
			if rec.Tag == nil {
				return nil
			}
			if rec.TagMAC == nil {
				mac, err := v.hsm.TagMAC(string(k), rec.Tag)
				if err != nil {
					return err
				}
				rec.TagMAC = mac
			}
			rec.Tag = nil
			nv, err := json.Marshal(&rec)
			changes = append(changes, change{string(k), nv})
			return err
		})
		for _, c := range changes {
			if err == nil {
				err = b.Put([]byte(c.user), c.val)
			}
		}
		for _, c := range unlisted {
			if err == nil {
				err = tx.Bucket(pendingBucket).Put([]byte(c.user), c.val)
			}
		}
		n = len(changes)
		return err
	})
	return n, err
}

// Close closes the database.
func (v *Vault) Close() error { return v.db.Close() }

// lock serialises the requests of user; the returned function unlocks.
// The table holds only users with a request in progress.
func (v *Vault) lock(user string) func() {
	v.locksMu.Lock()
	l := v.locks[user]
	if l == nil {
		l = &userLock{}
		v.locks[user] = l
	}
	l.refs++
	v.locksMu.Unlock()
	l.mu.Lock()
	return v.unlocker(user, l)
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
func (v *Vault) tryLock(user string) (unlock func(), ok bool) {
	v.locksMu.Lock()
	defer v.locksMu.Unlock()
	if v.locks[user] != nil {
		return nil, false
	}
	l := &userLock{refs: 1}
	l.mu.Lock() // new: never waits
	v.locks[user] = l
	return v.unlocker(user, l), true
}

// lockedUsers returns how many users the lock table holds.
func (v *Vault) lockedUsers() int {
	v.locksMu.Lock()
	defer v.locksMu.Unlock()
	return len(v.locks)
}

func (v *Vault) load(user string) (*userRecord, error) {
	var rec *userRecord
	err := v.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(usersBucket).Get([]byte(user))
		if b == nil {
			return keyvault.ErrNotEnrolled
		}
		rec = &userRecord{}
		return json.Unmarshal(b, rec)
	})
	return rec, err
}

// store writes user's record, and keeps the pending bucket in step: the
// user is listed there exactly while rec.Pending.
func (v *Vault) store(user string, rec *userRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return v.db.Update(func(tx *bolt.Tx) error {
		if rec.Pending {
			t := binary.BigEndian.AppendUint64(nil, uint64(rec.Created.UnixNano()))
			if err := tx.Bucket(pendingBucket).Put([]byte(user), t); err != nil {
				return err
			}
		} else if err := tx.Bucket(pendingBucket).Delete([]byte(user)); err != nil {
			return err
		}
		return tx.Bucket(usersBucket).Put([]byte(user), b)
	})
}

// forgetPending deletes the record of a pending enrolment of user.
func (v *Vault) forgetPending(user string) error {
	return v.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(pendingBucket).Delete([]byte(user)); err != nil {
			return err
		}
		return tx.Bucket(usersBucket).Delete([]byte(user))
	})
}

// pendingCount returns how many enrolments are started and not finished.
func (v *Vault) pendingCount() (int, error) {
	n := 0
	err := v.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(pendingBucket).Stats().KeyN; return nil })
	return n, err
}

// expired reports whether an enrolment started at t has expired.
func (v *Vault) expired(t time.Time) bool { return v.now().Sub(t) > v.pendingTTL }

// ExpirePending destroys the keys of the enrolments started more than
// the pending TTL ago and forgets them. It returns how many it expired.
func (v *Vault) ExpirePending() (int, error) {
	var users []string
	err := v.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(pendingBucket).ForEach(func(k, t []byte) error {
			if len(t) != 8 || v.expired(time.Unix(0, int64(binary.BigEndian.Uint64(t)))) {
				users = append(users, string(k))
			}
			return nil
		})
	})
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
	unlock, ok := v.tryLock(user)
	if !ok {
		return false, nil
	}
	defer unlock()
	rec, err := v.load(user)
	if errors.Is(err, keyvault.ErrNotEnrolled) {
		return false, v.forgetPending(user) // a pending entry without a record
	}
	if err != nil || !rec.Pending || !v.expired(rec.Created) {
		return false, err
	}
	// The key first: a record is never forgotten while its key lives.
	if err := v.hsm.DestroyUserKey(rec.KeyLabel); err != nil {
		return false, err
	}
	return true, v.forgetPending(user)
}

// destroy destroys the user's key in the HSM for good, then leaves a
// tombstone in the database.
func (v *Vault) destroy(user string, rec *userRecord) error {
	if err := v.hsm.DestroyUserKey(rec.KeyLabel); err != nil {
		return err
	}
	return v.store(user, &userRecord{KeyLabel: rec.KeyLabel, LockedOut: true, Created: rec.Created})
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
	defer v.lock(user)()
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
		return v.store(user, &userRecord{KeyLabel: label, Pending: true, MaxAttempts: uint32(maxAttempts), Created: v.now().UTC()})
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
	var mine bool
	v.db.View(func(tx *bolt.Tx) error { mine = tx.Bucket(pendingBucket).Get([]byte(user)) != nil; return nil })
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
	defer v.lock(user)()
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
		if err := v.forgetPending(user); err != nil {
			return err
		}
		return fmt.Errorf("%w: the enrolment was started more than %v ago; start again", keyvault.ErrNotEnrolled, v.pendingTTL)
	}
	mac, err := v.hsm.TagMAC(user, tag)
	if err != nil {
		return err
	}
	if err := v.hsm.SetCounter(rec.KeyLabel, 0); err != nil {
		return err
	}
	rec.TagMAC, rec.Envelope, rec.Pending = mac, envelope, false
	return v.store(user, rec)
}

// Evaluate counts a guess, durably and in the HSM, before it evaluates the
// blinded point; it returns the evaluation and the attempts left if this
// guess is wrong. At the limit the key is destroyed instead.
func (v *Vault) Evaluate(user string, blinded []byte) ([]byte, int, error) {
	if !keyvault.ValidUser(user) {
		return nil, 0, fmt.Errorf("%w: malformed user id", ErrBadRequest)
	}
	if err := keyvault.ValidatePoint(blinded); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	defer v.lock(user)()
	rec, err := v.active(user)
	if err != nil {
		return nil, 0, err
	}
	n, err := v.hsm.Counter(rec.KeyLabel)
	if err != nil {
		return nil, 0, err
	}
	limit := v.limitOf(rec)
	if n >= limit {
		v.destroy(user, rec)
		return nil, 0, keyvault.ErrLockedOut
	}
	if err := v.hsm.SetCounter(rec.KeyLabel, n+1); err != nil {
		return nil, 0, err
	}
	x, err := v.hsm.Evaluate(rec.KeyLabel, blinded)
	if err != nil {
		return nil, 0, err
	}
	return x, int(limit - n - 1), nil
}

// active loads a finished enrolment whose key still exists; a record whose
// key is gone (an old database restored after a lockout) is deleted.
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
	ok, err := v.hsm.HasUserKey(rec.KeyLabel)
	if err != nil {
		return nil, err
	}
	if !ok { // an old database restored after a lockout
		v.store(user, &userRecord{KeyLabel: rec.KeyLabel, LockedOut: true, Created: rec.Created})
		return nil, keyvault.ErrLockedOut
	}
	return rec, nil
}

// Release returns the envelope if tag proves the password (see proved),
// which resets the counter. A wrong tag at the limit destroys the key.
func (v *Vault) Release(user string, tag []byte) ([]byte, error) {
	if !keyvault.ValidUser(user) || len(tag) != 32 {
		return nil, fmt.Errorf("%w: malformed release", ErrBadRequest)
	}
	defer v.lock(user)()
	rec, err := v.proved(user, tag)
	if err != nil {
		return nil, err
	}
	if err := v.hsm.SetCounter(rec.KeyLabel, 0); err != nil {
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
	defer v.lock(user)()
	rec, err := v.proved(user, tag)
	if err != nil {
		return err
	}
	if err := v.hsm.DestroyUserKey(rec.KeyLabel); err != nil {
		return err
	}
	return v.store(user, &userRecord{KeyLabel: rec.KeyLabel, LockedOut: true, Retired: true, Created: rec.Created})
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
	n, err := v.hsm.Counter(rec.KeyLabel)
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
