// Package clidoc holds docs/CLI.md to the commands' real flags, for the
// tests of both commands (cmd/sealfs and cmd/sealfs-vault): it reads what
// the document says about one command's flags, and reports every flag the
// document names that the command lacks, and every flag of the command
// that the document does not name.
package clidoc

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// mainCommand owns every part of docs/CLI.md that is not under a heading
// naming another command.
const mainCommand = "sealfs"

// Doc is what docs/CLI.md says about one command's flags.
type Doc struct {
	Global   []string            // the "Global flags" table (the main command's only)
	Commands map[string][]string // subcommand path ("key add-code") -> its flags
	Mentions []string            // every --flag written in the command's parts of the document
}

var (
	flagRE    = regexp.MustCompile("--([a-z][a-z0-9-]*)")
	headingRE = regexp.MustCompile(`^#{2,3} (.*)$`)
	wordRE    = regexp.MustCompile(`^[a-z][a-z-]*$`)
)

// Read parses the document at path for the command name ("sealfs" or
// "sealfs-vault") by these rules, which the document keeps:
//   - a heading whose first word is a command ("sealfs-vault serve")
//     starts that command's part; every other part is sealfs's;
//   - the table under the heading "Global flags" lists sealfs's global
//     flags, one a row, in its first column;
//   - a row of the "Commands" table whose first column starts with
//     "`NAME WORDS" documents the subcommand WORDS (the words up to the
//     first argument, flag or "[" ), and the flags named in that column
//     are flags of that subcommand;
//   - a table under a heading "NAME WORDS" lists more flags of that
//     subcommand in its first column.
func Read(t testing.TB, path, name string) Doc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := Doc{Commands: map[string][]string{}}
	section, owner := "", mainCommand
	for _, line := range strings.Split(string(b), "\n") {
		if m := headingRE.FindStringSubmatch(line); m != nil {
			section = strings.Trim(m[1], "` ")
			owner = mainCommand
			if first, _, _ := strings.Cut(section, " "); strings.HasPrefix(first, mainCommand) {
				owner = first
			}
			continue
		}
		if owner != name {
			continue
		}
		doc.Mentions = append(doc.Mentions, FlagsIn(line)...)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		first := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(line, "|"), "|", 2)[0])
		switch {
		case section == "Global flags":
			doc.Global = append(doc.Global, FlagsIn(first)...)
		case section == "Commands" && strings.HasPrefix(first, "`"+name+" "):
			path := commandPath(strings.TrimPrefix(first, "`"+name+" "))
			doc.Commands[path] = append(doc.Commands[path], FlagsIn(first)...)
		case strings.HasPrefix(section, name+" "):
			path := commandPath(strings.TrimPrefix(section, name+" "))
			doc.Commands[path] = append(doc.Commands[path], FlagsIn(first)...)
		}
	}
	return doc
}

// FlagsIn returns the names of the flags (--name) written in s.
func FlagsIn(s string) []string {
	var out []string
	for _, m := range flagRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// commandPath returns the leading lower-case words of a usage line: the
// subcommand's path below the command.
func commandPath(usage string) string {
	var words []string
	for _, w := range strings.Fields(strings.Trim(usage, "`")) {
		if !wordRE.MatchString(w) {
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

// Walk calls fn for every command below root that a user can run or see,
// with its path below root; cobra's own help and completion commands are
// left out.
func Walk(c *cobra.Command, path string, fn func(path string, c *cobra.Command)) {
	for _, sub := range c.Commands() {
		if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
			continue
		}
		p := strings.TrimSpace(path + " " + sub.Name())
		fn(p, sub)
		Walk(sub, p, fn)
	}
}

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return slices.Compact(s)
}

// CheckFlags reports every disagreement between doc and the command tree
// under root: each flag of each subcommand is documented, no documented
// flag is missing from its subcommand (a subcommand's row may name global
// flags it uses too), every runnable subcommand is documented, and every
// flag mentioned exists. Hidden flags are exempt: they are for tests and
// for the command's own use.
func CheckFlags(t testing.TB, doc Doc, root *cobra.Command) {
	t.Helper()
	name := root.Name()
	if got, want := sortedSet(doc.Global), sortedSet(visibleFlags(root.PersistentFlags())); !slices.Equal(got, want) {
		t.Errorf("CLI.md global flags of %s %v, the command has %v", name, got, want)
	}
	if local := visibleFlags(root.LocalNonPersistentFlags()); len(local) > 0 {
		t.Errorf("%s has flags %v that are not global; CLI.md has no place for them", name, local)
	}
	seen := map[string]bool{}
	all := map[string]bool{}
	for _, f := range visibleFlags(root.PersistentFlags()) {
		all[f] = true
	}
	Walk(root, "", func(path string, c *cobra.Command) {
		seen[path] = true
		own := visibleFlags(c.LocalFlags())
		for _, f := range own {
			all[f] = true
		}
		documented, ok := doc.Commands[path]
		if !ok {
			if c.Runnable() {
				t.Errorf("%s %s is not in CLI.md", name, path)
			}
			return
		}
		for _, f := range own {
			if !slices.Contains(documented, f) {
				t.Errorf("CLI.md does not document --%s of %s %s", f, name, path)
			}
		}
		for _, f := range documented {
			if !slices.Contains(own, f) && !slices.Contains(doc.Global, f) {
				t.Errorf("CLI.md gives %s %s the flag --%s, which it does not have", name, path, f)
			}
		}
	})
	for path := range doc.Commands {
		if !seen[path] {
			t.Errorf("CLI.md documents %s %s, which does not exist", name, path)
		}
	}
	for _, f := range sortedSet(doc.Mentions) {
		if !all[f] && f != "help" {
			t.Errorf("CLI.md mentions --%s in the part about %s, which no command of it has", f, name)
		}
	}
}

// CheckHelpText reports every flag that a command's usage line or help
// text names and that the command does not take (its own or a global one).
func CheckHelpText(t testing.TB, root *cobra.Command) {
	t.Helper()
	check := func(path string, c *cobra.Command) {
		for _, f := range FlagsIn(c.Use + "\n" + c.Short + "\n" + c.Long) {
			if c.LocalFlags().Lookup(f) == nil && c.InheritedFlags().Lookup(f) == nil {
				t.Errorf("the help of %s %s names --%s, which it does not take", root.Name(), path, f)
			}
		}
	}
	check("", root)
	Walk(root, "", check)
}
