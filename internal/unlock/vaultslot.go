package unlock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/repo"
)

// VaultParams are the public parameters of a vault key slot, kept as JSON
// in the slot's params field (docs/SPEC.md §4.2):
// {"url":"<vault URL>","user":"u<32 hex digits>"}.
type VaultParams struct {
	URL  string `json:"url"`  // the vault
	User string `json:"user"` // the random user id the vault keeps the secret under
}

// errBadVaultParams: a vault slot's params are not what VaultParams says.
var errBadVaultParams = errors.New("vault key slot has malformed parameters")

// ParseVaultParams reads the parameters of a vault slot. Both fields must
// be there and not empty; other fields are ignored.
func ParseVaultParams(s *crypt.KeySlot) (VaultParams, error) {
	var p VaultParams
	if s.Kind != crypt.SlotVault || json.Unmarshal(s.Params, &p) != nil || p.URL == "" || p.User == "" {
		return VaultParams{}, errBadVaultParams
	}
	return p, nil
}

// VaultSlots returns the slots of the vault at url among slots, newest
// first: the order in which a password is tried. Slots of other kinds,
// of other vaults and with malformed parameters are left out.
func VaultSlots(slots []repo.SlotInfo, url string) []repo.SlotInfo {
	var out []repo.SlotInfo
	for _, s := range slots {
		if p, err := ParseVaultParams(s.Slot); err == nil && p.URL == url {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b repo.SlotInfo) int { return b.Slot.Created.Compare(a.Slot.Created) })
	return out
}

// Enrol protects r's key with password at the vault c talks to: it enrols
// a fresh random user id there, which makes and keeps a new secret, and
// adds a vault slot whose key-encryption key comes from that secret. It
// returns the new slot's id.
func Enrol(ctx context.Context, r *repo.Repository, c *keyvault.Client, password []byte) (crypt.ID, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return crypt.ID{}, err
	}
	p := VaultParams{URL: c.URL, User: "u" + hex.EncodeToString(id[:])}
	secret, err := c.Enrol(ctx, p.User, password)
	if err != nil {
		return crypt.ID{}, fmt.Errorf("failed to enrol with the vault at %s: %w", c.URL, err)
	}
	defer clear(secret)
	return addVaultSlot(ctx, r, p, secret)
}

// addVaultSlot adds a vault slot with parameters p whose key-encryption
// key comes from secret.
func addVaultSlot(ctx context.Context, r *repo.Repository, p VaultParams, secret []byte) (crypt.ID, error) {
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

// ErrNotVaultPassword: Retire was given a secret that is not a password
// for the slot's vault.
var ErrNotVaultPassword = errors.New("retiring a vault key slot needs the password of its vault")

// Retire destroys, at its vault, the enrolment behind the vault slot s,
// proving the password the secret holds (keyvault.Client.Destroy): the
// password then no longer recovers the slot's secret, from this slot or
// any copy of it. An enrolment the vault no longer knows, or destroyed
// after a lockout, is retired already (nil). The secret must be a
// password for the slot's vault (ErrNotVaultPassword).
func (sec Secret) Retire(ctx context.Context, s repo.SlotInfo) error {
	p, err := ParseVaultParams(s.Slot)
	if err != nil {
		return err
	}
	if sec.client == nil || sec.client.URL != p.URL {
		return fmt.Errorf("%w (slot %s, vault %s)", ErrNotVaultPassword, s.ID.Short(), p.URL)
	}
	err = sec.client.Destroy(ctx, p.User, sec.password)
	if vaultGone(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to retire key slot %s at the vault %s: %w", s.ID.Short(), p.URL, err)
	}
	return nil
}
