package crypt

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrCodeTypo is returned (wrapped) when a recovery code is malformed or its
// checksum does not match: the user mistyped it. Nothing else was tried.
var ErrCodeTypo = errors.New("the recovery code has a typo")

// Recovery code layout: 32 bytes shown as 64 hexadecimal digits. The first
// 30 bytes (240 bits) are the secret, from crypto/rand; the last 2 bytes are
// the first 2 bytes of SHA-256(checksumLabel || secret).
const (
	codeSecretSize   = 30
	codeChecksumSize = 2
	codeSize         = codeSecretSize + codeChecksumSize
	// CodeDigits is the number of hexadecimal digits in a recovery code.
	CodeDigits    = 2 * codeSize
	checksumLabel = "sealfs v1 recovery code checksum"
	codeKEKLabel  = "sealfs v1 recovery code kek"
)

// RecoveryCode is a 64-digit recovery code: 240 secret bits plus a 16-bit
// checksum. It never prints itself; Reveal shows it on purpose.
type RecoveryCode struct{ b [codeSize]byte }

// NewRecoveryCode makes a fresh recovery code from crypto/rand.
func NewRecoveryCode() (RecoveryCode, error) {
	var c RecoveryCode
	if _, err := rand.Read(c.b[:codeSecretSize]); err != nil {
		return RecoveryCode{}, fmt.Errorf("failed to read random recovery code: %w", err)
	}
	sum := codeChecksum(c.b[:codeSecretSize])
	copy(c.b[codeSecretSize:], sum[:])
	return c, nil
}

func codeChecksum(secret []byte) [codeChecksumSize]byte {
	h := sha256.New()
	h.Write([]byte(checksumLabel))
	h.Write(secret)
	var out [codeChecksumSize]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ParseRecoveryCode parses a recovery code, ignoring case, white space and
// dashes. A code of the wrong length, with a character that is not a
// hexadecimal digit, or with a wrong checksum gives an error wrapping ErrCodeTypo.
func ParseRecoveryCode(s string) (RecoveryCode, error) {
	var digits strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			continue
		case (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F'):
			digits.WriteRune(r)
		default:
			return RecoveryCode{}, fmt.Errorf("%w: %q is not a hexadecimal digit (use only 0-9 and A-F)", ErrCodeTypo, r)
		}
	}
	if digits.Len() != CodeDigits {
		return RecoveryCode{}, fmt.Errorf("%w: it has %d hexadecimal digits, a recovery code has %d", ErrCodeTypo, digits.Len(), CodeDigits)
	}
	var c RecoveryCode
	if _, err := hex.Decode(c.b[:], []byte(strings.ToLower(digits.String()))); err != nil {
		return RecoveryCode{}, fmt.Errorf("%w: %v", ErrCodeTypo, err)
	}
	sum := codeChecksum(c.b[:codeSecretSize])
	if subtle.ConstantTimeCompare(sum[:], c.b[codeSecretSize:]) != 1 {
		return RecoveryCode{}, fmt.Errorf("%w: its checksum does not match", ErrCodeTypo)
	}
	return c, nil
}

// Reveal returns the code as 16 groups of 4 upper-case hexadecimal digits
// separated by spaces. Call it only to show the code to its owner.
func (c RecoveryCode) Reveal() string {
	h := strings.ToUpper(hex.EncodeToString(c.b[:]))
	groups := make([]string, 0, CodeDigits/4)
	for i := 0; i < len(h); i += 4 {
		groups = append(groups, h[i:i+4])
	}
	return strings.Join(groups, " ")
}

// String never reveals the code.
func (c RecoveryCode) String() string { return "crypt.RecoveryCode(redacted)" }

// GoString never reveals the code.
func (c RecoveryCode) GoString() string { return c.String() }

// Equal compares two codes in constant time.
func (c RecoveryCode) Equal(o RecoveryCode) bool {
	return subtle.ConstantTimeCompare(c.b[:], o.b[:]) == 1
}

// KEK derives the key-encryption key of a recovery-code slot with the given
// salt: HKDF-SHA256(ikm = the 240 secret bits, salt, info = codeKEKLabel).
// The code carries 240 bits from crypto/rand, so no password stretching is
// needed (docs/SPEC.md, "Key slots").
func (c RecoveryCode) KEK(salt []byte) (KEK, error) {
	b, err := hkdf.Key(sha256.New, c.b[:codeSecretSize], salt, codeKEKLabel, KeySize)
	if err != nil {
		return KEK{}, fmt.Errorf("failed to derive key-encryption key: %w", err)
	}
	return KEKFromBytes(b)
}
