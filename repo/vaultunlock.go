package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/sealfs/sealfs/crypt"
)

// VaultParams are the public parameters of a vault key slot.
type VaultParams struct {
	URL  string `json:"url"`  // the vault
	User string `json:"user"` // the random user id the secret is kept under
}

// ParseVaultParams reads a vault slot's parameters.
func ParseVaultParams(s *crypt.KeySlot) (*VaultParams, error) {
	var p VaultParams
	if err := json.Unmarshal(s.Params, &p); err != nil || p.URL == "" || p.User == "" {
		return nil, errors.New("vault key slot has malformed parameters")
	}
	return &p, nil
}

// VaultRecoverer gets a vault secret back with a password (keyvault.Client
// does, over the network).
type VaultRecoverer func(ctx context.Context, url, user string) ([]byte, error)

// VaultUnlocker unlocks a vault slot of the repository.
type VaultUnlocker struct {
	URL     string // only slots of this vault; empty: any vault slot
	Recover VaultRecoverer
	// Gone reports whether an error from Recover means the slot is dead
	// at the vault (locked out, unknown), so that older slots are tried.
	Gone func(error) bool
}

// Unlock asks the vault of each matching slot for its secret and opens the
// slot with it. Errors from the vault (a wrong password, a lockout) are
// returned as they are.
//
// Slots are tried newest first. A slot the vault no longer knows (its key
// was destroyed, or it was never finished) is skipped; the first other
// failure, such as a wrong password, ends the search, so that one typo
// does not cost an attempt at every slot.
func (u VaultUnlocker) Unlock(ctx context.Context, repo crypt.RepoID, slots []SlotInfo) (crypt.MasterKey, crypt.ID, error) {
	slots = append([]SlotInfo(nil), slots...)
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].Slot.Created.After(slots[j].Slot.Created) })
	tried := 0
	var gone error
	for _, s := range slots {
		if s.Slot.Kind != crypt.SlotVault {
			continue
		}
		p, err := ParseVaultParams(s.Slot)
		if err != nil || (u.URL != "" && p.URL != u.URL) {
			continue
		}
		tried++
		secret, err := u.Recover(ctx, p.URL, p.User)
		if u.Gone != nil && u.Gone(err) {
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
		if mk, err := s.Slot.Unwrap(repo, s.ID, kek); err == nil {
			return mk, s.ID, nil
		}
	}
	if gone != nil {
		return crypt.MasterKey{}, crypt.ID{}, gone
	}
	if tried == 0 {
		return crypt.MasterKey{}, crypt.ID{}, fmt.Errorf("%w: the repository has no key slot for vault %s (add one with: sealfs key add-vault)", ErrWrongKey, u.URL)
	}
	return crypt.MasterKey{}, crypt.ID{}, fmt.Errorf("%w: the vault's secret opens no key slot", ErrWrongKey)
}

// AddVaultSlot adds a slot whose key-encryption key comes from a secret
// kept by a vault.
func (r *Repository) AddVaultSlot(ctx context.Context, p VaultParams, secret []byte) (crypt.ID, error) {
	salt, err := crypt.NewSalt()
	if err != nil {
		return crypt.ID{}, err
	}
	kek, err := crypt.VaultKEK(secret, salt)
	if err != nil {
		return crypt.ID{}, err
	}
	params, err := json.Marshal(p)
	if err != nil {
		return crypt.ID{}, err
	}
	return r.AddSlot(ctx, crypt.SlotVault, salt, params, kek)
}
