package vaultserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/sealfs/sealfs/keyvault"
)

// HSM offers the vault's secret operations. Key bytes never leave it:
// callers name keys by label and get only evaluation results.
type HSM interface {
	// NewUserKey makes a non-extractable P-256 key with the label.
	NewUserKey(label string) error
	// Evaluate returns the x-coordinate of k·point for the user key k
	// (CKM_ECDH1_DERIVE with CKD_NULL). The point must be validated first.
	Evaluate(label string, point []byte) ([]byte, error)
	// DestroyUserKey destroys the key for good.
	DestroyUserKey(label string) error
	// HasUserKey reports whether the key exists.
	HasUserKey(label string) (bool, error)
	// Counter returns a counter kept in the token by versions before the
	// anchor (0 if there is none): read only to migrate it.
	Counter(name string) (uint32, error)
	// Anchor returns the token's counter anchor (counters.go): its epoch
	// and sum; ok is false when there is none.
	Anchor() (epoch uint64, sum []byte, ok bool, err error)
	// SetAnchor stores the anchor of epoch, which must be higher than the
	// stored one's.
	SetAnchor(epoch uint64, sum []byte) error
	// MAC returns HMAC-SHA256 of domain || 0x00 || msg under the tag key
	// (domain holds no 0x00, and is not the tag MAC's).
	MAC(domain string, msg []byte) ([]byte, error)
	// TagMAC returns HMAC-SHA256 of the user's unlock tag under the
	// vault's tag key, which never leaves the token (see tagMACInput):
	// what the database keeps instead of the tag.
	TagMAC(user string, tag []byte) ([]byte, error)
	// EnsureTagKey makes the tag key if the token has none; the caller
	// holds a lock that every process serving the token takes.
	EnsureTagKey() error
	// Close ends the session.
	Close() error
}

// ErrNoKey is returned (wrapped) when a user key does not exist.
var ErrNoKey = errors.New("no such key in the HSM")

// p256OID is the DER encoding of the P-256 curve OID 1.2.840.10045.3.1.7.
var p256OID = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}

const (
	keyLabelPrefix     = "sealfs-vault-key:"
	counterLabelPrefix = "sealfs-vault-counter:"
	anchorLabel        = "sealfs-vault-counter-anchor"
	tagKeyLabel        = "sealfs-vault-tag-key"
	application        = "sealfs-vault"
)

// PKCS11 is an HSM on a PKCS#11 token, used through one logged-in session.
type PKCS11 struct {
	mu     sync.Mutex // guards sess, the anchor's cache and destroyObject
	ctx    *pkcs11.Ctx
	sess   pkcs11.SessionHandle
	tagKey pkcs11.ObjectHandle
	// pool holds more sessions of the same login, for the operations of
	// every request (MACs, derives, key look-ups), so that they run in
	// parallel on the token's threads.
	pool chan pkcs11.SessionHandle

	// keys caches the handles of user keys by label: a search walks every
	// object of a SoftHSM2 token. A handle that fails is searched again.
	kmu  sync.Mutex
	keys map[string]pkcs11.ObjectHandle

	// anchorObjs are the anchor's objects as last read or written, which
	// the next SetAnchor destroys, and anchorEpoch the highest's epoch.
	anchorObjs  []pkcs11.ObjectHandle
	anchorEpoch uint64
	anchorRead  bool
	// destroyObject is ctx.DestroyObject for the counters' old objects:
	// a seam where tests inject its failure.
	destroyObject func(pkcs11.SessionHandle, pkcs11.ObjectHandle) error
}

// OpenPKCS11 loads the module, finds the token by label, logs in with the
// user PIN and checks that the token can do what the vault needs.
func OpenPKCS11(module, tokenLabel, pin string) (*PKCS11, error) {
	ctx := pkcs11.New(module)
	if ctx == nil {
		return nil, fmt.Errorf("failed to load the PKCS#11 module %s (is it installed? for SoftHSM2: apt-get install softhsm2)", module)
	}
	if err := ctx.Initialize(); err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("failed to initialise PKCS#11 module %s: %w", module, err)
	}
	h := &PKCS11{ctx: ctx, destroyObject: ctx.DestroyObject, keys: map[string]pkcs11.ObjectHandle{}}
	slot, err := findToken(ctx, tokenLabel)
	if err == nil {
		err = h.checkMechanisms(slot)
	}
	if err == nil {
		h.sess, err = ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	}
	if err == nil {
		err = ctx.Login(h.sess, pkcs11.CKU_USER, pin)
		if err != nil {
			err = fmt.Errorf("failed to log in to token %q (wrong PIN?): %w", tokenLabel, err)
		}
	}
	if err == nil {
		_, err = h.findTagKey()
	}
	if err == nil {
		err = h.openPool(slot)
	}
	if err != nil {
		ctx.Finalize()
		ctx.Destroy()
		return nil, err
	}
	return h, nil
}

// poolSessions is how many sessions serve requests in parallel.
const poolSessions = 4

// openPool opens the pool's sessions (logged in already, as the first).
func (h *PKCS11) openPool(slot uint) error {
	h.pool = make(chan pkcs11.SessionHandle, poolSessions)
	for range poolSessions {
		s, err := h.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fmt.Errorf("failed to open a session on the token: %w", err)
		}
		h.pool <- s
	}
	return nil
}

// session takes a session of the pool; put it back with release.
func (h *PKCS11) session() pkcs11.SessionHandle { return <-h.pool }

func (h *PKCS11) release(s pkcs11.SessionHandle) { h.pool <- s }

func findToken(ctx *pkcs11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("failed to list PKCS#11 slots: %w", err)
	}
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " \x00") == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no PKCS#11 token labelled %q", label)
}

func (h *PKCS11) checkMechanisms(slot uint) error {
	mechs, err := h.ctx.GetMechanismList(slot)
	if err != nil {
		return fmt.Errorf("failed to list the token's mechanisms: %w", err)
	}
	have := map[uint]bool{}
	for _, m := range mechs {
		have[m.Mechanism] = true
	}
	var missing []string
	if !have[pkcs11.CKM_EC_KEY_PAIR_GEN] {
		missing = append(missing, "CKM_EC_KEY_PAIR_GEN")
	}
	if !have[pkcs11.CKM_ECDH1_DERIVE] {
		missing = append(missing, "CKM_ECDH1_DERIVE")
	}
	if !have[pkcs11.CKM_GENERIC_SECRET_KEY_GEN] {
		missing = append(missing, "CKM_GENERIC_SECRET_KEY_GEN")
	}
	if !have[pkcs11.CKM_SHA256_HMAC] {
		missing = append(missing, "CKM_SHA256_HMAC")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the token lacks %s, which the vault needs", strings.Join(missing, ", "))
	}
	return nil
}

// find searches on the main session; the caller holds h.mu.
func (h *PKCS11) find(tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	return h.findIn(h.sess, tmpl)
}

// findIn searches on session s.
func (h *PKCS11) findIn(s pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := h.ctx.FindObjectsInit(s, tmpl); err != nil {
		return nil, err
	}
	var all []pkcs11.ObjectHandle
	for {
		objs, _, err := h.ctx.FindObjects(s, 64)
		if err != nil {
			h.ctx.FindObjectsFinal(s)
			return nil, err
		}
		if len(objs) == 0 {
			break
		}
		all = append(all, objs...)
	}
	return all, h.ctx.FindObjectsFinal(s)
}

// userKey returns the handle of the user key labelled label: the cached
// one unless fresh, else searched for on session s (and cached).
func (h *PKCS11) userKey(s pkcs11.SessionHandle, label string, fresh bool) (pkcs11.ObjectHandle, error) {
	h.kmu.Lock()
	k, ok := h.keys[label]
	h.kmu.Unlock()
	if ok && !fresh {
		return k, nil
	}
	objs, err := h.findIn(s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, keyLabelPrefix+label),
	})
	if err != nil {
		return 0, err
	}
	h.kmu.Lock()
	defer h.kmu.Unlock()
	if len(objs) == 0 {
		delete(h.keys, label)
		return 0, fmt.Errorf("%w: %s", ErrNoKey, label)
	}
	if len(h.keys) >= maxCachedKeys {
		clear(h.keys)
	}
	h.keys[label] = objs[0]
	return objs[0], nil
}

// maxCachedKeys bounds the cache of key handles.
const maxCachedKeys = 100000

// forgetKey drops label's handle from the cache.
func (h *PKCS11) forgetKey(label string) {
	h.kmu.Lock()
	delete(h.keys, label)
	h.kmu.Unlock()
}

// findTagKey looks for the vault's tag key in the token; ok is false
// when there is none yet. More than one is an error: each would MAC
// differently (two processes made one each, which EnsureTagKey's lock
// prevents).
func (h *PKCS11) findTagKey() (ok bool, err error) {
	objs, err := h.find([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, tagKeyLabel),
	})
	if err != nil {
		return false, fmt.Errorf("failed to look for the vault's tag key in the token: %w", err)
	}
	if len(objs) > 1 {
		return false, fmt.Errorf("the token holds %d keys labelled %s, and the vault needs exactly one: its records were made with one of them; remove the others with the token's tools", len(objs), tagKeyLabel)
	}
	if len(objs) == 1 {
		h.tagKey = objs[0]
	}
	return len(objs) == 1, nil
}

// EnsureTagKey makes the vault's tag key if the token has none: a 32-byte
// generic secret that is sensitive, not extractable and usable only to
// sign (HMAC) in the token. The caller holds a lock that every process
// serving the token takes around this (Vault: the counters lock), so
// that one key is made.
func (h *PKCS11) EnsureTagKey() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ok, err := h.findTagKey()
	if err != nil || ok {
		return err
	}
	h.tagKey, err = h.ctx.GenerateKey(h.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)}, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, tagKeyLabel),
	})
	if err != nil {
		return fmt.Errorf("failed to make the vault's tag key in the token: %w", err)
	}
	return nil
}

// tagMACInput is what the tag key signs for a user's tag T:
// "sealfs vault tag mac v1" || 0x00 || user || 0x00 || T.
func tagMACInput(user string, tag []byte) []byte {
	b := append([]byte("sealfs vault tag mac v1\x00"), user...)
	return append(append(b, 0), tag...)
}

// TagMAC signs tagMACInput(user, tag) with CKM_SHA256_HMAC in the token.
func (h *PKCS11) TagMAC(user string, tag []byte) ([]byte, error) {
	return h.hmac(tagMACInput(user, tag))
}

// MAC signs domain || 0x00 || msg with the tag key (see HSM.MAC).
func (h *PKCS11) MAC(domain string, msg []byte) ([]byte, error) {
	if strings.IndexByte(domain, 0) >= 0 || strings.HasPrefix("sealfs vault tag mac v1", domain) {
		return nil, fmt.Errorf("MAC domain %q is not allowed", domain)
	}
	return h.hmac(append(append([]byte(domain), 0), msg...))
}

// hmac signs in with CKM_SHA256_HMAC under the tag key in the token.
func (h *PKCS11) hmac(in []byte) ([]byte, error) {
	if h.tagKey == 0 {
		return nil, errors.New("the token has no tag key yet (EnsureTagKey)")
	}
	s := h.session()
	defer h.release(s)
	if err := h.ctx.SignInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}, h.tagKey); err != nil {
		return nil, fmt.Errorf("HSM MAC failed: %w", err)
	}
	mac, err := h.ctx.Sign(s, in)
	if err != nil || len(mac) != 32 {
		return nil, fmt.Errorf("HSM MAC returned no 32-byte value: %v", err)
	}
	return mac, nil
}

// NewUserKey generates a token P-256 key that is sensitive, not
// extractable, and usable only for derivation.
func (h *PKCS11) NewUserKey(label string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p256OID),
	}
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, keyLabelPrefix+label),
	}
	pubH, _, err := h.ctx.GenerateKeyPair(h.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, pub, priv)
	if err != nil {
		return fmt.Errorf("failed to generate a user key in the HSM: %w", err)
	}
	h.ctx.DestroyObject(h.sess, pubH) // the public half is not needed
	return nil
}

// Evaluate derives the x-coordinate of k·point inside the token. A
// cached key handle that fails (its key destroyed by another process) is
// searched for again, once.
func (h *PKCS11) Evaluate(label string, point []byte) ([]byte, error) {
	if err := keyvault.ValidatePoint(point); err != nil {
		return nil, err
	}
	s := h.session()
	defer h.release(s)
	x, err := h.evaluate(s, label, point, false)
	if err != nil && !errors.Is(err, ErrNoKey) {
		x, err = h.evaluate(s, label, point, true)
	}
	return x, err
}

func (h *PKCS11) evaluate(s pkcs11.SessionHandle, label string, point []byte, fresh bool) ([]byte, error) {
	key, err := h.userKey(s, label, fresh)
	if err != nil {
		return nil, err
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE, pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, point))}
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
	}
	derived, err := h.ctx.DeriveKey(s, mech, key, tmpl)
	if err != nil {
		return nil, fmt.Errorf("HSM evaluation failed: %w", err)
	}
	defer h.ctx.DestroyObject(s, derived)
	attrs, err := h.ctx.GetAttributeValue(s, derived, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil || len(attrs) != 1 || len(attrs[0].Value) != 32 {
		return nil, fmt.Errorf("HSM evaluation returned no 32-byte value: %v", err)
	}
	return attrs[0].Value, nil
}

// DestroyUserKey destroys the user's key object(s).
func (h *PKCS11) DestroyUserKey(label string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forgetKey(label)
	objs, err := h.find([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, keyLabelPrefix+label)})
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := h.ctx.DestroyObject(h.sess, o); err != nil {
			return fmt.Errorf("failed to destroy user key: %w", err)
		}
	}
	return nil
}

// HasUserKey reports whether the key exists: its cached handle still
// answers, or a search finds it.
func (h *PKCS11) HasUserKey(label string) (bool, error) {
	s := h.session()
	defer h.release(s)
	h.kmu.Lock()
	k, cached := h.keys[label]
	h.kmu.Unlock()
	if cached {
		if _, err := h.ctx.GetAttributeValue(s, k, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil)}); err == nil {
			return true, nil
		}
	}
	_, err := h.userKey(s, label, true)
	if errors.Is(err, ErrNoKey) {
		return false, nil
	}
	return err == nil, err
}

// A counter is kept in token data objects (CKA_LABEL
// counterLabelPrefix || name) whose value is version (8 bytes) || count
// (4 bytes), big-endian. Tokens such as SoftHSM2 refuse to change a data
// object's value, so an update creates an object of the next version and
// then destroys the older ones: the highest version is the counter, so an
// update is complete once its object exists, whatever the older objects
// left behind by a crash or a failed destroy say. Objects of 4 bytes (the
// count alone) were written before versions: they are version 0, and the
// largest count among them wins.
const counterValueSize = 12

// counterObject is one of a counter's objects in the token.
type counterObject struct {
	h       pkcs11.ObjectHandle
	version uint64
	count   uint32
}

// dataObjects returns the handles and values of the token's data objects
// labelled label.
func (h *PKCS11) dataObjects(label string) ([]pkcs11.ObjectHandle, [][]byte, error) {
	objs, err := h.find([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	})
	if err != nil {
		return nil, nil, err
	}
	vals := make([][]byte, len(objs))
	for i, o := range objs {
		a, err := h.ctx.GetAttributeValue(h.sess, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil || len(a) != 1 {
			return nil, nil, fmt.Errorf("data object %s in the token is unreadable: %v", label, err)
		}
		vals[i] = a[0].Value
	}
	return objs, vals, nil
}

// replaceDataObject creates a token data object labelled label with
// value, then destroys the objects old: a reader takes the highest
// version among what it finds, so the update is complete once the new
// object exists, and an old object left by a crash or a failed destroy is
// outranked (and destroyed by the next update).
func (h *PKCS11) replaceDataObject(label string, value []byte, old []pkcs11.ObjectHandle) (pkcs11.ObjectHandle, []pkcs11.ObjectHandle, error) {
	n, err := h.ctx.CreateObject(h.sess, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, application),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, value),
	})
	if err != nil {
		return 0, nil, fmt.Errorf("failed to store %s in the token: %w", label, err)
	}
	var left []pkcs11.ObjectHandle
	for _, o := range old {
		if h.destroyObject(h.sess, o) != nil { // outranked already; retried by the next update
			left = append(left, o)
		}
	}
	return n, left, nil
}

func (h *PKCS11) counterObjects(name string) ([]counterObject, error) {
	objs, vals, err := h.dataObjects(counterLabelPrefix + name)
	if err != nil {
		return nil, err
	}
	out := make([]counterObject, len(objs))
	for i, o := range objs {
		switch v := vals[i]; len(v) {
		case 4:
			out[i] = counterObject{o, 0, binary.BigEndian.Uint32(v)}
		case counterValueSize:
			out[i] = counterObject{o, binary.BigEndian.Uint64(v), binary.BigEndian.Uint32(v[8:])}
		default:
			return nil, fmt.Errorf("counter %s in the token has a value of %d bytes", name, len(v))
		}
	}
	return out, nil
}

// current returns the counter's object of the highest version (the
// largest count among equals); ok is false when there is none.
func current(objs []counterObject) (c counterObject, ok bool) {
	for _, o := range objs {
		if !ok || o.version > c.version || (o.version == c.version && o.count > c.count) {
			c, ok = o, true
		}
	}
	return c, ok
}

// Counter returns the counter's value: its object of the highest
// version (0 if it has none).
func (h *PKCS11) Counter(name string) (uint32, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	objs, err := h.counterObjects(name)
	if err != nil {
		return 0, err
	}
	c, _ := current(objs)
	return c.count, nil
}

// SetCounter stores v as a new object of the next version, then destroys
// the older objects. The update is done when the new object exists: an
// older object left behind (a crash, a failed destroy) is outranked, and
// destroyed by the next update.
func (h *PKCS11) SetCounter(name string, v uint32) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	old, err := h.counterObjects(name)
	if err != nil {
		return err
	}
	c, _ := current(old)
	handles := make([]pkcs11.ObjectHandle, len(old))
	for i, o := range old {
		handles[i] = o.h
	}
	val := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, c.version+1), v)
	if _, _, err := h.replaceDataObject(counterLabelPrefix+name, val, handles); err != nil {
		return fmt.Errorf("failed to store counter %s: %w", name, err)
	}
	return nil
}

// The anchor of the counters (counters.go) is a data object labelled
// anchorLabel of value epoch (8, big-endian) || sum (32), replaced as
// counters' objects are (replaceDataObject): the highest epoch is the
// anchor.
const anchorValueSize = 8 + 32

// anchor reads the anchor's objects and returns the current one's epoch
// and sum (nil if there is none), and caches them for SetAnchor. The
// caller holds h.mu.
func (h *PKCS11) anchor() (epoch uint64, sum []byte, err error) {
	objs, vals, err := h.dataObjects(anchorLabel)
	if err != nil {
		return 0, nil, err
	}
	for _, v := range vals {
		if len(v) != anchorValueSize {
			return 0, nil, fmt.Errorf("the counter anchor in the token has a value of %d bytes", len(v))
		}
		if e := binary.BigEndian.Uint64(v); sum == nil || e > epoch {
			epoch, sum = e, v[8:]
		}
	}
	h.anchorObjs, h.anchorEpoch, h.anchorRead = objs, epoch, true
	return epoch, sum, nil
}

// Anchor reads the token's counter anchor.
func (h *PKCS11) Anchor() (uint64, []byte, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	epoch, sum, err := h.anchor()
	return epoch, sum, sum != nil, err
}

// SetAnchor stores a new anchor object, then destroys the older ones
// (as last read or written: the vault reads the anchor again whenever
// another process may have written one, see Vault.reconcile).
func (h *PKCS11) SetAnchor(epoch uint64, sum []byte) error {
	if len(sum) != 32 {
		return fmt.Errorf("a counter anchor sum of %d bytes", len(sum))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.anchorRead {
		if _, _, err := h.anchor(); err != nil {
			return err
		}
	}
	if len(h.anchorObjs) > 0 && epoch <= h.anchorEpoch {
		return fmt.Errorf("counter anchor epoch %d is not above the token's %d", epoch, h.anchorEpoch)
	}
	n, left, err := h.replaceDataObject(anchorLabel, append(binary.BigEndian.AppendUint64(nil, epoch), sum...), h.anchorObjs)
	if err != nil {
		h.anchorRead = false // read again: the create may have landed
		return err
	}
	h.anchorObjs, h.anchorEpoch = append(left, n), epoch
	return nil
}

// Close logs out and unloads the module.
func (h *PKCS11) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ctx.Logout(h.sess)
	for range poolSessions {
		h.ctx.CloseSession(<-h.pool)
	}
	h.ctx.CloseSession(h.sess)
	h.ctx.Finalize()
	h.ctx.Destroy()
	return nil
}
