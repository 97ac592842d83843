package repo

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote"
	"github.com/sealfs/sealfs/repo/format"
)

// DefaultPackSize is the target size of a pack object: large enough that
// Drive and iCloud are not flooded with small requests, small enough that
// the Transfers+1 packs a writer holds while they upload (40 MiB at the
// default of 4) stay within a mount's memory budget.
const DefaultPackSize = 8 << 20

// DefaultTransfers is how many requests to the remote run in parallel
// when Options.Transfers is 0.
const DefaultTransfers = 4

// Options are the client-side settings of an opened repository.
type Options struct {
	// CacheDir is the base cache directory; the repository's local state
	// lives in CacheDir/<repository id> (made absolute: StateDir is). It
	// must be set.
	CacheDir string
	// AcceptRollback accepts a remote whose newest snapshot is older than
	// one this client has seen, and resets the remembered sequence number.
	AcceptRollback bool
	// CacheSize, when positive, keeps up to that many bytes of sealed
	// blobs read from the remote in the cache directory, and reads ahead
	// on sequential reads.
	CacheSize int64
	// Transfers is how many requests to the remote run in parallel (pack
	// uploads, range fetches of read-ahead); 0 means DefaultTransfers. A
	// writer holds up to Transfers+1 packs in memory while they upload.
	Transfers int
	// LeaseTTL, when positive, is the lifetime of the writer lease this
	// client takes (default LeaseTTL); it is renewed every third of it.
	// Tests shorten it to exercise renewals.
	LeaseTTL time.Duration
	// TrustSegments reads a segmented data blob whole (sequential reads
	// and their read-ahead) without recomputing the chunk's keyed id: the
	// AEAD of each segment binds the id, its index and the last flag in,
	// and the authenticated table and index fix their number and places,
	// as for a range (docs/SPEC.md §6.2). A mount sets it; check, prune
	// and restore leave it off and recompute every id.
	TrustSegments bool
	// NoCacheWrites keeps the blobs fetched from the remote out of the
	// cache directory (CacheSize still sets the read-ahead and the memory
	// caches going, and what is cached already is read): a mount sets it
	// when the remote is a directory on the cache's own file system, where
	// a copy of every byte read would cost a write and save nothing.
	NoCacheWrites bool
}

// InitOptions are the settings of a new repository.
type InitOptions struct {
	Options
	Chunking    chunker.Params // zero means chunker.DefaultParams
	PackSize    int            // zero means DefaultPackSize
	Compression string         // CompressionZstd (default) or CompressionNone
}

// Repository is an opened, unlocked repository.
type Repository struct {
	remote   remote.Remote
	cfg      *format.Config
	id       crypt.RepoID
	mk       crypt.MasterKey
	keys     *crypt.Keys
	gear     *[256]uint64
	stateDir string
	state    *localState
	opts     Options

	zenc *zstd.Encoder
	zdec *zstd.Decoder

	index atomic.Pointer[Index] // replaced whole by Refresh; Index has its own lock
	// snapshots are sorted by sortSnapshots (the head last), guarded by
	// mu: the head and a fork's whole, the others as summaries (no index
	// list) or stubs (listing.go).
	snapshots []*Snapshot
	legacy    map[crypt.ID]bool   // snapshots listed under a version 1 name
	forgotten map[crypt.ID]uint64 // snapshots removed on purpose: their Seq
	loaded    map[crypt.ID]bool   // the index objects in index
	// historyLoaded: the snapshots of the head's history segments are in
	// snapshots (loadHistory, fold.go); folded marks them (and, while a
	// commit's fold is finishing, the ones it folded).
	historyLoaded bool
	folded        map[crypt.ID]bool
	// leftovers are objects to delete once a fold's snapshot is stored
	// (folded snapshots, replaced history segments), and fold the fold
	// whose snapshot is sealed and not yet stored (fold.go).
	leftovers []string
	fold      *pendingFold
	blobs     *blobCache  // nil without Options.CacheSize
	recent    *memCache   // verified data blobs, with Options.CacheSize
	fetches   fetchGroup  // blobs being fetched from the remote
	tables    *tableCache // segment tables, with Options.CacheSize
	// reloadMu runs one reload of the index at a time (relocate);
	// reloadedAt is when the last one ended.
	reloadMu   sync.Mutex
	reloadedAt time.Time
	// coldMu runs one load of the cold index objects at a time (cold.go).
	coldMu sync.Mutex
	// prefetching counts read-ahead fetches under way (at most
	// transfers()).
	prefetching atomic.Int64
	// cacheHits and cacheMisses count the data blobs loaded without the
	// remote and those fetched from it (CacheStats).
	cacheHits, cacheMisses atomic.Uint64
	// sealSlots bounds the chunks in the seal pipelines of all the files
	// written at once (pipeline.go).
	sealSlots chan struct{}
	// wholeDataBlobs makes the writer seal data blobs whole, as format
	// version 1 first did (tests and benchmarks of the old format).
	wholeDataBlobs bool

	// commitMu runs commits one at a time; it is held across their
	// remote requests, and taken before mu. Reads never take it.
	commitMu sync.Mutex
	// mu guards the writer state below. It is never held across a remote
	// request: uploads run in the background (upload.go).
	mu    sync.Mutex
	lease *leaseHolder
	// tried is the holder id of a Lock that wrote a lease and then failed:
	// a lease left with it is ours, and the next Lock takes it over.
	tried crypt.ID
	// tookOver: the lease this client holds replaced another writer's,
	// which stopped without releasing it (Prune then keeps the objects no
	// snapshot names: that writer's last upload may still land).
	tookOver bool
	packer   *packBuilder
	// Finished packs not stored yet, oldest first (queued, uploading, or
	// failed and waiting to be tried again); packSlots counts them and the
	// one being built, running the uploads under way.
	outgoing  []*packUpload
	packSlots int
	// spare is the buffer of a pack stored at its first try, kept for the
	// next pack while one is being built (a new 18 MiB buffer is zeroed:
	// 6 % of a sequential write's CPU); nil when no pack is in memory.
	spare       []byte
	running     int
	stopped     bool                // set by Unlock: no upload starts until Lock
	uploadEnded chan struct{}       // closed and replaced whenever an upload ends
	uploads     sync.WaitGroup      // uploads under way
	pending     []format.IndexEntry // blobs in stored packs, not yet in an index object
	// Objects of a commit that failed, kept for the next Commit: indexes
	// sealed but not stored, indexes stored but named by no stored
	// snapshot, and a snapshot whose upload failed.
	unsentIndexes []sealedObject
	unnamed       []crypt.ID
	// Merges of index objects stored and not yet named by a stored
	// snapshot (consolidate.go), and the number of entries of each index
	// object of the newest snapshot and of those waiting to be named.
	merges       []indexMerge
	indexEntries map[crypt.ID]int
	unstored     *unstoredSnapshot
	stats        WriteStats
}

// WriteStats counts what a writer stored since the repository was opened.
type WriteStats struct {
	Blobs, DedupBlobs uint64 // blobs stored, blobs found already stored
	RawBytes          uint64 // plaintext bytes of stored blobs
	PackBytes         uint64 // bytes of packs uploaded
	Packs             uint64
}

// Unlocker opens one of a repository's key slots.
type Unlocker interface {
	// Unlock returns the master key from one of slots and the id of the
	// slot that opened, or an error: one matching ErrWrongKey when the key
	// it was given opens none of them. (internal/unlock has the
	// application's unlockers.)
	Unlock(ctx context.Context, repo crypt.RepoID, slots []SlotInfo) (crypt.MasterKey, crypt.ID, error)
}

// SlotInfo is a key slot with its id.
type SlotInfo struct {
	ID   crypt.ID
	Slot *crypt.KeySlot
}

// zstdWindow is the encoders' window: how far back a match may point.
const zstdWindow = 256 << 10

func newCodecs() (*zstd.Encoder, *zstd.Decoder, error) {
	// An encoder for each worker of FileWriter.Write, which compresses
	// chunks in parallel, and one for the others. Each keeps a history
	// buffer for good: of twice its 8 MiB default window (28 MiB for
	// three, the largest part of a writing daemon's heap, which the
	// collector's memory limit counts), or of zstdWindow plus a block with
	// the lower-memory option. Segments are 64 KiB; only trees over
	// zstdWindow compress a little less.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(sealWorkers()+1),
		zstd.WithWindowSize(zstdWindow), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(format.MaxBlobSize))
	if err != nil {
		return nil, nil, err
	}
	return enc, dec, nil
}

// Init creates a new repository on rem with a fresh master key and one
// recovery-code slot, and returns it opened together with the code, which
// must be shown to the user once. It refuses a remote that already holds a
// repository.
func Init(ctx context.Context, rem remote.Remote, o InitOptions) (*Repository, crypt.RecoveryCode, error) {
	var code crypt.RecoveryCode
	if _, err := rem.Stat(ctx, format.ConfigName); err == nil {
		return nil, code, fmt.Errorf("%w at %s", ErrRepositoryExists, rem)
	} else if !errors.Is(err, remote.ErrNotFound) {
		return nil, code, err
	}
	if o.Chunking == (chunker.Params{}) {
		o.Chunking = chunker.DefaultParams
	}
	if o.PackSize == 0 {
		o.PackSize = DefaultPackSize
	}
	if o.Compression == "" {
		o.Compression = CompressionZstd
	}
	id, err := crypt.NewRepoID()
	if err != nil {
		return nil, code, err
	}
	cfg := &format.Config{
		Version: format.FormatVersion, Repository: id.String(), Created: time.Now().UTC().Truncate(time.Second),
		ChunkMin: o.Chunking.Min, ChunkAvg: o.Chunking.Avg, ChunkMax: o.Chunking.Max,
		PackSize: o.PackSize, Compression: o.Compression,
	}
	if err := cfg.Validate(); err != nil {
		return nil, code, err
	}
	mk, err := crypt.NewMasterKey()
	if err != nil {
		return nil, code, err
	}
	r, err := newRepository(rem, cfg, id, mk, o.Options)
	if err != nil {
		return nil, code, err
	}
	if err := rem.Mkdir(ctx); err != nil {
		return nil, code, err
	}
	// The key slot goes first and the config last: a repository exists
	// once its config does, and then it can be opened.
	if code, _, err = r.AddCodeSlot(ctx); err != nil {
		return nil, code, err
	}
	obj, err := format.EncodeConfig(cfg, r.keys)
	if err != nil {
		return nil, code, err
	}
	if err := rem.Put(ctx, format.ConfigName, obj); err != nil {
		return nil, code, err
	}
	return r, code, nil
}

func newRepository(rem remote.Remote, cfg *format.Config, id crypt.RepoID, mk crypt.MasterKey, o Options) (*Repository, error) {
	keys, err := crypt.DeriveKeys(mk, id)
	if err != nil {
		return nil, err
	}
	enc, dec, err := newCodecs()
	if err != nil {
		return nil, err
	}
	if o.CacheDir == "" {
		return nil, errors.New("no cache directory given (Options.CacheDir)")
	}
	// Absolute, because other processes are told where it is (a mount's
	// status names its state directory, and `sealfs umount`, run from
	// anywhere, reads the exit status there).
	base, err := filepath.Abs(o.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", o.CacheDir, err)
	}
	stateDir := filepath.Join(base, id.String())
	st, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	r := &Repository{
		remote: rem, cfg: cfg, id: id, mk: mk, keys: keys, gear: keys.GearTable(), legacy: map[crypt.ID]bool{},
		stateDir: stateDir, state: st, opts: o, zenc: enc, zdec: dec,
		forgotten: map[crypt.ID]uint64{}, loaded: map[crypt.ID]bool{}, folded: map[crypt.ID]bool{}, uploadEnded: make(chan struct{}), indexEntries: map[crypt.ID]int{},
		sealSlots: newSealSlots(),
	}
	r.index.Store(newIndex())
	if u := st.Unstored; u != nil {
		// A snapshot a crash cut off; see Commit. A copy that does not
		// open was not written by us: drop it.
		r.unstored = r.openUnstored(u)
		if r.unstored == nil {
			st.Unstored = nil
		}
	}
	if o.CacheSize > 0 {
		if r.blobs, err = newBlobCache(filepath.Join(stateDir, "blobs"), o.CacheSize); err != nil {
			return nil, fmt.Errorf("failed to open the blob cache: %w", err)
		}
		r.recent = newMemCache(memCacheBytes, segCacheBytes)
		r.tables = newTableCache(tableCacheBytes)
	}
	return r, nil
}

// Found is a repository found on a remote and not yet unlocked: its
// config as read, whose MAC is checked once the key is known. Find reads
// it once; Open unlocks with it.
type Found struct {
	remote    remote.Remote
	cfg       *format.Config
	body, mac []byte
}

// Find reads the config of the repository on rem, without unlocking it:
// enough to know that one exists (else an error wrapping ErrNoRepository)
// and its id.
func Find(ctx context.Context, rem remote.Remote) (*Found, error) {
	obj, err := readObject(ctx, rem, format.ConfigName, -1, format.MaxConfigObject)
	if errors.Is(err, remote.ErrNotFound) {
		return nil, fmt.Errorf("%w at %s", ErrNoRepository, rem)
	}
	if err != nil {
		return nil, err
	}
	cfg, body, mac, err := format.ParseConfig(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", format.ConfigName, ErrIntegrity, err)
	}
	return &Found{remote: rem, cfg: cfg, body: body, mac: mac}, nil
}

// Config is the repository's public config, not yet authenticated.
func (f *Found) Config() *format.Config { return f.cfg }

// Open finds the repository on rem and opens it (Found.Open).
func Open(ctx context.Context, rem remote.Remote, u Unlocker, o Options) (*Repository, error) {
	f, err := Find(ctx, rem)
	if err != nil {
		return nil, err
	}
	return f.Open(ctx, u, o)
}

// Open unlocks the repository with u, verifies its config, loads its
// snapshots (refusing a rollback, see Options.AcceptRollback) and the index
// of the newest one. It opens read-only; call Lock to write.
func (f *Found) Open(ctx context.Context, u Unlocker, o Options) (*Repository, error) {
	id, _ := crypt.ParseRepoID(f.cfg.Repository)
	slots, err := listSlots(ctx, f.remote)
	if err != nil {
		return nil, err
	}
	mk, _, err := u.Unlock(ctx, id, slots)
	if err != nil {
		return nil, err
	}
	r, err := newRepository(f.remote, f.cfg, id, mk, o)
	if err != nil {
		return nil, err
	}
	if !r.keys.VerifyConfigMAC(f.body, f.mac) {
		return nil, integrityError(format.ConfigName, "its MAC does not match: the config was changed")
	}
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func listSlots(ctx context.Context, rem remote.Remote) ([]SlotInfo, error) {
	var entries []remote.Entry
	err := rem.List(ctx, format.KeysDir, func(e remote.Entry) error { entries = append(entries, e); return nil })
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	var slots []SlotInfo
	for _, e := range entries {
		name := e.Name
		id, err := crypt.ParseID(path.Base(name))
		if err != nil || name != format.SlotName(id) {
			return nil, integrityError(name, "not a key slot name")
		}
		b, err := readObject(ctx, rem, name, e.Size, format.MaxSlotObject)
		if err != nil {
			return nil, err
		}
		s, err := crypt.ParseKeySlot(b)
		if err != nil {
			return nil, integrityError(name, "%v", err)
		}
		slots = append(slots, SlotInfo{ID: id, Slot: s})
	}
	if len(slots) == 0 {
		return nil, integrityError(format.KeysDir, "the repository has no key slots")
	}
	return slots, nil
}

// Refresh reloads the snapshots and the index of the newest one, refusing
// a rollback of the remote.
func (r *Repository) Refresh(ctx context.Context) error {
	r.mu.Lock()
	writing := r.lease != nil
	r.mu.Unlock()
	if writing {
		return errors.New("cannot refresh a repository open for writing: it is the newest state already")
	}
	snaps, forgot, err := r.loadSnapshots(ctx)
	if err != nil {
		return err
	}
	snaps, leftovers, err := r.sortOutFolded(ctx, snaps, forgot)
	if err != nil {
		return err
	}
	var folded uint64
	if len(snaps) > 0 {
		folded = snaps[len(snaps)-1].Folded()
	}
	if errs := verifyChain(snaps, forgot, folded); len(errs) > 0 {
		return errors.Join(errs...)
	}
	var newestSnap *Snapshot
	var newest uint64
	if len(snaps) > 0 {
		newestSnap = snaps[len(snaps)-1]
		newest = newestSnap.Seq
	}
	if err := r.checkRollback(ctx, snaps, forgot); err != nil {
		return err
	}
	counts := map[crypt.ID]int{}
	loaded := map[crypt.ID]bool{}
	ids := readerIndexes(snaps)
	idx, err := r.loadIndexes(ctx, ids, counts)
	if err != nil {
		return err
	}
	for _, xid := range ids {
		loaded[xid] = true
	}
	r.mu.Lock()
	u := r.unstored
	r.mu.Unlock()
	if u != nil && !r.keepUnstored(ctx, u, newestSnap, idx, counts) {
		u = nil
	}
	if u != nil {
		for _, xid := range u.snap.Indexes {
			loaded[xid] = true
		}
	}
	r.mu.Lock()
	r.snapshots = snaps
	r.forgotten = forgot
	r.historyLoaded = false
	clear(r.folded)
	r.leftovers = leftovers
	r.index.Store(idx)
	for x, n := range counts {
		r.indexEntries[x] = n
	}
	r.loaded = loaded
	dropped := r.unstored != nil && u == nil
	if dropped {
		old := r.unstored.snap
		landed := slices.ContainsFunc(snaps, func(s *Snapshot) bool { return s.ID == old.ID })
		if newest >= old.Seq && (!landed || slices.ContainsFunc(forksOf(snaps, forgot, folded), func(s *Snapshot) bool { return s.ID == old.ID })) {
			// Another writer took its number (and it did not land, or
			// landed late on a fork): its changes are only in the
			// worktree's journals now, based on its parent.
			r.state.Superseded = old.Seq
		}
		r.unstored, r.state.Unstored = nil, nil
	}
	r.mu.Unlock()
	return r.rememberHead(newestSnap, dropped)
}

// checkRollback refuses (unless Options.AcceptRollback) a remote whose
// newest snapshot is older than one this client has seen, or on which the
// snapshot this client last saw as the newest is gone without a forget
// record (deleted, so that the other side of a fork became the newest).
//
// The snapshot last seen may have been folded since (docs/SPEC.md §8.3):
// then the history segment of its number must hold it.
func (r *Repository) checkRollback(ctx context.Context, snaps []*Snapshot, forgot map[crypt.ID]uint64) error {
	if r.opts.AcceptRollback || r.state.Repository != r.id.String() {
		return nil
	}
	var newest uint64
	if len(snaps) > 0 {
		newest = snaps[len(snaps)-1].Seq
	}
	if newest < r.state.MaxSeq {
		return fmt.Errorf("%w: its newest snapshot is number %d, but this client has seen number %d; the storage may have been rolled back or snapshots deleted", ErrRollback, newest, r.state.MaxSeq)
	}
	seen := r.state.MaxID
	if seen.IsZero() {
		return nil
	}
	if _, ok := forgot[seen]; ok || slices.ContainsFunc(snaps, func(s *Snapshot) bool { return s.ID == seen }) {
		return nil
	}
	if head := snaps[len(snaps)-1]; r.state.MaxSeq <= head.Folded() {
		for _, ref := range head.History {
			if r.state.MaxSeq < ref.First || r.state.MaxSeq > ref.Last {
				continue
			}
			folded, err := r.readHistory(ctx, []format.HistoryRef{ref})
			if err != nil {
				return err
			}
			if slices.ContainsFunc(folded, func(s *Snapshot) bool { return s.ID == seen }) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: snapshot %d (%s), the newest this client has seen, is gone without a forget record; the storage may have been rolled back or snapshots deleted", ErrRollback, r.state.MaxSeq, seen.Short())
}

// Unstored returns the sequence number of the snapshot a commit of this
// client sealed but did not store (its upload failed, or a crash cut it
// off), or 0. The next Commit stores it before anything newer, so that
// commit's own snapshot is numbered one above it.
func (r *Repository) Unstored() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unstored == nil {
		return 0
	}
	return r.unstored.snap.Seq
}

// Superseded returns the sequence number of a snapshot this client failed
// to store and another writer's snapshot then took, or 0. The changes it
// held are in the worktree's journals: those based on that number were
// started for it, and build on the ones based on its parent.
func (r *Repository) Superseded() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.Superseded
}

// ClearSuperseded forgets the superseded snapshot, once the worktree has
// carried its changes onto the newest snapshot.
func (r *Repository) ClearSuperseded() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Superseded == 0 {
		return nil
	}
	r.state.Superseded = 0
	return r.state.save(r.stateDir)
}

// keepUnstored decides whether a snapshot whose upload failed (in this run,
// or in one a crash cut off) is still to be stored by the next Commit: only
// while it follows the newest snapshot. It is dropped when it landed after
// all, or when another writer committed since; then the indexes it names
// are unreferenced, and the changes it held are committed again from the
// worktree's journal. A kept snapshot's own indexes go into idx.
func (r *Repository) keepUnstored(ctx context.Context, u *unstoredSnapshot, newest *Snapshot, idx *Index, counts map[crypt.ID]int) bool {
	var newestID crypt.ID
	named := map[crypt.ID]bool{}
	if newest != nil {
		newestID = newest.ID
		for _, x := range newest.Indexes {
			named[x] = true
		}
	}
	if newestID != u.snap.Parent {
		return false
	}
	for _, x := range u.snap.Indexes {
		if !named[x] && r.loadIndex(ctx, x, idx, counts) != nil {
			return false
		}
	}
	return true
}

// openUnstored opens the sealed snapshot remembered in the local state, or
// returns nil when it does not open.
func (r *Repository) openUnstored(u *unstoredState) *unstoredSnapshot {
	if r.state.Repository != r.id.String() {
		return nil
	}
	pt, err := r.keys.Open(crypt.TypeSnapshot, u.ID, u.Sealed)
	if err != nil {
		return nil
	}
	s, err := format.DecodeSnapshot(pt)
	if err != nil {
		return nil
	}
	s.ID = u.ID
	return &unstoredSnapshot{snap: s, sealed: u.Sealed}
}

// rememberHead records head (nil: none) as the newest snapshot seen; with
// force it saves the local state even when that did not change.
func (r *Repository) rememberHead(head *Snapshot, force bool) error {
	var seq uint64
	var id crypt.ID
	if head != nil {
		seq, id = head.Seq, head.ID
	}
	if !force && seq == r.state.MaxSeq && id == r.state.MaxID && r.state.Repository == r.id.String() {
		return nil
	}
	r.state.Repository = r.id.String()
	r.state.MaxSeq, r.state.MaxID = seq, id
	return r.state.save(r.stateDir)
}

// loadIndex reads, opens and adds to into the index object id, and
// records its number of entries in counts.
func (r *Repository) loadIndex(ctx context.Context, id crypt.ID, into *Index, counts map[crypt.ID]int) error {
	t, err := r.readIndex(ctx, id)
	if err != nil {
		return err
	}
	into.addTable(id, t)
	if counts != nil {
		counts[id] = t.Len()
	}
	return nil
}

// ID returns the repository id.
func (r *Repository) ID() crypt.RepoID { return r.id }

// Config returns the repository config.
func (r *Repository) Config() format.Config { return *r.cfg }

// Remote returns the remote the repository lives on.
func (r *Repository) Remote() remote.Remote { return r.remote }

// StateDir returns this repository's directory in the local cache.
func (r *Repository) StateDir() string { return r.stateDir }

// Snapshots returns the snapshots, oldest first (by sequence number, then
// time, then id; several have one sequence number after a fork, see
// Forks): the newest last. They are summaries: without their lists of
// index objects (but the newest's and a fork's). The first call opens the
// snapshots an open did not (it opens only the newest; listing.go), or
// takes their summaries from the local cache.
func (r *Repository) Snapshots(ctx context.Context) ([]*Snapshot, error) {
	var snaps []*Snapshot
	err := r.withReload(ctx, func() error {
		if err := r.loadHistory(ctx); err != nil {
			return err
		}
		r.mu.Lock()
		snaps = append([]*Snapshot(nil), r.snapshots...)
		r.mu.Unlock()
		return r.fillStubs(ctx, snaps)
	})
	if err != nil {
		return nil, err
	}
	return snaps, nil
}

// Latest returns the newest snapshot (the head: of those with the highest
// sequence number, the latest time, then the greatest id), or nil when
// there is none.
func (r *Repository) Latest() *Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snapshots) == 0 {
		return nil
	}
	return r.snapshots[len(r.snapshots)-1]
}

// Index returns the blob index. It takes no lock of the repository's:
// reads never wait for a writer.
func (r *Repository) Index() *Index { return r.index.Load() }

// Slots lists the key slots.
func (r *Repository) Slots(ctx context.Context) ([]SlotInfo, error) { return listSlots(ctx, r.remote) }

// AddCodeSlot adds a recovery-code slot with a fresh code and returns it.
func (r *Repository) AddCodeSlot(ctx context.Context) (crypt.RecoveryCode, crypt.ID, error) {
	code, err := crypt.NewRecoveryCode()
	if err != nil {
		return code, crypt.ID{}, err
	}
	salt, err := crypt.NewSalt()
	if err != nil {
		return code, crypt.ID{}, err
	}
	kek, err := code.KEK(salt)
	if err != nil {
		return code, crypt.ID{}, err
	}
	id, err := r.AddSlot(ctx, crypt.SlotRecoveryCode, salt, nil, kek)
	return code, id, err
}

// AddSlot wraps the master key under kek in a new slot of the given kind.
func (r *Repository) AddSlot(ctx context.Context, kind crypt.SlotKind, salt []byte, params []byte, kek crypt.KEK) (crypt.ID, error) {
	id, err := crypt.NewRandomID()
	if err != nil {
		return id, err
	}
	s, err := crypt.NewKeySlot(r.id, id, kind, salt, params, kek, r.mk)
	if err != nil {
		return id, err
	}
	b, err := s.Marshal()
	if err != nil {
		return id, err
	}
	return id, r.remote.Put(ctx, format.SlotName(id), b)
}

// RemoveSlot deletes a key slot; the last one cannot be removed.
func (r *Repository) RemoveSlot(ctx context.Context, id crypt.ID) error {
	slots, err := r.Slots(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, s := range slots {
		found = found || s.ID == id
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrNoSlot, id)
	}
	if len(slots) == 1 {
		return ErrLastSlot
	}
	return r.remote.Delete(ctx, format.SlotName(id))
}
