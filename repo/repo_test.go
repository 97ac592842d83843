package repo_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/repo"
)

func randomData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// storeFile stores data as /name, alone, in a new snapshot.
func storeFile(t *testing.T, r *repo.Repository, name string, data []byte) *repo.Snapshot {
	t.Helper()
	return storeFiles(t, r, map[string][]byte{name: data})
}

// storeFiles stores the files in one new snapshot.
func storeFiles(t *testing.T, r *repo.Repository, files map[string][]byte) *repo.Snapshot {
	t.Helper()
	ctx := context.Background()
	tree := &repo.Tree{}
	var total uint64
	for name, data := range files {
		content, size, err := r.SaveFile(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		tree.Nodes = append(tree.Nodes, &repo.Node{Name: []byte(name), Type: repo.NodeFile, Mode: 0o644, Size: size, Content: content})
		total += size
	}
	root, err := r.SaveTree(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Commit(ctx, root, repo.CommitInfo{Files: uint64(len(files)), Bytes: total})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readFile reads /name from the newest snapshot.
func readFile(r *repo.Repository, name string) ([]byte, error) {
	ctx := context.Background()
	tree, err := r.LoadTree(ctx, r.Latest().Tree)
	if err != nil {
		return nil, err
	}
	n := tree.Find([]byte(name))
	if n == nil {
		return nil, errors.New("not found")
	}
	var buf bytes.Buffer
	_, err = r.OpenFile(n).CopyTo(ctx, &buf)
	return buf.Bytes(), err
}

func TestInitOpenAndWrongCodes(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	data := randomData(1, 3<<20)
	storeFile(t, env.Repo, "f", data)

	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readFile(r2, "f"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}

	other, _ := crypt.NewRecoveryCode()
	_, err = repo.Open(ctx, testutil.NewRemote(t, env.Dir), unlock.WithCode(other), repo.Options{CacheDir: t.TempDir()})
	if !errors.Is(err, repo.ErrWrongKey) {
		t.Fatalf("open with another code = %v; want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), "does not belong to this repository") {
		t.Fatalf("message %q does not say the code belongs elsewhere", err)
	}

	if _, _, err := repo.Init(ctx, testutil.NewRemote(t, env.Dir), repo.InitOptions{}); !errors.Is(err, repo.ErrRepositoryExists) {
		t.Fatalf("init over a repository = %v; want ErrRepositoryExists", err)
	}
	_, err = repo.Open(ctx, testutil.NewRemote(t, t.TempDir()), unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()})
	if !errors.Is(err, repo.ErrNoRepository) {
		t.Fatalf("open of an empty remote = %v; want ErrNoRepository", err)
	}
}

func TestKeySlots(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	storeFile(t, env.Repo, "f", []byte("content"))
	slots, _ := env.Repo.Slots(ctx)
	if len(slots) != 1 {
		t.Fatalf("new repository has %d slots", len(slots))
	}
	if err := env.Repo.RemoveSlot(ctx, slots[0].ID); !errors.Is(err, repo.ErrLastSlot) {
		t.Fatalf("removing the last slot = %v; want ErrLastSlot", err)
	}
	before := env.Remote.Stats().BytesPut
	code2, id2, err := env.Repo.AddCodeSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if added := env.Remote.Stats().BytesPut - before; added > 4096 {
		t.Fatalf("adding a slot wrote %d bytes: it must not touch data", added)
	}
	// Both codes open; then remove the first, and only the new one opens.
	for _, c := range []crypt.RecoveryCode{env.Code, code2} {
		if _, err := repo.Open(ctx, env.Remote, unlock.WithCode(c), repo.Options{CacheDir: t.TempDir()}); err != nil {
			t.Fatalf("open with a valid code: %v", err)
		}
	}
	if err := env.Repo.RemoveSlot(ctx, slots[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, env.Remote, unlock.WithCode(env.Code), repo.Options{CacheDir: t.TempDir()}); !errors.Is(err, repo.ErrWrongKey) {
		t.Fatalf("removed code still opens: %v", err)
	}
	r, err := repo.Open(ctx, env.Remote, unlock.WithCode(code2), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readFile(r, "f"); err != nil || string(got) != "content" {
		t.Fatalf("data after slot rotation: %q, %v", got, err)
	}
	if left, _ := r.Slots(ctx); len(left) != 1 || left[0].ID != id2 {
		t.Fatalf("slots after removal: %v", left)
	}
}

// TestDedup stores a 64 MiB file, then the same file with 1 MiB changed in
// the middle: the second store must send less than 4 MiB (rclone crypt
// would send 64 MiB).
func TestDedup(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	data := randomData(7, 64<<20)
	storeFile(t, env.Repo, "big", data)
	first := env.Remote.Stats().BytesPut
	if first < 64<<20 {
		t.Fatalf("first store sent only %d bytes", first)
	}
	changed := bytes.Clone(data)
	copy(changed[32<<20:], randomData(8, 1<<20))
	storeFile(t, env.Repo, "big", changed)
	second := env.Remote.Stats().BytesPut - first
	t.Logf("first store %d bytes, second store %d bytes", first, second)
	if second >= 4<<20 {
		t.Fatalf("storing the changed file sent %d bytes, want < 4 MiB", second)
	}
	// An identical file in another snapshot sends almost nothing.
	storeFile(t, env.Repo, "copy", changed)
	if third := env.Remote.Stats().BytesPut - first - second; third > 64<<10 {
		t.Fatalf("storing an identical file sent %d bytes", third)
	}
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readFile(r2, "copy"); err != nil || !bytes.Equal(got, changed) {
		t.Fatalf("read back after dedup: %v", err)
	}
}

// TestNoPlaintextOnRemote stores files with marker names and contents and
// greps every byte on the remote for them.
func TestNoPlaintextOnRemote(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	marker := "SEALFS-PLAINTEXT-MARKER-7f3a"
	content := bytes.Repeat([]byte(marker+" compressible line\n"), 20000)
	storeFile(t, env.Repo, "file-named-"+marker+".txt", content)
	storeFile(t, env.Repo, "second-"+marker, []byte(marker))
	err := filepath.WalkDir(env.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(p, marker) {
			t.Errorf("object name %s holds the marker", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, needle := range []string{marker, "compressible line", "file-named", "SEALFS-PLAINTEXT"} {
			if bytes.Contains(b, []byte(needle)) || bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(needle))) {
				t.Errorf("%s holds plaintext %q", p, needle)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLease(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	r2, err := env.Reopen(t, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.SaveBlob(ctx, crypt.TypeDataBlob, []byte("x")); !errors.Is(err, repo.ErrReadOnly) {
		t.Fatalf("write without the lease = %v; want ErrReadOnly", err)
	}
	err = r2.Lock(ctx, false)
	if !errors.Is(err, repo.ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second writer = %v; want ErrLocked naming the holder", err)
	}
	// Breaking the lease lets the second writer in.
	if err := r2.Lock(ctx, true); err != nil {
		t.Fatal(err)
	}
	storeFile(t, r2, "from-second", []byte("2"))
	if err := r2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := r2.ReadLease(ctx); err != nil || l != nil {
		t.Fatalf("lease after unlock: %v, %v", l, err)
	}
}

// TestLeaseOfDeadProcessIsTakenOver: a writer killed on this host leaves a
// lease that the next writer on the same host takes without a flag.
func TestLeaseOfDeadProcessIsTakenOver(t *testing.T) {
	ctx := context.Background()
	env := testutil.NewRepo(t, repo.InitOptions{})
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := cmd.Process.Pid
	if err := env.Repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	r2, _ := env.Reopen(t, "", false)
	if err := r2.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	// Forge the situation: rewrite our lease with the dead pid.
	if err := repo.SetLeasePIDForTest(ctx, r2, deadPID); err != nil {
		t.Fatal(err)
	}
	r3, _ := env.Reopen(t, "", false)
	if err := r3.Lock(ctx, false); err != nil {
		t.Fatalf("lease of a dead process on this host was not taken over: %v", err)
	}
	_ = r3.Unlock(ctx)
}

// snapshots returns r's snapshots (Repository.Snapshots), failing the test
// on an error.
func snapshots(t testing.TB, r *repo.Repository) []*repo.Snapshot {
	t.Helper()
	s, err := r.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
