package worktree

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// Inode is a file, directory or other entry of the tree. Its fields are
// guarded by the Tree's lock; callers use the Tree's methods.
type Inode struct {
	// Ino is a stable inode number for the life of the Tree.
	Ino uint64

	meta     repo.Node         // current attributes; Name unused (see name)
	name     string            // name in parent
	parent   *Inode            // nil for the root and for unlinked inodes
	children map[string]*Inode // directories: nil until loaded

	// Content. A clean file reads meta.Content; a staged file reads its
	// staging file, and committed keeps what the last snapshot holds.
	staging   string
	file      *stagingFile
	gen       uint64     // bumped by every content change
	committed *repo.Node // what the last snapshot holds; nil if never committed
	cleanGen  uint64     // gen whose content committed holds
	writers   int        // open handles that may write
	opens     int        // open handles
	matMu     sync.Mutex

	// A file changed in place is an overlay: its staging file (sparse, of
	// the file's size) holds only the written ranges; below baseLimit the
	// rest reads from base, the content it had when staged. So a big file
	// is never downloaded whole to change a few bytes of it.
	overlay    bool
	base       []repo.Extent
	baseSize   uint64
	baseLimit  uint64
	written    ranges
	baseReader *repo.FileReader

	// stream chunks a new file while it is written sequentially.
	stream *streamer
}

// Options configure a Tree.
type Options struct {
	// Dir holds the journal and the staging area; it is created if needed.
	Dir string
	// ReadOnly refuses every change.
	ReadOnly bool
	// Log receives warnings; nil discards them.
	Log *slog.Logger
	// OnChange is called (without locks held) after every change.
	OnChange func()
}

// Tree is the writable tree of a mount.
type Tree struct {
	r    *repo.Repository
	opts Options
	// life bounds the work that outlives the calls starting it (a
	// streamer chunking a file as it is written); Close ends it. Calls
	// that fetch from the remote take their caller's context instead.
	life    context.Context
	endLife context.CancelFunc

	mu            sync.Mutex
	root          *Inode
	nextIno       uint64
	journal       *journal
	baseSeq       uint64
	staged        map[*Inode]bool
	replaying     bool       // journals are being replayed: keep staging files
	reserved      bool       // the reserve is allocated (see reserve.go)
	dirty         bool       // something changed since the last commit
	commitMu      sync.Mutex // one commit at a time
	lastError     error
	conflicts     []Conflict // the last ones met by rebases (rebase.go)
	conflictCount int

	// localKey seals the staging area and the journal.
	localKey    crypt.LocalKey
	stagingMu   sync.Mutex // guards stagingOpen; taken after t.mu
	stagingOpen map[string]*stagingFile
	// legacyStaging maps the plaintext staging files of an older sealfs,
	// found at replay, to their sealed copies.
	legacyStaging map[string]string
}

const stagingDir = "staging"

// Open loads the newest snapshot of r and replays the local journals left
// by an earlier run (after a crash, what was queued is found again). ctx
// bounds the opening only: the Tree's own background work lasts until
// Close.
func Open(ctx context.Context, r *repo.Repository, o Options) (_ *Tree, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	t := &Tree{r: r, opts: o, nextIno: 1, staged: map[*Inode]bool{},
		localKey: r.LocalKey(), stagingOpen: map[string]*stagingFile{}, legacyStaging: map[string]string{}}
	t.life, t.endLife = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			t.endLife()
		}
	}()
	t.root = &Inode{Ino: t.newIno(), meta: repo.Node{Type: repo.NodeDir, Mode: 0o755}}
	if s := r.Latest(); s != nil {
		t.baseSeq = s.Seq
		t.root.meta.Subtree = s.Tree
		t.root.meta.MtimeNs = s.Time.UnixNano()
	} else {
		t.root.children = map[string]*Inode{}
		t.root.meta.MtimeNs = time.Now().UnixNano()
	}
	t.root.meta.AtimeNs = t.root.meta.MtimeNs
	if o.ReadOnly {
		return t, nil
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, stagingDir), 0o700); err != nil {
		return nil, fmt.Errorf("failed to create the staging area: %w", err)
	}
	// A reserve left by the last run is held again (a full disk may need
	// it to write the replayed journal).
	if fi, err := os.Stat(filepath.Join(o.Dir, reserveName)); err == nil && fi.Size() == reserveSize {
		t.reserved = true
	}
	t.baseOnJournals()
	j, err := t.replay(ctx)
	if err != nil {
		return nil, err
	}
	t.journal = j
	// Changes made on an older snapshot go onto the newest (rebase.go).
	if err := t.rebase(ctx); err != nil {
		t.journal.close()
		return nil, err
	}
	t.clearSuperseded()
	t.makeReserveLocked()
	return t, nil
}

func (t *Tree) newIno() uint64 { n := t.nextIno; t.nextIno++; return n }

// replay applies the journals left behind, in order, and returns the
// journal to go on with: it records the replayed state whole, and the old
// journals are removed once it is in place. Journals based on an older
// snapshot than the newest were committed already; they are moved aside,
// not deleted.
func (t *Tree) replay(ctx context.Context) (*journal, error) {
	ns, err := listJournals(t.opts.Dir)
	if err != nil {
		return nil, err
	}
	var next uint64 = 1
	var applied []string
	legacyOK := !hasSealedJournal(t.opts.Dir, ns)
	t.replaying = true
	for _, n := range ns {
		next = n + 1
		p := journalName(t.opts.Dir, n)
		base, recs, err := readJournal(p, t.localKey, n)
		if errors.Is(err, errJournalEmpty) {
			t.opts.Log.Warn("removing an empty journal: it was cut off as it was created, before it recorded anything", "journal", p)
			applied = append(applied, p)
			continue
		}
		if errors.Is(err, errJournalDamaged) {
			t.opts.Log.Error("replaying a damaged journal up to the damage; later changes are lost", "err", err)
		} else if err != nil {
			return nil, err
		}
		if len(recs) > 0 && recs[0].legacy && !legacyOK {
			// Only someone who can write the cache puts a plaintext
			// journal beside sealed ones: its records are not ours.
			aside := filepath.Join(t.opts.Dir, "refused-"+filepath.Base(p))
			t.opts.Log.Error("refusing a plaintext journal in a sealed cache; it is kept aside, unreplayed", "journal", p, "aside", aside)
			if err := os.Rename(p, aside); err != nil {
				return nil, err
			}
			continue
		}
		if base < t.baseSeq {
			old := filepath.Join(t.opts.Dir, "committed-"+filepath.Base(p))
			t.opts.Log.Warn("journal predates the newest snapshot; keeping it aside", "journal", p, "base", base, "newest", t.baseSeq)
			if err := os.Rename(p, old); err != nil {
				return nil, err
			}
			continue
		}
		for i, rec := range recs {
			if err := t.apply(ctx, rec); err != nil {
				t.opts.Log.Warn("journal record could not be replayed", "journal", p, "record", i+1, "op", rec.Op, "path", string(rec.Path), "err", err)
			}
		}
		applied = append(applied, p)
		t.dirty = true
	}
	t.replaying = false
	// The replayed state lives on in the new journal: record it whole, then
	// drop the old files. Until the new journal is in place (a crash, a
	// full disk), the old ones stay and are replayed again.
	var recs []record
	if t.dirty {
		recs = t.rewriteRecords()
	}
	j, err := t.startJournalLocked(next, t.baseSeq, recs)
	if err != nil {
		return nil, err
	}
	for _, p := range applied {
		os.Remove(p)
	}
	t.removeOrphans()
	return j, nil
}

// removeOrphans deletes the staging files no inode refers to: those of
// files dropped by the replayed journals, and those a crash left before
// their stage record was written.
func (t *Tree) removeOrphans() {
	keep := map[string]bool{}
	for in := range t.staged {
		keep[in.staging] = true
	}
	entries, err := os.ReadDir(filepath.Join(t.opts.Dir, stagingDir))
	if err != nil {
		t.opts.Log.Warn("failed to list the staging area", "err", err)
		return
	}
	for _, e := range entries {
		if validStagingID(e.Name()) && !keep[e.Name()] {
			os.Remove(t.stagingPath(e.Name()))
		}
	}
}

// rewriteRecords returns records that rebuild every change of the tree
// relative to the base snapshot: all entries of loaded directories, and
// the staging of staged files. It is used after a replay.
func (t *Tree) rewriteRecords() []record {
	var recs []record
	var walk func(dir *Inode)
	walk = func(dir *Inode) {
		if dir.children == nil {
			return
		}
		recs = append(recs, record{Op: opClear, Path: []byte(t.pathOf(dir))})
		for _, c := range sortedChildren(dir) {
			m := c.meta
			if c.children != nil {
				m.Subtree = crypt.ID{} // described entry by entry below
			}
			recs = append(recs, record{Op: opCreate, Path: []byte(t.pathOf(c)), Meta: &m})
			if c.staging != "" {
				recs = append(recs, t.stageRecordLocked(c))
			}
			if c.meta.Type == repo.NodeDir {
				walk(c)
			}
		}
	}
	walk(t.root)
	return recs
}

func sortedChildren(dir *Inode) []*Inode {
	out := make([]*Inode, 0, len(dir.children))
	for _, c := range dir.children {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// pathOf returns the inode's path from the root, "/"-separated without a
// leading slash. Names may hold any byte but '/' and NUL.
func (t *Tree) pathOf(in *Inode) string {
	var parts []string
	for c := in; c.parent != nil; c = c.parent {
		parts = append(parts, c.name)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "/")
}

// resolve finds the inode at path, loading directories on the way.
func (t *Tree) resolve(ctx context.Context, path []byte) (*Inode, error) {
	in := t.root
	if len(path) == 0 {
		return in, nil
	}
	for _, name := range strings.Split(string(path), "/") {
		c, err := t.lookupLocked(ctx, in, name)
		if err != nil {
			return nil, err
		}
		in = c
	}
	return in, nil
}

func splitPath(path []byte) (string, string) {
	s := string(path)
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

// apply replays one journal record, once it is found well formed.
func (t *Tree) apply(ctx context.Context, rec record) error {
	if err := rec.check(); err != nil {
		return err
	}
	switch rec.Op {
	case opCreate:
		dirPath, name := splitPath(rec.Path)
		dir, err := t.resolve(ctx, []byte(dirPath))
		if err != nil {
			return err
		}
		if err := t.loadDir(ctx, dir); err != nil {
			return err
		}
		if old := dir.children[name]; old != nil {
			t.dropLocked(old)
		}
		in := &Inode{Ino: t.newIno(), meta: *rec.Meta, name: name, parent: dir}
		in.meta.Name = nil
		if in.meta.Type == repo.NodeDir && in.meta.Subtree.IsZero() {
			in.children = map[string]*Inode{}
		}
		if in.meta.Type == repo.NodeFile && len(in.meta.Content) > 0 {
			c := in.meta
			in.committed = &c
		}
		dir.children[name] = in
	case opClear:
		dir, err := t.resolve(ctx, rec.Path)
		if err != nil {
			return err
		}
		if dir.meta.Type != repo.NodeDir {
			return syscall.ENOTDIR
		}
		for _, c := range dir.children {
			t.dropLocked(c)
		}
		dir.children = map[string]*Inode{}
	case opUnlink:
		in, err := t.resolve(ctx, rec.Path)
		if err != nil {
			return err
		}
		delete(in.parent.children, in.name)
		t.dropLocked(in)
	case opRename:
		in, err := t.resolve(ctx, rec.Path)
		if err != nil {
			return err
		}
		dirPath, name := splitPath(rec.To)
		dir, err := t.resolve(ctx, []byte(dirPath))
		if err != nil {
			return err
		}
		if err := t.loadDir(ctx, dir); err != nil {
			return err
		}
		if old := dir.children[name]; old != nil && old != in {
			t.dropLocked(old)
		}
		delete(in.parent.children, in.name)
		in.parent, in.name = dir, name
		dir.children[name] = in
	case opSetattr:
		in, err := t.resolve(ctx, rec.Path)
		if err != nil {
			return err
		}
		in.meta.Mode, in.meta.UID, in.meta.GID = rec.Meta.Mode, rec.Meta.UID, rec.Meta.GID
		in.meta.MtimeNs, in.meta.AtimeNs = rec.Meta.MtimeNs, rec.Meta.AtimeNs
		if in.staging == "" && in.meta.Type == repo.NodeFile && rec.Meta.Size == 0 {
			in.meta.Size, in.meta.Content = 0, nil
		}
	case opStage:
		in, err := t.resolve(ctx, rec.Path)
		if err != nil {
			return err
		}
		if in.meta.Type != repo.NodeFile {
			return syscall.EINVAL
		}
		if rec.legacy {
			if rec.Staging, err = t.sealLegacyStaging(rec.Staging); errors.Is(err, os.ErrNotExist) {
				return nil // committed and cleaned before the crash
			} else if err != nil {
				return err
			}
		}
		fi, err := os.Stat(t.stagingPath(rec.Staging))
		if errors.Is(err, os.ErrNotExist) {
			return nil // committed and cleaned before the crash
		}
		if err != nil {
			return err
		}
		if in.file != nil {
			in.file.Close()
			in.file = nil
		}
		in.staging, in.meta.Size = rec.Staging, stagedSize(fi.Size())
		in.overlay = rec.Overlay != nil
		if o := rec.Overlay; o != nil {
			t.setOverlayLocked(in, o.Base, o.BaseSize)
			in.baseLimit, in.written = o.BaseLimit, o.Written
		}
		in.gen++
		t.staged[in] = true
	default:
		return fmt.Errorf("unknown journal operation %q", rec.Op)
	}
	return nil
}

// dropLocked forgets an inode that left the namespace; its staging file
// goes when the last handle closes.
func (t *Tree) dropLocked(in *Inode) {
	in.parent = nil
	if in.opens == 0 {
		t.unstageLocked(in)
	}
}

func (t *Tree) unstageLocked(in *Inode) {
	if in.staging == "" {
		return
	}
	if in.file != nil {
		in.file.Close()
		in.file = nil
	}
	if !t.replaying {
		// A later record of the journals being replayed may name it
		// again; removeOrphans deletes it if none does.
		os.Remove(t.stagingPath(in.staging))
	}
	in.staging = ""
	in.overlay, in.base, in.written, in.baseReader = false, nil, nil, nil
	if in.stream != nil {
		in.stream.stop(true)
		in.stream.closeFile() // free the deleted file's space now
		in.stream = nil
	}
	delete(t.staged, in)
}

func (t *Tree) stagingPath(id string) string { return filepath.Join(t.opts.Dir, stagingDir, id) }

// setOverlayLocked makes in an overlay over the given base content.
func (t *Tree) setOverlayLocked(in *Inode, base []repo.Extent, size uint64) {
	in.overlay, in.base, in.baseSize, in.baseLimit, in.written = true, base, size, size, nil
	in.baseReader = t.r.OpenFile(&repo.Node{Type: repo.NodeFile, Size: size, Content: base})
}

// stageRecordLocked is the journal record of a staged file's state.
func (t *Tree) stageRecordLocked(in *Inode) record {
	rec := record{Op: opStage, Path: []byte(t.pathOf(in)), Staging: in.staging}
	if in.overlay {
		rec.Overlay = &overlayRecord{Base: in.base, BaseSize: in.baseSize, BaseLimit: in.baseLimit, Written: in.written}
	}
	return rec
}

// loadDir reads a directory's tree blob the first time it is needed. A
// load that fails (ctx done, the remote down) leaves the directory
// unloaded: the next call tries again.
func (t *Tree) loadDir(ctx context.Context, dir *Inode) error {
	if dir.meta.Type != repo.NodeDir {
		return syscall.ENOTDIR
	}
	if dir.children != nil {
		return nil
	}
	tr, err := t.r.LoadTree(ctx, dir.meta.Subtree)
	if err != nil {
		return err
	}
	dir.children = make(map[string]*Inode, len(tr.Nodes))
	for _, n := range tr.Nodes {
		c := &Inode{Ino: t.newIno(), meta: *n, name: string(n.Name), parent: dir}
		c.meta.Name = nil
		if n.Type == repo.NodeFile {
			cm := c.meta
			c.committed = &cm
		}
		dir.children[c.name] = c
	}
	return nil
}

func (t *Tree) lookupLocked(ctx context.Context, dir *Inode, name string) (*Inode, error) {
	if err := t.loadDir(ctx, dir); err != nil {
		return nil, err
	}
	c := dir.children[name]
	if c == nil {
		return nil, syscall.ENOENT
	}
	return c, nil
}

func (t *Tree) record(recs ...record) error {
	if t.journal == nil || len(recs) == 0 {
		return nil
	}
	return t.withReserve(func() error { return t.journal.append(recs...) })
}

func (t *Tree) changed() {
	t.mu.Lock()
	t.dirty = true
	t.mu.Unlock()
	if t.opts.OnChange != nil {
		t.opts.OnChange()
	}
}

// stagingIDBytes is the size of the random part of a staging id.
const stagingIDBytes = 16

// newStagingID returns a fresh staging file name: 32 lower-case hex digits.
func newStagingID() string {
	var b [stagingIDBytes]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validStagingID reports whether id has exactly the shape newStagingID
// makes, so that a name read back from the journal stays inside the
// staging area.
func validStagingID(id string) bool {
	if len(id) != 2*stagingIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
