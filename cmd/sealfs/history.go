package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/internal/snaptree"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

func newLsCmd(g *globals) *cobra.Command {
	var recursive, asJSON bool
	cmd := &cobra.Command{
		Use:   "ls [-R] REMOTE SNAPSHOT [PATH]",
		Short: "List a snapshot's files as ls -l does",
		Long: `List the entries of folder PATH (the root by default) of SNAPSHOT as ls -l
does: type and mode, owner and group (numbers), size, modification time, and
path from the snapshot's root; a symlink shows its target. PATH naming a file
lists that file. -R lists everything below PATH too. SNAPSHOT is ` + snapshotSelectorHelp + `.`,
		Args: rangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, args[0])
			if err != nil {
				return err
			}
			snap, err := readSnapshot(ctx, r, args[1], args[0])
			if err != nil {
				return err
			}
			p := ""
			if len(args) == 3 {
				p = args[2]
			}
			n, err := snaptree.Lookup(ctx, r, snap.Tree, p)
			if errors.Is(err, snaptree.ErrNotFound) {
				return usageError{fmt.Errorf("snapshot %d: %w", snap.Seq, err)}
			} else if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			defer tw.Flush()
			show := func(e snaptree.Entry) error {
				printEntry(tw, e)
				return nil
			}
			if asJSON {
				show = func(e snaptree.Entry) error { return printJSON(cmd.OutOrStdout(), newEntryJSON(e.Path, e.Node)) }
			}
			prefix := strings.Trim(p, "/")
			if n != nil && n.Type != format.NodeDir {
				return show(snaptree.Entry{Path: prefix, Node: n})
			}
			dir := snap.Tree
			if n != nil {
				dir = n.Subtree
			}
			return snaptree.List(ctx, r, dir, prefix, recursive, show)
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list everything below PATH, folder by folder")
	addJSONFlag(cmd, &asJSON, true)
	return cmd
}

func newDiffCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff REMOTE SNAPSHOT1 SNAPSHOT2",
		Short: "Show the paths added, removed and changed from one snapshot to another",
		Long: `Compare SNAPSHOT1 (the older) with SNAPSHOT2, as restic's diff does: one line
per path, "+" added, "-" removed (everything inside an added or removed folder
too; an entry whose type changed is removed and added), "M" changed (a file's
content, size or modification time, a symlink's target, and any entry's mode,
owner or extended attributes), folders ending in "/"; then counts. Folders
whose content did not change are skipped without being read. Each SNAPSHOT is
` + snapshotSelectorHelp + `.`,
		Args: exactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, args[0])
			if err != nil {
				return err
			}
			var snaps [2]*repo.Snapshot
			for i, sel := range args[1:] {
				if snaps[i], err = readSnapshot(ctx, r, sel, args[0]); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			var count [2]map[snaptree.Kind]int
			count[0], count[1] = map[snaptree.Kind]int{}, map[snaptree.Kind]int{}
			err = snaptree.Diff(ctx, r, snaps[0].Tree, snaps[1].Tree, func(c snaptree.Change) error {
				p := "/" + c.Path
				dir := 0
				if c.Node.Type == format.NodeDir {
					p, dir = p+"/", 1
				}
				count[dir][c.Kind]++
				if asJSON {
					return printJSON(out, diffJSON{Change: string(rune(c.Kind)), entryJSON: newEntryJSON(c.Path, c.Node)})
				}
				_, err := fmt.Fprintf(out, "%c    %s\n", c.Kind, shownName(p))
				return err
			})
			if err != nil || asJSON {
				return err
			}
			fmt.Fprintf(out, "\nfrom snapshot %d to %d:\nfiles: %d new, %d removed, %d changed\nfolders: %d new, %d removed, %d changed\n",
				snaps[0].Seq, snaps[1].Seq, count[0][snaptree.Added], count[0][snaptree.Removed], count[0][snaptree.Changed],
				count[1][snaptree.Added], count[1][snaptree.Removed], count[1][snaptree.Changed])
			return nil
		},
	}
	addJSONFlag(cmd, &asJSON, true)
	return cmd
}

// rangeArgs is cobra.RangeArgs with a usage error.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(lo, hi)(cmd, args); err != nil {
			return usageError{fmt.Errorf("%v (usage: %s)", err, cmd.UseLine())}
		}
		return nil
	}
}

// printEntry writes e as a line of ls -l to a tabwriter.
func printEntry(w io.Writer, e snaptree.Entry) {
	n := e.Node
	name := shownName("/" + e.Path)
	if n.Type == format.NodeSymlink {
		name += " -> " + shownName(string(n.Target))
	}
	fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\n", modeString(n), n.UID, n.GID, n.Size, time.Unix(0, n.MtimeNs).Local().Format(time.DateTime), name)
}

// shownName is a name as it can be printed safely: a name holding a
// control character (a terminal escape, a newline) or bytes that are not
// UTF-8, which a snapshot may hold, is quoted with escapes.
func shownName(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// modeString is an entry's type and mode as ls -l shows them.
func modeString(n *repo.Node) string {
	types := map[format.NodeType]byte{format.NodeFile: '-', format.NodeDir: 'd', format.NodeSymlink: 'l', format.NodeFIFO: 'p',
		format.NodeCharDev: 'c', format.NodeBlockDev: 'b', format.NodeSocket: 's'}
	b := []byte{types[n.Type]}
	if b[0] == 0 {
		b[0] = '?'
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if n.Mode&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	for _, sp := range []struct {
		bit    uint32
		at     int
		on, no byte
	}{{0o4000, 3, 's', 'S'}, {0o2000, 6, 's', 'S'}, {0o1000, 9, 't', 'T'}} {
		if n.Mode&sp.bit != 0 {
			if b[sp.at] == 'x' {
				b[sp.at] = sp.on
			} else {
				b[sp.at] = sp.no
			}
		}
	}
	return string(b)
}
