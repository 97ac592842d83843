package crypt

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// KeySize is the size in bytes of every symmetric key in sealfs.
const KeySize = 32

// MasterKey is a repository's random 256-bit master key. It never prints
// itself and compares in constant time. The zero value is not a valid key.
type MasterKey struct{ b [KeySize]byte }

// NewMasterKey returns a fresh master key from crypto/rand.
func NewMasterKey() (MasterKey, error) {
	var k MasterKey
	if _, err := rand.Read(k.b[:]); err != nil {
		return MasterKey{}, fmt.Errorf("failed to read random master key: %w", err)
	}
	return k, nil
}

// MasterKeyFromBytes returns the master key whose bytes are b (KeySize of
// them). It is for test vectors, which spell out a fixed key: a
// repository's key comes from NewMasterKey, or unwrapped from a key slot.
func MasterKeyFromBytes(b []byte) (MasterKey, error) {
	var k MasterKey
	if len(b) != KeySize {
		return k, fmt.Errorf("a master key is %d bytes, not %d", KeySize, len(b))
	}
	copy(k.b[:], b)
	return k, nil
}

// String never reveals the key.
func (k MasterKey) String() string { return "crypt.MasterKey(redacted)" }

// GoString never reveals the key.
func (k MasterKey) GoString() string { return k.String() }

// Equal reports whether two keys are the same, in constant time.
func (k MasterKey) Equal(o MasterKey) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// IsZero reports whether the key is the zero value.
func (k MasterKey) IsZero() bool { return k.Equal(MasterKey{}) }

// KEK is a key-encryption key: it wraps a master key in a key slot.
type KEK struct{ b [KeySize]byte }

// String never reveals the key.
func (k KEK) String() string { return "crypt.KEK(redacted)" }

// GoString never reveals the key.
func (k KEK) GoString() string { return k.String() }

// KEKFromBytes makes a KEK from 32 bytes of high-entropy secret, such as a
// vault-released secret that already went through a KDF.
func KEKFromBytes(b []byte) (KEK, error) {
	var k KEK
	if len(b) != KeySize {
		return KEK{}, fmt.Errorf("failed to make key-encryption key: need %d bytes, got %d", KeySize, len(b))
	}
	copy(k.b[:], b)
	return k, nil
}

// RepoIDSize is the size in bytes of a repository id.
const RepoIDSize = 16

// RepoID identifies a repository. It is public: it names the local cache
// directory and is bound into every sealed object.
type RepoID [RepoIDSize]byte

// NewRepoID returns a random repository id.
func NewRepoID() (RepoID, error) {
	var id RepoID
	if _, err := rand.Read(id[:]); err != nil {
		return RepoID{}, fmt.Errorf("failed to read random repository id: %w", err)
	}
	return id, nil
}

// String returns the id in lower-case hex.
func (id RepoID) String() string { return hex.EncodeToString(id[:]) }

// ParseRepoID parses a repository id in hex.
func ParseRepoID(s string) (RepoID, error) {
	var id RepoID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != RepoIDSize {
		return RepoID{}, fmt.Errorf("invalid repository id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// IDSize is the size in bytes of an object or blob id.
const IDSize = 32

// ID names an object on the remote or a blob inside a pack. Blob ids are
// keyed hashes of the content (see Keys.BlobID); object ids are random.
type ID [IDSize]byte

// NewRandomID returns a random id from crypto/rand.
func NewRandomID() (ID, error) {
	var id ID
	if _, err := rand.Read(id[:]); err != nil {
		return ID{}, fmt.Errorf("failed to read random id: %w", err)
	}
	return id, nil
}

// String returns the id in lower-case hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, for messages.
func (id ID) Short() string { return id.String()[:8] }

// IsZero reports whether the id is all zero bytes.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses an id in hex.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != IDSize {
		return ID{}, fmt.Errorf("invalid object id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// MarshalText encodes the id in hex, for JSON.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes an id from hex.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
