// Package unlock turns what a person gives to open a repository into a
// repo.Unlocker. It owns the secret sources (Sources: a file, the
// environment, a systemd credential, the terminal, the pipe from the
// command that started a daemon), both unlockers (WithCode, WithVault),
// the public parameters a vault key slot carries (VaultParams) and
// enrolment at a Backup Key Vault (Enrol).
//
// The order in which things are tried:
//
//   - The secret is a vault password when a vault is named (Sources.Vault,
//     --vault), else a recovery code; only its own unlocker runs.
//   - A recovery code comes from Sources.CodeFile, else the systemd
//     credential sealfs-recovery-code, else $SEALFS_RECOVERY_CODE, else a
//     prompt on the terminal. A vault password comes from
//     Sources.PasswordFile, else the credential sealfs-vault-password, else
//     the terminal.
//   - A code is tried on every recovery-code slot, in the order listed. A
//     password is tried on the slots of its vault newest first
//     (VaultSlots): a slot the vault no longer knows is skipped, and the
//     first other failure (a wrong password) ends the search, so that one
//     typo costs one attempt, not one per slot.
//
// Errors are plain: sentinels that say which key failed (ErrWrongCode,
// ErrWrongVaultSecret, ErrNoVaultSlot all match repo.ErrWrongKey) and
// which source was missing; what to do about them is the command's to say.
package unlock

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/repo"
)

// wrongKey is a sentinel that matches repo.ErrWrongKey and says which
// kind of key it was.
type wrongKey struct{ msg string }

func (e *wrongKey) Error() string        { return e.msg }
func (e *wrongKey) Is(target error) bool { return target == repo.ErrWrongKey }

// Errors of unlocking, matched with errors.Is.
var (
	// ErrWrongCode: a well-formed recovery code opens none of the
	// repository's recovery-code slots. It matches repo.ErrWrongKey.
	ErrWrongCode error = &wrongKey{"this recovery code does not belong to this repository"}
	// ErrWrongVaultSecret: the vault released a secret for the password,
	// and it opens none of the vault's slots of this repository. It
	// matches repo.ErrWrongKey.
	ErrWrongVaultSecret error = &wrongKey{"the vault's secret does not open any key slot of this repository"}
	// ErrNoVaultSlot: the repository has no key slot for the vault named.
	// It matches repo.ErrWrongKey.
	ErrNoVaultSlot error = &wrongKey{"the repository has no key slot for the vault"}
	// ErrNoCode: no recovery code was given, and there is no terminal to
	// ask on.
	ErrNoCode = errors.New("no recovery code given")
	// ErrNoPassword: no vault password was given, and there is no
	// terminal to ask on.
	ErrNoPassword = errors.New("no vault password given")
	// ErrCodeFile: the file named to hold the recovery code cannot be read.
	ErrCodeFile = errors.New("failed to read the recovery code file")
	// ErrPasswordFile: the file named to hold a password cannot be read.
	ErrPasswordFile = errors.New("failed to read the password file")
	// ErrShortPassword: a new vault password is shorter than MinPassword.
	ErrShortPassword = errors.New("the new vault password is too short")
	// ErrPasswordsDiffer: a new password typed twice differs.
	ErrPasswordsDiffer = errors.New("the two passwords differ")
)

// Secret is what unlocks a repository: a recovery code, or a password for
// a vault. It never prints itself.
type Secret struct {
	code     crypt.RecoveryCode
	password []byte
	vault    string           // the vault's URL for a password; "" for a code
	client   *keyvault.Client // the vault's client for a password
}

// String hides the secret.
func (Secret) String() string { return "unlock.Secret(redacted)" }

// GoString hides the secret.
func (s Secret) GoString() string { return s.String() }

// Unlocker returns the unlocker the secret is for: WithVault for a vault
// password, WithCode for a recovery code.
func (s Secret) Unlocker() repo.Unlocker {
	if s.vault != "" {
		return WithVault(s.client, s.password)
	}
	return WithCode(s.code)
}

// WriteTo writes the secret, one line, for Sources.FromPipe to read: a
// background daemon gets it through a pipe, never an argument or the
// environment.
func (s Secret) WriteTo(w io.Writer) (int64, error) {
	var b []byte
	if s.vault != "" {
		b = append(append(b, s.password...), '\n')
	} else {
		b = []byte(s.code.Reveal() + "\n")
	}
	defer clear(b)
	n, err := w.Write(b)
	return int64(n), err
}

// WithCode returns an unlocker that tries code on every recovery-code slot.
func WithCode(code crypt.RecoveryCode) repo.Unlocker { return codeUnlocker{code} }

type codeUnlocker struct{ code crypt.RecoveryCode }

// Unlock tries the code on every recovery-code slot; a code that opens
// none is ErrWrongCode.
func (u codeUnlocker) Unlock(_ context.Context, rid crypt.RepoID, slots []repo.SlotInfo) (crypt.MasterKey, crypt.ID, error) {
	n := 0
	for _, s := range slots {
		if s.Slot.Kind != crypt.SlotRecoveryCode {
			continue
		}
		n++
		kek, err := u.code.KEK(s.Slot.Salt)
		if err != nil {
			return crypt.MasterKey{}, crypt.ID{}, err
		}
		if mk, err := s.Slot.Unwrap(rid, s.ID, kek); err == nil {
			return mk, s.ID, nil
		}
	}
	return crypt.MasterKey{}, crypt.ID{}, fmt.Errorf("%w (it opens none of the repository's %d recovery-code slots)", ErrWrongCode, n)
}

// WithVault returns an unlocker that asks the vault behind c for the
// secret of each of that vault's slots with password, newest slot first
// (see the package comment for when it stops).
func WithVault(c *keyvault.Client, password []byte) repo.Unlocker {
	return vaultUnlocker{client: c, password: password}
}

type vaultUnlocker struct {
	client   *keyvault.Client
	password []byte
}

// Unlock asks the vault for the secret of each of its slots and opens the
// slot with it. Errors from the vault (a wrong password, a lockout) are
// returned as they are; ErrNoVaultSlot when the repository has no slot of
// this vault, ErrWrongVaultSecret when the secrets open none.
func (u vaultUnlocker) Unlock(ctx context.Context, rid crypt.RepoID, slots []repo.SlotInfo) (crypt.MasterKey, crypt.ID, error) {
	mine := VaultSlots(slots, u.client.URL)
	if len(mine) == 0 {
		return crypt.MasterKey{}, crypt.ID{}, fmt.Errorf("%w at %s", ErrNoVaultSlot, u.client.URL)
	}
	var gone error
	for _, s := range mine {
		p, _ := ParseVaultParams(s.Slot) // VaultSlots parsed it
		secret, err := u.client.Recover(ctx, p.User, u.password)
		if vaultGone(err) {
			gone = err
			continue
		}
		if err != nil {
			return crypt.MasterKey{}, crypt.ID{}, err
		}
		kek, err := crypt.VaultKEK(secret, s.Slot.Salt)
		clear(secret)
		if err != nil {
			return crypt.MasterKey{}, crypt.ID{}, err
		}
		if mk, err := s.Slot.Unwrap(rid, s.ID, kek); err == nil {
			return mk, s.ID, nil
		}
	}
	if gone != nil {
		return crypt.MasterKey{}, crypt.ID{}, gone
	}
	return crypt.MasterKey{}, crypt.ID{}, ErrWrongVaultSecret
}

// vaultGone reports whether an error from the vault means that a slot is
// dead there (its key destroyed, or its enrolment never finished), so
// that older slots are tried.
func vaultGone(err error) bool {
	return errors.Is(err, keyvault.ErrLockedOut) || errors.Is(err, keyvault.ErrNotEnrolled)
}
