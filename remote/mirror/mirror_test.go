package mirror_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/remote/mirror"
	"github.com/sealfs/sealfs/remote/remotetest"
	"github.com/sealfs/sealfs/repo/format"
)

// repoNames are the names a repository mirrors, as sealfs mount uses them.
var repoNames = mirror.Names{Object: format.MetadataName, Folder: format.MetadataFolder}

// TestConformance: with the remote up, the mirror keeps every contract,
// mirroring every object (through its os.Root) or only the repository's.
func TestConformance(t *testing.T) {
	all := mirror.Names{Object: func(string) bool { return true }, Folder: func(string) bool { return true }}
	remotetest.Run(t, func(t *testing.T) remote.Remote { return mirror.New(remotetest.NewMemory(t), t.TempDir(), all) })
}

func objName(t *testing.T, dir string) string {
	id, err := crypt.NewRandomID()
	if err != nil {
		t.Fatal(err)
	}
	return dir + "/" + id.String()
}

// TestServesCopiesWhenDown: metadata objects and listings written or read
// while the remote was up are served when it fails; data objects are not,
// and "not found" is never papered over.
func TestServesCopiesWhenDown(t *testing.T) {
	ctx := context.Background()
	f := faulty.New(remotetest.NewMemory(t), 1)
	m := mirror.New(f, t.TempDir(), repoNames)
	m.Mkdir(ctx)
	if err := m.List(ctx, "snapshots", func(remote.Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	key, snap := objName(t, "keys"), objName(t, "snapshots")
	for name, data := range map[string]string{"config": "c", key: "k", snap: "s", "data/00/p": "pack"} {
		if err := m.Put(ctx, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Get(ctx, objName(t, "index"), 0, -1); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("missing object = %v", err)
	}
	f.SetFailRate(1)
	if b, err := m.Get(ctx, "config", 0, -1); err != nil || string(b) != "c" {
		t.Fatalf("config while down = %q, %v", b, err)
	}
	var names []string
	if err := m.List(ctx, "snapshots", func(e remote.Entry) error { names = append(names, e.Name); return nil }); err != nil || len(names) != 1 || names[0] != snap {
		t.Fatalf("snapshot listing while down = %v, %v", names, err)
	}
	if _, err := m.Get(ctx, "data/00/p", 0, -1); err == nil {
		t.Fatal("a data object was served from a copy")
	}
	if _, err := m.Get(ctx, objName(t, "index"), 0, -1); err == nil || errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("an object without a copy while down = %v, want a transient error", err)
	}
	if err := m.Put(ctx, objName(t, "snapshots"), []byte("x")); err == nil {
		t.Fatal("a write succeeded while the remote is down")
	}
}

// hostile is a remote that lists names of its choosing in every folder
// and serves bytes for any name.
type hostile struct {
	remote.Remote
	names []string
}

func (h *hostile) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	for _, n := range h.names {
		if err := fn(remote.Entry{Name: n, Size: 4}); err != nil {
			return err
		}
	}
	return h.Remote.List(ctx, dir, fn)
}

func (h *hostile) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	return []byte("evil"), nil
}

var hostileNames = []string{
	"snapshots/../../escape", "keys/../../../escape", "index/../escape",
	"/tmp/escape", "/etc/passwd", "../escape", "../../escape", "config/../../escape",
	"snapshots/with\x00nul", "snapshots\\..\\..\\escape", "keys\\..\\escape",
	"snapshots/" + strings.Repeat("a", 5000), "index/" + strings.Repeat("../", 400) + "escape",
	"snapshots/" + strings.ToUpper(strings.Repeat("ab", 32)), "snapshots//" + strings.Repeat("ab", 32),
	"snapshots/" + strings.Repeat("ab", 32) + "/../../../escape", "keys/.", "keys/..", "",
}

// TestHostileNames (issue 8, defect 5): names from a hostile listing never
// lead a write outside the mirror's folder; a name inside a metadata
// folder that is not a metadata object is refused with an error naming
// it, and the kept listing holds only real object names.
func TestHostileNames(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	dir := filepath.Join(base, "mirror")
	inner := &hostile{Remote: remotetest.NewMemory(t), names: hostileNames}
	m := mirror.New(inner, dir, repoNames)
	m.Mkdir(ctx)
	good := objName(t, "snapshots")
	if err := m.Put(ctx, good, []byte("good")); err != nil {
		t.Fatal(err)
	}
	for _, folder := range []string{"keys", "snapshots", "index", "data"} {
		var listed []string
		if err := m.List(ctx, folder, func(e remote.Entry) error { listed = append(listed, e.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		for _, name := range listed {
			if name == good {
				continue
			}
			_, gerr := m.Get(ctx, name, 0, -1)
			_, serr := m.Stat(ctx, name)
			perr := m.Put(ctx, name, []byte("evil"))
			derr := m.Delete(ctx, name)
			if dir, _, ok := strings.Cut(name, "/"); ok && format.MetadataFolder(dir) && !format.MetadataName(name) {
				for _, err := range []error{gerr, serr, perr, derr} {
					if err == nil || !strings.Contains(err.Error(), "not the name of a metadata object") {
						t.Errorf("%q: %v, want a refusal", name, err)
					}
				}
			}
		}
	}
	// Nothing beside the mirror's folder, and inside it only real names.
	entries, _ := os.ReadDir(base)
	if len(entries) != 1 {
		t.Fatalf("%d entries beside the mirror's folder, want none", len(entries)-1)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if err == nil && !d.IsDir() && !format.MetadataName(rel) && !strings.HasSuffix(rel, ".list") {
			t.Errorf("the mirror wrote %q", rel)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join("/tmp", "escape")); err == nil {
		t.Error("/tmp/escape exists")
	}
	// The kept listing of snapshots names the real snapshot only.
	f := faulty.New(inner, 1)
	down := mirror.New(f, dir, repoNames)
	f.SetFailRate(1)
	var listed []string
	if err := down.List(ctx, "snapshots", func(e remote.Entry) error { listed = append(listed, e.Name); return nil }); err != nil || len(listed) != 1 || listed[0] != good {
		t.Fatalf("kept listing = %q, %v", listed, err)
	}
}

// TestDamagedKeptListing: a kept listing naming what is no object is
// refused, not served.
func TestDamagedKeptListing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := faulty.New(remotetest.NewMemory(t), 1)
	m := mirror.New(f, dir, repoNames)
	for _, listing := range []string{`[{"Name":"snapshots/../../escape","Size":3}]`, `[{"Name":"` + objName(t, "index") + `","Size":3}]`, `{`} {
		if err := os.WriteFile(filepath.Join(dir, "snapshots.list"), []byte(listing), 0o600); err != nil {
			t.Fatal(err)
		}
		f.SetFailRate(1)
		err := m.List(ctx, "snapshots", func(remote.Entry) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "kept listing of snapshots is damaged") {
			t.Fatalf("listing %s: %v", listing, err)
		}
	}
}

// TestFreshReadsSkipCopies: once the remote answers again, a read marked
// remote.WithoutLocalCopies (a writer that just took the lease) sees what
// another client stored meanwhile, although the mirror still thinks the
// remote is down; and while it really is down, such a read fails rather
// than return the old copy.
func TestFreshReadsSkipCopies(t *testing.T) {
	ctx := context.Background()
	mem := remotetest.NewMemory(t)
	f := faulty.New(mem, 1)
	m := mirror.New(f, t.TempDir(), repoNames)
	s1, s2 := objName(t, "snapshots"), objName(t, "snapshots")
	if err := m.List(ctx, "snapshots", func(remote.Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, s1, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	f.SetFailRate(1)
	list := func(ctx context.Context) ([]string, error) {
		var names []string
		err := m.List(ctx, "snapshots", func(e remote.Entry) error { names = append(names, e.Name); return nil })
		return names, err
	}
	if names, err := list(ctx); err != nil || len(names) != 1 {
		t.Fatalf("listing while down = %v, %v", names, err)
	}
	fresh := remote.WithoutLocalCopies(ctx)
	if names, err := list(fresh); err == nil {
		t.Fatalf("a fresh listing while down was served from the copy: %v", names)
	}
	if _, err := m.Get(fresh, s1, 0, -1); err == nil {
		t.Fatal("a fresh read while down was served from the copy")
	}
	// Another client stores s2; the remote comes back.
	if err := mem.Put(ctx, s2, []byte("s2")); err != nil {
		t.Fatal(err)
	}
	f.SetFailRate(0)
	if names, err := list(fresh); err != nil || len(names) != 2 {
		t.Fatalf("fresh listing once the remote answers = %v, %v", names, err)
	}
	if b, err := m.Get(fresh, s2, 0, -1); err != nil || string(b) != "s2" {
		t.Fatalf("fresh read of s2 = %q, %v", b, err)
	}
}

// TestCopyNeverServesLess (issue 8 review): a local copy shorter than the
// range asked for (a copy saved from a read bounded by a listed size that
// was too small) is a short read, as the remote contract says, never fewer
// bytes with no error.
func TestCopyNeverServesLess(t *testing.T) {
	ctx := context.Background()
	f := faulty.New(remotetest.NewMemory(t), 1)
	m := mirror.New(f, t.TempDir(), repoNames)
	if err := m.Put(ctx, "config", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	// A read bounded by a size that was too small keeps a prefix as the copy.
	if b, err := m.Get(ctx, "config", 0, 4); err != nil || string(b) != "0123" {
		t.Fatalf("bounded read = %q, %v", b, err)
	}
	f.SetFailRate(1)
	for _, r := range [][2]int64{{0, 10}, {2, 8}, {0, 5}} {
		b, err := m.Get(ctx, "config", r[0], r[1])
		if err == nil && int64(len(b)) != r[1] {
			t.Errorf("Get(%d, %d) while down = %q (%d bytes) with no error, want %d bytes or an error", r[0], r[1], b, len(b), r[1])
		}
		if err != nil && !errors.Is(err, remote.ErrShortRead) {
			t.Errorf("Get(%d, %d) while down = %v, want a short read", r[0], r[1], err)
		}
	}
	if b, err := m.Get(ctx, "config", 1, 3); err != nil || string(b) != "123" {
		t.Fatalf("Get(1, 3) while down = %q, %v", b, err)
	}
}

// TestDropsVanished: a listing that no longer holds an object (another
// client deleted it: a forgotten snapshot, an index a prune removed)
// drops its copy, so that the mirror shrinks with the remote; the copies
// of listed objects stay.
func TestDropsVanished(t *testing.T) {
	ctx := context.Background()
	inner := remotetest.NewMemory(t)
	dir := t.TempDir()
	m := mirror.New(inner, dir, repoNames)
	m.Mkdir(ctx)
	keep, gone, forget := objName(t, "index"), objName(t, "index"), objName(t, "snapshots/forget")
	snap := format.SnapshotSeqName(7, crypt.ID{7})
	for _, name := range []string{keep, gone, forget, snap} {
		if err := m.Put(ctx, name, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Minute)
	for _, name := range []string{keep, gone, forget, snap} {
		if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{gone, forget} {
		if err := inner.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"index", "snapshots"} {
		if err := m.List(ctx, d, func(remote.Entry) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]bool{keep: true, snap: true, gone: false, forget: false} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("copy of %s: %v, want kept %v", name, err, want)
		}
	}
}

// lagging lists as an eventually consistent store may for a moment: one
// object that is there is left out of the listings.
type lagging struct {
	remote.Remote
	hide string
}

func (l *lagging) List(ctx context.Context, dir string, fn func(remote.Entry) error) error {
	return l.Remote.List(ctx, dir, func(e remote.Entry) error {
		if e.Name == l.hide {
			return nil
		}
		return fn(e)
	})
}

// TestKeepsCopyListingOmits: a listing that leaves out an object still
// there (an eventually consistent store, for a moment) does not cost its
// copy: only an object the remote says is gone loses it. The copy of an
// index object the newest snapshot names was dropped, and a mount that
// came up offline next could not open the repository.
func TestKeepsCopyListingOmits(t *testing.T) {
	ctx := context.Background()
	f := faulty.New(remotetest.NewMemory(t), 1)
	dir := t.TempDir()
	x, gone := objName(t, "index"), objName(t, "index")
	lag := &lagging{Remote: f, hide: x}
	m := mirror.New(lag, dir, repoNames)
	m.Mkdir(ctx)
	for _, name := range []string{x, gone} {
		if err := m.Put(ctx, name, []byte("x")); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Minute)
		if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := m.List(ctx, "index", func(remote.Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
		t.Errorf("the copy of %s, deleted from the remote, is kept", gone)
	}
	f.SetFailRate(1)
	if b, err := m.Get(ctx, x, 0, -1); err != nil || string(b) != "x" {
		t.Fatalf("offline read of %s, which a listing left out: %q, %v", x, b, err)
	}
}
