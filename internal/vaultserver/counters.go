package vaultserver

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"sync"
)

// Guess counters (docs/VAULT.md §3, "Counter storage"): every user's
// count lives in the store, and the token holds one anchor, a versioned
// data object of value epoch (8) || S (32), where S is the sum modulo
// 2^256 of e(user, key label, count) over every counter in the store, and
// e is the HMAC of counterElementInput under the tag key, which never
// leaves the token. A change of counters is a batch: the vault writes the
// batch (its epoch, each change's old and new value, and a MAC under the
// tag key) into the store first, and then the token's anchor of the same
// epoch. So many concurrent guesses share one token write (group commit),
// and:
//   - a store restored from a copy is older than the anchor: its epoch is
//     lower, and the vault refuses to serve it (errRestoredStore);
//   - a crash between the two writes leaves the store one batch ahead of
//     the anchor: the batch's MAC proves that the vault made it, and the
//     anchor is completed from it (never reset);
//   - a store edited by someone without the token (a counter lowered, a
//     batch invented) does not sum to the anchor's S, which only the token
//     can compute: the vault checks the whole sum when it opens.

// counterValue is one user's counter: the key it counts guesses of, and
// how many were counted since the last release.
type counterValue struct {
	Label string
	Count uint32
}

// counterChange is one user's change in a batch; a counter that did not
// exist has HadOld false.
type counterChange struct {
	User   string
	HadOld bool
	Old    counterValue
	New    counterValue
}

// counterBatch is one commit of counter changes.
type counterBatch struct {
	Epoch   uint64
	Changes []counterChange
	MAC     []byte // over the encoding without it, under the tag key
}

const (
	// counterElementDomain and counterBatchDomain separate the tag key's
	// uses (HSM.MAC): the tag MAC's input starts "sealfs vault tag mac v1".
	counterElementDomain = "sealfs vault counter v1"
	counterBatchDomain   = "sealfs vault counter batch v1"
	// maxBatchChanges bounds a batch as read back from the store.
	maxBatchChanges = 1 << 20
)

// encodeBatchBody is the batch without its MAC: epoch (8) || n (4) ||
// n × (user, hadOld (1), old label, old count (4), new label, new count (4)),
// strings as length (2) || bytes, integers big-endian.
func encodeBatchBody(b *counterBatch) []byte {
	out := binary.BigEndian.AppendUint64(nil, b.Epoch)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Changes)))
	str := func(s string) { out = append(binary.BigEndian.AppendUint16(out, uint16(len(s))), s...) }
	for _, c := range b.Changes {
		str(c.User)
		if c.HadOld {
			out = append(out, 1)
		} else {
			out = append(out, 0)
		}
		str(c.Old.Label)
		out = binary.BigEndian.AppendUint32(out, c.Old.Count)
		str(c.New.Label)
		out = binary.BigEndian.AppendUint32(out, c.New.Count)
	}
	return out
}

// encodeBatch is encodeBatchBody || MAC (32).
func encodeBatch(b *counterBatch) []byte { return append(encodeBatchBody(b), b.MAC...) }

// decodeBatch parses encodeBatch's output as read from the store, which
// whoever holds the database can write: everything is bounds-checked,
// and the MAC is checked by the caller (verifyBatch).
func decodeBatch(enc []byte) (*counterBatch, error) {
	bad := errors.New("the counter batch in the database is malformed")
	if len(enc) < 12+32 {
		return nil, bad
	}
	body, mac := enc[:len(enc)-32], enc[len(enc)-32:]
	b := &counterBatch{Epoch: binary.BigEndian.Uint64(body), MAC: bytes.Clone(mac)}
	n := binary.BigEndian.Uint32(body[8:])
	p := body[12:]
	if n > maxBatchChanges || uint64(n)*15 > uint64(len(p)) {
		return nil, bad
	}
	str := func() (string, bool) {
		if len(p) < 2 || len(p) < 2+int(binary.BigEndian.Uint16(p)) {
			return "", false
		}
		l := int(binary.BigEndian.Uint16(p))
		s := string(p[2 : 2+l])
		p = p[2+l:]
		return s, true
	}
	u32 := func() (uint32, bool) {
		if len(p) < 4 {
			return 0, false
		}
		v := binary.BigEndian.Uint32(p)
		p = p[4:]
		return v, true
	}
	b.Changes = make([]counterChange, 0, n)
	for range n {
		var c counterChange
		var ok1, ok2, ok3, ok4, ok5 bool
		c.User, ok1 = str()
		if !ok1 || len(p) < 1 || p[0] > 1 {
			return nil, bad
		}
		c.HadOld, p = p[0] == 1, p[1:]
		c.Old.Label, ok2 = str()
		c.Old.Count, ok3 = u32()
		c.New.Label, ok4 = str()
		c.New.Count, ok5 = u32()
		if !ok2 || !ok3 || !ok4 || !ok5 {
			return nil, bad
		}
		b.Changes = append(b.Changes, c)
	}
	if len(p) != 0 {
		return nil, bad
	}
	return b, nil
}

// counterElementInput is what e(user, label, count) signs:
// user || 0x00 || label || 0x00 || count (4, big-endian).
func counterElementInput(user string, c counterValue) []byte {
	b := append(append([]byte(user), 0), c.Label...)
	return binary.BigEndian.AppendUint32(append(b, 0), c.Count)
}

// sum256 is a 256-bit integer, most significant limb first, added and
// subtracted modulo 2^256.
type sum256 [4]uint64

func sumOf(b []byte) (s sum256) {
	for i := range s {
		s[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return s
}

func (s sum256) bytes() []byte {
	out := make([]byte, 0, 32)
	for _, w := range s {
		out = binary.BigEndian.AppendUint64(out, w)
	}
	return out
}

func (s sum256) add(t sum256) sum256 {
	var c uint64
	for i := 3; i >= 0; i-- {
		s[i], c = bits.Add64(s[i], t[i], c)
	}
	return s
}

func (s sum256) sub(t sum256) sum256 {
	var c uint64
	for i := 3; i >= 0; i-- {
		s[i], c = bits.Sub64(s[i], t[i], c)
	}
	return s
}

// element returns e(user, c) from the token.
func (v *Vault) element(user string, c counterValue) (sum256, error) {
	m, err := v.hsm.MAC(counterElementDomain, counterElementInput(user, c))
	if err != nil {
		return sum256{}, err
	}
	return sumOf(m), nil
}

// delta returns the change of S that batch changes make.
func (v *Vault) delta(changes []counterChange) (sum256, error) {
	var d sum256
	for _, c := range changes {
		if c.HadOld {
			e, err := v.element(c.User, c.Old)
			if err != nil {
				return d, err
			}
			d = d.sub(e)
		}
		e, err := v.element(c.User, c.New)
		if err != nil {
			return d, err
		}
		d = d.add(e)
	}
	return d, nil
}

// errRestoredStore is returned (wrapped) when the store is older than the
// token's anchor: serving it would give back guesses already counted.
var errRestoredStore = errors.New("the vault database is older than the guess counters anchored in the HSM token: it was restored from a copy (or the token belongs to another vault), and serving it would reset counters; put back the newest database")

// errForgedStore is returned (wrapped) when the store's counters do not
// match the token's anchor in a way no crash explains.
var errForgedStore = errors.New("the vault database's guess counters do not match the anchor in the HSM token: the database was edited or mixed with another's; the vault refuses to serve it")

// anchorState reads the token's anchor: epoch 0 and S = 0 when there is none.
func (v *Vault) anchorState() (uint64, sum256, error) {
	e, s, ok, err := v.hsm.Anchor()
	if err != nil || !ok {
		return 0, sum256{}, err
	}
	return e, sumOf(s), nil
}

// anchorCache is the anchor as this process last read or wrote it,
// guarded by the counters lock: it is the token's as long as the store's
// head has its epoch, for every writer writes the store first.
type anchorCache struct {
	known bool
	epoch uint64
	sum   sum256
}

// lockCounters takes the counters lock, in this process and across
// processes (the store's).
func (v *Vault) lockCounters() (func(), error) {
	v.countersMu.Lock()
	unlock, err := v.store.LockCounters()
	if err != nil {
		v.countersMu.Unlock()
		return nil, err
	}
	return func() { unlock(); v.countersMu.Unlock() }, nil
}

// setAnchor writes the anchor into the token and the cache.
func (v *Vault) setAnchor(epoch uint64, s sum256) error {
	v.anchor.known = false
	if err := v.hsm.SetAnchor(epoch, s.bytes()); err != nil {
		return err
	}
	v.anchor = anchorCache{true, epoch, s}
	return nil
}

// reconcile brings the anchor level with the store's head and returns
// them: equal, or the store one batch ahead (a crash between the store's
// write and the anchor's), which is completed from the batch after its MAC
// is checked. Anything else is refused. The caller holds the counters lock.
func (v *Vault) reconcile() (uint64, sum256, error) {
	head, last, err := v.store.CounterHead()
	if err != nil {
		return 0, sum256{}, err
	}
	if v.anchor.known && v.anchor.epoch == head {
		return head, v.anchor.sum, nil
	}
	epoch, s, err := v.anchorState()
	if err != nil {
		return 0, s, err
	}
	switch {
	case head == epoch:
		v.anchor = anchorCache{true, epoch, s}
		return epoch, s, nil
	case head < epoch:
		return 0, s, fmt.Errorf("%w (database at counter epoch %d, token at %d)", errRestoredStore, head, epoch)
	case head > epoch+1:
		return 0, s, fmt.Errorf("%w (database at counter epoch %d, token at %d: the token was restored or replaced?)", errForgedStore, head, epoch)
	}
	b, err := decodeBatch(last)
	if err == nil && b.Epoch != head {
		err = errors.New("the head batch has another epoch")
	}
	if err == nil {
		err = v.verifyBatch(b)
	}
	if err != nil {
		return 0, s, fmt.Errorf("%w: %v", errForgedStore, err)
	}
	d, err := v.delta(b.Changes)
	if err != nil {
		return 0, s, err
	}
	s = s.add(d)
	if err := v.setAnchor(head, s); err != nil {
		return 0, s, err
	}
	return head, s, nil
}

// verifyBatch checks b's MAC.
func (v *Vault) verifyBatch(b *counterBatch) error {
	m, err := v.hsm.MAC(counterBatchDomain, encodeBatchBody(b))
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(m, b.MAC) != 1 {
		return errors.New("the head batch's MAC does not verify")
	}
	return nil
}

// checkCounters reconciles the anchor with the store and checks that the
// store's counters sum to it: run when the vault opens.
func (v *Vault) checkCounters() error {
	unlock, err := v.lockCounters()
	if err != nil {
		return err
	}
	defer unlock()
	_, s, err := v.reconcile()
	if err != nil {
		return err
	}
	var total sum256
	err = v.store.Counters(func(user string, c counterValue) error {
		e, err := v.element(user, c)
		total = total.add(e)
		return err
	})
	if err != nil {
		return err
	}
	if total != s {
		return errForgedStore
	}
	return nil
}

// commitRequest is one change waiting for a batch.
type commitRequest struct {
	change counterChange
	delta  sum256 // the change's to S, computed by the requester
	done   chan error
}

// committer gathers counter changes into batches: while a batch is
// being written, changes queue, and go into the next one. One goroutine
// (drain) writes batches while there are any, so no request waits for
// others' batches after its own.
type committer struct {
	mu      sync.Mutex
	queue   []*commitRequest
	running bool
}

// setCounter stores user's counter as c, durably and anchored in the
// token, before it returns. The caller holds user's lock, so old is the
// counter's current value (hadOld false if it has none).
func (v *Vault) setCounter(user string, hadOld bool, old, c counterValue) error {
	r := &commitRequest{change: counterChange{User: user, HadOld: hadOld, Old: old, New: c}, done: make(chan error, 1)}
	// The token's MACs here, in parallel with other requests' and with
	// the batch being written.
	d, err := v.delta([]counterChange{r.change})
	if err != nil {
		return err
	}
	r.delta = d
	cm := &v.commits
	cm.mu.Lock()
	cm.queue = append(cm.queue, r)
	if !cm.running {
		cm.running = true
		go v.drain()
	}
	cm.mu.Unlock()
	return <-r.done
}

// drain writes the queued changes as batches until none is queued.
func (v *Vault) drain() {
	cm := &v.commits
	cm.mu.Lock()
	for len(cm.queue) > 0 {
		batch := cm.queue
		cm.queue = nil
		cm.mu.Unlock()
		err := v.commitBatch(batch)
		for _, q := range batch {
			q.done <- err
		}
		cm.mu.Lock()
	}
	cm.running = false
	cm.mu.Unlock()
}

// commitBatch writes reqs' changes as one batch: into the store, then the
// anchor into the token.
func (v *Vault) commitBatch(reqs []*commitRequest) error {
	changes := make([]counterChange, len(reqs))
	var d sum256
	for i, r := range reqs {
		changes[i] = r.change
		d = d.add(r.delta)
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].User < changes[j].User })
	unlock, err := v.lockCounters()
	if err != nil {
		return err
	}
	defer unlock()
	epoch, s, err := v.reconcile()
	if err != nil {
		return err
	}
	b := &counterBatch{Epoch: epoch + 1, Changes: changes}
	if b.MAC, err = v.hsm.MAC(counterBatchDomain, encodeBatchBody(b)); err != nil {
		return err
	}
	if err := v.store.CommitCounters(b, encodeBatch(b)); err != nil {
		return err
	}
	if v.afterCounterCommit != nil {
		v.afterCounterCommit()
	}
	// The store is ahead now; if this fails, the next batch (or the next
	// start) completes the anchor from the store's head.
	return v.setAnchor(b.Epoch, s.add(d))
}

// counter returns user's count of guesses at the key label: 0 before its
// first counter (a finished enrolment always has one, see EnrolFinish).
func (v *Vault) counter(user, label string) (uint32, error) {
	c, ok, err := v.store.Counter(user)
	if err != nil {
		return 0, err
	}
	if !ok || c.Label != label {
		return 0, fmt.Errorf("the vault database has no guess counter for %q's key: restore the newest database", user)
	}
	return c.Count, nil
}

// migrateCounters moves the counters kept in token objects by earlier
// versions (one per key, HSM.Counter) into the store, as the first batch,
// when neither the store nor the token has a counter epoch yet. The old
// objects stay in the token, unused.
func (v *Vault) migrateCounters() error {
	unlock, err := v.lockCounters()
	if err != nil {
		return err
	}
	defer unlock()
	head, _, err := v.store.CounterHead()
	if err != nil || head != 0 {
		return err
	}
	epoch, _, err := v.anchorState()
	if err != nil || epoch != 0 {
		return err
	}
	var changes []counterChange
	err = v.store.forEachUser(func(user string, rec *userRecord) error {
		if rec.Pending || rec.LockedOut {
			return nil
		}
		n, err := v.hsm.Counter(rec.KeyLabel)
		changes = append(changes, counterChange{User: user, New: counterValue{rec.KeyLabel, n}})
		return err
	})
	if err != nil || len(changes) == 0 {
		return err
	}
	d, err := v.delta(changes)
	if err != nil {
		return err
	}
	b := &counterBatch{Epoch: 1, Changes: changes}
	if b.MAC, err = v.hsm.MAC(counterBatchDomain, encodeBatchBody(b)); err != nil {
		return err
	}
	if err := v.store.CommitCounters(b, encodeBatch(b)); err != nil {
		return err
	}
	return v.setAnchor(1, d)
}
