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

func newJournal(dir string, n, base uint64) (*journal, error) {
	p := journalName(dir, n)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to create journal: %w", err)
	}
	j := &journal{dir: dir, n: n, f: f, path: p}
	if err := j.append(record{Op: opBase, Seq: base}); err != nil {
		f.Close()
		return nil, err
	}
	return j, j.sync()
}

// append writes one record and hands it to the kernel, in one write. A
// failed write (a full disk) is cut back off, so that the journal never
// holds a torn record in its middle: the operation fails, the queue stays
// whole.
func (j *journal) append(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := j.f.Write(b); err != nil {
		_ = j.f.Truncate(j.off)
		return fmt.Errorf("failed to write journal: %w", err)
	}
	j.off += int64(len(b))
	return nil
}

func (j *journal) sync() error { return j.f.Sync() }

func (j *journal) close() error { return j.f.Close() }

// errJournalDamaged says a journal was read only up to a damaged record.
var errJournalDamaged = errors.New("journal is damaged")

// readJournal returns the base sequence number and the records of a journal.
// A torn last line (a crash mid-write) is ignored; at a damaged line in the
// middle it returns the records before it with an error wrapping
// errJournalDamaged.
func readJournal(path string) (uint64, []record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
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
			if len(recs) == 0 {
				return 0, nil, fmt.Errorf("journal %s is damaged at its first record", path)
			}
			return recs[0].Seq, recs[1:], fmt.Errorf("%w: %s at record %d", errJournalDamaged, path, len(recs)+1)
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 || recs[0].Op != opBase {
		return 0, nil, fmt.Errorf("journal %s has no base record", path)
	}
	return recs[0].Seq, recs[1:], nil
}
