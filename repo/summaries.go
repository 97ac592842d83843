package repo

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/atomicfile"
	"github.com/sealfs/sealfs/repo/format"
)

// The summary cache (docs/SPEC.md §12): what this client learnt by
// opening snapshots and forget records (each object is opened and verified
// once), kept in its cache directory so that a listing of the snapshots
// does not open every one of them again in every run: snapshots.json holds
// summaries of snapshots, forget.json the entries of forget records. An
// open reads forget.json, and snapshots.json only for snapshots of a
// version 1 name (a name of version 2 gives the sequence number, §8, "The
// chain"). Each file is sealed under its own local file key (§3: "Local
// file keys", the name being the file's), so the cache directory shows no
// snapshot's time, host or size. It is an optimisation only: a missing or
// damaged file is read as empty, and every entry is tied to the object
// name it was read from.

const (
	summaryFile = "snapshots.json"
	forgetFile  = "forget.json"
)

// cachedSnapshot is a snapshot's summary with its id (which the snapshot's
// JSON leaves out: it is the object's name).
type cachedSnapshot struct {
	ID crypt.ID `json:"id"`
	*Snapshot
}

// loadSummaries reads the summaries of snapshots kept in the cache
// directory; anything amiss reads as none.
func (r *Repository) loadSummaries() map[string]*cachedSnapshot {
	m := map[string]*cachedSnapshot{}
	if !r.readCacheFile(summaryFile, &m) {
		return map[string]*cachedSnapshot{}
	}
	for name, s := range m {
		if s == nil || s.Snapshot == nil || s.Tree.IsZero() {
			delete(m, name)
			continue
		}
		s.Snapshot.ID = s.ID
	}
	return m
}

// loadForgetCache reads the entries of forget records kept in the cache
// directory; anything amiss reads as none.
func (r *Repository) loadForgetCache() map[string][]format.Forgotten {
	m := map[string][]format.Forgotten{}
	if !r.readCacheFile(forgetFile, &m) {
		return map[string][]format.Forgotten{}
	}
	return m
}

// readCacheFile opens the sealed cache file file into v; it reports false
// when the file is missing, does not open or does not parse.
func (r *Repository) readCacheFile(file string, v any) bool {
	sealed, err := os.ReadFile(filepath.Join(r.stateDir, file))
	if err != nil {
		return false
	}
	lf, err := r.keys.LocalKey().LocalFile(file)
	if err != nil {
		return false
	}
	b, err := lf.Open(nil, []byte(r.id.String()), sealed)
	return err == nil && json.Unmarshal(b, v) == nil
}

// cachedSummary returns the summary in m of the snapshot named name, if
// it is the one that name says (id, and sequence number when the name has
// one).
func cachedSummary(m map[string]*cachedSnapshot, name string, seq uint64, id crypt.ID) *Snapshot {
	s := m[name]
	if s == nil || s.ID != id || (seq != 0 && s.Seq != seq) {
		return nil
	}
	return s.Snapshot
}

// keep drops the entries of objects that are not in listed, and reports
// whether it dropped any.
func keepListed[T any](m map[string]T, listed map[string]bool) bool {
	dropped := false
	for name := range m {
		if !listed[name] {
			delete(m, name)
			dropped = true
		}
	}
	return dropped
}

// saveCacheFile writes v as JSON to the cache file file, sealed (with the
// repository id as associated data), atomically; a failure (a full disk)
// only costs the next run the opening of objects again.
func (r *Repository) saveCacheFile(file string, v any) {
	b, err := json.Marshal(v)
	if err != nil || os.MkdirAll(r.stateDir, 0o700) != nil {
		return
	}
	lf, err := r.keys.LocalKey().LocalFile(file)
	if err != nil {
		return
	}
	sealed, err := lf.Seal(nil, []byte(r.id.String()), b)
	if err != nil {
		return
	}
	_ = atomicfile.Write(filepath.Join(r.stateDir, file), sealed, 0o600)
}

// summaryOf returns s without its list of index objects, which only the
// newest snapshot's and a fork's are needed for.
func summaryOf(s *Snapshot) *Snapshot {
	if s.Indexes == nil && s.Cold == nil {
		return s
	}
	c := *s
	c.Indexes, c.Cold = nil, nil
	return &c
}

// isStub reports whether s is known only by its name: its sequence number
// and id, nothing of its content (loadSummary fills it in). A snapshot
// that was opened always has a root tree.
func isStub(s *Snapshot) bool { return s.Tree.IsZero() }
