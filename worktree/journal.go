package worktree

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sealfs/sealfs/repo"
)

// Journal operations. A journal file starts with a "base" record naming the
// snapshot sequence number its operations apply on top of.
const (
	opBase    = "base"
	opCreate  = "create"  // Path, Meta (with Target, Rdev)
	opUnlink  = "unlink"  // Path (file or empty directory)
	opRename  = "rename"  // Path -> To (replacing To)
	opSetattr = "setattr" // Path, Meta (mode, owner, times)
	opStage   = "stage"   // Path's content is now Staging
	opClear   = "clear"   // directory Path is empty (its entries follow)
)

type record struct {
	Op      string     `json:"op"`
	Seq     uint64     `json:"seq,omitempty"`
	Path    []byte     `json:"path,omitempty"`
	To      []byte     `json:"to,omitempty"`
	Meta    *repo.Node `json:"meta,omitempty"`
	Staging string     `json:"staging,omitempty"`
	// Overlay, on a stage record, says the staging file holds only the
	// Written ranges over Base (see Inode).
	Overlay *overlayRecord `json:"overlay,omitempty"`
}

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
		}
	case opSetattr:
		if r.Meta == nil {
			err = errors.New("no attributes")
		}
	case opUnlink:
		if len(r.Path) == 0 {
			err = errors.New("no path")
		}
	case opRename:
		if len(r.Path) == 0 || len(r.To) == 0 {
			err = errors.New("no path")
		} else if !validPath(r.To) {
			err = fmt.Errorf("invalid path %q", r.To)
		}
	case opClear:
	case opStage:
		if len(r.Path) == 0 {
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
type journal struct {
	dir  string
	n    uint64
	f    *os.File
	path string
	off  int64 // size after the last whole record
}

func journalName(dir string, n uint64) string {
	return filepath.Join(dir, fmt.Sprintf("journal.%016d", n))
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
// afresh.
func newJournal(dir string, n, base uint64, recs []record) (*journal, error) {
	var buf []byte
	for _, r := range append([]record{{Op: opBase, Seq: base}}, recs...) {
		b, err := encodeRecord(r)
		if err != nil {
			return nil, err
		}
		buf = append(buf, b...)
	}
	tmp, p := filepath.Join(dir, journalTemp), journalName(dir, n)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to create journal: %w", err)
	}
	if _, err = f.Write(buf); err == nil {
		if err = f.Sync(); err == nil {
			err = os.Rename(tmp, p)
		}
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("failed to create journal: %w", err)
	}
	return &journal{dir: dir, n: n, f: f, path: p, off: int64(len(buf))}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// encodeRecord returns a record as it is stored: one line.
func encodeRecord(r record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// append writes one record and hands it to the kernel, in one write. A
// failed write (a full disk) is cut back off, so that the journal never
// holds a torn record in its middle: the operation fails, the queue stays
// whole.
func (j *journal) append(r record) error {
	b, err := encodeRecord(r)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(b); err != nil {
		if terr := j.f.Truncate(j.off); terr != nil {
			return fmt.Errorf("failed to write journal: %w (and failed to cut the torn record off: %v)", err, terr)
		}
		return fmt.Errorf("failed to write journal: %w", err)
	}
	j.off += int64(len(b))
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

// readJournal returns the base sequence number and the records of a journal
// file (see decodeJournal).
func readJournal(path string) (uint64, []record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	return decodeJournal(b, path)
}

// decodeJournal returns the base sequence number and the records of a
// journal's bytes; name names it in errors. A torn last line (a crash
// mid-write) is ignored; at a damaged line in the middle it returns the
// records before it with an error wrapping errJournalDamaged. A journal
// without a whole record is errJournalEmpty. Records are not checked here:
// Tree.apply checks each one before it uses it.
func decodeJournal(b []byte, name string) (uint64, []record, error) {
	var recs []record
	rd := bufio.NewReader(bytes.NewReader(b))
	for {
		line, err := rd.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a line without its newline was torn by a crash
		}
		var r record
		if json.Unmarshal(line, &r) != nil {
			// Only the disk can damage a line in the middle: keep what
			// came before it rather than refuse to mount.
			if len(recs) == 0 || recs[0].Op != opBase {
				return 0, nil, fmt.Errorf("journal %s is damaged at its first record", name)
			}
			return recs[0].Seq, recs[1:], fmt.Errorf("%w: %s at record %d", errJournalDamaged, name, len(recs)+1)
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return 0, nil, fmt.Errorf("%w: %s", errJournalEmpty, name)
	}
	if recs[0].Op != opBase {
		return 0, nil, fmt.Errorf("journal %s has no base record", name)
	}
	return recs[0].Seq, recs[1:], nil
}
