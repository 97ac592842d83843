package worktree

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/atomicfile"
	"github.com/sealfs/sealfs/repo"
)

// Journal operations. A journal file starts with a "base" record naming the
// snapshot sequence number its operations apply on top of.
const (
	opBase   = "base"
	opCreate = "create" // Path, Meta (with Target, Rdev)
	opUnlink = "unlink" // Path (file or empty directory)
	opRename = "rename" // Path -> To (replacing To)
	// opExchange swaps the entries at Path and To (RENAME_EXCHANGE).
	opExchange = "exchange"
	opSetattr  = "setattr" // Path, Meta (mode, owner, times)
	opStage    = "stage"   // Path's content is now Staging
	// opContent: Path's content is Data, under the staging id Staging,
	// which names no file on disk (inline.go); a staging file of that
	// id, if there is one, holds newer content.
	opContent = "content"
	opClear   = "clear" // directory Path is empty (its entries follow)
	opLink    = "link"  // Path (not a directory) gets the further name To (replacing To)
	// Path's xattr Name is set to Value, or removed, at Time.
	opSetxattr    = "setxattr"
	opRemovexattr = "removexattr"
	// Path's xattrs are exactly Meta.Xattrs (the root's, in a journal
	// written whole).
	opXattrs = "xattrs"
)

type record struct {
	Op      string     `json:"op"`
	Seq     uint64     `json:"seq,omitempty"`
	Path    []byte     `json:"path,omitempty"`
	To      []byte     `json:"to,omitempty"`
	Meta    *repo.Node `json:"meta,omitempty"`
	Staging string     `json:"staging,omitempty"`
	// Time, on a create, unlink or rename record, is when it happened (ns):
	// the ctime of the entry renamed, and the mtime and ctime of the
	// directories whose entries changed. Older journals have none.
	Time int64 `json:"time,omitempty"`
	// Name and Value are an xattr's, on setxattr and removexattr records.
	Name  []byte `json:"name,omitempty"`
	Value []byte `json:"value,omitempty"`
	// Data is a small file's whole content, on a content record.
	Data []byte `json:"data,omitempty"`
	// Overlay, on a stage record, says the staging file holds only the
	// Written ranges over Base (see Inode).
	Overlay *overlayRecord `json:"overlay,omitempty"`

	// legacy marks a record read from a plaintext journal of an older
	// sealfs: its staging file is plaintext too, and is sealed at replay.
	legacy bool
	// err, on a record a record maker yields instead of one it could not
	// make (failRecord), fails the journal being written.
	err error
}

// failRecord stands for a record that could not be made: newJournal fails
// with err, and the journal is not made.
func failRecord(err error) record { return record{err: err} }

// check reports whether a record read back from the journal is well
// formed: a known operation with what it needs, paths of valid names, a
// staging id of the exact shape newStagingID makes, and overlay ranges
// inside the file.
func (r *record) check() error {
	var err error
	switch r.Op {
	case opCreate:
		if r.Meta == nil {
			err = errors.New("no attributes")
		} else if len(r.Path) == 0 {
			err = errors.New("no path")
		} else {
			_, name := splitPath(r.Path)
			err = checkMeta(r.Meta, name)
		}
	case opSetattr:
		if r.Meta == nil {
			err = errors.New("no attributes")
		} else if r.Meta.Mode&^0o7777 != 0 {
			err = fmt.Errorf("mode %o has more than permission bits", r.Meta.Mode)
		}
	case opUnlink:
		if len(r.Path) == 0 {
			err = errors.New("no path")
		}
	case opRename, opExchange, opLink:
		if len(r.Path) == 0 || len(r.To) == 0 {
			err = errors.New("no path")
		} else if !validPath(r.To) {
			err = fmt.Errorf("invalid path %q", r.To)
		}
	case opXattrs:
		if r.Meta == nil {
			err = errors.New("no attributes")
		}
	case opSetxattr, opRemovexattr:
		if len(r.Name) == 0 || len(r.Name) > repo.MaxXattrNameLen || len(r.Value) > repo.MaxXattrValueLen {
			err = fmt.Errorf("xattr of a %d-byte name and a %d-byte value", len(r.Name), len(r.Value))
		}
	case opClear:
	case opStage, opContent:
		if r.Op == opContent && (r.Overlay != nil || len(r.Data) > inlineMax) {
			err = fmt.Errorf("content of %d bytes, over the %d-byte limit, or an overlay", len(r.Data), inlineMax)
		} else if len(r.Path) == 0 {
			err = errors.New("no path")
		} else if !validStagingID(r.Staging) {
			err = fmt.Errorf("staging id %q is not of the shape this program makes", r.Staging)
		} else if o := r.Overlay; o != nil {
			err = o.check()
		}
	default:
		err = errors.New("unknown operation")
	}
	if err == nil && len(r.Path) > 0 && !validPath(r.Path) {
		err = fmt.Errorf("invalid path %q", r.Path)
	}
	if err != nil {
		return fmt.Errorf("malformed journal record %q: %w", r.Op, err)
	}
	return nil
}

// checkMeta reports whether the attributes of a create record are those
// of an entry a tree holds (docs/SPEC.md §8): the entry is committed as it
// is replayed, and one a tree refuses would fail every commit after it.
// Its content need not add up to its size (a staged file's size is its
// staging copy's).
func checkMeta(m *repo.Node, name string) error {
	v := *m
	v.Name, v.Size = []byte(name), 0
	for _, e := range v.Content {
		v.Size += e.Size // an overflow is Validate's to find
	}
	if err := v.Validate(); err != nil {
		return err
	}
	if checkXattrSpace(v.Xattrs) != nil {
		return errors.New("xattrs over the space an entry has")
	}
	return nil
}

// validPath reports whether p is a "/"-separated path of valid names.
func validPath(p []byte) bool {
	for _, name := range strings.Split(string(p), "/") {
		if !validName(name) {
			return false
		}
	}
	return true
}

func (o *overlayRecord) check() error {
	if o.BaseLimit > o.BaseSize {
		return fmt.Errorf("base limit %d past the base size %d", o.BaseLimit, o.BaseSize)
	}
	var end uint64
	for i, s := range o.Written {
		if s.Start >= s.End || (i > 0 && s.Start < end) {
			return fmt.Errorf("written ranges not sorted and disjoint at %d..%d", s.Start, s.End)
		}
		end = s.End
	}
	return nil
}

type overlayRecord struct {
	Base      []repo.Extent `json:"base"`
	BaseSize  uint64        `json:"base_size"`
	BaseLimit uint64        `json:"base_limit"`
	Written   ranges        `json:"written"`
}

// journal appends records to work/journal.<n>. Writes go to the kernel at
// once (they survive a crash of the daemon); Sync makes them durable.
//
// A journal is sealed (docs/SPEC.md §12.2): a header (journalMagic and a
// random journal id), then one frame per record: its length (4 bytes, big
// endian) and the record's JSON sealed under the journal's own key with
// the record's index as associated data, so that a record cannot be
// changed, moved or dropped from the middle unnoticed.
type journal struct {
	dir  string
	n    uint64
	f    *os.File
	path string
	off  int64 // size after the last whole record
	seal *crypt.LocalFile
	idx  uint64 // index of the next record

	// Reused from record to record (an untar writes tens of thousands):
	// the JSON of the record being sealed, and the frames of an append.
	pt  bytes.Buffer
	enc *json.Encoder // writes to pt
	out []byte
	ad  [8]byte // the record's index: recordAD

	// contentAt: where newJournal wrote the content records it was
	// given, by staging id (Tree.pointInline takes them).
	contentAt []contentAt
	// content counts the bytes of small files' content in the journal's
	// content records (journalContentMax).
	content int64
}

// journalKeep bounds the buffers a journal keeps between appends.
const journalKeep = 128 << 10 // a content record of inlineMax bytes is ~90 KiB of JSON

// journalMagic starts a sealed journal; a random journal id follows.
const (
	journalMagic  = "sealfs journal 1"
	journalIDSize = 16
	journalHeader = len(journalMagic) + journalIDSize
	// maxRecord bounds a sealed record (an overlay of a huge file lists
	// many extents).
	maxRecord = 1 << 30
)

// journalKey is the name a journal's key is derived from: its number and
// its random id.
func journalKey(key crypt.LocalKey, n uint64, id []byte) (*crypt.LocalFile, error) {
	return key.LocalFile(fmt.Sprintf("journal/%d/%x", n, id))
}

func recordAD(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

// frame appends the sealed frame of r, as record number j.idx, to dst, and
// counts the record.
func (j *journal) frame(dst []byte, r record) ([]byte, error) {
	j.pt.Reset()
	if j.enc == nil {
		j.enc = json.NewEncoder(&j.pt)
	}
	if err := j.enc.Encode(r); err != nil { // as json.Marshal, and a newline
		return nil, err
	}
	pt := bytes.TrimSuffix(j.pt.Bytes(), []byte("\n"))
	defer func() {
		if j.pt.Cap() > journalKeep {
			j.pt = bytes.Buffer{} // an overlay of a huge file: not kept
		}
	}()
	var err error
	if len(pt)+crypt.Overhead > maxRecord {
		return nil, fmt.Errorf("failed to write journal: a %d-byte record is over the %d-byte limit", len(pt), maxRecord)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	binary.BigEndian.PutUint64(j.ad[:], j.idx)
	if dst, err = j.seal.Seal(dst, j.ad[:], pt); err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	j.idx++
	return dst, nil
}

func journalName(dir string, n uint64) string {
	return filepath.Join(dir, fmt.Sprintf("journal.%016d", n))
}

// removeJournalsBefore removes the journals older than journal n, which
// replaces them.
func (t *Tree) removeJournalsBefore(n uint64) {
	ns, _ := listJournals(t.opts.Dir)
	for _, old := range ns {
		if old < n {
			os.Remove(journalName(t.opts.Dir, old))
		}
	}
}

// listJournals returns the journal numbers in dir, oldest first.
func listJournals(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ns []uint64
	for _, e := range entries {
		if s, ok := strings.CutPrefix(e.Name(), "journal."); ok {
			if n, err := strconv.ParseUint(s, 10, 64); err == nil {
				ns = append(ns, n)
			}
		}
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	return ns, nil
}

// journalTemp is where a journal is written before it is renamed into
// place. A leftover (a crash or a full disk) is overwritten.
const journalTemp = "journal.tmp"

// newJournal creates journal n holding a base record and then recs, all or
// nothing: it writes them to a temporary file, makes that durable and
// renames it into place. So a journal on disk always starts with its base
// record, and a full disk leaves nothing behind: the next attempt starts
// afresh. The records are sealed and written as recs yields them, a
// journalKeep buffer at a time: a commit restages tens of thousands of
// files, and none of their records is kept once written.
func newJournal(dir string, key crypt.LocalKey, n, base uint64, recs iter.Seq[record]) (*journal, error) {
	id := make([]byte, journalIDSize)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("failed to create journal: %w", err)
	}
	seal, err := journalKey(key, n, id)
	if err != nil {
		return nil, err
	}
	j := &journal{dir: dir, n: n, seal: seal}
	tmp, p := filepath.Join(dir, journalTemp), journalName(dir, n)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to create journal: %w", err)
	}
	off, err := j.writeAll(f, id, base, recs)
	if err == nil {
		if err = f.Sync(); err == nil {
			err = os.Rename(tmp, p)
		}
	}
	if err == nil {
		err = atomicfile.SyncDir(dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("failed to create journal: %w", err)
	}
	j.f, j.path, j.off = f, p, off
	return j, nil
}

// writeAll writes a new journal's header (id), its base record and recs
// to w, about half a journalKeep buffer at a time, and returns how many bytes it
// wrote.
func (j *journal) writeAll(w io.Writer, id []byte, base uint64, recs iter.Seq[record]) (int64, error) {
	var off int64
	buf := append(append(j.out[:0], journalMagic...), id...)
	defer func() {
		if cap(buf) <= journalKeep {
			j.out = buf[:0]
		}
	}()
	flush := func() error {
		k, err := w.Write(buf)
		off += int64(k)
		buf = buf[:0]
		return err
	}
	buf, err := j.frame(buf, record{Op: opBase, Seq: base})
	if err != nil {
		return 0, err
	}
	if recs != nil {
		for r := range recs {
			if r.err != nil {
				return 0, r.err
			}
			if r.Op == opContent {
				j.contentAt = append(j.contentAt, contentAt{id: r.Staging, off: off + int64(len(buf)), idx: j.idx})
				j.content += int64(len(r.Data))
			}
			if buf, err = j.frame(buf, r); err != nil {
				return 0, err
			}
			if len(buf) >= journalKeep/2 {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
	}
	return off, flush()
}

// append writes records and hands them to the kernel, in one write. A
// failed write (a full disk) is cut back off, so that the journal never
// holds a torn record in its middle: the operation fails, the queue stays
// whole.
func (j *journal) append(rs ...record) error {
	b := j.out[:0]
	defer func() {
		if cap(b) <= journalKeep {
			j.out = b[:0]
		}
	}()
	idx := j.idx
	for _, r := range rs {
		var err error
		if b, err = j.frame(b, r); err != nil {
			j.idx = idx
			return err
		}
	}
	if _, err := j.f.Write(b); err != nil {
		j.idx = idx // not written: the next records take these indexes
		if terr := j.f.Truncate(j.off); terr != nil {
			return fmt.Errorf("failed to write journal: %w (and failed to cut the torn record off: %v)", err, terr)
		}
		return fmt.Errorf("failed to write journal: %w", err)
	}
	j.off += int64(len(b))
	for _, r := range rs {
		if r.Op == opContent {
			j.content += int64(len(r.Data))
		}
	}
	return nil
}

func (j *journal) sync() error { return j.f.Sync() }

func (j *journal) close() error { return j.f.Close() }

// errJournalDamaged says a journal was read only up to a damaged record.
var errJournalDamaged = errors.New("journal is damaged")

// errJournalEmpty says a journal holds no whole record: it was cut off
// while it was created (older versions created journals in place, and a
// full disk left them empty); no operation was acknowledged from it.
var errJournalEmpty = errors.New("journal holds no record")

// hasSealedJournal reports whether any of the journals ns in dir is sealed.
// A cache that has one was sealed: a plaintext journal of an older sealfs
// is accepted only in a cache that never was.
func hasSealedJournal(dir string, ns []uint64) bool {
	for _, n := range ns {
		f, err := os.Open(journalName(dir, n))
		if err != nil {
			continue
		}
		var b [1]byte
		k, _ := f.Read(b[:])
		f.Close()
		if k == 1 && b[0] != '{' {
			return true
		}
	}
	return false
}

// readJournal returns the base sequence number and the records of journal
// file number n (see decodeJournal).
func readJournal(path string, key crypt.LocalKey, n uint64) (uint64, []record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	return decodeJournal(b, path, key, n)
}

// decodeJournal returns the base sequence number and the records of the
// bytes of journal number n; name names it in errors. A torn last record
// (a crash mid-write) is ignored; at a damaged record in the middle it
// returns the records before it with an error wrapping errJournalDamaged. A
// journal without a whole record is errJournalEmpty. A plaintext journal
// of an older sealfs (JSON lines) is read too; its records are marked
// legacy. Records are not checked here: Tree.apply checks each one before
// it uses it.
func decodeJournal(b []byte, name string, key crypt.LocalKey, n uint64) (uint64, []record, error) {
	if len(b) > 0 && b[0] == '{' {
		return decodeLegacyJournal(b, name)
	}
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: %s", errJournalEmpty, name)
	}
	if len(b) < journalHeader || string(b[:len(journalMagic)]) != journalMagic {
		return 0, nil, fmt.Errorf("journal %s is damaged at its first record: no sealfs journal header", name)
	}
	seal, err := journalKey(key, n, b[len(journalMagic):journalHeader])
	if err != nil {
		return 0, nil, err
	}
	var recs []record
	for pos := journalHeader; len(b)-pos >= 4; {
		size := int(binary.BigEndian.Uint32(b[pos:]))
		if size > maxRecord || size < crypt.Overhead {
			return damagedJournal(name, recs)
		}
		if len(b)-pos-4 < size {
			break // torn by a crash in the middle of the write
		}
		pt, err := seal.Open(nil, recordAD(uint64(len(recs))), b[pos+4:pos+4+size])
		var r record
		if err != nil || json.Unmarshal(pt, &r) != nil {
			return damagedJournal(name, recs)
		}
		recs = append(recs, r)
		pos += 4 + size
	}
	return journalRecords(name, recs)
}

// damagedJournal returns what came before a damaged record. Only the disk
// (or someone who can write the cache) damages a record in the middle:
// keep what came before it rather than refuse to mount.
func damagedJournal(name string, recs []record) (uint64, []record, error) {
	if len(recs) == 0 || recs[0].Op != opBase {
		return 0, nil, fmt.Errorf("journal %s is damaged at its first record", name)
	}
	return recs[0].Seq, recs[1:], fmt.Errorf("%w: %s at record %d", errJournalDamaged, name, len(recs)+1)
}

// journalRecords returns the base and the records after it.
func journalRecords(name string, recs []record) (uint64, []record, error) {
	if len(recs) == 0 {
		return 0, nil, fmt.Errorf("%w: %s", errJournalEmpty, name)
	}
	if recs[0].Op != opBase {
		return 0, nil, fmt.Errorf("journal %s has no base record", name)
	}
	return recs[0].Seq, recs[1:], nil
}

// decodeLegacyJournal reads a plaintext journal of one JSON line per record.
func decodeLegacyJournal(b []byte, name string) (uint64, []record, error) {
	var recs []record
	rd := bufio.NewReader(bytes.NewReader(b))
	for {
		line, err := rd.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a line without its newline was torn by a crash
		}
		var r record
		if json.Unmarshal(line, &r) != nil {
			return damagedJournal(name, recs)
		}
		r.legacy = true
		recs = append(recs, r)
	}
	return journalRecords(name, recs)
}
