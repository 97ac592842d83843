// Package layering checks, as a test, that sealfs' packages import each
// other only downwards: crypt and chunker import nothing of ours, remote
// knows nothing above it, repo sees only the remote interface, and nothing
// imports the command or the end-to-end tests, and every package's tests
// are held to a rule of their own (testAllowed); that the vault's server
// (internal/vaultserver, cgo) is linked by sealfs-vault alone, so that
// sealfs and the vault client (keyvault) build without cgo.
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
	"remote/shaped":                {"remote"}, // a slow link for benchmarks: the interface only
	"remote/bwlimit":               {"remote"}, // --bwlimit: the interface and shaped's token bucket
	"repo":                         {"crypt", "chunker", "remote", "repo/format", "internal/atomicfile"},
	"repo/format":                  {"crypt", "chunker"},                         // pure codecs; chunker: the config holds and validates its parameters
	"keyvault":                     {"crypt", "keyvault/shamir"},                 // the vault's client and protocol: pure Go, never the server
	"keyvault/shamir":              {},                                           // k-of-n secret sharing, for the client's shared vault slots
	"internal/vaultserver":         {"keyvault", "crypt", "internal/atomicfile"}, // the vault's HSM (cgo), database, HTTP: for sealfs-vault only
	"internal/archiver":            {"repo", "crypt"},
	"internal/worktree":            {"repo", "crypt", "internal/worktree/sealedfile", "internal/atomicfile"},
	"internal/worktree/sealedfile": {"crypt"},
	"internal/fusefs":              {"internal/worktree", "repo", "crypt", "remote"}, // remote: the interface's error kinds only
	"internal/daemon":              {"internal/fusefs", "internal/worktree", "internal/humanize", "internal/mountopts", "internal/retention", "repo", "crypt", "remote", "internal/atomicfile"},
	"internal/humanize":            {},
	"internal/progress":            {"internal/humanize"},
	"internal/mountopts":           {},
	"internal/retention":           {"repo", "crypt"}, // policies (pure) and applying one to a repository
	"internal/snaptree":            {"repo", "crypt"}, // ls and diff of snapshot trees
	"internal/sdnotify":            {},
	"internal/atomicfile":          {},
	"internal/unlock":              {"repo", "crypt", "keyvault"}, // secret sources, both unlockers, the vault slot's params
	"internal/testutil":            {"crypt", "remote", "repo", "internal/unlock"},
	"internal/layering":            {},
	"internal/clidoc":              {}, // docs/CLI.md against the commands' flags, for their tests
	"internal/nodump":              {}, // no core dumps, not dumpable: both commands, first
	"internal/pgtest":              {}, // a throwaway PostgreSQL cluster, for the vault's tests
	"cmd/sealfs-vault":             {"internal/vaultserver", "keyvault", "internal/nodump"},
	"cmd/sealfs":                   {"crypt", "chunker", "remote", "remote/shaped", "repo", "keyvault", "internal/archiver", "internal/worktree", "internal/fusefs", "internal/daemon", "internal/humanize", "internal/progress", "internal/mountopts", "internal/retention", "internal/snaptree", "internal/sdnotify", "internal/unlock", "internal/nodump"},
	"test":                         {"crypt", "chunker", "remote", "repo", "internal/archiver", "internal/testutil", "internal/worktree", "internal/fusefs", "internal/daemon", "internal/unlock"},
	"test/spec":                    {},
}

// testAllowed lists, for every package (prefix match, as allowed), what its tests (in the package
// and _test) may import beyond the package's own rule and the package
// itself. Tests may reach for real parts beside them (a remote wrapper, a
// repository made by testutil, an unlocker), never upwards into the code
// that uses the package under test.
var testAllowed = map[string][]string{
	"crypt":                        {},
	"chunker":                      {},
	"remote":                       {},
	"remote/shaped":                {"remote/remotetest"},    // the conformance suite
	"remote/bwlimit":               {"remote/remotetest"},    // the conformance suite
	"remote/mirror":                {"crypt", "repo/format"}, // the mirror's callers name the repository's objects; its tests do too
	"repo/format":                  {},
	"repo":                         {"internal/testutil", "internal/unlock", "remote"}, // real remotes, wrappers and unlockers
	"keyvault":                     {},                                                 // the client's tests run without the server, and without cgo
	"internal/vaultserver":         {"internal/pgtest"},                                // the stores' tests run on a real PostgreSQL too
	"internal/unlock":              {"internal/testutil", "internal/vaultserver"},      // a real vault for the vault unlocker
	"internal/archiver":            {"internal/testutil"},
	"internal/worktree":            {"internal/testutil", "internal/unlock", "remote"},
	"internal/worktree/sealedfile": {"internal/testutil"},
	"internal/fusefs":              {"internal/testutil", "internal/unlock", "remote"}, // real remotes behind slow or failing wrappers
	"internal/daemon":              {"internal/testutil", "internal/unlock", "remote"},
	"internal/humanize":            {},
	"internal/progress":            {},
	"internal/mountopts":           {},
	"internal/retention":           {},
	"internal/snaptree":            {"internal/testutil", "internal/archiver"}, // trees stored from real folders
	"internal/sdnotify":            {},
	"internal/atomicfile":          {},
	"internal/testutil":            {},
	"internal/layering":            {},
	"internal/clidoc":              {},
	"internal/nodump":              {},
	"internal/pgtest":              {},
	"cmd/sealfs-vault":             {"internal/clidoc"},
	"cmd/sealfs":                   {"internal/clidoc"},                                                        // sealfs's tests build without cgo too
	"test":                         {"internal/clidoc", "internal/pgtest", "internal/vaultserver", "keyvault"}, // TestJSONOutput holds the commands' JSON to docs/CLI.md; the vault's end-to-end tests start PostgreSQL, read a stolen token and database as a thief would, and combine shares
	"test/spec":                    {"internal/testutil"},                                                      // the manifest's types only: the reader itself is SPEC and the standard library
}

func TestImportsGoDownwards(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}} | {{join .TestImports " "}} {{join .XTestImports " "}}`, module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		rule, ok := ruleFor(allowed, pkg)
		if !ok {
			t.Errorf("package %s has no layering rule: add it to allowed", pkg)
			continue
		}
		imports, testImports, _ := strings.Cut(strings.Join(fields[1:], " "), "|")
		for _, dep := range ours(imports) {
			if !matches(dep, rule) {
				t.Errorf("%s imports %s, which its layer may not", pkg, dep)
			}
		}
		extra, ok := ruleFor(testAllowed, pkg)
		if !ok {
			t.Errorf("package %s has no rule for its tests: add it to testAllowed", pkg)
			continue
		}
		for _, dep := range ours(testImports) {
			if dep != pkg && !matches(dep, rule) && !matches(dep, extra) {
				t.Errorf("the tests of %s import %s, which its layer may not", pkg, dep)
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

// ours returns the packages of this module in a space-separated list of
// import paths, by their names inside the module.
func ours(imports string) []string {
	var out []string
	for _, imp := range strings.Fields(imports) {
		if dep, ok := strings.CutPrefix(imp, module); ok {
			out = append(out, dep)
		}
	}
	return out
}

// ruleFor returns the rule in rules for pkg: that of the longest name
// that is pkg or a folder above it.
func ruleFor(rules map[string][]string, pkg string) ([]string, bool) {
	best, found := "", false
	for prefix := range rules {
		if (pkg == prefix || strings.HasPrefix(pkg, prefix+"/")) && len(prefix) >= len(best) {
			best, found = prefix, true
		}
	}
	return rules[best], found
}

func matches(dep string, rule []string) bool {
	for _, r := range rule {
		if dep == r || strings.HasPrefix(dep, r+"/") {
			return true
		}
	}
	return false
}

// TestNoCgoInSealfs: no package that sealfs links, or its tests link, has
// cgo files (the standard library's net, os/user and runtime/cgo aside:
// they have pure-Go fallbacks), so `CGO_ENABLED=0 go build ./cmd/sealfs`
// makes one static binary; neither do keyvault and its tests. The same
// check finds the PKCS#11 cgo package in sealfs-vault, so it can fail.
func TestNoCgoInSealfs(t *testing.T) {
	for _, pkg := range []string{"cmd/sealfs", "keyvault"} {
		for _, chain := range cgoPackages(t, pkg) {
			t.Errorf("%s links cgo: %s", pkg, strings.Join(chain, " -> "))
		}
	}
	if found := cgoPackages(t, "cmd/sealfs-vault"); len(found) == 0 {
		t.Error("the check finds no cgo in sealfs-vault, which links PKCS#11 through cgo: it is broken")
	}
}

// cgoPackages returns, for every package outside the standard library with
// cgo files in pkg's import closure (its tests' imports included), the
// chain of imports from pkg to it.
func cgoPackages(t *testing.T, pkg string) [][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-test", "-f",
		`{{.ImportPath}}|{{.Standard}}|{{len .CgoFiles}}|{{join .Imports ","}}`, module+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := map[string][]string{}
	var cgo []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		imports[f[0]] = strings.Split(f[3], ",")
		if f[1] == "false" && f[2] != "0" {
			cgo = append(cgo, f[0])
		}
	}
	var chains [][]string
	for _, c := range cgo {
		chains = append(chains, importChain(imports, module+pkg, c))
	}
	return chains
}

// importChain finds a shortest chain of imports from one package to
// another (breadth first); the test variants of from count as from.
func importChain(imports map[string][]string, from, to string) []string {
	prev := map[string]string{}
	var queue []string
	for p := range imports {
		if p == from || strings.HasPrefix(p, from+" [") || strings.HasPrefix(p, from+"_test [") {
			prev[p], queue = "", append(queue, p)
		}
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append([]string{strings.TrimPrefix(p, module)}, chain...)
			}
			return chain
		}
		for _, next := range imports[p] {
			if _, seen := prev[next]; !seen && next != "" {
				prev[next], queue = p, append(queue, next)
			}
		}
	}
	return []string{from, "...", to}
}
