package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/atomicfile"
)

// localState is what a client remembers about a repository between runs, in
// its cache directory: the newest snapshot sequence number it has seen, so
// that a remote rolled back to an older state is refused, and a snapshot
// this client is storing, so that a commit cut off by a crash is retried
// with the same bytes (docs/SPEC.md, "Commit").
type localState struct {
	Repository string `json:"repository"`
	MaxSeq     uint64 `json:"max_seq"`
	// MaxID is the id of the newest snapshot seen (zero: not known, a
	// state written before forks): it must stay present or forgotten.
	MaxID crypt.ID `json:"max_id"`
	// Unstored is the sealed snapshot being uploaded, until it is stored.
	Unstored *unstoredState `json:"unstored,omitempty"`
	// Superseded is the sequence number of a snapshot this client failed
	// to store and another writer's snapshot took, until the worktree has
	// carried the changes it held onto the newest snapshot (Superseded).
	Superseded uint64 `json:"superseded,omitempty"`
}

type unstoredState struct {
	ID     crypt.ID `json:"id"`
	Sealed []byte   `json:"sealed"`
}

const stateFile = "state.json"

func loadState(dir string) (*localState, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &localState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read local state: %w", err)
	}
	var s localState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("local state %s is damaged (%v); remove it to start afresh, which forgets the rollback check", filepath.Join(dir, stateFile), err)
	}
	return &s, nil
}

// save writes the state atomically: a temporary file, fsync, rename.
func (s *localState) save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to create cache directory: %w", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), b, 0o600)
}
