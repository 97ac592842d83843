package testutil

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

// VectorKeys returns the keys of the fixed master key and repository of
// the crypt test vectors (testdata/vectors/crypt.json at path), found
// again the way a client finds them: its "slot-valid" key slot opened with
// the recovery code the vector gives. Golden files of local formats are
// sealed under these keys.
func VectorKeys(t testing.TB, path string) *crypt.Keys {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct {
		Name, Repository, ID, Input, Extra string
	}
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Name != "slot-valid" {
			continue
		}
		code, err := crypt.ParseRecoveryCode(v.Extra)
		if err != nil {
			t.Fatal(err)
		}
		slot, err := crypt.ParseKeySlot([]byte(v.Input))
		if err != nil {
			t.Fatal(err)
		}
		kek, err := code.KEK(slot.Salt)
		if err != nil {
			t.Fatal(err)
		}
		repo, err := crypt.ParseRepoID(v.Repository)
		if err != nil {
			t.Fatal(err)
		}
		id, err := crypt.ParseID(v.ID)
		if err != nil {
			t.Fatal(err)
		}
		mk, err := slot.Unwrap(repo, id, kek)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := crypt.DeriveKeys(mk, repo)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	t.Fatalf("%s has no slot-valid vector", path)
	return nil
}
