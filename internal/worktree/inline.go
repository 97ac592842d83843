package worktree

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/worktree/sealedfile"
	"github.com/sealfs/sealfs/repo"
)

// Small new files live in the journal, not in staging files (docs/SPEC.md
// §12.2, the content record): an untar makes thousands, and creating,
// writing and deleting a staging file for each cost more than storing
// them. A new file is written into memory (a Deferred sealed file) while
// it is open; when it is flushed (closed) its whole content is sealed
// into a content record of the journal, and the memory goes. What reads
// it later (a reader, the small-file worker, a commit) reads that record
// back. A file that grows past inlineMax, or is allocated, goes to a
// staging file on disk (a spill), which a replay prefers to the record.
// A journal written whole (a commit, a replay, a rebase) copies the
// records of the files it carries on, and their places move to it.

// inlineMax is the largest content a file keeps in memory and in a
// content record.
const inlineMax = 64 << 10

// journalContentMax bounds the content of small files one journal holds
// in content records: past it, a flushed small file goes to its staging
// file instead. A replay holds a journal's content records in memory until
// it has written the next journal, and a mount that cannot commit (the
// remote down) carries them from journal to journal: without a bound, an
// offline mount's small files would all be in memory at its next start.
const journalContentMax = 16 << 20

// inlineRef is where the content of a small file is: a content record of
// journal j (its frame at off, its index idx), or, while journals are
// replayed, data itself.
type inlineRef struct {
	data []byte
	j    *journal
	off  int64
	idx  uint64
}

// readContent returns the data of the content record whose frame is at off
// in the journal, as record idx.
func (j *journal) readContent(off int64, idx uint64) ([]byte, error) {
	var hdr [4]byte
	if _, err := j.f.ReadAt(hdr[:], off); err != nil {
		return nil, fmt.Errorf("failed to read a file's content from journal %s: %w", j.path, err)
	}
	size := int(binary.BigEndian.Uint32(hdr[:]))
	if size > maxRecord {
		return nil, fmt.Errorf("%w: %s at record %d", errJournalDamaged, j.path, idx+1)
	}
	buf := make([]byte, size)
	if _, err := j.f.ReadAt(buf, off+4); err != nil {
		return nil, fmt.Errorf("failed to read a file's content from journal %s: %w", j.path, err)
	}
	pt, err := j.seal.Open(buf[crypt.NonceSize:crypt.NonceSize], recordAD(idx), buf)
	var r record
	if err != nil || json.Unmarshal(pt, &r) != nil || r.Op != opContent {
		// Damaged as a staging copy's block is: the file's reads fail,
		// a commit leaves it out.
		return nil, fmt.Errorf("%w: %w: %s at record %d", errJournalDamaged, sealedfile.ErrDamaged, j.path, idx+1)
	}
	return r.Data, nil
}

// inlineData returns the content a ref points at.
func inlineData(ref inlineRef) ([]byte, error) {
	if ref.j == nil {
		return ref.data, nil // never changed (sealedfile.Deferred copies it)
	}
	return ref.j.readContent(ref.off, ref.idx)
}

// createInline makes the staging file id of a new file in memory: no file
// on disk until it grows past inlineMax.
func (t *Tree) createInline(id string) (*stagingFile, error) {
	f, err := sealedfile.Deferred(t.stagingPath(id), stagingName(id), t.localKey, inlineMax, nil)
	if err != nil {
		return nil, err
	}
	t.stagingMu.Lock()
	defer t.stagingMu.Unlock()
	s := &stagingFile{File: f, t: t, id: id, refs: 1}
	t.stagingOpen[id] = s
	return s, nil
}

// inlineLocked reports whether a staged file's content is in memory or in
// a journal record, not in a staging file. t.mu is held.
func (t *Tree) inlineLocked(in *Inode) bool {
	if in.staging == "" || in.overlay {
		return false
	}
	if in.file != nil {
		return in.file.InMemory()
	}
	t.stagingMu.Lock()
	defer t.stagingMu.Unlock()
	if s := t.stagingOpen[in.staging]; s != nil {
		return s.InMemory()
	}
	_, ok := t.inline[in.staging]
	return ok
}

// recordContentLocked appends the content record of in, holding data, and
// makes it where in's content is read from. t.mu is held.
func (t *Tree) recordContentLocked(in *Inode, data []byte) error {
	if t.journal == nil || in.parent == nil {
		return nil
	}
	rec := record{Op: opContent, Path: []byte(t.pathOf(in)), Staging: in.staging, Data: data}
	var ref inlineRef
	err := t.withReserve(func() error {
		j := t.journal
		ref = inlineRef{j: j, off: j.off, idx: j.idx}
		return j.append(rec)
	})
	if err != nil {
		return err
	}
	t.stagingMu.Lock()
	t.inline[in.staging] = ref
	t.stagingMu.Unlock()
	return nil
}

// flushInlineLocked records the content of in if it is held in memory.
// t.mu is held.
func (t *Tree) flushInlineLocked(in *Inode) error {
	if in.file == nil || in.overlay {
		return nil
	}
	data, ok := in.file.Bytes()
	if !ok {
		return nil
	}
	if t.spillRecordedLocked(in, in.file, uint64(len(data))) {
		return nil
	}
	return t.recordContentLocked(in, data)
}

// spillRecordedLocked writes f, the staging file of in held in memory, to
// disk if the current journal holds a content record of in already, or
// would hold more than journalContentMax bytes of content with size more,
// and reports whether it did: a file changed and flushed again and again
// (a state file rewritten in place, a log a script appends to) would put
// its whole content into the journal at every flush, and a replay reads
// the journal whole. On disk it is a staging file as any, which a replay
// prefers to the record. If it cannot be written out (a full disk), its
// content is recorded again. t.mu is held.
func (t *Tree) spillRecordedLocked(in *Inode, f *stagingFile, size uint64) bool {
	if t.journal == nil {
		return false
	}
	t.stagingMu.Lock()
	ref, ok := t.inline[in.staging]
	t.stagingMu.Unlock()
	recorded := ok && ref.j == t.journal
	if !recorded && t.journal.content+int64(size) <= journalContentMax {
		return false
	}
	if err := f.Spill(); err != nil {
		t.opts.Log.Warn("failed to write a small file's staging copy; its content goes into the journal again", "path", "/"+t.pathOf(in), "err", err)
		return false
	}
	return true
}

// carryRecordLocked is the record that carries a staged file's content
// into a journal written whole, at path p: its stage record, or a content
// record with its data for a file whose content is in memory or a journal
// record. With committed set (a commit stores the file as it is), the
// record of a file not held open in memory is the stage record alone: a
// replay that finds neither staging file nor content takes the content
// the snapshot stored. t.mu is held.
func (t *Tree) carryRecordLocked(in *Inode, p []byte, committed bool) (record, error) {
	rec := t.stageRecordLocked(in)
	rec.Path = p
	if in.overlay {
		return rec, nil
	}
	var data []byte
	if in.file != nil {
		var ok bool
		if data, ok = in.file.Bytes(); !ok {
			return rec, nil // on disk
		}
	} else {
		t.stagingMu.Lock()
		ref, ok := t.inline[in.staging]
		if s := t.stagingOpen[in.staging]; s != nil {
			data, ok = s.Bytes()
			ref = inlineRef{data: data}
		}
		t.stagingMu.Unlock()
		if !ok || committed {
			return rec, nil
		}
		var err error
		if data, err = inlineData(ref); errors.Is(err, errJournalDamaged) {
			// As a damaged staging copy: its reads fail, and it is
			// not committed; what it held is lost.
			t.opts.Log.Error("a queued file's content is damaged in the journal: it is lost", "path", "/"+string(p), "err", err)
			return rec, nil
		} else if err != nil {
			return rec, err
		}
	}
	rec.Op, rec.Data = opContent, data
	return rec, nil
}

// contentAt is where newJournal wrote a content record: the file's
// staging id, its frame's offset and its index.
type contentAt struct {
	id  string
	off int64
	idx uint64
}

// pointInline makes the content records journal j was just written with
// (j.contentAt) where their files' content is.
func (t *Tree) pointInline(j *journal) {
	t.stagingMu.Lock()
	defer t.stagingMu.Unlock()
	for _, c := range j.contentAt {
		t.inline[c.id] = inlineRef{j: j, off: c.off, idx: c.idx}
	}
	j.contentAt = nil
}

// applyContent replays a content record: the file's content is the
// record's data, unless its staging file exists (it grew past inlineMax
// since, and went to disk).
func (t *Tree) applyContent(ctx context.Context, rec record) error {
	in, err := t.resolve(ctx, rec.Path)
	if err != nil {
		return err
	}
	if in.meta.Type != repo.NodeFile {
		return errors.New("not a file")
	}
	if fi, err := os.Stat(t.stagingPath(rec.Staging)); err == nil {
		t.restageLocked(in, rec.Staging, stagedSize(fi.Size()), nil)
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	t.stagingMu.Lock()
	t.inline[rec.Staging] = inlineRef{data: rec.Data}
	t.stagingMu.Unlock()
	t.restageLocked(in, rec.Staging, uint64(len(rec.Data)), nil)
	return nil
}

// truncInlineLocked records the content a truncation to size leaves in f,
// the staging file of in, if it is held in memory and stays there. t.mu is
// held.
func (t *Tree) truncInlineLocked(in *Inode, f *stagingFile, size uint64) error {
	data, ok := f.Bytes()
	if !ok || in.overlay || size > inlineMax || t.spillRecordedLocked(in, f, size) {
		return nil // on disk, or going there
	}
	if size <= uint64(len(data)) {
		data = data[:size]
	} else {
		data = append(data, make([]byte, size-uint64(len(data)))...)
	}
	return t.recordContentLocked(in, data)
}

// recarryLocked records again, in the current journal, the content of a
// small file a commit stored but left staged (held open): the journal
// before, which its content record is in, is closed once the commit is
// done, and the new one carries only its stage record. t.mu is held.
func (t *Tree) recarryLocked(in *Inode) error {
	if in.parent == nil || !t.inlineLocked(in) {
		return nil
	}
	rec, err := t.carryRecordLocked(in, nil, false)
	if err != nil || rec.Op != opContent {
		return err
	}
	return t.recordContentLocked(in, rec.Data)
}
