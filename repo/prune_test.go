package repo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// pruneOpts: 1 MiB packs and small chunks, so that a few MiB make several
// packs and a file shares a pack with others.
var pruneOpts = repo.InitOptions{PackSize: 1 << 20, Chunking: chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}}

// dirSize is the bytes of every file under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// listing is every object file under dir, with its size.
func listing(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		out[p] = fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshotFiles is the content of every file of every snapshot, by
// snapshot sequence number and name.
type snapshotFiles map[uint64]map[string][]byte

// verifyPruned opens the repository as a new client: check --read-data is
// clean with nothing unreferenced, and every snapshot in want reads back
// byte for byte (the prune snapshot, too, as the newest's content).
func verifyPruned(t *testing.T, env *testutil.Env, want snapshotFiles) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatalf("open after prune: %v", err)
	}
	rep, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check after prune: %v %v", err, rep.Problems)
	}
	if len(rep.Unreferenced)+len(rep.UnreferencedPacks) > 0 {
		t.Errorf("unreferenced after prune: %v %v", rep.Unreferenced, rep.UnreferencedPacks)
	}
	for seq, files := range want {
		s, err := r.SnapshotBySeq(ctx, seq)
		if err != nil {
			t.Fatalf("snapshot %d: %v", seq, err)
		}
		tree, err := r.LoadTree(ctx, s.Tree)
		if err != nil {
			t.Fatalf("snapshot %d: %v", seq, err)
		}
		if len(tree.Nodes) != len(files) {
			t.Errorf("snapshot %d has %d files, want %d", seq, len(tree.Nodes), len(files))
		}
		for name, data := range files {
			n := tree.Find([]byte(name))
			if n == nil {
				t.Fatalf("snapshot %d lost %s", seq, name)
			}
			var buf bytes.Buffer
			if _, err := r.OpenFile(n).CopyTo(ctx, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("snapshot %d, %s: %d bytes back (want %d), %v", seq, name, buf.Len(), len(data), err)
			}
		}
	}
	return r
}

// TestPruneForgotten: after two of three snapshots are forgotten (the
// forget cut short: prune finishes it), prune deletes the packs only they used, the remote's directory shrinks by
// exactly what the report says was freed (a file the forgotten snapshots
// alone held, 3 MiB, at least), and the snapshot left (and the one prune
// adds) read back byte for byte; a second prune finds nothing to do.
func TestPruneForgotten(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, pruneOpts)
	a, b, c := randomData(1, 3<<20), randomData(2, 2<<20), randomData(3, 1<<20)
	storeFiles(t, env.Repo, map[string][]byte{"a": a})
	storeFiles(t, env.Repo, map[string][]byte{"a": a, "b": b})
	s3 := storeFiles(t, env.Repo, map[string][]byte{"b": b, "c": c})
	// A forget cut short (the record stored, one snapshot not deleted):
	// prune finishes it first.
	env.Remote.FailOn("delete", "snapshots/", 1, faulty.FailBefore)
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1, 2)); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("forget with a failing delete = %v", err)
	}
	before := dirSize(t, env.Dir)
	rep, err := env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: -1})
	if err != nil {
		t.Fatal(err)
	}
	after := dirSize(t, env.Dir)
	t.Logf("%+v; directory %d -> %d", *rep, before, after)
	// The lease is the one object that may differ between the two
	// measures and the report's (it is rewritten, not resized).
	if before-after != rep.Freed() || rep.Freed() < int64(len(a)) {
		t.Errorf("the remote shrank by %d bytes, prune says it freed %d (a alone is %d)", before-after, rep.Freed(), len(a))
	}
	if rep.Forgotten != 1 || rep.DeletedPacks == 0 || rep.Snapshot == nil || !rep.Snapshot.Prune || rep.Snapshot.Seq != s3.Seq+1 || rep.Snapshot.Tree != s3.Tree || rep.Snapshot.Parent != s3.ID {
		t.Errorf("report %+v", *rep)
	}
	want := snapshotFiles{3: {"b": b, "c": c}, 4: {"b": b, "c": c}}
	verifyPruned(t, env, want)
	again, err := env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: -1})
	if err != nil {
		t.Fatal(err)
	}
	if again.Snapshot != nil || again.DeletedPacks+again.RepackedPacks+again.DeletedIndexes != 0 || again.Freed() != 0 {
		t.Errorf("a second prune did something: %+v", *again)
	}
}

// TestPruneRepack: a pack whose share of unused bytes is over the
// threshold is repacked (its live chunk copied, still sealed, into a new
// pack); at 100 % it is only dropped from the rewritten index's view of
// dead chunks, not repacked. A dry run changes no object.
func TestPruneRepack(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, pruneOpts)
	// p and q share a pack (1 MiB packs: they fill it together).
	p, q, n := randomData(4, 700<<10), randomData(5, 500<<10), randomData(6, 2<<20)
	storeFiles(t, env.Repo, map[string][]byte{"p": p, "q": q})
	storeFiles(t, env.Repo, map[string][]byte{"q": q, "n": n})
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1)); err != nil {
		t.Fatal(err)
	}
	objects := listing(t, env.Dir)
	dry, err := env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 100, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(t, env.Dir); !sameListing(objects, got) {
		t.Fatalf("a dry run changed the remote")
	}
	// Only small packs (each under a quarter of the 1 MiB pack size; chunk
	// boundaries are keyed, so how many there are varies) are repacked.
	onlySmall := func(r *repo.PruneReport) bool { return r.RepackedBytes <= int64(r.RepackedPacks)*(256<<10) }
	if !onlySmall(dry) || dry.Snapshot != nil {
		t.Errorf("dry run at 100 %%: %+v", *dry)
	}
	rep, err := env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !onlySmall(rep) || rep.Snapshot == nil {
		t.Errorf("prune at 100 %%: %+v", *rep)
	}
	want := snapshotFiles{2: {"q": q, "n": n}, 3: {"q": q, "n": n}}
	verifyPruned(t, env, want)

	dry, err = env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 25, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.RepackedBytes < 1<<20 {
		t.Fatalf("dry run at 25 %%: the pack p shared is not to be repacked: %+v", *dry)
	}
	before := dirSize(t, env.Dir)
	rep, err = env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 25})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run %+v\nprune %+v", *dry, *rep)
	if rep.RepackedPacks != dry.RepackedPacks || rep.NewPacks == 0 || rep.Freed() < int64(len(p))/2 || before-dirSize(t, env.Dir) != rep.Freed() {
		t.Errorf("prune at 25 %%: %+v (dry run said %+v)", *rep, *dry)
	}
	want[4] = want[3]
	verifyPruned(t, env, want)
}

func sameListing(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPruneInterrupted: a prune whose remote fails at each of its steps
// (a pack of the repack, the index, the snapshot, a delete: before the
// request lands, and after it landed but reported failure) leaves a
// repository that opens and checks clean with every snapshot readable;
// the next prune, by a new process on the same cache, finishes the job.
func TestPruneInterrupted(t *testing.T) {
	for _, step := range []struct{ op, prefix string }{
		{"get", "data/"}, {"put", "data/"}, {"put", "index/"}, {"put", "snapshots/"}, {"delete", "index/"}, {"delete", "data/"},
	} {
		for _, mode := range []faulty.Mode{faulty.FailBefore, faulty.FailAfter} {
			t.Run(step.op+" "+step.prefix+map[faulty.Mode]string{faulty.FailBefore: " before", faulty.FailAfter: " after"}[mode], func(t *testing.T) {
				ctx := context.Background()
				env := testutil.NewRepo(t, pruneOpts)
				p, q, n := randomData(7, 700<<10), randomData(8, 500<<10), randomData(9, 2<<20)
				storeFiles(t, env.Repo, map[string][]byte{"p": p, "q": q})
				storeFiles(t, env.Repo, map[string][]byte{"p": p, "q": q, "m": []byte("m")})
				storeFiles(t, env.Repo, map[string][]byte{"q": q, "n": n})
				if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1, 2)); err != nil {
					t.Fatal(err)
				}
				want := snapshotFiles{3: {"q": q, "n": n}}
				env.Remote.FailOn(step.op, step.prefix, 1, mode)
				_, err := env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 25})
				if !errors.Is(err, faulty.ErrInjected) {
					t.Fatalf("prune with a failing %s %s = %v", step.op, step.prefix, err)
				}
				// What it left: a repository that opens, checks clean
				// (unreferenced objects at worst) and reads back.
				r, err := env.Reopen(t, t.TempDir(), false)
				if err != nil {
					t.Fatalf("open after an interrupted prune: %v", err)
				}
				rep, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
				if err != nil || !rep.OK() {
					t.Fatalf("check after an interrupted prune: %v %v", err, rep.Problems)
				}
				// A new process on the same cache finishes.
				if err := env.Repo.Unlock(ctx); err != nil {
					t.Fatal(err)
				}
				r, err = env.Reopen(t, "", false)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Lock(ctx, false); err != nil {
					t.Fatal(err)
				}
				defer r.Unlock(ctx) //nolint:errcheck
				if _, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 25}); err != nil {
					t.Fatalf("prune again: %v", err)
				}
				for _, s := range snapshots(t, r) {
					if s.Seq > 3 {
						want[s.Seq] = want[3]
					}
				}
				if len(want) < 2 {
					t.Errorf("no prune snapshot: %v", seqsOf(snapshots(t, r)))
				}
				verifyPruned(t, env, want)
			})
		}
	}
}

func seqsOf(snaps []*repo.Snapshot) []uint64 {
	var out []uint64
	for _, s := range snaps {
		out = append(out, s.Seq)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// TestPruneStoresUnstoredCommit: a commit whose snapshot upload failed
// leaves its snapshot in the local state (SPEC §9); a prune on that cache,
// by the same process or by a new one, stores it first, so its blobs are
// live and nothing of it is deleted: the commit's file reads back after
// the prune, and the check is clean.
func TestPruneStoresUnstoredCommit(t *testing.T) {
	for _, newProcess := range []bool{false, true} {
		t.Run(map[bool]string{false: "same process", true: "new process"}[newProcess], func(t *testing.T) {
			ctx := context.Background()
			env := testutil.NewRepo(t, pruneOpts)
			a, b := randomData(10, 1<<20), randomData(11, 1<<20)
			storeFiles(t, env.Repo, map[string][]byte{"a": a})
			storeFiles(t, env.Repo, map[string][]byte{"a": a, "b": b})
			if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1)); err != nil {
				t.Fatal(err)
			}
			// Commit 3 (c alone) fails at its snapshot's upload.
			c := randomData(12, 1<<20)
			content, size, err := env.Repo.SaveFile(ctx, bytes.NewReader(c))
			if err != nil {
				t.Fatal(err)
			}
			root, err := env.Repo.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: []byte("c"), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}}})
			if err != nil {
				t.Fatal(err)
			}
			env.Remote.FailOn("put", "snapshots/", 1, faulty.FailBefore)
			if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: 1, Bytes: size}); !errors.Is(err, faulty.ErrInjected) {
				t.Fatalf("commit with a failing snapshot upload = %v", err)
			}
			r := env.Repo
			if newProcess {
				if err := env.Repo.Unlock(ctx); err != nil {
					t.Fatal(err)
				}
				if r, err = env.Reopen(t, "", false); err != nil {
					t.Fatal(err)
				}
				if err := r.Lock(ctx, false); err != nil {
					t.Fatal(err)
				}
				defer r.Unlock(ctx) //nolint:errcheck
			}
			rep, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: -1})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Snapshot == nil || rep.Snapshot.Seq != 4 || rep.Snapshot.Tree != root {
				t.Fatalf("prune's snapshot does not follow the stored commit: %+v", *rep)
			}
			verifyPruned(t, env, snapshotFiles{2: {"a": a, "b": b}, 3: {"c": c}, 4: {"c": c}})
		})
	}
}

// TestPruneAfterTakeover: a writer dies with a commit's packs and index
// stored and its snapshot not (yet: its upload may still land). A new
// client on another cache takes over its lease and prunes: it deletes
// what forgotten snapshots alone used, but keeps the dead writer's pack
// and index, which no snapshot names yet. The dead writer's snapshot then
// lands, a fork: the next prune records it and keeps its blobs, and its
// file reads back.
func TestPruneAfterTakeover(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, pruneOpts)
	a, b := randomData(13, 1<<20), randomData(14, 1<<20)
	storeFiles(t, env.Repo, map[string][]byte{"a": a})
	storeFiles(t, env.Repo, map[string][]byte{"b": b})
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1)); err != nil {
		t.Fatal(err)
	}
	objects := listing(t, env.Dir)
	// The dead writer's commit: packs and index up, the snapshot not.
	c := randomData(15, 1<<20)
	content, size, err := env.Repo.SaveFile(ctx, bytes.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	root, err := env.Repo.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: []byte("c"), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}}})
	if err != nil {
		t.Fatal(err)
	}
	env.Remote.FailOn("put", "snapshots/", 1, faulty.FailBefore)
	if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: 1, Bytes: size}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("commit with a failing snapshot upload = %v", err)
	}
	var dead []string
	for name := range listing(t, env.Dir) {
		if _, ok := objects[name]; !ok && !strings.HasSuffix(name, "lease") {
			dead = append(dead, name)
		}
	}
	if len(dead) < 2 {
		t.Fatalf("the dead writer's commit stored %v", dead)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := repo.SetLeasePIDForTest(ctx, env.Repo, cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}

	r, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatalf("the dead writer's lease was not taken over: %v", err)
	}
	rep, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeletedPacks == 0 || rep.KeptUnreferencedPacks == 0 || rep.KeptUnreferencedIndexes == 0 {
		t.Errorf("prune after a takeover: %+v", *rep)
	}
	after := listing(t, env.Dir)
	for _, name := range dead {
		if _, ok := after[name]; !ok {
			t.Errorf("prune after a takeover deleted %s, which the dead writer's snapshot may still name", name)
		}
	}
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	// The dead writer's snapshot upload lands now, beside prune's: a fork
	// (SPEC §8), whose pack and index are there.
	raw, err := os.ReadFile(filepath.Join(env.Repo.StateDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Unstored struct {
			ID     crypt.ID
			Sealed []byte
		}
	}
	if err := json.Unmarshal(raw, &state); err != nil || state.Unstored.ID.IsZero() {
		t.Fatalf("the dead writer's state: %v %s", err, raw)
	}
	if err := env.Remote.Put(ctx, format.SnapshotName(state.Unstored.ID), state.Unstored.Sealed); err != nil {
		t.Fatal(err)
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer r.Unlock(ctx) //nolint:errcheck
	rep, err = r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.KeptUnreferencedPacks+rep.KeptUnreferencedIndexes != 0 {
		t.Errorf("a prune under a clean lease: %+v", *rep)
	}
	// Prune recorded the fork (a commit of the newest tree, seq 4) and kept
	// its blobs: the dead writer's file reads back from it.
	r2 := verifyPruned(t, env, snapshotFiles{2: {"b": b}, 3: {"b": b}, 4: {"b": b}, 5: {"b": b}})
	forks := r2.Forks()
	if len(forks) != 1 || forks[0].ID != state.Unstored.ID {
		t.Fatalf("forks after prune: %v", forks)
	}
	tree, err := r2.LoadTree(ctx, forks[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := r2.OpenFile(tree.Find([]byte("c"))).CopyTo(ctx, &buf); err != nil || !bytes.Equal(buf.Bytes(), c) {
		t.Fatalf("the fork's file after prune: %d bytes, %v", buf.Len(), err)
	}
}

// TestPruneNestedTrees: the live set reaches every directory of every
// retained snapshot, more than one batch of them at a level and below:
// after the snapshot that had other files in them is forgotten and pruned,
// the check (which reads every tree and every chunk) is clean and a file
// two levels down reads back.
func TestPruneNestedTrees(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, pruneOpts)
	r := env.Repo
	file := func(name string, data []byte) *repo.Node {
		content, size, err := r.SaveFile(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return &repo.Node{Name: []byte(name), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content}
	}
	dir := func(name string, nodes ...*repo.Node) *repo.Node {
		id, err := r.SaveTree(ctx, &repo.Tree{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		return &repo.Node{Name: []byte(name), Type: repo.NodeDir, Mode: 0o755, Subtree: id}
	}
	commit := func(gen uint64) []byte {
		var top []*repo.Node
		var deep []byte
		for i := range 300 {
			deep = randomData(gen*1000+uint64(i), 3000)
			top = append(top, dir(fmt.Sprintf("d%03d", i), file("f", randomData(gen*1000+uint64(i)+500, 2000)), dir("s", file("g", deep))))
		}
		root, err := r.SaveTree(ctx, &repo.Tree{Nodes: top})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Commit(ctx, root, repo.CommitInfo{}); err != nil {
			t.Fatal(err)
		}
		return deep
	}
	commit(1)
	deep := commit(2)
	if err := r.Forget(ctx, seqIDs(t, r, 1)); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.LiveBlobs != 300*4+1 || rep.Snapshot == nil {
		t.Errorf("prune: %+v; want %d live blobs", *rep, 300*4+1)
	}
	r2 := verifyPruned(t, env, nil)
	tree, err := r2.LoadTree(ctx, r2.Latest().Tree)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := r2.LoadTree(ctx, tree.Find([]byte("d299")).Subtree)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r2.LoadTree(ctx, sub.Find([]byte("s")).Subtree)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := r2.OpenFile(s.Find([]byte("g"))).CopyTo(ctx, &buf); err != nil || !bytes.Equal(buf.Bytes(), deep) {
		t.Fatalf("d299/s/g after prune: %d bytes, %v", buf.Len(), err)
	}
}

// TestPruneDropsCachedBlobs: the chunks a prune deletes leave the local
// blob cache too (a mount's cache of chunks read), while live ones stay.
func TestPruneDropsCachedBlobs(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, pruneOpts)
	a, b := randomData(16, 1<<20), randomData(17, 1<<20)
	storeFiles(t, env.Repo, map[string][]byte{"a": a})
	storeFiles(t, env.Repo, map[string][]byte{"b": b})
	if err := env.Repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, env.Remote, unlock.WithCode(env.Code), repo.Options{CacheDir: env.CacheDir, CacheSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	read := func(seq uint64, name string) *repo.Node {
		s, err := r.SnapshotBySeq(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		tree, err := r.LoadTree(ctx, s.Tree)
		if err != nil {
			t.Fatal(err)
		}
		n := tree.Find([]byte(name))
		if _, err := r.OpenFile(n).CopyTo(ctx, io.Discard); err != nil {
			t.Fatal(err)
		}
		return n
	}
	na, nb := read(1, "a"), read(2, "b")
	cached := func(n *repo.Node) (in int) {
		for _, e := range n.Content {
			if _, err := os.Stat(filepath.Join(r.StateDir(), "blobs", e.ID.String())); err == nil {
				in++
			}
		}
		return in
	}
	if cached(na) == 0 || cached(nb) == 0 {
		t.Fatalf("nothing cached: %d of a's chunks, %d of b's", cached(na), cached(nb))
	}
	if err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer r.Unlock(ctx) //nolint:errcheck
	if err := r.Forget(ctx, seqIDs(t, r, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(ctx, repo.PruneOptions{MaxUnusedPct: -1}); err != nil {
		t.Fatal(err)
	}
	if n := cached(na); n != 0 {
		t.Errorf("%d chunks of the pruned file stay in the blob cache", n)
	}
	if cached(nb) == 0 {
		t.Error("the live file's chunks left the blob cache")
	}
}

// TestPruneZeroUnused: at --max-unused-pct 0 a repository with nothing to
// free is left alone (a pack's header is not unused space), and a pack
// holding one blob no snapshot needs is repacked.
func TestPruneZeroUnused(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, pruneOpts)
	a, b := randomData(18, 1<<20), randomData(19, 1<<20)
	storeFiles(t, env.Repo, map[string][]byte{"a": a})
	storeFiles(t, env.Repo, map[string][]byte{"a": a, "b": b})
	// The first merges the small packs (each commit's trees); the second
	// has nothing to do.
	if _, err := env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 0}); err != nil {
		t.Fatal(err)
	}
	rep, err := env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepackedPacks+rep.DeletedPacks != 0 || rep.Snapshot != nil || rep.Freed() != 0 {
		t.Fatalf("prune of a repository with nothing unused: %+v", *rep)
	}
	// Snapshot 1's tree alone is garbage now: its pack is repacked.
	if err := env.Repo.Forget(ctx, seqIDs(t, env.Repo, 1)); err != nil {
		t.Fatal(err)
	}
	rep, err = env.Repo.Prune(ctx, repo.PruneOptions{MaxUnusedPct: 0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepackedPacks != 1 || rep.Snapshot == nil {
		t.Fatalf("prune of one dead tree at 0 %%: %+v", *rep)
	}
	verifyPruned(t, env, snapshotFiles{2: {"a": a, "b": b}, 3: {"a": a, "b": b}, 4: {"a": a, "b": b}})
}
