package mirror

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/remotetest"
	"github.com/sealfs/sealfs/repo/format"
)

// FuzzDecodeListing: a kept listing decodes only into entries that are
// metadata objects of its folder, and encodes back to what decodes the
// same; and an object name from the remote, whatever it is, never leads a
// write outside the mirror's folder.
func FuzzDecodeListing(f *testing.F) {
	names := Names{Object: format.MetadataName, Folder: format.MetadataFolder}
	id := strings.Repeat("ab", 32)
	f.Add([]byte(`[{"Name":"snapshots/`+id+`","Size":3}]`), "snapshots/"+id)
	f.Add([]byte(`[{"Name":"snapshots/../../x","Size":3}]`), "snapshots/../../x")
	f.Add([]byte(`[]`), "config")
	f.Add([]byte(`[{"Name":"index/`+id+`","Size":-1}]`), "/etc/passwd")
	f.Add([]byte(`null`), "keys/..\\..\\x")
	f.Fuzz(func(t *testing.T, listing []byte, name string) {
		outer := t.TempDir()
		m := New(remotetest.NewMemory(t), filepath.Join(outer, "mirror"), names)
		entries, err := m.decodeListing(listing, "snapshots")
		if err == nil {
			for _, e := range entries {
				if !format.MetadataName(e.Name) || !strings.HasPrefix(e.Name, "snapshots/") || e.Size < 0 {
					t.Fatalf("decoded entry %+v", e)
				}
			}
			b, err := json.Marshal(entries)
			if err != nil {
				t.Fatal(err)
			}
			again, err := m.decodeListing(b, "snapshots")
			if err != nil || len(again) != len(entries) {
				t.Fatalf("re-encoded listing: %d entries, %v", len(again), err)
			}
		}
		ctx := context.Background()
		_ = m.Put(ctx, name, listing)
		_, _ = m.Get(ctx, name, 0, -1)
		_, _ = m.Stat(ctx, name)
		_ = m.Delete(ctx, name)
		dir, _, _ := strings.Cut(name, "/")
		_ = m.List(ctx, dir, func(e remote.Entry) error { return nil })
		if entries, _ := os.ReadDir(outer); len(entries) > 1 || (len(entries) == 1 && entries[0].Name() != "mirror") {
			t.Fatalf("a write outside the mirror's folder for %q", name)
		}
	})
}
