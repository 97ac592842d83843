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
	"slices"
	"strings"

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
	vault    string             // the vaults' URLs for a password, as given (comma-separated); "" for a code
	clients  []*keyvault.Client // a client for each vault, for a password
	warn     io.Writer          // where unlocking warns (a vault that did not reset its count); nil: nowhere
}

// urls returns the URLs of the vaults a password is for.
func (s Secret) urls() []string {
	urls := make([]string, len(s.clients))
	for i, c := range s.clients {
		urls[i] = c.URL
	}
	return urls
}

// String hides the secret.
func (Secret) String() string { return "unlock.Secret(redacted)" }

// GoString hides the secret.
func (s Secret) GoString() string { return s.String() }

// Unlocker returns the unlocker the secret is for: WithVault for a vault
// password, WithCode for a recovery code.
func (s Secret) Unlocker() repo.Unlocker {
	if s.vault != "" {
		return vaultUnlocker{clients: s.clients, password: s.password, warn: s.warn}
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

// WithVault returns an unlocker that asks the vaults behind clients for
// the secret of each vault slot they can open (VaultSlots) with password,
// newest slot first (see the package comment for when it stops). A slot
// of k of n vaults asks only the vaults among clients.
func WithVault(password []byte, clients ...*keyvault.Client) repo.Unlocker {
	return vaultUnlocker{clients: clients, password: password}
}

type vaultUnlocker struct {
	clients  []*keyvault.Client
	password []byte
	warn     io.Writer
}

// Unlock asks the vaults for the secret of each slot they can open and
// opens the slot with it. Errors from the vaults (a wrong password, a
// lockout, too few vaults answering) are returned as they are;
// ErrNoVaultSlot when the repository has no slot of these vaults,
// ErrWrongVaultSecret when the secrets open none.
func (u vaultUnlocker) Unlock(ctx context.Context, rid crypt.RepoID, slots []repo.SlotInfo) (crypt.MasterKey, crypt.ID, error) {
	urls := Secret{clients: u.clients}.urls()
	mine := VaultSlots(slots, urls...)
	if len(mine) == 0 {
		return crypt.MasterKey{}, crypt.ID{}, fmt.Errorf("%w at %s", ErrNoVaultSlot, strings.Join(urls, ","))
	}
	var gone error
	for _, s := range mine {
		p, _ := ParseVaultParams(s.Slot) // VaultSlots parsed it
		secret, err := u.secret(ctx, rid, s, p)
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

// secret asks the slot's vaults for its secret: the one vault of a slot
// of params version 1, or k of the vaults of a k-of-n slot, whose
// secret is then the one that opens it (or a wrong password).
func (u vaultUnlocker) secret(ctx context.Context, rid crypt.RepoID, s repo.SlotInfo, p VaultParams) ([]byte, error) {
	if !p.Shared() {
		c := u.clients[slices.IndexFunc(u.clients, func(c *keyvault.Client) bool { return c.URL == p.URL })]
		return c.Recover(ctx, p.User, u.password)
	}
	shared, _ := p.shared(u.clients)
	secret, warnings, err := shared.Recover(ctx, u.password, opens(rid, s))
	for _, w := range warnings {
		if u.warn != nil {
			fmt.Fprintf(u.warn, "sealfs: warning: %v\n", w)
		}
	}
	return secret, err
}

// vaultGone reports whether an error from the vault means that a slot is
// dead there (its key destroyed, or its enrolment never finished), so
// that older slots are tried.
func vaultGone(err error) bool {
	return errors.Is(err, keyvault.ErrLockedOut) || errors.Is(err, keyvault.ErrNotEnrolled)
}
