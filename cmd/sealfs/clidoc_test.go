package main

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealfs/sealfs/internal/mountopts"
)

// cliDoc is what docs/CLI.md says about the commands' flags.
type cliDoc struct {
	global   []string            // the "Global flags" table
	commands map[string][]string // command path ("key add-code") -> its flags
	mentions []string            // every --flag written anywhere in the document
}

var (
	flagRE    = regexp.MustCompile("--([a-z][a-z0-9-]*)")
	headingRE = regexp.MustCompile(`^#{2,3} (.*)$`)
)

// readCLIDoc parses docs/CLI.md by these rules, which the document keeps:
//   - the table under the heading "Global flags" lists the global flags,
//     one a row, in its first column;
//   - a row of the "Commands" table whose first column starts with
//     "`sealfs WORDS" documents the command WORDS (the words up to the
//     first argument, flag or "[" ), and the flags named in that column
//     are flags of that command;
//   - a table under a heading "sealfs WORDS" lists more flags of that
//     command in its first column.
func readCLIDoc(t *testing.T, path string) cliDoc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := cliDoc{commands: map[string][]string{}}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		for _, m := range flagRE.FindAllStringSubmatch(line, -1) {
			doc.mentions = append(doc.mentions, m[1])
		}
		if m := headingRE.FindStringSubmatch(line); m != nil {
			section = strings.Trim(m[1], "` ")
			continue
		}
		if !strings.HasPrefix(line, "|") {
			continue
		}
		first := strings.SplitN(strings.TrimPrefix(line, "|"), "|", 2)[0]
		flags := flagsIn(first)
		switch {
		case section == "Global flags":
			doc.global = append(doc.global, flags...)
		case section == "Commands" && strings.HasPrefix(strings.TrimSpace(first), "`sealfs "):
			path := commandPath(strings.TrimPrefix(strings.TrimSpace(first), "`sealfs "))
			doc.commands[path] = append(doc.commands[path], flags...)
		case strings.HasPrefix(section, "sealfs "):
			path := commandPath(strings.TrimPrefix(section, "sealfs "))
			doc.commands[path] = append(doc.commands[path], flags...)
		}
	}
	return doc
}

func flagsIn(s string) []string {
	var out []string
	for _, m := range flagRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// commandPath returns the leading lower-case words of a usage line: the
// command's path below sealfs.
func commandPath(usage string) string {
	var words []string
	for _, w := range strings.Fields(strings.Trim(usage, "`")) {
		if !regexp.MustCompile(`^[a-z][a-z-]*$`).MatchString(w) {
			break
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// visibleFlags returns the names of the flags in fs that --help shows.
func visibleFlags(fs *pflag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Name != "help" {
			out = append(out, f.Name)
		}
	})
	return out
}

// walk calls fn for every command below root that a user can run or see,
// with its path below root; cobra's own help and completion commands are
// left out.
func walk(c *cobra.Command, path string, fn func(path string, c *cobra.Command)) {
	for _, sub := range c.Commands() {
		if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
			continue
		}
		p := strings.TrimSpace(path + " " + sub.Name())
		fn(p, sub)
		walk(sub, p, fn)
	}
}

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return slices.Compact(s)
}

// TestCLIDocFlags: docs/CLI.md documents every flag of every command of the
// real command tree, and no flag that does not exist (hidden flags are
// exempt: they are for tests and for the daemon's own use). A command's row
// may name global flags it uses too.
func TestCLIDocFlags(t *testing.T) {
	doc := readCLIDoc(t, "../../docs/CLI.md")
	root := newRootCmd()
	if got, want := sortedSet(doc.global), sortedSet(visibleFlags(root.PersistentFlags())); !slices.Equal(got, want) {
		t.Errorf("CLI.md global flags %v, the command has %v", got, want)
	}
	if local := visibleFlags(root.LocalNonPersistentFlags()); len(local) > 0 {
		t.Errorf("sealfs has flags %v that are not global; CLI.md has no place for them", local)
	}
	seen := map[string]bool{}
	all := map[string]bool{}
	for _, f := range visibleFlags(root.PersistentFlags()) {
		all[f] = true
	}
	walk(root, "", func(path string, c *cobra.Command) {
		seen[path] = true
		own := visibleFlags(c.LocalFlags())
		for _, f := range own {
			all[f] = true
		}
		documented, ok := doc.commands[path]
		if !ok {
			if c.Runnable() {
				t.Errorf("sealfs %s is not in CLI.md's Commands table", path)
			}
			return
		}
		for _, f := range own {
			if !slices.Contains(documented, f) {
				t.Errorf("CLI.md does not document --%s of sealfs %s", f, path)
			}
		}
		for _, f := range documented {
			if !slices.Contains(own, f) && !slices.Contains(doc.global, f) {
				t.Errorf("CLI.md gives sealfs %s the flag --%s, which it does not have", path, f)
			}
		}
	})
	for path := range doc.commands {
		if !seen[path] {
			t.Errorf("CLI.md documents sealfs %s, which does not exist", path)
		}
	}
	for _, f := range sortedSet(doc.mentions) {
		if !all[f] && f != "help" {
			t.Errorf("CLI.md mentions --%s, which no command has", f)
		}
	}
}

// TestHelpTextFlags: a flag that a command's usage line or help text names
// is a flag that command takes (its own or a global one).
func TestHelpTextFlags(t *testing.T) {
	root := newRootCmd()
	check := func(path string, c *cobra.Command) {
		for _, f := range flagsIn(c.Use + "\n" + c.Short + "\n" + c.Long) {
			if c.LocalFlags().Lookup(f) == nil && c.InheritedFlags().Lookup(f) == nil {
				t.Errorf("the help of sealfs %s names --%s, which it does not take", path, f)
			}
		}
	}
	check("", root)
	walk(root, "", check)
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
	walk(newRootCmd(), "", func(path string, c *cobra.Command) {
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
		flags++
		if mount.LocalFlags().Lookup(name) == nil && mount.InheritedFlags().Lookup(name) == nil {
			t.Errorf("mount option gives %s, which sealfs mount does not take", a)
		}
	}
	if flags != len(opts) {
		t.Errorf("%d options gave %d flags", len(opts), flags)
	}
}
