package worktree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// A Tree is built on a base snapshot. A mount that came up while the remote
// was down bases its tree on the newest snapshot it had seen; another
// machine may have committed since. Before it commits, the tree is rebased:
// its changes (relative to the base) are carried over onto the newest
// snapshot, path by path, as a three-way merge of base, ours and theirs
// (docs/SPEC.md, "Rebase after an offline start"):
//
//   - a path only one side changed takes that side's version;
//   - directories both sides changed are merged entry by entry;
//   - a path both sides changed differently keeps theirs under its name and
//     ours under name.conflict-HOST-TIME (HOST: this machine, TIME: UTC);
//   - a deletion against a change keeps the changed version.
//
// Every conflict is logged and listed by Conflicts.

// Conflict kinds.
const (
	// ConflictBoth: both sides changed the path; ours moved to Kept.
	ConflictBoth = "changed on both sides"
	// ConflictDeletedHere: we deleted what the other side changed; theirs is kept.
	ConflictDeletedHere = "deleted here, changed by another writer"
	// ConflictDeletedThere: the other side deleted what we changed; ours is kept.
	ConflictDeletedThere = "changed here, deleted by another writer"
)

// maxConflicts bounds the conflicts a Tree remembers for its status.
const maxConflicts = 100

// Conflict is a path that this mount and another writer both changed while
// the mount could not reach the remote.
type Conflict struct {
	Path string `json:"path"` // "/"-separated from the root, without a leading slash
	Kind string `json:"kind"`
	// Kept is where our version is now: Path itself, or its conflict name;
	// empty when ours was a deletion.
	Kept string `json:"kept,omitempty"`
	// Snapshot is the sequence number of the snapshot rebased onto.
	Snapshot uint64    `json:"snapshot"`
	Time     time.Time `json:"time"`
}

// Conflicts returns the conflicts met by rebases since the Tree was opened,
// oldest first (at most the last 100), and how many there were in all.
func (t *Tree) Conflicts() (recent []Conflict, total int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.conflicts), t.conflictCount
}

// baseOnJournals bases the tree on the snapshot the journals left behind
// are based on, when that is older than the newest one and they hold
// changes: a mount that started offline and stopped (or crashed) before it
// could commit, or whose commit failed and was superseded (see
// repo.Repository.Superseded), while another writer committed. Those changes were never
// committed (a commit starts a journal based on the snapshot it stores
// before it stores it), so they are replayed on their own base, and Open
// then rebases the tree onto the newest snapshot. Journals that cannot be
// read are left to replay to report.
func (t *Tree) baseOnJournals(ctx context.Context) {
	ns, err := listJournals(t.opts.Dir)
	if err != nil {
		return
	}
	// A commit of ours that failed and whose number another writer took
	// left journals based on that number, which build on the ones based
	// on its parent: those are the base then.
	sup := t.r.Superseded()
	base, changes, found := uint64(0), false, false
	for i := len(ns) - 1; i >= 0; i-- {
		b, recs, err := readJournal(journalName(t.opts.Dir, ns[i]), t.localKey, ns[i])
		if err != nil && !errors.Is(err, errJournalDamaged) {
			continue
		}
		if found && b != base {
			if base != sup || b >= sup {
				break
			}
			sup = 0
		}
		base, found = b, true
		changes = changes || len(recs) > 0
	}
	if found && sup != 0 && base == sup {
		// Only journals based on that number (one written whole at a
		// replay that followed it, replayedBase): they build on its
		// parent.
		base = sup - 1
	}
	if !found || !changes || base >= t.baseSeq {
		return
	}
	const why = "the local changes were made on an older snapshot than the newest (this mount started while the remote was down, or its commit was superseded); replaying them on it, then onto the newest"
	if base == 0 {
		// Made on the empty repository (a first commit that did not
		// land, or landed on a fork): they replay on an empty root.
		t.opts.Log.Warn(why, "base", base, "newest", t.baseSeq)
		t.baseSeq = 0
		t.root.children = map[string]*Inode{}
		t.root.meta = emptyRoot(time.Now().UnixNano())
		return
	}
	// The main line's snapshot of that number (a fork may have two).
	if s, err := t.r.SnapshotBySeq(ctx, base); err == nil {
		t.opts.Log.Warn(why, "base", base, "newest", t.baseSeq)
		t.baseSeq = base
		t.root.meta = rootMeta(s)
		return
	}
	// Their base was forgotten since (sealfs forget, or another mount's
	// retention policy; a prune's snapshot may follow it with the same
	// content): its tree is unknown, so the changes are replayed onto the
	// newest snapshot, where a path they change takes their version. They
	// were never committed: setting them aside would lose them.
	for _, f := range t.r.Forgotten() {
		if f.Seq == base {
			t.opts.Log.Warn("the local changes were made on a snapshot that has been forgotten since; replaying them onto the newest (where both changed a path, the local version wins)",
				"base", base, "newest", t.baseSeq)
			t.orphanBase = base
			return
		}
	}
}

// rebase moves the tree onto the newest snapshot when another writer
// committed since the snapshot it is based on. t.commitMu is held.
func (t *Tree) rebase(ctx context.Context) error {
	newest := t.r.Latest()
	t.mu.Lock()
	defer t.mu.Unlock()
	if newest == nil || newest.Seq <= t.baseSeq {
		return nil
	}
	// The merge loads directories as it goes, under the lock (a rare
	// event: another writer committed while this mount was offline).
	fetchLocked := t.fetchLocked
	t.fetchLocked = true
	defer func() { t.fetchLocked = fetchLocked }()
	var baseTree crypt.ID
	var baseSnap *repo.Snapshot
	if t.baseSeq > 0 {
		if s, err := t.r.SnapshotBySeq(ctx, t.baseSeq); err == nil {
			baseTree, baseSnap = s.Tree, s
		}
		if baseTree.IsZero() {
			// Without the base every difference counts as a conflict:
			// more copies, nothing lost.
			t.opts.Log.Warn("the snapshot this mount's changes are based on is gone; every path that differs is kept twice", "base", t.baseSeq)
		}
	}
	host, _ := os.Hostname()
	m := &merger{t: t, ctx: ctx, host: host, now: time.Now().UTC(), snap: newest.Seq, groups: map[uint64]*Inode{}}
	t.opts.Log.Warn("another writer committed while this mount could not reach the remote; replaying the local changes onto its snapshot",
		"base", t.baseSeq, "newest", newest.Seq, "newest_host", newest.Host)
	if err := m.mergeDir(t.root, "", baseTree, newest.Tree); err != nil {
		return fmt.Errorf("failed to replay the local changes onto snapshot %d: %w", newest.Seq, err)
	}
	for _, f := range m.actions {
		f()
	}
	t.root.meta.Subtree = newest.Tree
	// The root's own attributes: theirs, unless we changed ours.
	if baseSnap != nil {
		if b := rootMeta(baseSnap); sameRootAttrs(&b, &t.root.meta) {
			t.root.meta = rootMeta(newest)
		}
	}
	t.baseSeq = newest.Seq
	// Directories loaded from now on are theirs: their link groups are
	// numbered as their snapshot numbers them.
	t.groups = m.groups
	if len(m.groups) > 0 {
		// Their link groups may have names in folders of theirs not
		// loaded yet: load them now, so that the journal written below
		// records every name (a crash before the next commit would
		// split the group), or else at the commit.
		t.groupsIn = true
		if err := t.loadAllLocked(ctx); err != nil {
			t.opts.Log.Warn("failed to load the whole tree after a rebase brought in hard links; the commit loads it", "err", err)
		} else {
			t.groupsIn = false
		}
	}
	// Whether anything of ours is left to commit (journals that only
	// restage committed files leave nothing).
	root := t.root.meta
	ours, err := m.changed(t.root, &root)
	if err != nil {
		ours = true
	}
	if err := t.rewriteJournalOnto(newest.Seq); err != nil {
		return err
	}
	for _, c := range m.found {
		t.opts.Log.Warn("conflict: "+c.Kind, "path", "/"+c.Path, "ours", keptForLog(c.Kept), "snapshot", c.Snapshot)
	}
	t.conflicts = append(t.conflicts, m.found...)
	t.conflictCount += len(m.found)
	if n := len(t.conflicts); n > maxConflicts {
		t.conflicts = slices.Clone(t.conflicts[n-maxConflicts:])
	}
	t.dirty = ours
	t.clearSuperseded()
	return nil
}

// clearSuperseded forgets a superseded commit of ours once its changes are
// carried onto the newest snapshot (in the journal written since).
func (t *Tree) clearSuperseded() {
	if err := t.r.ClearSuperseded(); err != nil {
		t.opts.Log.Warn("failed to update the local state", "err", err)
	}
}

func keptForLog(p string) string {
	if p == "" {
		return "(deleted)"
	}
	return "/" + p
}

// rewriteJournalOnto starts a journal based on snapshot seq that rebuilds
// the whole tree, and drops the older ones. The new journal is put in
// place whole (newJournal): a crash leaves either the old journals or the
// new one complete beside them (the old ones are then kept aside at the
// next start: they predate the newest snapshot). t.mu is held.
func (t *Tree) rewriteJournalOnto(seq uint64) error {
	old := t.journal
	j, err := t.startJournalLocked(old.n+1, seq, t.rewriteRecords())
	if err != nil {
		return err
	}
	t.journal = j
	old.close()
	t.closeOldJournalsLocked() // j carries what they held too
	t.removeJournalsBefore(j.n)
	return nil
}

// merger carries one rebase.
type merger struct {
	t     *Tree
	ctx   context.Context
	host  string
	now   time.Time
	snap  uint64
	found []Conflict
	// actions are the changes planned, made once the plan is whole.
	actions []func()
	// groups are the inodes made for their link groups.
	groups map[uint64]*Inode
}

// entries loads a directory's entries by name; a zero id is an empty (or
// absent) directory.
func (m *merger) entries(id crypt.ID) (map[string]*repo.Node, error) {
	out := map[string]*repo.Node{}
	if id.IsZero() {
		return out, nil
	}
	tr, err := m.t.r.LoadTree(m.ctx, id)
	if err != nil {
		return nil, err
	}
	for _, n := range tr.Nodes {
		out[string(n.Name)] = n
	}
	return out, nil
}

// mergeDir merges into the loaded directory dir (at path) what the other
// side changed between the base directory and theirs.
func (m *merger) mergeDir(dir *Inode, path string, base, theirs crypt.ID) error {
	if base == theirs && !base.IsZero() {
		return nil // they changed nothing here
	}
	if err := m.t.loadDir(m.ctx, dir); err != nil {
		return err
	}
	bs, err := m.entries(base)
	if err != nil {
		return err
	}
	ts, err := m.entries(theirs)
	if err != nil {
		return err
	}
	var names []string
	for n := range dir.children {
		names = append(names, n)
	}
	for n := range bs {
		names = append(names, n)
	}
	for n := range ts {
		names = append(names, n)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		o, b, th := dir.children[name], bs[name], ts[name]
		lost, err := m.lost(o)
		if err != nil {
			return err
		}
		if lost {
			// Ours is the base's version (we would have staged a change),
			// and that snapshot was forgotten and its data pruned while
			// we were offline: it cannot be kept. Theirs, if anything.
			m.t.opts.Log.Warn("a file of the snapshot this mount's changes are based on was forgotten and pruned by another writer meanwhile; it is not kept", "path", joinPath(path, name))
			m.do(func() { m.replace(dir, name, o, th) })
			continue
		}
		if sameNode(b, th) {
			m.stood(o, th)
			continue // theirs did not change: ours stands
		}
		p := joinPath(path, name)
		ours, err := m.changed(o, b)
		if err != nil {
			return err
		}
		bothDirs := o != nil && th != nil && o.meta.Type == repo.NodeDir && th.Type == repo.NodeDir
		switch {
		case bothDirs:
			// Merged entry by entry; the attributes of a directory we did
			// not change are theirs.
			if err := m.takeDir(o, p, b, th, !ours); err != nil {
				return err
			}
		case !ours:
			m.do(func() { m.replace(dir, name, o, th) })
		case o == nil:
			m.do(func() {
				m.replace(dir, name, nil, th)
				m.conflict(p, ConflictDeletedHere, "")
			})
		case th == nil:
			m.do(func() { m.conflict(p, ConflictDeletedThere, p) })
		case o.staging == "" && sameNode(&o.meta, th):
			// Both made the same change.
		default:
			m.do(func() {
				kept := m.conflictName(dir, name)
				t := m.t
				t.moveNameLocked(o, dir, name, dir, kept)
				m.replace(dir, name, nil, th)
				m.conflict(p, ConflictBoth, joinPath(path, kept))
			})
		}
	}
	return nil
}

// do schedules a change of the tree: changes are made only once the whole
// merge is planned, so that a failure (a tree that cannot be loaded)
// leaves the tree as it was.
func (m *merger) do(f func()) { m.actions = append(m.actions, f) }

// lost reports whether our entry o, unchanged by us (not staged), names
// stored data the newest index no longer lists: a file's content or an
// unloaded directory's tree, which a prune deleted after its snapshot was
// forgotten. Keeping it would commit a tree naming blobs that are gone.
// The newest index is asked with its cold index objects (repo.Has): a
// tree only older snapshots are expected to need is not lost.
func (m *merger) lost(o *Inode) (bool, error) {
	if o == nil || o.staging != "" {
		return false, nil
	}
	switch {
	case o.meta.Type == repo.NodeFile:
		for _, e := range o.meta.Content {
			if e.Hole {
				continue
			}
			if ok, err := m.t.r.Has(m.ctx, e.ID); err != nil || !ok {
				return err == nil, err
			}
		}
	case o.meta.Type == repo.NodeDir && o.children == nil && !o.meta.Subtree.IsZero():
		ok, err := m.t.r.Has(m.ctx, o.meta.Subtree)
		return err == nil && !ok, err
	}
	return false, nil
}

// takeDir merges their directory th into our directory o.
func (m *merger) takeDir(o *Inode, path string, b, th *repo.Node, attrs bool) error {
	m.do(func() {
		if attrs {
			o.meta = *th
			o.meta.Name = nil
		}
		o.meta.Subtree = th.Subtree
	})
	if o.children == nil {
		return nil // not loaded: we changed nothing below it
	}
	var bsub crypt.ID
	if b != nil && b.Type == repo.NodeDir {
		bsub = b.Subtree
	}
	return m.mergeDir(o, path, bsub, th.Subtree)
}

// stood notes that our entry o stands for their node th: if th is of a
// link group, their other names of it (new ones among them, made in
// folders of theirs) are further names of o. It is noted while the merge
// is planned, before any replace runs.
func (m *merger) stood(o *Inode, th *repo.Node) {
	if o == nil || th == nil || th.Type == repo.NodeDir || th.LinkGroup == 0 ||
		o.meta.Type != th.Type || o.meta.LinkGroup != th.LinkGroup || m.groups[th.LinkGroup] != nil {
		return
	}
	m.groups[th.LinkGroup] = o
}

// replace puts their node th (nil: nothing) at name in dir instead of o.
func (m *merger) replace(dir *Inode, name string, o *Inode, th *repo.Node) {
	t := m.t
	if o != nil {
		t.removeNameLocked(dir, name)
	}
	if th == nil {
		return
	}
	// Their names of one link group are one inode.
	if g := m.groups[th.LinkGroup]; th.Type != repo.NodeDir && th.LinkGroup != 0 && g != nil {
		t.addNameLocked(g, dir, name)
		return
	}
	c := t.inodeOf(th)
	t.addNameLocked(c, dir, name)
	if th.Type != repo.NodeDir && th.LinkGroup != 0 {
		m.groups[th.LinkGroup] = c
	}
}

// changed reports whether our o differs from the base node b (nil: none).
func (m *merger) changed(o *Inode, b *repo.Node) (bool, error) {
	switch {
	case o == nil || b == nil:
		return o != nil || b != nil, nil
	case o.staging != "" || o.meta.Type != b.Type:
		return true, nil
	case o.meta.Type != repo.NodeDir || o.children == nil:
		return !sameNode(&o.meta, b), nil
	}
	// A loaded directory: its attributes, then every entry.
	attrs := o.meta
	attrs.Subtree = b.Subtree
	if !sameNode(&attrs, b) {
		return true, nil
	}
	bs, err := m.entries(b.Subtree)
	if err != nil {
		return false, err
	}
	if len(bs) != len(o.children) {
		return true, nil
	}
	for name, c := range o.children {
		bn := bs[name]
		if bn == nil {
			return true, nil
		}
		if ch, err := m.changed(c, bn); ch || err != nil {
			return ch, err
		}
	}
	return false, nil
}

func (m *merger) conflict(path, kind, kept string) {
	m.found = append(m.found, Conflict{Path: path, Kind: kind, Kept: kept, Snapshot: m.snap, Time: m.now})
}

// conflictName is a free name in dir for our version of name:
// name.conflict-HOST-TIME, with a counter when that is taken too, cut to
// the 255-byte limit at the front (the suffix says what it is).
func (m *merger) conflictName(dir *Inode, name string) string {
	return conflictName(name, m.host, m.now, func(n string) bool { return dir.children[n] != nil })
}

func conflictName(name, host string, now time.Time, taken func(string) bool) string {
	host = strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, host)
	if host == "" {
		host = "unknown"
	}
	suffix := ".conflict-" + host + "-" + now.UTC().Format("20060102T150405Z")
	for i := 1; ; i++ {
		s := suffix
		if i > 1 {
			s = fmt.Sprintf("%s-%d", suffix, i)
		}
		n := name
		if len(n)+len(s) > 255 {
			n = n[:max(0, 255-len(s))]
		}
		if c := n + s; validName(c) && !taken(c) {
			return c
		}
	}
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// sameNode reports whether two entries are the same (nil: absent), names,
// access and change times aside.
func sameNode(a, b *repo.Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Type == b.Type && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.MtimeNs == b.MtimeNs && a.Size == b.Size && bytes.Equal(a.Target, b.Target) &&
		a.Rdev == b.Rdev && a.LinkGroup == b.LinkGroup && a.Subtree == b.Subtree &&
		slices.Equal(a.Content, b.Content) &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y repo.Xattr) bool {
			return bytes.Equal(x.Name, y.Name) && bytes.Equal(x.Value, y.Value)
		})
}
