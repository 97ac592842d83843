package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrAuth is returned (wrapped) when a sealed object fails authentication:
// it was changed, truncated, belongs to another object or another repository,
// or was sealed under another key. No byte of its plaintext is released.
var ErrAuth = errors.New("authentication failed")

// ObjectType is the kind of a sealed object. It is bound into the associated
// data of every seal, so an object of one type never opens as another.
type ObjectType uint8

// The object types of format version 1. Their numeric values are part of the
// format (docs/SPEC.md) and never change.
const (
	TypeDataBlob   ObjectType = 1 // a chunk of file content, inside a pack
	TypeTreeBlob   ObjectType = 2 // an encoded directory, inside a pack
	TypePackHeader ObjectType = 3 // the header at the end of a pack
	TypeIndex      ObjectType = 4 // an index object
	TypeSnapshot   ObjectType = 5 // a snapshot object
	TypeLease      ObjectType = 6 // the writer lease object
	TypeKeySlot    ObjectType = 7 // the wrapped master key in a key slot
	TypeForget     ObjectType = 8 // a record of snapshots removed on purpose
	// TypeSegmentedBlob is a chunk of file content sealed as segments
	// (docs/SPEC.md §6.2). It is a type of index and pack-header entries
	// only: its id is still BlobID(TypeDataBlob, chunk), and its parts
	// are sealed with SealSegment, not Seal.
	TypeSegmentedBlob ObjectType = 9
	// TypeHistory is a history segment: the summaries of a run of older
	// snapshots folded out of snapshots/ (docs/SPEC.md §8.3).
	TypeHistory ObjectType = 10
)

// String names the type as the spec does.
func (t ObjectType) String() string {
	switch t {
	case TypeDataBlob:
		return "data blob"
	case TypeTreeBlob:
		return "tree blob"
	case TypePackHeader:
		return "pack header"
	case TypeIndex:
		return "index"
	case TypeSnapshot:
		return "snapshot"
	case TypeLease:
		return "lease"
	case TypeKeySlot:
		return "key slot"
	case TypeForget:
		return "forget record"
	case TypeSegmentedBlob:
		return "segmented data blob"
	case TypeHistory:
		return "history segment"
	}
	return fmt.Sprintf("object type %d", uint8(t))
}

// HKDF labels of format version 1 (docs/SPEC.md, "Key derivation").
const (
	labelBlobKey   = "sealfs v1 blob encryption"
	labelMetaKey   = "sealfs v1 metadata encryption"
	labelIDKey     = "sealfs v1 blob id"
	labelGearKey   = "sealfs v1 chunker gear table"
	labelConfigMAC = "sealfs v1 config mac"
	labelLocalKey  = "sealfs v1 local cache"
	labelLocalFile = "sealfs v1 local file"
	labelSegment   = "sealfs v1 segment encryption"
	adPrefix       = "sealfs v1 object\x00"
	segmentPrefix  = "sealfs v1 segment\x00"
)

// Sizes of the AES-256-GCM framing: a sealed object is nonce || ciphertext || tag.
const (
	NonceSize = 12
	TagSize   = 16
	// Overhead is what sealing adds to a plaintext.
	Overhead = NonceSize + TagSize
)

// Keys holds the subkeys of one repository, derived from its master key.
// It seals and opens objects, computes blob ids and the config MAC.
// A Keys is safe for concurrent use.
type Keys struct {
	repo      RepoID
	blobAEAD  cipher.AEAD
	metaAEAD  cipher.AEAD
	segAEAD   cipher.AEAD
	idKey     [KeySize]byte
	gearKey   [KeySize]byte
	configMAC [KeySize]byte
	localKey  [KeySize]byte
}

// DeriveKeys derives the subkeys of repository repo from its master key with
// HKDF-SHA256 (salt = repository id, info = a label per subkey).
func DeriveKeys(mk MasterKey, repo RepoID) (*Keys, error) {
	k := &Keys{repo: repo}
	derive := func(label string) ([]byte, error) {
		return hkdf.Key(sha256.New, mk.b[:], repo[:], label, KeySize)
	}
	var err error
	if k.blobAEAD, err = newAEAD(derive, labelBlobKey); err != nil {
		return nil, err
	}
	if k.metaAEAD, err = newAEAD(derive, labelMetaKey); err != nil {
		return nil, err
	}
	if k.segAEAD, err = newAEAD(derive, labelSegment); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		dst   *[KeySize]byte
		label string
	}{{&k.idKey, labelIDKey}, {&k.gearKey, labelGearKey}, {&k.configMAC, labelConfigMAC}, {&k.localKey, labelLocalKey}} {
		b, err := derive(s.label)
		if err != nil {
			return nil, fmt.Errorf("failed to derive subkey: %w", err)
		}
		copy(s.dst[:], b)
	}
	return k, nil
}

func newAEAD(derive func(string) ([]byte, error), label string) (cipher.AEAD, error) {
	key, err := derive(label)
	if err != nil {
		return nil, fmt.Errorf("failed to derive subkey: %w", err)
	}
	return newGCM(key)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("failed to make AES cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// Repo returns the repository id these keys belong to.
func (k *Keys) Repo() RepoID { return k.repo }

func (k *Keys) aeadFor(t ObjectType) cipher.AEAD {
	switch t {
	case TypeDataBlob, TypeTreeBlob, TypePackHeader:
		return k.blobAEAD
	}
	return k.metaAEAD
}

// objectAD is the associated data of a sealed object:
// "sealfs v1 object\x00" || type (1 byte) || repository id (16) || object id (32).
func objectAD(t ObjectType, repo RepoID, id ID) []byte {
	ad := make([]byte, 0, len(adPrefix)+1+RepoIDSize+IDSize)
	ad = append(ad, adPrefix...)
	ad = append(ad, byte(t))
	ad = append(ad, repo[:]...)
	return append(ad, id[:]...)
}

// Seal encrypts plaintext as an object of type t named id, appending
// nonce || ciphertext || tag to dst. The nonce is random (crypto/rand).
func (k *Keys) Seal(dst []byte, t ObjectType, id ID, plaintext []byte) ([]byte, error) {
	return sealGCM(dst, k.aeadFor(t), objectAD(t, k.repo, id), plaintext)
}

// Open authenticates and decrypts an object of type t named id. It fails
// with ErrAuth, releasing nothing, if the object was sealed under another
// type, id, repository or key, or was changed in any way.
func (k *Keys) Open(t ObjectType, id ID, sealed []byte) ([]byte, error) {
	return openGCM(k.aeadFor(t), objectAD(t, k.repo, id), sealed)
}

// OpenInPlace is Open decrypting into sealed's own storage: the plaintext
// it returns overlaps sealed, which the caller must not use afterwards (on
// failure its content is undefined, and nothing is released).
func (k *Keys) OpenInPlace(t ObjectType, id ID, sealed []byte) ([]byte, error) {
	return openGCMInPlace(k.aeadFor(t), objectAD(t, k.repo, id), sealed)
}

func sealGCM(dst []byte, aead cipher.AEAD, ad, plaintext []byte) ([]byte, error) {
	var nonce [NonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("failed to read random nonce: %w", err)
	}
	dst = append(dst, nonce[:]...)
	return aead.Seal(dst, nonce[:], plaintext, ad), nil
}

func openGCM(aead cipher.AEAD, ad, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: sealed object is %d bytes, shorter than the %d-byte minimum", ErrAuth, len(sealed), Overhead)
	}
	pt, err := aead.Open(nil, sealed[:NonceSize], sealed[NonceSize:], ad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

func openGCMInPlace(aead cipher.AEAD, ad, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: sealed object is %d bytes, shorter than the %d-byte minimum", ErrAuth, len(sealed), Overhead)
	}
	ct := sealed[NonceSize:]
	pt, err := aead.Open(ct[:0], sealed[:NonceSize], ct, ad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// SegmentTableIndex is the segment index a segmented blob's table is
// sealed under (docs/SPEC.md §6.2); real segments are numbered from 0 and
// never reach it.
const SegmentTableIndex = 0xFFFFFFFF

// segmentAD is the associated data of one part of a segmented blob:
// "sealfs v1 segment\x00" || repository id (16) || blob id (32) ||
// index (u32, big-endian) || last (1 byte: 1 for the blob's last segment).
func segmentAD(repo RepoID, id ID, index uint32, last bool) []byte {
	ad := make([]byte, 0, len(segmentPrefix)+RepoIDSize+IDSize+5)
	ad = append(ad, segmentPrefix...)
	ad = append(ad, repo[:]...)
	ad = append(ad, id[:]...)
	ad = binary.BigEndian.AppendUint32(ad, index)
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

// SealSegment encrypts plaintext as segment index of segmented blob id
// (SegmentTableIndex for its table; last marks the blob's last segment)
// under the segment key, appending nonce || ciphertext || tag to dst. The
// nonce is random (crypto/rand).
func (k *Keys) SealSegment(dst []byte, id ID, index uint32, last bool, plaintext []byte) ([]byte, error) {
	return sealGCM(dst, k.segAEAD, segmentAD(k.repo, id, index, last), plaintext)
}

// OpenSegment authenticates and decrypts segment index of segmented blob
// id. It fails with ErrAuth, releasing nothing, if the segment was sealed
// for another blob, index, position (last or not), repository or key, or
// was changed in any way.
func (k *Keys) OpenSegment(id ID, index uint32, last bool, sealed []byte) ([]byte, error) {
	return openGCM(k.segAEAD, segmentAD(k.repo, id, index, last), sealed)
}

// OpenSegmentInPlace is OpenSegment decrypting into sealed's own storage:
// the plaintext it returns overlaps sealed, which the caller must not use
// afterwards (on failure its content is undefined, and nothing is
// released).
func (k *Keys) OpenSegmentInPlace(id ID, index uint32, last bool, sealed []byte) ([]byte, error) {
	return openGCMInPlace(k.segAEAD, segmentAD(k.repo, id, index, last), sealed)
}

// OpenSegmentAppend is OpenSegment appending the plaintext to dst, as
// cipher.AEAD's Open does: with room enough in dst's capacity, it
// allocates nothing. sealed must not overlap dst's capacity. On failure
// the bytes of dst's capacity after len(dst) are undefined, and nothing
// is released.
func (k *Keys) OpenSegmentAppend(dst []byte, id ID, index uint32, last bool, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: sealed segment is %d bytes, shorter than the %d-byte minimum", ErrAuth, len(sealed), Overhead)
	}
	out, err := k.segAEAD.Open(dst, sealed[:NonceSize], sealed[NonceSize:], segmentAD(k.repo, id, index, last))
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}

// BlobID returns the keyed id of a blob of type t with the given plaintext:
// HMAC-SHA256(id key, type (1 byte) || plaintext). Without the key, the
// storage provider cannot test a guess of a blob's content against its id.
func (k *Keys) BlobID(t ObjectType, plaintext []byte) ID {
	m := hmac.New(sha256.New, k.idKey[:])
	m.Write([]byte{byte(t)})
	m.Write(plaintext)
	var id ID
	m.Sum(id[:0])
	return id
}

// ConfigMAC returns HMAC-SHA256(config key, body) for the repository config.
func (k *Keys) ConfigMAC(body []byte) []byte {
	m := hmac.New(sha256.New, k.configMAC[:])
	m.Write(body)
	return m.Sum(nil)
}

// VerifyConfigMAC reports, in constant time, whether mac authenticates body.
func (k *Keys) VerifyConfigMAC(body, mac []byte) bool {
	return hmac.Equal(k.ConfigMAC(body), mac)
}

// GearTable returns the 256-entry table of the content-defined chunker,
// derived from the master key so that chunk boundaries (and so chunk sizes)
// cannot be predicted from known content by the storage provider.
func (k *Keys) GearTable() *[256]uint64 {
	b, err := hkdf.Expand(sha256.New, k.gearKey[:], "sealfs v1 gear table expand", 256*8)
	if err != nil {
		panic(fmt.Sprintf("hkdf expand of 2048 bytes cannot fail: %v", err))
	}
	var t [256]uint64
	for i := range t {
		t[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	return &t
}
