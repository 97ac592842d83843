package crypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SlotKind says what unlocks a key slot.
type SlotKind string

// The slot kinds of format version 1.
const (
	// SlotRecoveryCode is unlocked by a 64-digit recovery code.
	SlotRecoveryCode SlotKind = "recovery-code"
	// SlotVault is unlocked by a secret released by a Backup Key Vault.
	SlotVault SlotKind = "vault"
)

// SlotVersion is the version of the key-slot object format.
const SlotVersion = 1

// SaltSize is the size of a key slot's random salt.
const SaltSize = 32

// MaxSlotSize bounds a key-slot object; anything larger is rejected unparsed
// (and not read: see repo, "Limits").
const MaxSlotSize = 64 << 10

// ErrSlotMismatch is returned (wrapped) when a key-encryption key does not
// open a slot: the code or password belongs to another slot or repository.
var ErrSlotMismatch = errors.New("key slot does not open with this key")

// KeySlot is one key slot: the master key wrapped under a key-encryption
// key. Its public fields are readable by the storage provider; they are all
// authenticated as associated data of Wrapped.
type KeySlot struct {
	Version int       `json:"version"`
	Kind    SlotKind  `json:"kind"`
	Created time.Time `json:"created"`
	Salt    []byte    `json:"salt"`
	// Params holds kind-specific public parameters (for a vault slot: the
	// vault URL and user id). It is authenticated like the other fields.
	Params json.RawMessage `json:"params,omitempty"`
	// Wrapped is nonce || AES-256-GCM(KEK, master key) || tag.
	Wrapped []byte `json:"wrapped"`
}

// NewSalt returns a fresh random salt for a key slot.
func NewSalt() ([]byte, error) {
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("failed to read random salt: %w", err)
	}
	return salt, nil
}

// slotAD binds a slot's repository, id and public fields:
// "sealfs v1 key slot\x00" || repo (16) || slot id (32) || u32 len(kind) || kind ||
// i64 created (Unix ns) || u32 len(salt) || salt || u32 len(params) || params.
func slotAD(repo RepoID, id ID, s *KeySlot) []byte {
	var b bytes.Buffer
	b.WriteString("sealfs v1 key slot\x00")
	b.Write(repo[:])
	b.Write(id[:])
	writeLV(&b, []byte(s.Kind))
	_ = binary.Write(&b, binary.BigEndian, s.Created.UnixNano())
	writeLV(&b, s.Salt)
	writeLV(&b, s.Params)
	return b.Bytes()
}

func writeLV(b *bytes.Buffer, v []byte) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(v)))
	b.Write(v)
}

// NewKeySlot wraps mk under kek in a new slot of the given kind for
// repository repo and slot id id. salt must be the salt kek was derived with.
func NewKeySlot(repo RepoID, id ID, kind SlotKind, salt []byte, params json.RawMessage, kek KEK, mk MasterKey) (*KeySlot, error) {
	s := &KeySlot{
		Version: SlotVersion,
		Kind:    kind,
		Created: time.Now().UTC().Truncate(time.Second),
		Salt:    salt,
		Params:  params,
	}
	aead, err := newGCM(kek.b[:])
	if err != nil {
		return nil, err
	}
	s.Wrapped, err = sealGCM(nil, aead, slotAD(repo, id, s), mk.b[:])
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Unwrap opens the slot with kek and returns the master key. It fails with
// ErrSlotMismatch if kek is not this slot's key, or the slot was changed or
// moved from another repository or slot id.
func (s *KeySlot) Unwrap(repo RepoID, id ID, kek KEK) (MasterKey, error) {
	aead, err := newGCM(kek.b[:])
	if err != nil {
		return MasterKey{}, err
	}
	pt, err := openGCM(aead, slotAD(repo, id, s), s.Wrapped)
	if err != nil {
		return MasterKey{}, fmt.Errorf("%w: %v", ErrSlotMismatch, err)
	}
	if len(pt) != KeySize {
		return MasterKey{}, fmt.Errorf("%w: wrapped key is %d bytes", ErrSlotMismatch, len(pt))
	}
	var mk MasterKey
	copy(mk.b[:], pt)
	clear(pt)
	return mk, nil
}

// Marshal encodes the slot as the JSON object stored on the remote.
func (s *KeySlot) Marshal() ([]byte, error) { return json.Marshal(s) }

// ParseKeySlot decodes a key-slot object read from the remote and checks its
// shape. It does not authenticate it: that happens in Unwrap.
func ParseKeySlot(b []byte) (*KeySlot, error) {
	if len(b) > MaxSlotSize {
		return nil, fmt.Errorf("key slot is %d bytes, more than the %d-byte limit", len(b), MaxSlotSize)
	}
	var s KeySlot
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("failed to parse key slot: %w", err)
	}
	if dec.More() {
		return nil, errors.New("failed to parse key slot: trailing data")
	}
	if s.Version != SlotVersion {
		return nil, fmt.Errorf("key slot has version %d; this sealfs reads version %d", s.Version, SlotVersion)
	}
	switch s.Kind {
	case SlotRecoveryCode, SlotVault:
	default:
		return nil, fmt.Errorf("key slot has unknown kind %q", s.Kind)
	}
	if len(s.Salt) != SaltSize {
		return nil, fmt.Errorf("key slot salt is %d bytes, want %d", len(s.Salt), SaltSize)
	}
	if len(s.Wrapped) != Overhead+KeySize {
		return nil, fmt.Errorf("key slot wrapped key is %d bytes, want %d", len(s.Wrapped), Overhead+KeySize)
	}
	return &s, nil
}

// vaultKEKLabel derives a vault slot's key-encryption key.
const vaultKEKLabel = "sealfs v1 vault slot kek"

// VaultKEK derives the key-encryption key of a vault slot from the secret
// the vault releases: HKDF-SHA256(ikm = secret, salt, info = vaultKEKLabel).
func VaultKEK(secret, salt []byte) (KEK, error) {
	if len(secret) < KeySize {
		return KEK{}, fmt.Errorf("vault secret is %d bytes, want at least %d", len(secret), KeySize)
	}
	b, err := hkdf.Key(sha256.New, secret, salt, vaultKEKLabel, KeySize)
	if err != nil {
		return KEK{}, err
	}
	return KEKFromBytes(b)
}
