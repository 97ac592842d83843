package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/internal/clidoc"
	"github.com/sealfs/sealfs/internal/mountopts"
)

// TestCLIDocFlags: docs/CLI.md documents every flag of every command of the
// real command tree, and no flag that does not exist (hidden flags are
// exempt: they are for tests and for the daemon's own use). A command's row
// may name global flags it uses too.
func TestCLIDocFlags(t *testing.T) {
	clidoc.CheckFlags(t, clidoc.Read(t, "../../docs/CLI.md", "sealfs"), newRootCmd())
}

// TestHelpTextFlags: a flag that a command's usage line or help text names
// is a flag that command takes (its own or a global one).
func TestHelpTextFlags(t *testing.T) {
	clidoc.CheckHelpText(t, newRootCmd())
}

// TestMountOptionsAreFlags: every option of the mount helper (which
// internal/mountopts checks against docs/SYSTEMD.md) turns into flags that
// `sealfs mount` takes.
func TestMountOptionsAreFlags(t *testing.T) {
	var opts []string
	for _, o := range mountopts.Options() {
		if strings.HasSuffix(o, "=") {
			o += "x"
		}
		opts = append(opts, o)
	}
	p, err := mountopts.Parse([]string{"src", "mnt", "-o", strings.Join(opts, ",")})
	if err != nil {
		t.Fatal(err)
	}
	var mount *cobra.Command
	clidoc.Walk(newRootCmd(), "", func(path string, c *cobra.Command) {
		if path == "mount" {
			mount = c
		}
	})
	flags := 0
	for _, a := range p.Args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "=") // --snapshots-dir= (nosnapshots)
		flags++
		if mount.LocalFlags().Lookup(name) == nil && mount.InheritedFlags().Lookup(name) == nil {
			t.Errorf("mount option gives %s, which sealfs mount does not take", a)
		}
	}
	if flags != len(opts) {
		t.Errorf("%d options gave %d flags", len(opts), flags)
	}
}

// TestJSONSchemasDocumented: every command with --json has its section in
// docs/CLI.md (an example and a table of its fields, consistent with each
// other: clidoc.ReadSchemas checks), and every section is a command's with
// --json. test/json_test.go holds each command's real output to it.
func TestJSONSchemasDocumented(t *testing.T) {
	schemas := clidoc.ReadSchemas(t, "../../docs/CLI.md")
	withFlag := map[string]bool{}
	clidoc.Walk(newRootCmd(), "", func(path string, c *cobra.Command) {
		if c.LocalFlags().Lookup("json") != nil {
			withFlag[path] = true
			if schemas[path] == nil {
				t.Errorf("sealfs %s has --json, but docs/CLI.md has no section \"### `sealfs %s --json`\"", path, path)
			}
		}
	})
	for _, c := range clidoc.Commands(schemas) {
		if !withFlag[c] {
			t.Errorf("docs/CLI.md documents the JSON of sealfs %s, which has no --json", c)
		}
	}
	if len(withFlag) != 11 {
		t.Errorf("%d commands have --json, want 11", len(withFlag))
	}
}
