// Package layering checks, as a test, that sealfs' packages import each
// other only downwards: crypt and chunker import nothing of ours, remote
// knows nothing above it, repo sees only the remote interface, and nothing
// imports the command or the end-to-end tests.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sealfs/sealfs/"

// allowed lists, per package (prefix match on the name inside the module),
// which of our packages it may import (prefix match too).
var allowed = map[string][]string{
	"crypt":                        {},
	"chunker":                      {},
	"remote":                       {"remote"},
	"repo":                         {"crypt", "chunker", "remote", "repo/format", "internal/atomicfile"},
	"repo/format":                  {"crypt", "chunker"}, // pure codecs; chunker: the config holds and validates its parameters
	"keyvault":                     {"crypt"},
	"internal/archiver":            {"repo", "crypt"},
	"internal/worktree":            {"repo", "crypt", "internal/worktree/sealedfile", "internal/atomicfile"},
	"internal/worktree/sealedfile": {"crypt"},
	"internal/fusefs":              {"internal/worktree", "repo", "crypt", "remote"}, // remote: the interface's error kinds only
	"internal/daemon":              {"internal/fusefs", "internal/worktree", "internal/humanize", "repo", "crypt", "remote", "internal/atomicfile"},
	"internal/humanize":            {},
	"internal/mountopts":           {},
	"internal/sdnotify":            {},
	"internal/atomicfile":          {},
	"internal/unlock":              {"repo", "crypt", "keyvault"}, // secret sources, both unlockers, the vault slot's params
	"internal/testutil":            {"crypt", "remote", "repo", "internal/unlock"},
	"internal/layering":            {},
	"cmd/sealfs":                   {"crypt", "chunker", "remote", "repo", "keyvault", "internal/archiver", "internal/worktree", "internal/fusefs", "internal/daemon", "internal/humanize", "internal/mountopts", "internal/sdnotify", "internal/unlock"},
	"test":                         {"crypt", "remote", "repo", "internal/archiver", "internal/testutil", "internal/worktree", "internal/fusefs", "internal/unlock"},
}

func TestImportsGoDownwards(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		rule, ok := ruleFor(pkg)
		if !ok {
			t.Errorf("package %s has no layering rule: add it to allowed", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if !matches(dep, rule) {
				t.Errorf("%s imports %s, which its layer may not", pkg, dep)
			}
		}
	}
	// remote's own tree: the interface package must not import its wrappers,
	// and repo and fs must use only the interface, never a concrete backend
	// or a wrapper.
	for _, bad := range [][2]string{{"repo", "remote/rcloneremote"}, {"remote", "remote/rcloneremote"}, {"internal/fusefs", "remote/"}} {
		out, _ := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, module+bad[0]).Output()
		if strings.Contains(string(out), module+bad[1]) {
			t.Errorf("%s imports %s", bad[0], bad[1])
		}
	}
}

func ruleFor(pkg string) ([]string, bool) {
	best, found := "", false
	for prefix := range allowed {
		if (pkg == prefix || strings.HasPrefix(pkg, prefix+"/")) && len(prefix) >= len(best) {
			best, found = prefix, true
		}
	}
	return allowed[best], found
}

func matches(dep string, rule []string) bool {
	for _, r := range rule {
		if dep == r || strings.HasPrefix(dep, r+"/") {
			return true
		}
	}
	return false
}
