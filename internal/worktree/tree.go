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
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"weak"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// Inode is a file, directory or other entry of the tree. Its fields are
// guarded by the Tree's lock; callers use the Tree's methods.
type Inode struct {
	// Ino is a stable inode number for the life of the Tree.
	Ino uint64

	meta     repo.Node         // current attributes; Name unused (see name)
	name     string            // name in parent (one of its names: links.go)
	parent   *Inode            // nil for the root and for unlinked inodes
	links    []dentry          // its other names (hard links)
	children map[string]*Inode // directories: nil until loaded
	// gone: weak pointers to the entries of a directory unloaded
	// (unload.go), put back in place when it loads again.
	gone *[]weak.Pointer[Inode]

	// Content. A clean file reads meta.Content; a staged file reads its
	// staging file, and committed keeps what the last snapshot holds.
	staging   string
	file      *stagingFile
	gen       uint64  // bumped by every content change
	committed *stored // what the last snapshot holds; nil if never committed
	cleanGen  uint64  // gen whose content committed holds
	writers   int     // open handles that may write
	opens     int     // open handles
	matMu     sync.Mutex
	// fills counts the kernel cache fills of the file's stored content
	// under way (Handle.FillCache); staging waits for them (Tree.fillsDone).
	// Guarded by the tree's mu.
	fills int

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

// stored is a file's content as a snapshot holds it: what a commit keeps
// of a file still open for writing (its metadata are the inode's own).
type stored struct {
	Content []repo.Extent
	Size    uint64
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
	// Atime says when reads and listings update access times;
	// NoDirAtime keeps listings from updating them.
	Atime      AtimeMode
	NoDirAtime bool
	// Snapshot, when set, is the snapshot to open instead of the newest,
	// as it was: ReadOnly must be set too (a mount's /.snapshots view).
	Snapshot *repo.Snapshot
	// Inos hands out the inode numbers; Trees shown in one mount share
	// one, so that no two of their inodes have the same number. Nil: the
	// Tree numbers its inodes from 1.
	Inos *Inos
	// RootIno is the root's inode number, taken from Inos beforehand;
	// 0: the next one.
	RootIno uint64
	// MaxLoaded bounds the entries of the folders kept loaded: over it,
	// the folders used least recently that hold nothing unsaved are
	// unloaded (unload.go). 0: DefaultMaxLoaded; negative: no bound.
	MaxLoaded int
}

// Inos hands out inode numbers, the first 1, each once; it is safe for
// concurrent use.
type Inos struct{ last atomic.Uint64 }

// Next returns an inode number not handed out before.
func (n *Inos) Next() uint64 { return n.last.Add(1) }

// Tree is the writable tree of a mount.
type Tree struct {
	r    *repo.Repository
	opts Options
	// life bounds the work that outlives the calls starting it (a
	// streamer chunking a file as it is written); Close ends it. Calls
	// that fetch from the remote take their caller's context instead.
	life    context.Context
	endLife context.CancelFunc
	// sentFiles and sentBytes count the files (and their sizes) that
	// commits stored since the tree was opened (Sent).
	sentFiles, sentBytes atomic.Uint64

	mu sync.Mutex
	// fillsDone is signalled (with mu) whenever an inode's fills reach 0.
	fillsDone *sync.Cond
	root      *Inode
	journal   *journal
	// oldJournals: the journals commits replaced that are still open,
	// those of commits that failed after their new journal was in place
	// (content records there are still read): closed once a commit, or a
	// journal rewritten whole, carries everything on (closeOldJournals).
	oldJournals []*journal
	baseSeq     uint64
	// orphanBase is the base of the journals left behind when it was
	// forgotten since (baseOnJournals): they are replayed onto baseSeq.
	orphanBase uint64
	staged     map[*Inode]bool
	linked     map[*Inode]bool   // inodes with more than one name
	groups     map[uint64]*Inode // link group -> inode, of the stored trees loaded
	loadingAll bool              // loadAllLocked is running
	// fetchLocked lets loadDir fetch under t.mu: while the tree opens
	// and rebases, when nothing else runs (load.go).
	fetchLocked bool
	// prefetched holds trees fetched without t.mu for loadDir, while
	// load installs them (load.go).
	prefetched map[crypt.ID]*repo.Tree
	// prefetcher loads the folders a listing shows (prefetch.go).
	prefetcher prefetcher
	// small stores small new files once closed (smallstore.go).
	small smallStore
	// loaded holds the loaded folders (but the root) with their last
	// use, useClock counting uses; unloadedPaths the folders unloaded
	// since onUnload was last told (unload.go).
	loaded        map[*Inode]uint64
	useClock      uint64
	unloadedPaths []string
	onUnload      func(paths []string)
	// groupsIn: a rebase brought in link groups whose other names may be
	// in folders not loaded; the next commit loads the whole tree.
	groupsIn      bool
	replaying     bool       // journals are being replayed: keep staging files
	reserved      bool       // the reserve is allocated (see reserve.go)
	dirty         bool       // something changed since the last commit
	commitMu      sync.Mutex // one commit at a time
	lastError     error
	conflicts     []Conflict // the last ones met by rebases (rebase.go)
	conflictCount int

	// localKey seals the staging area and the journal.
	localKey    crypt.LocalKey
	handles     map[*Handle]bool // open, not closed yet
	stagingMu   sync.Mutex       // guards stagingOpen and inline; taken after t.mu
	stagingOpen map[string]*stagingFile
	// inline: where the content of the small files held in journal
	// records (not in staging files) is, by staging id (inline.go).
	inline map[string]inlineRef
	// legacyStaging maps the plaintext staging files of an older sealfs,
	// found at replay, to their sealed copies.
	legacyStaging map[string]string

	// filling counts the kernel cache fills under way in the whole tree
	// (at most maxFills), guarded by mu.
	filling int

	// goneKept counts the weak pointers unloaded folders kept at the
	// last forgetGoneLocked, goneAdded those added since (unload.go).
	goneKept, goneAdded int
}

const stagingDir = "staging"

// Open loads the newest snapshot of r (or o.Snapshot) and replays the
// local journals left by an earlier run (after a crash, what was queued is
// found again); a read-only Tree has no journal and reads nothing before
// it is used: its folders load as they are looked at. ctx
// bounds the opening only: the Tree's own background work lasts until
// Close.
func Open(ctx context.Context, r *repo.Repository, o Options) (_ *Tree, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Snapshot != nil && !o.ReadOnly {
		return nil, errors.New("an old snapshot can only be opened read-only")
	}
	if o.Inos == nil {
		o.Inos = &Inos{}
	}
	t := &Tree{r: r, opts: o, staged: map[*Inode]bool{}, linked: map[*Inode]bool{}, groups: map[uint64]*Inode{},
		localKey: r.LocalKey(), handles: map[*Handle]bool{}, stagingOpen: map[string]*stagingFile{}, inline: map[string]inlineRef{}, legacyStaging: map[string]string{},
		fetchLocked: true}
	t.life, t.endLife = context.WithCancel(context.WithoutCancel(ctx))
	t.fillsDone = sync.NewCond(&t.mu)
	// Replay and rebase fetch under the lock; nothing else runs yet.
	defer func() { t.fetchLocked = false }()
	defer func() {
		if err != nil {
			t.endLife()
		}
	}()
	t.root = &Inode{Ino: o.RootIno}
	if t.root.Ino == 0 {
		t.root.Ino = t.newIno()
	}
	s := o.Snapshot
	if s == nil {
		s = r.Latest()
	}
	if s != nil {
		t.baseSeq = s.Seq
		t.root.meta = rootMeta(s)
	} else {
		t.root.children = map[string]*Inode{}
		t.root.meta = emptyRoot(time.Now().UnixNano())
	}
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
	t.baseOnJournals(ctx)
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

// changed marks a change of the inode's content or metadata at now (in
// ns): POSIX's ctime. Every write, truncate, chmod, chown, utimens, xattr
// change, rename, link and unlink of the inode calls it; t.mu is held.
func (in *Inode) changed(now int64) { in.meta.CtimeNs = now }

// entriesChanged marks a change of a directory's entries at now (an entry
// made, removed or renamed): its mtime and ctime; t.mu is held.
func (in *Inode) entriesChanged(now int64) {
	in.meta.MtimeNs = now
	in.changed(now)
}

// emptyRoot returns the root directory of an empty repository, made at
// now (ns).
func emptyRoot(now int64) repo.Node {
	return repo.Node{Type: repo.NodeDir, Mode: 0o755, MtimeNs: now, AtimeNs: now, CtimeNs: now}
}

// rootMeta returns the root directory of snapshot s: its tree, and the
// attributes s holds, or (a version 1 snapshot) mode 0755, owner 0:0 and
// the snapshot's time.
func rootMeta(s *repo.Snapshot) repo.Node {
	n := repo.Node{Type: repo.NodeDir, Mode: 0o755, Subtree: s.Tree}
	n.MtimeNs = s.Time.UnixNano()
	n.AtimeNs, n.CtimeNs = n.MtimeNs, n.MtimeNs
	if a := s.Root; a != nil {
		n.Mode, n.UID, n.GID = a.Mode, a.UID, a.GID
		n.MtimeNs, n.AtimeNs, n.CtimeNs = a.MtimeNs, a.AtimeNs, a.CtimeNs
		n.Xattrs = slices.Clone(a.Xattrs)
	}
	return n
}

// SnapshotRootAttr returns the attributes of snapshot s's root as a Tree
// opened on s with RootIno ino shows them before its root is loaded
// (nlink not known yet), without opening one.
func SnapshotRootAttr(s *repo.Snapshot, ino uint64) Attr {
	m := rootMeta(s)
	return Attr{Ino: ino, Type: repo.NodeDir, Mode: m.Mode, UID: m.UID, GID: m.GID, MtimeNs: m.MtimeNs, AtimeNs: m.AtimeNs,
		CtimeNs: m.CtimeNs, Nlink: 1, Blocks: pageSize / 512}
}

// rootAttr returns the root attributes a snapshot stores of n.
func rootAttr(n *repo.Node) *repo.RootAttr {
	return &repo.RootAttr{Mode: n.Mode, UID: n.UID, GID: n.GID, MtimeNs: n.MtimeNs, AtimeNs: n.AtimeNs, CtimeNs: n.CtimeNs,
		Xattrs: slices.Clone(n.Xattrs)}
}

func (t *Tree) newIno() uint64 { return t.opts.Inos.Next() }

// child is an entry of a directory.
type child struct {
	name string
	in   *Inode
}

// sortedChildren returns a directory's entries sorted by name.
func sortedChildren(dir *Inode) []child {
	out := make([]child, 0, len(dir.children))
	for name, c := range dir.children {
		out = append(out, child{name, c})
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

// dropLocked forgets an inode that left the namespace; its staging file
// goes when the last handle closes. The entries of a directory go with it
// (their other names stay), and so do those of an unloaded directory
// still held (unload.go), which would otherwise take it for their folder.
func (t *Tree) dropLocked(in *Inode) {
	in.parent, in.links = nil, nil
	delete(t.linked, in)
	delete(t.loaded, in) // out of the namespace: never unloaded (unload.go)
	for name := range in.children {
		t.removeNameLocked(in, name)
	}
	for _, c := range reattachable(in) {
		t.dropLocked(c)
	}
	if in.opens == 0 {
		t.unstageLocked(in)
	}
}

func (t *Tree) unstageLocked(in *Inode) {
	if p := t.dropStagingLocked(in); p != "" {
		os.Remove(p)
	}
}

// dropStagingLocked does what unstageLocked does but delete the staging
// file: it returns its path for the caller to delete ("" when there is
// none, or while journals are replayed). t.mu is held.
func (t *Tree) dropStagingLocked(in *Inode) (remove string) {
	if in.staging == "" {
		return ""
	}
	inline := t.inlineLocked(in)
	if in.file != nil {
		in.file.Close()
		in.file = nil
	}
	t.stagingMu.Lock()
	delete(t.inline, in.staging)
	t.stagingMu.Unlock()
	if !t.replaying && !inline {
		// A later record of the journals being replayed may name it
		// again; removeOrphans deletes it if none does.
		remove = t.stagingPath(in.staging)
	}
	in.staging = ""
	in.overlay, in.base, in.written, in.baseReader = false, nil, nil, nil
	if in.stream != nil {
		in.stream.stop(true)
		in.stream.closeFile() // free the deleted file's space now
		in.stream = nil
	}
	delete(t.staged, in)
	return remove
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

func (t *Tree) lookupLocked(ctx context.Context, dir *Inode, name string) (*Inode, error) {
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
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

// Inos returns what hands out the Tree's inode numbers, for further Trees
// shown in the same mount (Options.Inos).
func (t *Tree) Inos() *Inos { return t.opts.Inos }

// Repository returns the repository the Tree was opened on.
func (t *Tree) Repository() *repo.Repository { return t.r }
