package worktree_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/worktree"
	"github.com/sealfs/sealfs/repo"
)

// TestReplayLinkRecords: link records are replayed (a name given to a
// file survives the unlink of the first name) and checked like the other
// records: one without a target or with a path that is no path is refused
// as malformed; one that links a directory, or a name that is not there,
// is not replayed and changes nothing. The hostile records come in a
// plaintext journal of an older sealfs, as in TestHostileJournalRecord.
func TestReplayLinkRecords(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{})
	work := t.TempDir()
	var journal bytes.Buffer
	for _, line := range []string{
		`{"op":"base","seq":0}`,
		`{"op":"create","path":"ZGly","meta":{"Type":2,"Mode":493}}`,     // "dir"
		`{"op":"create","path":"dmljdGlt","meta":{"Type":1,"Mode":420}}`, // "victim"
		`{"op":"link","path":"dmljdGlt","to":"ZGlyL29r"}`,                // victim -> dir/ok
		`{"op":"link","path":"dmljdGlt","to":"dmljdGltMg=="}`,            // victim -> victim2
		`{"op":"unlink","path":"dmljdGlt"}`,                              // victim
		`{"op":"link","path":"ZGlyL29r"}`,                                // no target
		`{"op":"link","path":"ZGlyL29r","to":"YS8vYg=="}`,                // dir/ok -> "a//b"
		`{"op":"link","path":"ZGly","to":"ZGxpbms="}`,                    // dir -> dlink
		`{"op":"link","path":"bWlzc2luZw==","to":"eA=="}`,                // missing -> x
	} {
		journal.WriteString(line + "\n")
	}
	if err := os.WriteFile(filepath.Join(work, "journal.0000000000000001"), journal.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	tr, err := worktree.Open(context.Background(), env.Repo, worktree.Options{Dir: work, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	dir, _, err := tr.Lookup(ctx, tr.Root(), "dir")
	if err != nil {
		t.Fatal(err)
	}
	ok, a, err := tr.Lookup(ctx, dir, "ok")
	if err != nil {
		t.Fatal(err)
	}
	v2, a2, err := tr.Lookup(ctx, tr.Root(), "victim2")
	if err != nil || v2 != ok || a.Nlink != 2 || a2.Nlink != 2 {
		t.Fatalf("dir/ok and victim2: one inode %v, nlink %d and %d, %v; want one inode with nlink 2", v2 == ok, a.Nlink, a2.Nlink, err)
	}
	for _, name := range []string{"victim", "dlink", "x", "a"} {
		if _, _, err := tr.Lookup(ctx, tr.Root(), name); err == nil {
			t.Errorf("%q is there after the replay", name)
		}
	}
	if d := tr.Attr(dir); d.Nlink != 2 {
		t.Errorf("dir: nlink %d after a refused link of it, want 2", d.Nlink)
	}
	log := logBuf.String()
	if n := strings.Count(log, "malformed journal record"); n != 2 {
		t.Errorf("%d malformed records logged, want 2:\n%s", n, log)
	}
	if n := strings.Count(log, "journal record could not be replayed"); n != 4 {
		t.Errorf("%d records not replayed, want 4:\n%s", n, log)
	}
}
