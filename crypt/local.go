package crypt

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// LocalKey seals what a mount keeps in its local cache directory (the
// staging area and the journal), so that the directory holds nothing
// readable without the master key. It is a subkey of the master key
// (docs/SPEC.md §3, §12); it never leaves memory and never prints itself.
type LocalKey struct{ b [KeySize]byte }

// LocalKey returns the local cache key of the repository.
func (k *Keys) LocalKey() LocalKey { return LocalKey{b: k.localKey} }

// String never reveals the key.
func (k LocalKey) String() string { return "crypt.LocalKey(redacted)" }

// GoString never reveals the key.
func (k LocalKey) GoString() string { return k.String() }

// IsZero reports whether the key is the zero value (no key was given).
func (k LocalKey) IsZero() bool { return k.b == [KeySize]byte{} }

// LocalFile returns the sealer of one local file named name (its name in
// the cache directory, such as "staging/<id>"). Its key is
//
//	HKDF-Expand(PRK = local key, info = "sealfs v1 local file" || 0x00 || name, L = 32)
//
// so every file has its own key: a block of one file never opens in
// another, and the random-nonce budget of AES-GCM counts per file.
func (k LocalKey) LocalFile(name string) (*LocalFile, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("failed to derive a local file key: no local cache key")
	}
	key, err := hkdf.Expand(sha256.New, k.b[:], labelLocalFile+"\x00"+name, KeySize)
	if err != nil {
		return nil, fmt.Errorf("failed to derive a local file key: %w", err)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &LocalFile{aead: aead}, nil
}

// LocalFile seals and opens the pieces (blocks, records) of one local file
// with AES-256-GCM under the file's own key. It is safe for concurrent use.
type LocalFile struct{ aead cipher.AEAD }

// Seal appends nonce || ciphertext || tag of plaintext to dst, with a
// random nonce and ad as associated data. Seal adds Overhead bytes.
func (f *LocalFile) Seal(dst, ad, plaintext []byte) ([]byte, error) {
	return sealGCM(dst, f.aead, ad, plaintext)
}

// Open authenticates and decrypts sealed, appending the plaintext to dst.
// It fails with ErrAuth, releasing nothing, if sealed was changed, sealed
// under other associated data, or belongs to another file.
func (f *LocalFile) Open(dst, ad, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: sealed piece is %d bytes, shorter than the %d-byte minimum", ErrAuth, len(sealed), Overhead)
	}
	pt, err := f.aead.Open(dst, sealed[:NonceSize], sealed[NonceSize:], ad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}
