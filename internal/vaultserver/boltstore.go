package vaultserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sealfs/sealfs/internal/atomicfile"
	"github.com/sealfs/sealfs/keyvault"
)

// The bbolt database's buckets: users holds a userRecord per user id (as
// JSON); pending holds the ids whose enrolment is started and not
// finished, each with its start (8-byte big-endian Unix nanoseconds), so
// that they are counted and expired without a walk over every user;
// counters holds a counter per user id (counterValue as 4-byte count ||
// key label); meta holds the counter chain's head (key "head": the last
// batch's encoding, its epoch first).
var (
	usersBucket    = []byte("users")
	pendingBucket  = []byte("pending")
	countersBucket = []byte("counters")
	metaBucket     = []byte("meta")
	headKey        = []byte("head")
)

// boltStore is a Store in a bbolt file, which one process at a time
// opens: the vault's own locks serialise, so its locks take nothing.
type boltStore struct {
	db   *bolt.DB
	path string
}

// OpenBoltStore opens (or creates) the bbolt database at path.
func OpenBoltStore(path string) (*boltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("failed to open the vault database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{usersBucket, pendingBucket, countersBucket, metaBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &boltStore{db: db, path: path}, nil
}

func (s *boltStore) Close() error { return s.db.Close() }

func (s *boltStore) Load(user string) (*userRecord, error) {
	var rec *userRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(usersBucket).Get([]byte(user))
		if b == nil {
			return keyvault.ErrNotEnrolled
		}
		rec = &userRecord{}
		return json.Unmarshal(b, rec)
	})
	return rec, err
}

func (s *boltStore) Put(user string, rec *userRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
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

func (s *boltStore) ForgetPending(user string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(pendingBucket).Delete([]byte(user)); err != nil {
			return err
		}
		return tx.Bucket(usersBucket).Delete([]byte(user))
	})
}

func (s *boltStore) IsPending(user string) (bool, error) {
	var mine bool
	err := s.db.View(func(tx *bolt.Tx) error { mine = tx.Bucket(pendingBucket).Get([]byte(user)) != nil; return nil })
	return mine, err
}

func (s *boltStore) PendingCount() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(pendingBucket).Stats().KeyN; return nil })
	return n, err
}

func (s *boltStore) Pending() (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(pendingBucket).ForEach(func(k, t []byte) error {
			if len(t) == 8 {
				out[string(k)] = time.Unix(0, int64(binary.BigEndian.Uint64(t)))
			} else {
				out[string(k)] = time.Time{}
			}
			return nil
		})
	})
	return out, err
}

// forEachUser calls fn for every record.
func (s *boltStore) forEachUser(fn func(user string, rec *userRecord) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(usersBucket).ForEach(func(k, val []byte) error {
			var rec userRecord
			if err := json.Unmarshal(val, &rec); err != nil {
				return fmt.Errorf("vault database record %q is unreadable: %w", k, err)
			}
			return fn(string(k), &rec)
		})
	})
}

// encodeCounter and decodeCounter are a counter as the counters bucket
// holds it: count (4, big-endian) || key label.
func encodeCounter(c counterValue) []byte {
	return append(binary.BigEndian.AppendUint32(nil, c.Count), c.Label...)
}

func decodeCounter(user string, b []byte) (counterValue, error) {
	if len(b) < 4 {
		return counterValue{}, fmt.Errorf("the vault database's counter of %q is malformed", user)
	}
	return counterValue{Label: string(b[4:]), Count: binary.BigEndian.Uint32(b)}, nil
}

func (s *boltStore) Counter(user string) (c counterValue, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(countersBucket).Get([]byte(user))
		if b == nil {
			return nil
		}
		ok = true
		c, err = decodeCounter(user, b)
		return err
	})
	return c, ok, err
}

func (s *boltStore) Counters(fn func(string, counterValue) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(countersBucket).ForEach(func(k, b []byte) error {
			c, err := decodeCounter(string(k), b)
			if err != nil {
				return err
			}
			return fn(string(k), c)
		})
	})
}

func (s *boltStore) CounterHead() (epoch uint64, last []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		last = bytes.Clone(tx.Bucket(metaBucket).Get(headKey))
		return nil
	})
	return headEpoch(last), last, err
}

// headEpoch is the epoch of an encoded batch (its first 8 bytes), 0 for
// none; the whole batch is checked when it matters (reconcile).
func headEpoch(last []byte) uint64 {
	if len(last) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(last)
}

func (s *boltStore) CommitCounters(b *counterBatch, enc []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if headEpoch(tx.Bucket(metaBucket).Get(headKey)) != b.Epoch-1 {
			return errStaleCounters
		}
		cb := tx.Bucket(countersBucket)
		for _, c := range b.Changes {
			cur := cb.Get([]byte(c.User))
			if (cur != nil) != c.HadOld || (cur != nil && !bytes.Equal(cur, encodeCounter(c.Old))) {
				return fmt.Errorf("%w: %s", errStaleCounters, c.User)
			}
			if err := cb.Put([]byte(c.User), encodeCounter(c.New)); err != nil {
				return err
			}
		}
		return tx.Bucket(metaBucket).Put(headKey, enc)
	})
}

func (s *boltStore) LockUser(string, bool) (func(), bool, error) { return noLock, true, nil }

func (s *boltStore) LockCounters() (func(), error) { return noLock, nil }

// migrateTags replaces the unlock tag T of records made before the tag
// MAC by its MAC, in one transaction, and returns how many it changed.
// It also lists in the pending bucket the enrolments started before it
// existed.
// Copies of the database made before still hold T (docs/VAULT.md §3).
func (s *boltStore) migrateTags(h HSM) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
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
				mac, err := h.TagMAC(string(k), rec.Tag)
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

// compact rewrites the database into a new file that holds only live
// values, and puts it in place (bbolt keeps overwritten values in free
// pages of the file: after migrateTags, the tags T). A crash leaves the
// old file or the new one.
func (s *boltStore) compact() error {
	tmp := s.path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("failed to compact the vault database: %w", err)
	}
	err = bolt.Compact(dst, s.db, 1<<20)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(s.path))
	}
	os.Remove(tmp)
	db, oerr := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if oerr != nil {
		return fmt.Errorf("failed to reopen the vault database %s: %w", s.path, oerr)
	}
	s.db = db
	if err != nil {
		return fmt.Errorf("failed to compact the vault database: %w", err)
	}
	return nil
}
