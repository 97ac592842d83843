package format

import (
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

// TestMetadataName: only the exact names the repository gives its
// metadata objects are accepted (issue 8, defect 5).
func TestMetadataName(t *testing.T) {
	id := crypt.ID{0xab, 0xcd, 3}
	for _, name := range []string{ConfigName, SlotName(id), SnapshotName(id), ForgetName(id), IndexName(id)} {
		if !MetadataName(name) {
			t.Errorf("%q refused", name)
		}
	}
	hex := id.String()
	for _, name := range []string{
		"", LeaseName, PackName(id), "config/", "/config", "keys/" + strings.ToUpper(hex), "keys/" + hex + "/",
		"keys//" + hex, "keys/../" + hex, "data/" + hex, "snapshots/" + hex[:62], "snapshots/" + hex + "00",
		"index/" + hex + "\x00", "index\\" + hex, "keys/" + hex + "/../../x", "../" + hex,
		"keys/forget/" + hex, "index/forget/" + hex, "snapshots/forget/forget/" + hex, "snapshots/forget/../" + hex,
		"snapshots/Forget/" + hex, "snapshots/forget//" + hex, "forget/" + hex,
	} {
		if MetadataName(name) {
			t.Errorf("%q accepted", name)
		}
	}
}
