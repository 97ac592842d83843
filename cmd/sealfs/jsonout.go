package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/retention"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// The machine-readable output of --json (docs/CLI.md, "JSON output"):
// every command encodes through printJSON, and shows snapshots, times and
// ids through the types below, so that every command's document follows
// one set of conventions: snake_case names, every field always present,
// times in RFC 3339 UTC (null when there is none), sizes in bytes, ids as
// 64 lower-case hex digits.

// addJSONFlag gives cmd the --json flag; lines: the command prints one
// document per line (a stream) instead of one document.
func addJSONFlag(cmd *cobra.Command, on *bool, lines bool) {
	usage := "print one JSON document on stdout instead of text (docs/CLI.md)"
	if lines {
		usage = "print one JSON document per line on stdout instead of text (docs/CLI.md)"
	}
	cmd.Flags().BoolVar(on, "json", false, usage)
}

// printJSON writes v to w as one JSON document on one line.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// jsonTime is a time as JSON shows it: RFC 3339 in UTC, null when zero.
type jsonTime time.Time

// MarshalJSON encodes t in RFC 3339 UTC, or null.
func (t jsonTime) MarshalJSON() ([]byte, error) {
	if time.Time(t).IsZero() {
		return []byte("null"), nil
	}
	return time.Time(t).UTC().MarshalJSON()
}

// jsonID is an id as JSON shows it: 64 lower-case hex digits, null when
// zero.
type jsonID crypt.ID

// MarshalJSON encodes id in hex, or null.
func (id jsonID) MarshalJSON() ([]byte, error) {
	if crypt.ID(id).IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(crypt.ID(id).String())
}

// snapshotJSON is a snapshot in every command's JSON.
type snapshotJSON struct {
	Seq    uint64   `json:"seq"`
	ID     jsonID   `json:"id"`
	Time   jsonTime `json:"time"`
	Host   string   `json:"host"`
	Parent jsonID   `json:"parent"`
	Tree   jsonID   `json:"tree"`
	Files  uint64   `json:"files"`
	Size   uint64   `json:"size"`
	Fork   bool     `json:"fork"`
	Prune  bool     `json:"prune"`
}

// newSnapshotJSON shows s; forks are the repository's fork snapshots
// (Repository.Forks).
func newSnapshotJSON(s *repo.Snapshot, forks []*repo.Snapshot) snapshotJSON {
	return snapshotJSON{Seq: s.Seq, ID: jsonID(s.ID), Time: jsonTime(s.Time), Host: s.Host, Parent: jsonID(s.Parent), Tree: jsonID(s.Tree),
		Files: s.Files, Size: s.Bytes, Fork: slices.Contains(forks, s), Prune: s.Prune}
}

// snapshotsJSON shows snaps, never as null.
func snapshotsJSON(snaps []*repo.Snapshot, forks []*repo.Snapshot) []snapshotJSON {
	out := []snapshotJSON{}
	for _, s := range snaps {
		out = append(out, newSnapshotJSON(s, forks))
	}
	return out
}

// entryJSON is a tree entry in the JSON of ls and diff.
type entryJSON struct {
	Path   string   `json:"path"`
	Type   string   `json:"type"`
	Mode   uint32   `json:"mode"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Size   uint64   `json:"size"`
	Mtime  jsonTime `json:"mtime"`
	Target string   `json:"target"`
}

// nodeTypes name the node types in JSON.
var nodeTypes = map[format.NodeType]string{format.NodeFile: "file", format.NodeDir: "dir", format.NodeSymlink: "symlink",
	format.NodeFIFO: "fifo", format.NodeCharDev: "chardev", format.NodeBlockDev: "blockdev", format.NodeSocket: "socket"}

// newEntryJSON shows the node n at path p (from the root, without a
// leading slash).
func newEntryJSON(p string, n *repo.Node) entryJSON {
	typ, ok := nodeTypes[n.Type]
	if !ok {
		typ = "unknown"
	}
	return entryJSON{Path: "/" + p, Type: typ, Mode: n.Mode, UID: n.UID, GID: n.GID, Size: n.Size,
		Mtime: jsonTime(time.Unix(0, n.MtimeNs)), Target: string(n.Target)}
}

// statusJSON is `sealfs status --json`: daemon.Status with every field
// present.
type statusJSON struct {
	PID           int            `json:"pid"`
	Remote        string         `json:"remote"`
	Repository    string         `json:"repository"`
	Mountpoint    string         `json:"mountpoint"`
	ReadOnly      bool           `json:"read_only"`
	SnapshotSeq   uint64         `json:"snapshot_seq"`
	PendingFiles  int            `json:"pending_files"`
	PendingBytes  uint64         `json:"pending_bytes"`
	Committing    bool           `json:"committing"`
	LastCommit    jsonTime       `json:"last_commit"`
	LastError     string         `json:"last_error"`
	Lease         string         `json:"lease"`
	StateDir      string         `json:"state_dir"`
	ConflictCount int            `json:"conflict_count"`
	Conflicts     []conflictJSON `json:"conflicts"`
	Forget        *forgetStatus  `json:"forget"`
	// The counts since the mount (daemon.Status).
	LastErrorTime   jsonTime           `json:"last_error_time"`
	LeaseHeld       bool               `json:"lease_held"`
	Commits         uint64             `json:"commits"`
	CommitFailures  commitFailures     `json:"commit_failures"`
	IntegrityErrors uint64             `json:"integrity_errors"`
	SentFiles       uint64             `json:"sent_files"`
	SentBytes       uint64             `json:"sent_bytes"`
	UploadedBytes   uint64             `json:"uploaded_bytes"`
	DownloadedBytes uint64             `json:"downloaded_bytes"`
	UploadRate      uint64             `json:"upload_rate"`
	QueueETA        *uint64            `json:"queue_eta_seconds"`
	Cache           daemon.CacheStatus `json:"cache"`
	Transfers       int                `json:"transfers"`
	BwLimit         string             `json:"bwlimit"`
	BwLimitUp       int64              `json:"bwlimit_up"`
	BwLimitDown     int64              `json:"bwlimit_down"`
}

// commitFailures counts failed commits by cause in `sealfs status --json`,
// every cause present.
type commitFailures struct {
	Lease       uint64 `json:"no_lease"`
	Integrity   uint64 `json:"integrity"`
	Unreachable uint64 `json:"unreachable"`
	NoSpace     uint64 `json:"no_space"`
	Canceled    uint64 `json:"canceled"`
	Other       uint64 `json:"other"`
}

// conflictJSON is a conflict in `sealfs status --json`.
type conflictJSON struct {
	Path     string   `json:"path"`
	Kind     string   `json:"kind"`
	Kept     string   `json:"kept"`
	Snapshot uint64   `json:"snapshot"`
	Time     jsonTime `json:"time"`
}

// forgetStatus is a mount's retention in `sealfs status --json`.
type forgetStatus struct {
	Policy    string   `json:"policy"`
	Interval  string   `json:"interval"`
	Last      jsonTime `json:"last"`
	Forgotten int      `json:"forgotten"`
	Total     int      `json:"total"`
	Error     string   `json:"error"`
}

func newStatusJSON(st *daemon.Status) statusJSON {
	out := statusJSON{PID: st.PID, Remote: st.Remote, Repository: st.Repository, Mountpoint: st.Mountpoint, ReadOnly: st.ReadOnly,
		SnapshotSeq: st.SnapshotSeq, PendingFiles: st.PendingFiles, PendingBytes: st.PendingBytes, Committing: st.Committing,
		LastCommit: jsonTime(st.LastCommit), LastError: st.LastError, Lease: st.Lease, StateDir: st.StateDir,
		ConflictCount: st.ConflictCount, Conflicts: []conflictJSON{},
		LastErrorTime: jsonTime(st.LastErrorTime), LeaseHeld: st.LeaseHeld, Commits: st.Commits, IntegrityErrors: st.IntegrityErrors,
		SentFiles: st.SentFiles, SentBytes: st.SentBytes, UploadedBytes: st.UploadedBytes, DownloadedBytes: st.DownloadedBytes,
		UploadRate: uint64(math.Round(st.UploadRate)), Cache: st.Cache,
		Transfers: st.Transfers, BwLimit: st.BwLimit, BwLimitUp: st.BwLimitUp, BwLimitDown: st.BwLimitDown}
	f := st.CommitFailures
	out.CommitFailures = commitFailures{Lease: f[daemon.CauseLease], Integrity: f[daemon.CauseIntegrity], Unreachable: f[daemon.CauseUnreachable],
		NoSpace: f[daemon.CauseNoSpace], Canceled: f[daemon.CauseCanceled], Other: f[daemon.CauseOther]}
	if st.QueueETA > 0 {
		eta := uint64(st.QueueETA)
		out.QueueETA = &eta
	}
	for _, c := range st.Conflicts {
		kept := ""
		if c.Kept != "" {
			kept = "/" + c.Kept
		}
		out.Conflicts = append(out.Conflicts, conflictJSON{Path: "/" + c.Path, Kind: c.Kind, Kept: kept, Snapshot: c.Snapshot, Time: jsonTime(c.Time)})
	}
	if f := st.Forget; f != nil {
		out.Forget = &forgetStatus{Policy: f.Policy, Interval: f.Interval, Last: jsonTime(f.Last), Forgotten: f.Forgotten, Total: f.Total, Error: f.Error}
	}
	return out
}

// checkJSON is `sealfs check --json`.
type checkJSON struct {
	Slots         int            `json:"slots"`
	Snapshots     int            `json:"snapshots"`
	Indexes       int            `json:"indexes"`
	ForgetRecords int            `json:"forget_records"`
	Packs         int            `json:"packs"`
	Blobs         int            `json:"blobs"`
	Trees         int            `json:"trees"`
	DataPacks     int            `json:"data_packs"`
	Unreferenced  []string       `json:"unreferenced"`
	Forks         []snapshotJSON `json:"forks"`
	Problems      []problemJSON  `json:"problems"`
	OK            bool           `json:"ok"`
}

// problemJSON is a problem a check found: damaged, or not given by the
// remote (then the check did not finish).
type problemJSON struct {
	Message string `json:"message"`
	Damaged bool   `json:"damaged"`
}

func newCheckJSON(rep *repo.CheckReport) checkJSON {
	out := checkJSON{Slots: rep.Slots, Snapshots: rep.Snapshots, Indexes: rep.Indexes, ForgetRecords: rep.ForgetRecords,
		Packs: rep.Packs, Blobs: rep.Blobs, Trees: rep.Trees, DataPacks: len(rep.DataPacks), Unreferenced: []string{}, Forks: snapshotsJSON(rep.Forks, rep.Forks),
		Problems: []problemJSON{}, OK: rep.OK()}
	out.Unreferenced = append(append(out.Unreferenced, rep.UnreferencedPacks...), rep.Unreferenced...)
	slices.Sort(out.Unreferenced)
	for _, p := range rep.Problems {
		out.Problems = append(out.Problems, problemJSON{Message: p.Error(), Damaged: errors.Is(p, repo.ErrIntegrity)})
	}
	return out
}

// backupJSON is `sealfs backup --json`.
type backupJSON struct {
	Snapshot      snapshotJSON `json:"snapshot"`
	Files         uint64       `json:"files"`
	Dirs          uint64       `json:"dirs"`
	Others        uint64       `json:"others"`
	Bytes         uint64       `json:"bytes"`
	UploadedBytes uint64       `json:"uploaded_bytes"`
	Packs         uint64       `json:"packs"`
	NewChunks     uint64       `json:"new_chunks"`
	StoredChunks  uint64       `json:"stored_chunks"`
}

// restoreJSON is `sealfs restore --json`.
type restoreJSON struct {
	Snapshot snapshotJSON `json:"snapshot"`
	Target   string       `json:"target"`
	Files    uint64       `json:"files"`
	Bytes    uint64       `json:"bytes"`
	Warnings int          `json:"warnings"`
}

// slotJSON is a key slot in `sealfs key list --json`.
type slotJSON struct {
	ID      jsonID   `json:"id"`
	Kind    string   `json:"kind"`
	Created jsonTime `json:"created"`
}

// pruneJSON is `sealfs prune --json`.
type pruneJSON struct {
	DryRun                  bool          `json:"dry_run"`
	Snapshots               int           `json:"snapshots"`
	Forgotten               int           `json:"forgotten"`
	LiveBlobs               int           `json:"live_blobs"`
	LiveBytes               int64         `json:"live_bytes"`
	Packs                   int           `json:"packs"`
	KeptPacks               int           `json:"kept_packs"`
	DeletedPacks            int           `json:"deleted_packs"`
	UnreferencedPacks       int           `json:"unreferenced_packs"`
	RepackedPacks           int           `json:"repacked_packs"`
	NewPacks                int           `json:"new_packs"`
	DeletedBytes            int64         `json:"deleted_bytes"`
	RepackedBytes           int64         `json:"repacked_bytes"`
	CopiedBytes             int64         `json:"copied_bytes"`
	DeletedIndexes          int           `json:"deleted_indexes"`
	NewIndexes              int           `json:"new_indexes"`
	KeptUnreferencedPacks   int           `json:"kept_unreferenced_packs"`
	KeptUnreferencedIndexes int           `json:"kept_unreferenced_indexes"`
	Snapshot                *snapshotJSON `json:"snapshot"`
	RemoteBytesBefore       int64         `json:"remote_bytes_before"`
	RemoteBytesAfter        int64         `json:"remote_bytes_after"`
	FreedBytes              int64         `json:"freed_bytes"`
}

func newPruneJSON(p *repo.PruneReport) pruneJSON {
	out := pruneJSON{DryRun: p.DryRun, Snapshots: p.Snapshots, Forgotten: p.Forgotten, LiveBlobs: p.LiveBlobs, LiveBytes: p.LiveBytes,
		Packs: p.Packs, KeptPacks: p.KeptPacks, DeletedPacks: p.DeletedPacks, UnreferencedPacks: p.UnreferencedPacks,
		RepackedPacks: p.RepackedPacks, NewPacks: p.NewPacks, DeletedBytes: p.DeletedBytes, RepackedBytes: p.RepackedBytes,
		CopiedBytes: p.CopiedBytes, DeletedIndexes: p.DeletedIndexes, NewIndexes: p.NewIndexes,
		KeptUnreferencedPacks: p.KeptUnreferencedPacks, KeptUnreferencedIndexes: p.KeptUnreferencedIndexes,
		RemoteBytesBefore: p.RemoteBefore, RemoteBytesAfter: p.RemoteAfter, FreedBytes: max(p.Freed(), 0)}
	if p.Snapshot != nil {
		s := newSnapshotJSON(p.Snapshot, nil)
		out.Snapshot = &s
	}
	return out
}

// forgetJSON is `sealfs forget --json`.
type forgetJSON struct {
	DryRun     bool              `json:"dry_run"`
	Policy     string            `json:"policy"`
	Groups     []forgetGroupJSON `json:"groups"`
	Unfinished []snapshotJSON    `json:"unfinished"`
	Forgotten  int               `json:"forgotten"`
}

// forgetGroupJSON is one group of a forget's plan.
type forgetGroupJSON struct {
	Host   string         `json:"host"`
	Keep   []keptJSON     `json:"keep"`
	Remove []snapshotJSON `json:"remove"`
}

// keptJSON is a snapshot a forget keeps, with why.
type keptJSON struct {
	Snapshot snapshotJSON `json:"snapshot"`
	Reasons  []string     `json:"reasons"`
}

// diffJSON is a line of `sealfs diff --json`.
type diffJSON struct {
	Change string `json:"change"`
	entryJSON
}

// newForgetJSON shows plan; named: it names the snapshots to remove (no
// policy); forgotten: how many it removes (or would, on a dry run).
func newForgetJSON(ctx context.Context, r *repo.Repository, plan retention.Plan, named, dryRun bool, forgotten int) (forgetJSON, error) {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return forgetJSON{}, err
	}
	forks := r.Forks()
	byID := map[crypt.ID]snapshotJSON{}
	for _, s := range snaps {
		byID[s.ID] = newSnapshotJSON(s, forks)
	}
	list := func(ss []retention.Snapshot) []snapshotJSON {
		out := []snapshotJSON{}
		for _, s := range ss {
			out = append(out, byID[s.ID])
		}
		return out
	}
	out := forgetJSON{DryRun: dryRun, Groups: []forgetGroupJSON{}, Unfinished: list(plan.Unfinished), Forgotten: forgotten}
	if !named {
		out.Policy = plan.Policy.String()
	}
	for _, g := range plan.Groups {
		gj := forgetGroupJSON{Host: g.Host, Keep: []keptJSON{}, Remove: list(g.Remove)}
		for _, k := range g.Keep {
			gj.Keep = append(gj.Keep, keptJSON{Snapshot: byID[k.ID], Reasons: append([]string{}, k.Reasons...)})
		}
		out.Groups = append(out.Groups, gj)
	}
	return out, nil
}
