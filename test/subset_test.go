package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// wholeReads counts the whole-object reads of packs (offset 0 to the end)
// that pass through it.
type wholeReads struct {
	remote.Remote
	mu sync.Mutex
	n  map[string]int
}

func (w *wholeReads) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	b, err := w.Remote.Get(ctx, name, offset, length)
	if err == nil && offset == 0 && strings.HasPrefix(name, format.DataDir) {
		if size, serr := w.Stat(ctx, name); serr == nil && size == int64(len(b)) {
			w.mu.Lock()
			w.n[name]++
			w.mu.Unlock()
		}
	}
	return b, err
}

// TestCheckReadDataSubset: the groups 1/3, 2/3 and 3/3 download every pack
// exactly once between them (counted on the remote); bad subsets are
// usage errors; a damaged pack is found by the run whose group holds it.
func TestCheckReadDataSubset(t *testing.T) {
	c := initRepo(t)
	src := t.TempDir()
	for i := range 12 { // a backup each: a pack each
		if err := os.WriteFile(filepath.Join(src, "f"), []byte(strings.Repeat(string(rune('a'+i)), 1000+i)), 0o644); err != nil {
			t.Fatal(err)
		}
		expect(t, c.run(t, "backup", src, c.remote), 0, "")
	}
	packs, _ := filepath.Glob(filepath.Join(c.remote, "data", "*", "*"))
	if len(packs) < 12 {
		t.Fatalf("%d packs, want 12 or more", len(packs))
	}

	_, rem := c.openInProcess(t)
	raw, _ := os.ReadFile(c.codeFile)
	code, err := crypt.ParseRecoveryCode(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	counted := &wholeReads{Remote: rem, n: map[string]int{}}
	r, err := repo.Open(context.Background(), counted, unlock.WithCode(code), repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	groups := map[int]int{}
	for n := 1; n <= 3; n++ {
		d, err := repo.ParseDataSubset(fmt.Sprintf("%d/3", n))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true, DataSubset: &d})
		if err != nil || !rep.OK() {
			t.Fatalf("check %d/3: %v %v", n, err, rep.Problems)
		}
		groups[n] = len(rep.DataPacks)
	}
	for _, p := range packs {
		name, _ := filepath.Rel(c.remote, p)
		if got := counted.n[filepath.ToSlash(name)]; got != 1 {
			t.Errorf("pack %s downloaded %d times by 1/3, 2/3, 3/3; want once", name, got)
		}
	}
	if len(counted.n) != len(packs) {
		t.Errorf("%d packs downloaded, the remote holds %d", len(counted.n), len(packs))
	}
	t.Logf("%d packs in groups of %v", len(packs), groups)

	for _, bad := range []string{"0/3", "4/3", "1/0", "x/3", "1/3/4", "0%", "101%", "abc", "-5M", "0", "5X"} {
		expect(t, c.run(t, "check", "--read-data-subset", bad, c.remote), 2, "read-data subset")
	}
	expect(t, c.run(t, "check", "--read-data", "--read-data-subset", "1/2", c.remote), 2, "")
	r1 := c.run(t, "check", "--read-data-subset", "50%", c.remote)
	expect(t, r1, 0, "")
	if want := "read the data of 6 of 12 packs"; len(packs) == 12 && !strings.Contains(r1.stdout, want) {
		t.Errorf("check 50%%: %s (want %q)", r1.stdout, want)
	}
	expect(t, c.run(t, "check", "--read-data-subset", "1k", c.remote), 0, "")

	// Damage one pack's first chunk (its header stays good): only the
	// run whose group holds it finds it.
	b, _ := os.ReadFile(packs[0])
	b[10] ^= 0xff
	os.WriteFile(packs[0], b, 0o644)
	found := 0
	for _, sub := range []string{"1/3", "2/3", "3/3"} {
		res := c.run(t, "check", "--read-data-subset", sub, c.remote)
		switch res.code {
		case 7:
			found++
			if !strings.Contains(res.stdout, filepath.Base(packs[0])) {
				t.Errorf("check %s did not name the damaged pack:\n%s", sub, res.stdout)
			}
		case 0:
		default:
			t.Fatalf("check %s: exit %d %s %s", sub, res.code, res.stdout, res.stderr)
		}
	}
	if found != 1 {
		t.Errorf("the damaged pack was found by %d of the runs 1/3..3/3, want 1", found)
	}
	expect(t, c.run(t, "check", "--read-data-subset", "100%", c.remote), 7, "problems found")
}
