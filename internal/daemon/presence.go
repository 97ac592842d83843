package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sealfs/sealfs/internal/atomicfile"
)

// PresenceFile is the file in the state directory that names the daemon
// using it, so that the next mount of the same cache recognises a daemon
// that is leaving (still uploading, then releasing the lease) and waits
// for it instead of failing on the lease it still holds.
const PresenceFile = "daemon.json"

// Presence is the content of PresenceFile.
type Presence struct {
	PID          int           `json:"pid"`
	Mountpoint   string        `json:"mountpoint"`
	DrainTimeout time.Duration `json:"drain_timeout"`
	// Stopping is when the daemon began to stop (zero while it serves).
	Stopping time.Time `json:"stopping,omitzero"`
}

// Deadline is when a departing daemon will have exited at the latest: its
// drain timeout, plus time to unmount and release the lease, from when it
// began to stop (or from now, if it has not said so yet).
func (p *Presence) Deadline() time.Time {
	from := p.Stopping
	if from.IsZero() {
		from = time.Now()
	}
	return from.Add(p.DrainTimeout + stopMargin)
}

// stopMargin covers what a stop does after draining: the unmount, the
// final drain of racing writes, and the bounded lease release.
const stopMargin = 30 * time.Second

// ReadPresence returns the presence record in stateDir, or nil if there is
// none.
func ReadPresence(stateDir string) (*Presence, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, PresenceFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Presence
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", PresenceFile, err)
	}
	return &p, nil
}

func (d *Daemon) writePresence(stopping bool) {
	p := Presence{PID: os.Getpid(), Mountpoint: d.cfg.Mountpoint, DrainTimeout: d.drainTimeout()}
	if stopping {
		p.Stopping = time.Now()
	}
	b, _ := json.Marshal(&p)
	if err := atomicfile.Write(filepath.Join(d.cfg.Repo.StateDir(), PresenceFile), b, 0o600); err != nil {
		d.cfg.Log.Warn("failed to record this daemon in the state directory; a mount right after this one stops may fail until it has exited", "err", err)
	}
}

func (d *Daemon) removePresence() {
	path := filepath.Join(d.cfg.Repo.StateDir(), PresenceFile)
	if p, err := ReadPresence(d.cfg.Repo.StateDir()); err == nil && p != nil && p.PID == os.Getpid() {
		os.Remove(path)
	}
}
