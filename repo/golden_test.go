package repo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// goldenRoot holds the golden repositories (docs/SPEC.md §14), one per
// format version, each written once by golden_write_test.go of the sealfs
// that introduced the version and read by every later sealfs.
const goldenRoot = "../testdata/golden"

// slotUnlocker opens the first slot of its kind that its key-encryption
// key opens, as docs/SPEC.md §4 describes (and without the application's
// unlocking code, so that this test reads the format, not that code).
type slotUnlocker struct {
	kind crypt.SlotKind
	kek  func(salt []byte) (crypt.KEK, error)
}

func (u slotUnlocker) Unlock(_ context.Context, rid crypt.RepoID, slots []repo.SlotInfo) (crypt.MasterKey, crypt.ID, error) {
	for _, s := range slots {
		if s.Slot.Kind != u.kind {
			continue
		}
		kek, err := u.kek(s.Slot.Salt)
		if err != nil {
			return crypt.MasterKey{}, crypt.ID{}, err
		}
		if mk, err := s.Slot.Unwrap(rid, s.ID, kek); err == nil {
			return mk, s.ID, nil
		}
	}
	return crypt.MasterKey{}, crypt.ID{}, fmt.Errorf("no %s slot opens", u.kind)
}

// TestGoldenRepository: every golden repository under testdata/golden, as
// an older sealfs wrote it, still opens with its recovery code and with its
// vault slot's secret, reads back byte for byte as its manifest says (every
// snapshot, every entry's metadata, every file's content), checks clean with
// every blob read, and is not changed by any of it.
func TestGoldenRepository(t *testing.T) {
	if *writeGolden {
		writeGoldenRepository(t)
	}
	for _, dir := range testutil.GoldenDirs(t, goldenRoot) {
		t.Run(filepath.Base(dir), func(t *testing.T) { readGolden(t, dir) })
	}
}

func readGolden(t *testing.T, dir string) {
	m := testutil.ReadManifest(t, dir)
	// The committed copy is what was written, byte for byte.
	testutil.SameObjects(t, filepath.Join(dir, testutil.GoldenRepoDir), m.Objects)
	work := filepath.Join(t.TempDir(), "remote")
	testutil.CopyDir(t, filepath.Join(dir, testutil.GoldenRepoDir), work)
	text, err := os.ReadFile(filepath.Join(dir, testutil.GoldenCodeFile))
	if err != nil {
		t.Fatal(err)
	}
	code, err := crypt.ParseRecoveryCode(string(text))
	if err != nil {
		t.Fatalf("%s: %v", testutil.GoldenCodeFile, err)
	}
	byCode := slotUnlocker{kind: crypt.SlotRecoveryCode, kek: code.KEK}
	secret, err := hex.DecodeString(m.VaultSecret)
	if err != nil {
		t.Fatal(err)
	}
	byVault := slotUnlocker{kind: crypt.SlotVault, kek: func(salt []byte) (crypt.KEK, error) { return crypt.VaultKEK(secret, salt) }}

	rem := testutil.NewRemote(t, work)
	r, err := repo.Open(context.Background(), rem, byCode, repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("the recovery code does not open the golden repository: %v", err)
	}
	checkGoldenMetadata(t, r, m)
	checkGoldenTrees(t, r, m)
	checkGoldenCheck(t, r, m)
	// The vault slot wraps the same master key: the config's MAC verifies.
	vrem := testutil.NewRemote(t, work)
	if _, err := repo.Open(context.Background(), vrem, byVault, repo.Options{CacheDir: t.TempDir()}); err != nil {
		t.Fatalf("the vault slot's secret does not open the golden repository: %v", err)
	}
	for _, s := range []struct {
		name string
		put  int64
		del  int64
	}{{"code", rem.Stats().Puts, rem.Stats().Deletes}, {"vault", vrem.Stats().Puts, vrem.Stats().Deletes}} {
		if s.put != 0 || s.del != 0 {
			t.Errorf("reading with the %s wrote %d and deleted %d objects of the golden repository", s.name, s.put, s.del)
		}
	}
	testutil.SameObjects(t, work, m.Objects)
}

func checkGoldenMetadata(t *testing.T, r *repo.Repository, m *testutil.Manifest) {
	ctx := context.Background()
	cfg := r.Config()
	got := testutil.ManifestConfig{Created: cfg.Created.UTC(), ChunkMin: cfg.ChunkMin, ChunkAvg: cfg.ChunkAvg, ChunkMax: cfg.ChunkMax, PackSize: cfg.PackSize, Compression: cfg.Compression}
	if r.ID().String() != m.Repository || !got.Created.Equal(m.Config.Created) || got.ChunkMin != m.Config.ChunkMin ||
		got.ChunkAvg != m.Config.ChunkAvg || got.ChunkMax != m.Config.ChunkMax || got.PackSize != m.Config.PackSize || got.Compression != m.Config.Compression {
		t.Errorf("repository %s with config %+v, the manifest says %s, %+v", r.ID(), got, m.Repository, m.Config)
	}
	slots, err := r.Slots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var gotSlots []testutil.ManifestSlot
	for _, s := range slots {
		gotSlots = append(gotSlots, testutil.ManifestSlot{ID: s.ID.String(), Kind: string(s.Slot.Kind), Created: s.Slot.Created.UTC(), Params: string(s.Slot.Params)})
	}
	if !equalJSON(gotSlots, m.Slots) {
		t.Errorf("key slots %s, the manifest says %s", testutil.JSON(gotSlots), testutil.JSON(m.Slots))
	}
	var forgot []testutil.ManifestForgotten
	for _, f := range r.Forgotten() {
		forgot = append(forgot, testutil.ManifestForgotten{Seq: f.Seq, ID: f.ID.String()})
	}
	if !equalJSON(forgot, m.Forgotten) {
		t.Errorf("forgotten snapshots %s, the manifest says %s", testutil.JSON(forgot), testutil.JSON(m.Forgotten))
	}
	l, err := r.ReadLease(ctx)
	if err != nil || l == nil {
		t.Errorf("the lease reads as %v, %v", l, err)
		return
	}
	gotLease := testutil.ManifestLease{Holder: l.Holder.String(), Host: l.Host, PID: l.PID, Acquired: l.Acquired.UTC(), Expires: l.Expires.UTC()}
	if !equalJSON(gotLease, m.Lease) {
		t.Errorf("lease %s, the manifest says %s", testutil.JSON(gotLease), testutil.JSON(m.Lease))
	}
}

func checkGoldenTrees(t *testing.T, r *repo.Repository, m *testutil.Manifest) {
	snaps := snapshots(t, r)
	if len(snaps) != len(m.Snapshots) {
		t.Fatalf("%d snapshots, the manifest says %d", len(snaps), len(m.Snapshots))
	}
	for i, s := range snaps {
		want := m.Snapshots[i]
		full, err := r.LoadSnapshot(context.Background(), s) // with its index list
		if err != nil {
			t.Fatal(err)
		}
		got := testutil.SnapshotOf(full)
		wantHead := want
		wantHead.Entries = nil
		if !equalJSON(got, wantHead) {
			t.Errorf("snapshot %s,\nthe manifest says %s", testutil.JSON(got), testutil.JSON(wantHead))
		}
		entries := walkTree(t, r, s.Tree, nil)
		compareEntries(t, s.Seq, entries, want.Entries)
	}
}

// walkTree describes every entry below tree id, reading each file's
// content whole to hash it.
func walkTree(t *testing.T, r *repo.Repository, id crypt.ID, prefix []byte) []testutil.ManifestEntry {
	ctx := context.Background()
	tree, err := r.LoadTree(ctx, id)
	if err != nil {
		t.Fatalf("tree %s: %v", id, err)
	}
	var out, below []testutil.ManifestEntry
	for _, n := range tree.Nodes {
		p := append(slices.Clone(prefix), n.Name...)
		e := testutil.EntryOf(p, n)
		switch n.Type {
		case format.NodeFile:
			h := sha256.New()
			if _, err := r.OpenFile(n).CopyTo(ctx, h); err != nil {
				t.Fatalf("reading %q: %v", p, err)
			}
			e.SHA256 = hex.EncodeToString(h.Sum(nil))
		case format.NodeDir:
			below = append(below, walkTree(t, r, n.Subtree, append(p, '/'))...)
		}
		out = append(out, e)
	}
	return append(out, below...)
}

func compareEntries(t *testing.T, seq uint64, got, want []testutil.ManifestEntry) {
	t.Helper()
	byKey := map[string]testutil.ManifestEntry{}
	for _, e := range got {
		byKey[e.Key()] = e
	}
	for _, w := range want {
		g, ok := byKey[w.Key()]
		switch {
		case !ok:
			t.Errorf("snapshot %d: %s is missing", seq, testutil.JSON(w))
		case !equalJSON(g, w):
			t.Errorf("snapshot %d: entry reads as %s,\nthe manifest says %s", seq, testutil.JSON(g), testutil.JSON(w))
		}
		delete(byKey, w.Key())
	}
	for _, g := range byKey {
		t.Errorf("snapshot %d: %s is not in the manifest", seq, testutil.JSON(g))
	}
}

func checkGoldenCheck(t *testing.T, r *repo.Repository, m *testutil.Manifest) {
	rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("check --read-data finds problems: %v", errors.Join(rep.Problems...))
	}
	if len(rep.UnreferencedPacks)+len(rep.Unreferenced) > 0 {
		t.Errorf("check finds unreferenced objects: %v %v", rep.UnreferencedPacks, rep.Unreferenced)
	}
	got := testutil.ManifestCheck{Slots: rep.Slots, Snapshots: rep.Snapshots, ForgetRecords: rep.ForgetRecords, Indexes: rep.Indexes, Packs: rep.Packs, Blobs: rep.Blobs, Trees: rep.Trees}
	if got != m.Check {
		t.Errorf("check counts %+v, the manifest says %+v", got, m.Check)
	}
}

// equalJSON compares two values as the manifest holds them.
func equalJSON(a, b any) bool { return testutil.JSON(a) == testutil.JSON(b) }
