package keyvault

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/sealfs/sealfs/keyvault/shamir"
)

// k-of-n enrolments (docs/VAULT.md §5): one independent OPRF per vault,
// and the secret split with Shamir's scheme; each vault's share is kept
// in public, masked with that vault's OPRF output and not authenticated,
// so that no single vault's answer confirms a guess.

// MaxVaults is the most vaults a k-of-n enrolment names.
const MaxVaults = 10

// Labels of the k-of-n derivations (protocol 1.2).
const (
	shareMaskLabel  = "sealfs vault v1.2 share mask"
	releaseTagLabel = "sealfs vault v1.2 release tag"
)

// SharedAttempts returns the guess limit L that each vault of a k-of-n
// enrolment keeps: ⌊MaxAttempts / (n−k+1)⌋. Testing one guess takes an
// evaluation at k vaults, so with every vault honest a guesser tests at
// most ⌊n·L/k⌋ guesses, and with k−1 vaults' HSMs in hand, which answer
// without counting, (n−k+1)·L ≤ MaxAttempts: never more than a single
// vault allows (docs/VAULT.md §5 has the table). It is 0 for k and n
// out of 1 ≤ k ≤ n ≤ MaxVaults.
func SharedAttempts(k, n int) int {
	if k < 1 || k > n || n > MaxVaults {
		return 0
	}
	return MaxAttempts / (n - k + 1)
}

// ShareMask returns the mask of the share of vault index (1 to n) for
// user: HKDF-Expand(prk, label || 0x00 || index || user, 32) over this
// evaluation's PRK (docs/VAULT.md §5).
func (k *Keys) ShareMask(index int, user string) ([32]byte, error) {
	var m [32]byte
	if index < 1 || index > shamir.MaxShares || len(k.prk) == 0 {
		return m, fmt.Errorf("no share mask for vault index %d", index)
	}
	v, err := hkdf.Expand(sha256.New, k.prk, shareMaskLabel+"\x00"+string([]byte{byte(index)})+user, 32)
	if err != nil {
		return m, err
	}
	copy(m[:], v)
	return m, nil
}

// ReleaseTag returns the tag that proves the password to vault index of
// a k-of-n enrolment for user: HKDF-SHA256(ikm = secret, salt = label,
// info = index || user). It depends on the whole secret, so that no
// vault's answer alone gives it.
func ReleaseTag(secret []byte, index int, user string) ([32]byte, error) {
	var t [32]byte
	v, err := hkdf.Key(sha256.New, secret, []byte(releaseTagLabel), string([]byte{byte(index)})+user, 32)
	if err != nil {
		return t, err
	}
	copy(t[:], v)
	return t, nil
}

// NewUser returns a fresh random user id: "u" and 32 hex digits.
func NewUser() (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	return "u" + hex.EncodeToString(id[:]), nil
}

// Member is one vault of a k-of-n enrolment, as the key slot keeps it in
// public: its vault, its user id there, and its share of the secret
// masked with its OPRF output (Masked = share XOR ShareMask). Its index,
// the share's x, is its place in the list plus one.
type Member struct {
	URL    string
	User   string
	Masked []byte // SecretSize bytes
}

// answer is one vault's evaluation in a k-of-n recovery.
type answer struct {
	keys *Keys
	left int
	err  error
}

// each runs f for every i of n, at most 4 at once (each stretches a
// password: 64 MiB), and waits for all.
func each(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// EnrolShared makes a new random secret and protects it with password at
// the vaults of clients, any k of which give it back (1 ≤ k ≤ n ≤
// MaxVaults): it enrols a fresh user id at each, with the guess limit
// SharedAttempts(k, n), splits the secret and returns it with the
// members to keep in public. A failure at any vault fails it all: the
// enrolments started expire at their vaults, and the finished ones hold
// only the tag of a secret no one keeps.
func EnrolShared(ctx context.Context, clients []*Client, k int, password []byte) ([]byte, []Member, error) {
	n := len(clients)
	limit := SharedAttempts(k, n)
	if limit == 0 {
		return nil, nil, fmt.Errorf("a password can be kept by 1 to %d vaults, any k of them (1 ≤ k ≤ n) recovering it; not %d of %d", MaxVaults, k, n)
	}
	members := make([]Member, n)
	keys := make([]*Keys, n)
	errs := make([]error, n)
	for i, c := range clients {
		u, err := NewUser()
		if err != nil {
			return nil, nil, err
		}
		members[i] = Member{URL: c.URL, User: u}
	}
	each(n, func(i int) { keys[i], errs[i] = clients[i].EnrolStart(ctx, members[i].User, password, limit) })
	if err := firstError(clients, errs, "enrol at"); err != nil {
		return nil, nil, err
	}
	secret := make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	shares, err := shamir.Split(secret, k, n)
	if err != nil {
		return nil, nil, err
	}
	for i := range members {
		mask, err := keys[i].ShareMask(i+1, members[i].User)
		if err != nil {
			return nil, nil, err
		}
		members[i].Masked = xor(shares[i].Y, mask[:])
		clear(shares[i].Y)
	}
	each(n, func(i int) {
		tag, err := ReleaseTag(secret, i+1, members[i].User)
		if err != nil {
			errs[i] = err
			return
		}
		// The envelope holds nothing: the secret comes from the shares.
		env := make([]byte, SecretSize)
		if _, err := rand.Read(env); err != nil {
			errs[i] = err
			return
		}
		errs[i] = clients[i].EnrolFinish(ctx, members[i].User, tag[:], env)
	})
	if err := firstError(clients, errs, "enrol at"); err != nil {
		clear(secret)
		return nil, nil, err
	}
	return secret, members, nil
}

func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// firstError returns the first of errs, saying which vault it came from.
func firstError(clients []*Client, errs []error, what string) error {
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("failed to %s the vault %s: %w", what, clients[i].URL, err)
		}
	}
	return nil
}

// ErrTooFewVaults: fewer vaults of a k-of-n enrolment answered than it
// needs; the error says why each of the others did not.
var ErrTooFewVaults = errors.New("too few of the vaults answered")

// Shared is a k-of-n enrolment seen from a client: its members and
// threshold, and a client for each member the user named (nil for the
// others, which are not asked).
type Shared struct {
	K       int
	Members []Member
	Clients []*Client // Clients[i] for Members[i], or nil
}

// evaluate asks every member with a client to evaluate password: each
// counts it as a guess. It returns the answers, and which of them
// answered.
func (s Shared) evaluate(ctx context.Context, password []byte) ([]answer, []int) {
	ans := make([]answer, len(s.Members))
	each(len(s.Members), func(i int) {
		if c := s.Clients[i]; c == nil {
			ans[i].err = errNotNamed
		} else {
			ans[i].keys, ans[i].left, ans[i].err = c.Evaluate(ctx, s.Members[i].User, password)
		}
	})
	var ok []int
	for i, a := range ans {
		if a.err == nil {
			ok = append(ok, i)
		}
	}
	return ans, ok
}

var errNotNamed = errors.New("not among the vaults named")

// open finds the secret in the answers ok: it combines the unmasked
// shares of every k of them until check accepts one (a share a vault or
// the slot's keeper spoiled is so left out), and returns it. Without one,
// it is a *WrongPasswordError with the fewest attempts any answering
// vault has left, or, when fewer than k answered, ErrTooFewVaults, or
// ErrLockedOut when too many vaults are gone for k ever to answer.
func (s Shared) open(ans []answer, ok []int, check func([]byte) bool) ([]byte, error) {
	if len(ok) < s.K {
		return nil, s.tooFew(ans, len(ok))
	}
	shares := make([]shamir.Share, len(s.Members))
	for _, i := range ok {
		m := s.Members[i]
		mask, err := ans[i].keys.ShareMask(i+1, m.User)
		if err != nil {
			return nil, err
		}
		if len(m.Masked) != SecretSize {
			continue
		}
		shares[i] = shamir.Share{X: byte(i + 1), Y: xor(m.Masked, mask[:])}
	}
	var found []byte
	pick := make([]shamir.Share, 0, s.K)
	var try func(from int) bool
	try = func(from int) bool {
		if len(pick) == s.K {
			secret, err := shamir.Combine(pick)
			if err == nil && check(secret) {
				found = secret
				return true
			}
			clear(secret)
			return false
		}
		for j := from; j < len(ok); j++ {
			if shares[ok[j]].Y == nil {
				continue
			}
			pick = append(pick, shares[ok[j]])
			if try(j + 1) {
				return true
			}
			pick = pick[:len(pick)-1]
		}
		return false
	}
	try(0)
	for _, sh := range shares {
		clear(sh.Y)
	}
	if found != nil {
		return found, nil
	}
	left := MaxAttempts
	for _, i := range ok {
		left = min(left, ans[i].left)
	}
	return nil, &WrongPasswordError{AttemptsLeft: left}
}

// tooFew says why fewer than k of the vaults answered.
func (s Shared) tooFew(ans []answer, answered int) error {
	gone := 0
	var why []string
	for i, a := range ans {
		if a.err == nil {
			continue
		}
		if errors.Is(a.err, ErrLockedOut) || errors.Is(a.err, ErrNotEnrolled) {
			gone++
		}
		why = append(why, fmt.Sprintf("%s: %v", s.Members[i].URL, a.err))
	}
	if len(s.Members)-gone < s.K {
		return fmt.Errorf("%w: %d of the %d vaults destroyed or do not know their part, and %d of them are needed (%s)", ErrLockedOut, gone, len(s.Members), s.K, strings.Join(why, "; "))
	}
	return fmt.Errorf("%w: %d of the %d needed (%s)", ErrTooFewVaults, answered, s.K, strings.Join(why, "; "))
}

// Recover gets the secret back with password from any k of the members'
// vaults: every member with a client evaluates (each counts a guess),
// and check tells the secret (the key slot opens with it). Then each
// vault that evaluated is given its release tag, which resets its count:
// failures there do not fail the recovery and are returned as warnings
// (that vault's count stays until a later recovery resets it). A wrong
// password is a *WrongPasswordError; with fewer than k answers,
// ErrTooFewVaults, or ErrLockedOut when k can no longer answer.
func (s Shared) Recover(ctx context.Context, password []byte, check func([]byte) bool) ([]byte, []error, error) {
	ans, ok := s.evaluate(ctx, password)
	secret, err := s.open(ans, ok, check)
	if err != nil {
		return nil, nil, err
	}
	errs := make([]error, len(ok))
	each(len(ok), func(j int) {
		i := ok[j]
		tag, err := ReleaseTag(secret, i+1, s.Members[i].User)
		if err == nil {
			_, err = s.Clients[i].Release(ctx, s.Members[i].User, tag[:])
		}
		if err != nil {
			errs[j] = fmt.Errorf("the vault %s evaluated but did not reset its count: %w", s.Members[i].URL, err)
		}
	})
	var warnings []error
	for _, err := range errs {
		if err != nil {
			warnings = append(warnings, err)
		}
	}
	return secret, warnings, nil
}

// Destroy retires the enrolment at its vaults with password, as Recover
// finds the secret, then proves it to each vault that evaluated with a
// destroy. It succeeds when fewer than k vaults may still hold their
// part (the password then recovers the secret from no copy of the
// members); otherwise the error names the vaults that still do.
func (s Shared) Destroy(ctx context.Context, password []byte, check func([]byte) bool) error {
	ans, ok := s.evaluate(ctx, password)
	secret, err := s.open(ans, ok, check)
	if err != nil {
		return err
	}
	defer clear(secret)
	errs := make([]error, len(s.Members))
	for i, a := range ans {
		errs[i] = a.err
	}
	each(len(ok), func(j int) {
		i := ok[j]
		tag, err := ReleaseTag(secret, i+1, s.Members[i].User)
		if err == nil {
			err = s.Clients[i].DestroyWithTag(ctx, s.Members[i].User, tag[:])
		}
		errs[i] = err
	})
	var kept []string
	for i, err := range errs {
		if err != nil && !errors.Is(err, ErrLockedOut) && !errors.Is(err, ErrNotEnrolled) {
			kept = append(kept, fmt.Sprintf("%s: %v", s.Members[i].URL, err))
		}
	}
	if len(kept) >= s.K {
		return fmt.Errorf("%d vaults still hold their part of the old password's secret, and %d recover it: %s", len(kept), s.K, strings.Join(kept, "; "))
	}
	return nil
}
