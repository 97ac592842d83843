package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// sortedStrictly reports whether entries are strictly increasing by blob
// id.
func sortedStrictly(entries []format.IndexEntry) bool {
	for i := 1; i < len(entries); i++ {
		if bytes.Compare(entries[i-1].ID[:], entries[i].ID[:]) >= 0 {
			return false
		}
	}
	return true
}

// indexHistory commits n files one at a time (index objects merged along
// the way) and returns the history.
func indexHistory(t *testing.T, n int) (*history, func(string) *repo.Repository) {
	t.Helper()
	r, _, _, open := historyRepo(t)
	h := &history{t: t, r: r, files: map[string][]byte{}}
	for i := range n {
		if err := h.commit(i); err != nil {
			t.Fatal(err)
		}
	}
	return h, open
}

// TestIndexObjectsSorted: every index object a writer stores (a commit's,
// a merge's, a prune's) lists its blobs strictly increasing by id
// (docs/SPEC.md §7), so that a reader searches it in place.
func TestIndexObjectsSorted(t *testing.T) {
	ctx := context.Background()
	h, _ := indexHistory(t, 40)
	if _, err := h.r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 0}); err != nil {
		t.Fatal(err)
	}
	if err := h.commit(40); err != nil {
		t.Fatal(err)
	}
	for _, x := range h.r.Latest().Indexes {
		entries, err := repo.IndexEntriesForTest(ctx, h.r, x)
		if err != nil {
			t.Fatal(err)
		}
		if !sortedStrictly(entries) {
			t.Fatalf("index object %s (%d entries) is not sorted by blob id", x.Short(), len(entries))
		}
	}
}

// TestIndexOlderWriterOrder: a repository whose index objects list their
// entries in another order (an older writer's, or one a holder of the key
// wrote) is read as before: every file by a new client, check --read-data
// clean; a forget and a prune through those objects keep every blob the
// retained snapshots need (prune finds every pack they name), and what
// prune writes is sorted again.
func TestIndexOlderWriterOrder(t *testing.T) {
	ctx := context.Background()
	h, open := indexHistory(t, 40)
	for _, x := range h.r.Latest().Indexes {
		err := repo.RewriteIndexForTest(ctx, h.r, x, func(e []format.IndexEntry) []format.IndexEntry {
			slices.Reverse(e)
			return e
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	h.verify(open)
	r := open(t.TempDir())
	if err := r.Lock(ctx, true); err != nil {
		t.Fatal(err)
	}
	defer r.Unlock(ctx)
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []crypt.ID
	for _, s := range snaps[:len(snaps)-3] {
		ids = append(ids, s.ID)
	}
	if err := r.Forget(ctx, ids); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeletedPacks+rep.RepackedPacks == 0 {
		t.Fatalf("prune freed nothing after forgetting %d snapshots: %+v", len(ids), rep)
	}
	for _, x := range r.Latest().Indexes {
		if entries, err := repo.IndexEntriesForTest(ctx, r, x); err != nil || !sortedStrictly(entries) {
			t.Fatalf("index object %s after prune: sorted %v, %v", x.Short(), sortedStrictly(entries), err)
		}
	}
	h.verify(open)
}

// TestIndexDuplicatesAcrossObjects: where two index objects a snapshot
// names list one blob, the later object's entry is the one read (§7),
// whatever its order inside either object: a wrong entry in an older
// object is never read, by a reader nor by check (which loaded the index
// objects in a random order before: it then failed now and then on the
// older object's entries). A wrong entry in the newest one makes the read
// of that blob fail as an integrity error, never return other bytes.
func TestIndexDuplicatesAcrossObjects(t *testing.T) {
	ctx := context.Background()
	h, open := indexHistory(t, 25)
	list := h.r.Latest().Indexes
	if len(list) < 2 {
		t.Fatalf("the snapshot names %d index objects; the test needs two", len(list))
	}
	oldest, newest := list[0], list[len(list)-1]
	newEntries, err := repo.IndexEntriesForTest(ctx, h.r, newest)
	if err != nil {
		t.Fatal(err)
	}
	oldEntries, err := repo.IndexEntriesForTest(ctx, h.r, oldest)
	if err != nil {
		t.Fatal(err)
	}
	// wrong points a blob's entry at another blob's bytes.
	wrong := func(e, other format.IndexEntry) format.IndexEntry {
		e.Location = other.Location
		return e
	}
	// The oldest object gets a wrong entry of each blob of the newest, in
	// the middle and out of order.
	err = repo.RewriteIndexForTest(ctx, h.r, oldest, func(e []format.IndexEntry) []format.IndexEntry {
		var out []format.IndexEntry
		for _, n := range newEntries {
			out = append(out, wrong(n, e[0]))
		}
		return append(append(e[len(e)/2:], out...), e[:len(e)/2]...)
	})
	if err != nil {
		t.Fatal(err)
	}
	h.verify(open)

	// Now the newest object lists a blob of the oldest wrongly (after its
	// own entries: the object is out of order).
	i := slices.IndexFunc(oldEntries, func(e format.IndexEntry) bool { return format.IsDataBlob(e.Type) })
	if i < 0 {
		t.Fatal("the oldest index object lists no file content")
	}
	victim := oldEntries[i]
	err = repo.RewriteIndexForTest(ctx, h.r, newest, func(e []format.IndexEntry) []format.IndexEntry {
		return append(e, wrong(victim, newEntries[0]))
	})
	if err != nil {
		t.Fatal(err)
	}
	r := open(t.TempDir())
	failed := 0
	for name, want := range h.files {
		got, err := readFile(r, name)
		if err != nil {
			if !errors.Is(err, repo.ErrIntegrity) {
				t.Fatalf("%s: %v, want an integrity error", name, err)
			}
			failed++
			continue
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s read other bytes through a wrong index entry", name)
		}
	}
	if failed == 0 {
		t.Fatalf("no read went through the wrong entry of blob %s (the newest object's)", victim.ID.Short())
	}
}

// TestRefreshReusesIndexObjects: a refresh (a reader's reload, and the
// second open of a mount, when it takes the lease) does not read again
// the index objects it holds (they never change) — with every read of one
// failing it still succeeds and reads every file — but still finds one
// that was deleted meanwhile (an integrity error naming it), and reads a
// new one another writer stored.
func TestRefreshReusesIndexObjects(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	files := map[string][]byte{}
	for i := range 6 {
		name := fmt.Sprintf("f%d", i)
		files[name] = randomData(uint64(i), 3000)
		storeFiles(t, env.Repo, files)
	}
	fr := testutil.NewRemote(t, env.Dir)
	r, err := repo.Open(ctx, fr, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// One read of an index object fails: the next one there is.
	fr.FailOn("get", format.IndexDir+"/", 1, faulty.FailBefore)
	if err := r.Refresh(ctx); err != nil {
		t.Fatalf("a refresh read the index objects it holds again: %v", err)
	}
	for name, want := range files {
		if got, err := readFile(r, name); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after the refresh: %v", name, err)
		}
	}
	// Another writer's commit: its new index object is read.
	files["g"] = randomData(99, 3000)
	storeFiles(t, env.Repo, files)
	if err := r.Refresh(ctx); err == nil {
		t.Fatal("a refresh did not read the new index object (its reads fail)")
	}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := readFile(r, "g"); err != nil || !bytes.Equal(got, files["g"]) {
		t.Fatalf("g after the refresh: %v", err)
	}
	// An index object deleted meanwhile is found missing.
	gone := r.Latest().Indexes[0]
	if err := os.Remove(filepath.Join(env.Dir, format.IndexName(gone))); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(ctx); !errors.Is(err, repo.ErrIntegrity) || !strings.Contains(err.Error(), gone.String()) {
		t.Fatalf("refresh with index object %s deleted: %v, want an integrity error naming it", gone.Short(), err)
	}
}
