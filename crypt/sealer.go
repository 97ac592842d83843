package crypt

import (
	"crypto/cipher"
	"fmt"
)

// Sealer is AES-256-GCM under a 32-byte key that comes from outside this
// package (the vault's envelope key, docs/VAULT.md §1.1), framed as every
// sealed object is: nonce (12, random) || ciphertext || tag (16), with the
// caller's associated data bound in. It is safe for concurrent use.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a sealer under key, which must be KeySize bytes of
// secret that already went through a KDF.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("failed to make a sealer: need a %d-byte key, got %d bytes", KeySize, len(key))
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal returns nonce || ciphertext || tag of plaintext with ad as
// associated data; it adds Overhead bytes.
func (s *Sealer) Seal(ad, plaintext []byte) ([]byte, error) {
	return sealGCM(nil, s.aead, ad, plaintext)
}

// Open authenticates and decrypts sealed. It fails with ErrAuth, releasing
// nothing, if sealed was changed, truncated, or sealed under another key
// or other associated data.
func (s *Sealer) Open(ad, sealed []byte) ([]byte, error) {
	return openGCM(s.aead, ad, sealed)
}
