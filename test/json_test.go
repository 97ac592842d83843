package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealfs/sealfs/internal/clidoc"
)

// TestJSONOutput runs every command that has --json through the real
// binary, and holds its output to the schema docs/CLI.md documents for it
// (the example's fields exactly, each of the table's type: times RFC 3339
// UTC, ids 64 lower-case hex, null only where the table allows it). Errors
// stay on stderr with the usual exit codes, stdout empty.
func TestJSONOutput(t *testing.T) {
	schemas := clidoc.ReadSchemas(t, "../docs/CLI.md")
	tested := map[string]bool{}
	check := func(cmd string, r result, code, n int) []any {
		t.Helper()
		expect(t, r, code, "")
		s := schemas[cmd]
		if s == nil {
			t.Fatalf("docs/CLI.md has no JSON section for %s", cmd)
		}
		tested[cmd] = true
		return s.Check(t, r.stdout, n)
	}
	obj := func(v any) map[string]any { return v.(map[string]any) }

	c := initRepo(t)
	src := t.TempDir()
	writeFileT(t, src, "a", "hello")
	if err := os.Mkdir(filepath.Join(src, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileT(t, filepath.Join(src, "dir"), "b", "bee")
	if err := os.Symlink("a", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	b1 := obj(check("backup", c.run(t, "backup", "--json", src, c.remote), 0, 1)[0])
	if s := obj(b1["snapshot"]); s["seq"].(json.Number).String() != "1" || s["parent"] != nil || b1["files"].(json.Number).String() != "2" {
		t.Errorf("first backup: %v", b1)
	}
	writeFileT(t, src, "a", "hello again")
	writeFileT(t, src, "c", "sea")
	b2 := obj(check("backup", c.run(t, "backup", "--json", src, c.remote), 0, 1)[0])

	snaps := obj(check("snapshots", c.run(t, "snapshots", "--json", c.remote), 0, 1)[0])["snapshots"].([]any)
	if len(snaps) != 2 || obj(snaps[1])["id"] != obj(b2["snapshot"])["id"] || obj(snaps[1])["parent"] != obj(b1["snapshot"])["id"] {
		t.Errorf("snapshots %v after backups %v, %v", snaps, b1, b2)
	}

	slots := obj(check("key list", c.run(t, "key", "list", "--json", c.remote), 0, 1)[0])["slots"].([]any)
	if len(slots) != 1 || obj(slots[0])["kind"] != "recovery-code" {
		t.Errorf("key list: %v", slots)
	}

	// /a /c /dir /dir/b /link
	entries := check("ls", c.run(t, "ls", "--json", "-R", c.remote, "latest"), 0, 5)
	var paths []string
	for _, e := range entries {
		paths = append(paths, obj(e)["path"].(string)+":"+obj(e)["type"].(string))
	}
	if got := strings.Join(paths, " "); got != "/a:file /c:file /dir:dir /dir/b:file /link:symlink" {
		t.Errorf("ls: %s", got)
	}
	check("ls", c.run(t, "ls", "--json", c.remote, "1", "link"), 0, 1)

	changes := check("diff", c.run(t, "diff", "--json", c.remote, "1", "2"), 0, 2)
	if obj(changes[0])["change"] != "M" || obj(changes[0])["path"] != "/a" || obj(changes[1])["change"] != "+" || obj(changes[1])["path"] != "/c" {
		t.Errorf("diff: %v", changes)
	}

	dst := filepath.Join(t.TempDir(), "restored")
	rs := obj(check("restore", c.run(t, "restore", "--json", "--snapshot", "1", c.remote, dst), 0, 1)[0])
	if rs["target"] != dst || obj(rs["snapshot"])["id"] != obj(b1["snapshot"])["id"] {
		t.Errorf("restore: %v", rs)
	}

	ck := obj(check("check", c.run(t, "check", "--json", "--read-data", c.remote), 0, 1)[0])
	if ck["ok"] != true || ck["snapshots"].(json.Number).String() != "2" || ck["data_packs"] != ck["packs"] {
		t.Errorf("check: %v", ck)
	}

	// A subset a byte budget leaves empty reads nothing: the document says so.
	if sub := obj(check("check", c.run(t, "check", "--json", "--read-data-subset", "1", c.remote), 0, 1)[0]); sub["data_packs"] != json.Number("0") {
		t.Errorf("check --read-data-subset 1: %v", sub)
	}

	dry := obj(check("forget", c.run(t, "forget", "--json", "--dry-run", "--keep-last", "1", c.remote), 0, 1)[0])
	fg := obj(check("forget", c.run(t, "forget", "--json", "--keep-last", "1", c.remote), 0, 1)[0])
	for _, f := range []map[string]any{dry, fg} {
		g := obj(f["groups"].([]any)[0])
		if f["forgotten"].(json.Number).String() != "1" || obj(g["remove"].([]any)[0])["id"] != obj(b1["snapshot"])["id"] {
			t.Errorf("forget: %v", f)
		}
	}
	check("forget", c.run(t, "forget", "--json", "--keep-last", "1", c.remote), 0, 1) // nothing left to forget

	pr := obj(check("prune", c.run(t, "prune", "--json", "--max-unused-pct", "0", c.remote), 0, 1)[0])
	if pr["snapshot"] == nil || obj(pr["snapshot"])["prune"] != true {
		t.Errorf("prune: %v", pr)
	}
	check("prune", c.run(t, "prune", "--json", c.remote), 0, 1) // nothing to do: no snapshot
	snaps = obj(check("snapshots", c.run(t, "snapshots", "--json", c.remote), 0, 1)[0])["snapshots"].([]any)
	if len(snaps) != 2 || obj(snaps[1])["prune"] != true {
		t.Errorf("snapshots after prune: %v", snaps)
	}

	// status, of a live mount with a retention policy.
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--keep-last", "10"), 0, "")
	writeFileT(t, mnt, "new", "data")
	waitCommitted(mnt, 30e9)
	// stats beside the mount: it reads only. (The mount's policy forgot
	// the prune's snapshot: the one before it, and the mount's.)
	sts := obj(check("stats", c.run(t, "stats", "--json", c.remote), 0, 1)[0])
	if n := len(sts["snapshots"].([]any)); n != 2 || obj(sts["total"])["remote_bytes"].(json.Number).String() == "0" {
		t.Errorf("stats: %v", sts)
	}
	st := obj(check("status", sealfs(t, nil, "status", "--json", mnt), 0, 1)[0])
	if st["mountpoint"] != mnt || st["forget"] == nil {
		t.Errorf("status: %v", st)
	}
	expect(t, c.umount(t, mnt), 0, "")

	// A damaged pack: the report on stdout, ok false, exit 7.
	packs, _ := filepath.Glob(filepath.Join(c.remote, "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no pack on the remote")
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(packs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	ck = obj(check("check", c.run(t, "check", "--json", "--read-data", c.remote), 7, 1)[0])
	if ck["ok"] != false || len(ck["problems"].([]any)) == 0 || obj(ck["problems"].([]any)[0])["damaged"] != true {
		t.Errorf("check of a damaged pack: %v", ck)
	}

	// An error: on stderr, exit code as without --json, nothing on stdout.
	r := sealfs(t, nil, "snapshots", "--json", "--code-file", c.codeFile, filepath.Join(t.TempDir(), "none"))
	expect(t, r, 5, "")
	if r.stdout != "" {
		t.Errorf("a failed --json command printed %q", r.stdout)
	}

	for _, cmd := range clidoc.Commands(schemas) {
		if !tested[cmd] {
			t.Errorf("the JSON of sealfs %s is not tested", cmd)
		}
	}
}
