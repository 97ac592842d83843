package unlock

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/keyvault"
	"github.com/sealfs/sealfs/repo"
)

// FuzzParseVaultParams: a vault slot's params come from the remote.
// Parsing never panics; what it accepts keeps the rules of docs/SPEC.md
// §4.2 and survives writing and reading again; the slot's lookups and
// k-of-n enrolment never panic on it.
func FuzzParseVaultParams(f *testing.F) {
	f.Add([]byte(`{"url":"https://v.example","user":"u0123456789abcdef0123456789abcdef"}`))
	f.Add([]byte(`{"version":2,"threshold":2,"vaults":[{"url":"https://a","user":"u0123456789abcdef0123456789abcdef","share":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},{"url":"https://b","user":"u1123456789abcdef0123456789abcdef","share":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`))
	f.Add([]byte(`{"version":3}`))
	f.Add([]byte(`{"version":2,"threshold":0,"vaults":[]}`))
	f.Fuzz(func(t *testing.T, params []byte) {
		slot := &crypt.KeySlot{Kind: crypt.SlotVault, Params: params}
		p, err := ParseVaultParams(slot)
		if err != nil {
			return
		}
		if !p.Shared() {
			if p.URL == "" || p.User == "" {
				t.Fatalf("accepted %+v", p)
			}
		} else {
			n := len(p.Vaults)
			if n < 1 || n > keyvault.MaxVaults || p.Threshold < 1 || p.Threshold > n {
				t.Fatalf("accepted %d of %d", p.Threshold, n)
			}
			seen := map[string]bool{}
			for _, m := range p.Vaults {
				if seen[m.URL] || !keyvault.ValidUser(m.User) || len(m.Share) != keyvault.SecretSize {
					t.Fatalf("accepted member %+v", m)
				}
				seen[m.URL] = true
			}
			c, err := keyvault.NewClient("http://127.0.0.1:1", keyvault.Trust{})
			if err != nil {
				t.Fatal(err)
			}
			s, _ := p.shared([]*keyvault.Client{c})
			if len(s.Members) != n || len(s.Clients) != n {
				t.Fatalf("shared: %d members, %d clients of %d", len(s.Members), len(s.Clients), n)
			}
		}
		again, _ := json.Marshal(p)
		q, err := ParseVaultParams(&crypt.KeySlot{Kind: crypt.SlotVault, Params: again})
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("%s parsed as %+v, written %s, read again %+v, %v", params, p, again, q, err)
		}
		VaultSlots([]repo.SlotInfo{{Slot: slot}}, p.URLs()...)
	})
}
