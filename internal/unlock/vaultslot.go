package unlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/repo"
)

// VaultParams are the public parameters of a vault key slot, kept as JSON
// in the slot's params field (docs/SPEC.md §4.2). A slot of one vault
// (params version 1) is {"url":"<vault URL>","user":"u<32 hex digits>"}.
// A slot of k of n vaults (params version 2) is
// {"version":2,"threshold":k,"vaults":[{"url":...,"user":...,"share":...},...]}.
type VaultParams struct {
	URL  string `json:"url,omitempty"`  // version 1: the vault
	User string `json:"user,omitempty"` // version 1: the random user id the vault keeps the secret under

	Version   int           `json:"version,omitempty"`   // 2 for k of n vaults; absent for one vault
	Threshold int           `json:"threshold,omitempty"` // version 2: k, how many vaults recover the secret
	Vaults    []VaultMember `json:"vaults,omitempty"`    // version 2: the n vaults; a vault's index is its place + 1
}

// VaultMember is one vault of a k-of-n vault slot (keyvault.Member).
type VaultMember struct {
	URL   string `json:"url"`
	User  string `json:"user"`
	Share []byte `json:"share"` // the vault's share of the secret, masked with its OPRF output (32 bytes)
}

// sharedParams is the version of the params of a k-of-n slot.
const sharedParams = 2

// errBadVaultParams: a vault slot's params are not what VaultParams says.
var errBadVaultParams = errors.New("vault key slot has malformed parameters")

// ParseVaultParams reads the parameters of a vault slot. Version 1 needs
// url and user not empty and ignores other fields. Version 2 needs 1 ≤
// threshold ≤ n ≤ keyvault.MaxVaults vaults, each with a URL (no two the
// same, none with a comma), a well-formed user id and a 32-byte share.
// URLs are of printable characters, without spaces (printableURL).
// Other versions are refused as made by a newer sealfs.
func ParseVaultParams(s *crypt.KeySlot) (VaultParams, error) {
	var p VaultParams
	if s.Kind != crypt.SlotVault || json.Unmarshal(s.Params, &p) != nil {
		return VaultParams{}, errBadVaultParams
	}
	switch p.Version {
	case 0:
		if !printableURL(p.URL) || p.User == "" {
			return VaultParams{}, errBadVaultParams
		}
		return VaultParams{URL: p.URL, User: p.User}, nil
	case sharedParams:
	default:
		return VaultParams{}, fmt.Errorf("%w: version %d, made by a newer sealfs", errBadVaultParams, p.Version)
	}
	n := len(p.Vaults)
	if p.URL != "" || p.User != "" || n == 0 || n > keyvault.MaxVaults || p.Threshold < 1 || p.Threshold > n {
		return VaultParams{}, fmt.Errorf("%w: %d of %d vaults", errBadVaultParams, p.Threshold, n)
	}
	for i, m := range p.Vaults {
		if !printableURL(m.URL) || strings.Contains(m.URL, ",") || !keyvault.ValidUser(m.User) || len(m.Share) != keyvault.SecretSize {
			return VaultParams{}, fmt.Errorf("%w: vault %d", errBadVaultParams, i+1)
		}
		for _, o := range p.Vaults[:i] {
			if o.URL == m.URL {
				return VaultParams{}, fmt.Errorf("%w: the vault %s is named twice", errBadVaultParams, m.URL)
			}
		}
	}
	return p, nil
}

// printableURL reports whether a slot's vault URL is not empty, valid
// UTF-8 and only printable characters without spaces: it comes from the
// remote and is printed in messages, where a control character (a
// terminal escape) or an invisible format character (a right-to-left
// override) could change what the user reads.
func printableURL(u string) bool {
	if u == "" || !utf8.ValidString(u) {
		return false
	}
	for _, r := range u {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// Shared reports whether the slot is of k of n vaults (version 2).
func (p VaultParams) Shared() bool { return p.Version == sharedParams }

// URLs returns the vaults of the slot, in order.
func (p VaultParams) URLs() []string {
	if !p.Shared() {
		return []string{p.URL}
	}
	urls := make([]string, len(p.Vaults))
	for i, m := range p.Vaults {
		urls[i] = m.URL
	}
	return urls
}

// shared returns the k-of-n enrolment of the slot, with a client for each
// of its vaults that clients name (by URL): a vault not named is not
// asked, so that a slot's keeper cannot send the password's evaluations
// elsewhere. usable is false when fewer than k are named.
func (p VaultParams) shared(clients []*keyvault.Client) (s keyvault.Shared, usable bool) {
	s.K = p.Threshold
	named := 0
	for _, m := range p.Vaults {
		s.Members = append(s.Members, keyvault.Member{URL: m.URL, User: m.User, Masked: m.Share})
		var c *keyvault.Client
		if i := slices.IndexFunc(clients, func(c *keyvault.Client) bool { return c.URL == m.URL }); i >= 0 {
			c = clients[i]
			named++
		}
		s.Clients = append(s.Clients, c)
	}
	return s, named >= s.K
}

// VaultSlots returns the slots that the vaults at urls can open among
// slots, newest first: the order in which a password is tried. A slot of
// one vault is listed when urls is that vault alone; a slot of k of n
// vaults, when urls holds at least k of them. Slots of other kinds and
// with malformed parameters are left out.
//
// A slot of one vault is never tried with several vaults named: its
// unlock tag derives from that vault's evaluation alone, so a slot of one
// of them (planted by the storage provider, with that vault's user id of
// a k-of-n enrolment) would send the vault what its operator needs to
// test the password offline, the very attack k of n vaults stop.
func VaultSlots(slots []repo.SlotInfo, urls ...string) []repo.SlotInfo {
	var out []repo.SlotInfo
	for _, s := range slots {
		p, err := ParseVaultParams(s.Slot)
		if err != nil {
			continue
		}
		if !p.Shared() {
			if len(urls) == 1 && urls[0] == p.URL {
				out = append(out, s)
			}
			continue
		}
		named := 0
		for _, u := range p.URLs() {
			if slices.Contains(urls, u) {
				named++
			}
		}
		if named >= p.Threshold {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b repo.SlotInfo) int { return b.Slot.Created.Compare(a.Slot.Created) })
	return out
}

// Enrol protects r's key with password at the vaults clients talk to, any
// k of which recover it: it enrols a fresh random user id at each, which
// keeps its part of a new secret, and adds a vault slot whose
// key-encryption key comes from that secret. One vault (k = 1) makes a
// slot of params version 1, which every sealfs reads; several make one of
// version 2 (keyvault.EnrolShared). It returns the new slot's id.
func Enrol(ctx context.Context, r *repo.Repository, clients []*keyvault.Client, k int, password []byte) (crypt.ID, error) {
	if len(clients) == 1 && k == 1 {
		c := clients[0]
		user, err := keyvault.NewUser()
		if err != nil {
			return crypt.ID{}, err
		}
		p := VaultParams{URL: c.URL, User: user}
		secret, err := c.Enrol(ctx, p.User, password)
		if err != nil {
			return crypt.ID{}, fmt.Errorf("failed to enrol with the vault at %s: %w", c.URL, err)
		}
		defer clear(secret)
		return addVaultSlot(ctx, r, p, secret)
	}
	secret, members, err := keyvault.EnrolShared(ctx, clients, k, password)
	if err != nil {
		return crypt.ID{}, err
	}
	defer clear(secret)
	p := VaultParams{Version: sharedParams, Threshold: k}
	for _, m := range members {
		p.Vaults = append(p.Vaults, VaultMember{URL: m.URL, User: m.User, Share: m.Masked})
	}
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

// opens returns a check of a vault secret: whether it opens slot s of
// repository rid.
func opens(rid crypt.RepoID, s repo.SlotInfo) func([]byte) bool {
	return func(secret []byte) bool {
		kek, err := crypt.VaultKEK(secret, s.Slot.Salt)
		if err != nil {
			return false
		}
		_, err = s.Slot.Unwrap(rid, s.ID, kek)
		return err == nil
	}
}

// ErrNotVaultPassword: Retire was given a secret that is not a password
// for the slot's vaults.
var ErrNotVaultPassword = errors.New("retiring a vault key slot needs the password of its vaults")

// Retire destroys, at its vaults, the enrolment behind the vault slot s of
// repository rid, proving the password the secret holds
// (keyvault.Client.Destroy, keyvault.Shared.Destroy): the password then no
// longer recovers the slot's secret, from this slot or any copy of it. An
// enrolment the vault no longer knows, or destroyed after a lockout, is
// retired already (nil); a k-of-n enrolment is retired once fewer than k
// vaults may still hold their part. The secret must be a password for the
// slot's vaults, k of them named (ErrNotVaultPassword).
func (sec Secret) Retire(ctx context.Context, rid crypt.RepoID, s repo.SlotInfo) error {
	p, err := ParseVaultParams(s.Slot)
	if err != nil {
		return err
	}
	if len(VaultSlots([]repo.SlotInfo{s}, sec.urls()...)) == 0 {
		return fmt.Errorf("%w (slot %s, vaults %s)", ErrNotVaultPassword, s.ID.Short(), strings.Join(p.URLs(), ","))
	}
	if p.Shared() {
		shared, _ := p.shared(sec.clients)
		err = shared.Destroy(ctx, sec.password, opens(rid, s))
	} else {
		c := sec.clients[slices.IndexFunc(sec.clients, func(c *keyvault.Client) bool { return c.URL == p.URL })]
		err = c.Destroy(ctx, p.User, sec.password)
	}
	if vaultGone(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to retire key slot %s at the vaults %s: %w", s.ID.Short(), strings.Join(p.URLs(), ","), err)
	}
	return nil
}
