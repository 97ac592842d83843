package vaultserver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sealfs/sealfs/keyvault"
)

// MaxAttempts is how many wrong guesses in a row destroy a user's key.
const MaxAttempts = 10

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
	// LockedOut marks a user whose key was destroyed, so that later
	// requests are told so (and the user may enrol again, with a new key).
	LockedOut bool      `json:"locked_out,omitempty"`
	Created   time.Time `json:"created"`
}

var usersBucket = []byte("users")

// Vault is the server half of the protocol, without the network: it keeps
// records in an embedded database, counts guesses in the HSM, and
// serialises the guesses of each user.
type Vault struct {
	hsm   HSM
	db    *bolt.DB
	limit uint32

	locks sync.Map // user -> *sync.Mutex
}

// NewVault opens (or creates) the database at dbPath.
func NewVault(h HSM, dbPath string) (*Vault, error) {
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("failed to open the vault database %s: %w", dbPath, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(usersBucket); return err }); err != nil {
		db.Close()
		return nil, err
	}
	v := &Vault{hsm: h, db: db, limit: MaxAttempts}
	if h != nil {
		if err := v.migrateTags(); err != nil {
			db.Close()
			return nil, err
		}
	}
	return v, nil
}

// migrateTags replaces the unlock tag T of records made before the tag
// MAC by its MAC, in one transaction. Copies of the database made before
// still hold T (docs/VAULT.md §2).
func (v *Vault) migrateTags() error {
	return v.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(usersBucket)
		type change struct {
			user string
			val  []byte
		}
		var changes []change
		err := b.ForEach(func(k, val []byte) error {
			var rec userRecord
			if err := json.Unmarshal(val, &rec); err != nil {
				return fmt.Errorf("vault database record %q is unreadable: %w", k, err)
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
		return err
	})
}

// Close closes the database.
func (v *Vault) Close() error { return v.db.Close() }

func (v *Vault) lock(user string) func() {
	m, _ := v.locks.LoadOrStore(user, &sync.Mutex{})
	m.(*sync.Mutex).Lock()
	return m.(*sync.Mutex).Unlock
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

func (v *Vault) store(user string, rec *userRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return v.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(usersBucket).Put([]byte(user), b) })
}

// destroy destroys the user's key in the HSM for good, then leaves a
// tombstone in the database.
func (v *Vault) destroy(user string, rec *userRecord) error {
	if err := v.hsm.DestroyUserKey(rec.KeyLabel); err != nil {
		return err
	}
	return v.store(user, &userRecord{KeyLabel: rec.KeyLabel, LockedOut: true, Created: rec.Created})
}

// EnrolStart makes a new HSM key for user and evaluates the blinded point
// with it. A user with a finished enrolment cannot enrol again.
func (v *Vault) EnrolStart(user string, blinded []byte) ([]byte, error) {
	if !keyvault.ValidUser(user) {
		return nil, fmt.Errorf("%w: malformed user id", ErrBadRequest)
	}
	if err := keyvault.ValidatePoint(blinded); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	defer v.lock(user)()
	if rec, err := v.load(user); err == nil {
		if !rec.Pending && !rec.LockedOut {
			return nil, keyvault.ErrEnrolled
		}
		v.hsm.DestroyUserKey(rec.KeyLabel) // an abandoned enrolment
	} else if !errors.Is(err, keyvault.ErrNotEnrolled) {
		return nil, err
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	label := user + "/" + hex.EncodeToString(nonce[:])
	if err := v.hsm.NewUserKey(label); err != nil {
		return nil, err
	}
	if err := v.store(user, &userRecord{KeyLabel: label, Pending: true, Created: time.Now().UTC()}); err != nil {
		return nil, err
	}
	return v.hsm.Evaluate(label, blinded)
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
	if n >= v.limit {
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
	return x, int(v.limit - n - 1), nil
}

// active loads a finished enrolment whose key still exists; a record whose
// key is gone (an old database restored after a lockout) is deleted.
func (v *Vault) active(user string) (*userRecord, error) {
	rec, err := v.load(user)
	if err != nil {
		return nil, err
	}
	switch {
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

// Release returns the envelope if tag's MAC in the HSM matches the stored
// one (in constant time), which resets the counter. A wrong tag at the
// limit destroys the key.
func (v *Vault) Release(user string, tag []byte) ([]byte, error) {
	if !keyvault.ValidUser(user) || len(tag) != 32 {
		return nil, fmt.Errorf("%w: malformed release", ErrBadRequest)
	}
	defer v.lock(user)()
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
		if err := v.hsm.SetCounter(rec.KeyLabel, 0); err != nil {
			return nil, err
		}
		return rec.Envelope, nil
	}
	if n >= v.limit {
		if err := v.destroy(user, rec); err != nil {
			return nil, err
		}
		return nil, keyvault.ErrLockedOut
	}
	return nil, &keyvault.WrongPasswordError{AttemptsLeft: int(v.limit - n)}
}
