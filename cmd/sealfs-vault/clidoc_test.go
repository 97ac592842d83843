package main

import (
	"testing"

	"github.com/sealfs/sealfs/internal/clidoc"
)

// TestCLIDocFlags: docs/CLI.md's part about sealfs-vault documents every
// flag of its real command tree, and no flag that does not exist.
func TestCLIDocFlags(t *testing.T) {
	doc := clidoc.Read(t, "../../docs/CLI.md", "sealfs-vault")
	if len(doc.Commands) == 0 {
		t.Fatal("CLI.md has no part about sealfs-vault (a heading \"sealfs-vault serve\")")
	}
	clidoc.CheckFlags(t, doc, newRootCmd())
}

// TestHelpTextFlags: a flag that a command's usage line or help text names
// is a flag that command takes.
func TestHelpTextFlags(t *testing.T) {
	clidoc.CheckHelpText(t, newRootCmd())
}
