package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo"
)

// snapshotSelectorHelp says what a SNAPSHOT argument may be, for help texts.
const snapshotSelectorHelp = "a sequence number, latest, or a unique prefix (4+ hex digits) of a snapshot's id (see: sealfs snapshots)"

// selectSnapshot finds the snapshot sel names in r: "latest" (or ""),
// a sequence number, or a unique prefix of at least 4 hex digits of an id
// (digits alone are a sequence number: such a prefix needs a letter, or
// the whole id).
// A snapshot never made, forgotten on purpose, or a prefix matching none or
// several, is a usage error; one that should be there and is not (deleted
// without a forget record) an integrity error. remoteName is shown in
// advice. This is the one parser of snapshot selectors of every command.
func selectSnapshot(ctx context.Context, r *repo.Repository, sel, remoteName string) (*repo.Snapshot, error) {
	see := fmt.Sprintf("(see: sealfs snapshots %s)", rcloneremote.Redact(remoteName))
	if sel == "" || sel == "latest" {
		if s := r.Latest(); s != nil {
			return s, nil
		}
		return nil, usageError{errors.New("the repository has no snapshots yet")}
	}
	if seq, err := strconv.ParseUint(sel, 10, 64); err == nil && len(sel) < 64 {
		// Of a fork's snapshots with this number, the main line's; the
		// others by id.
		s, err := r.SnapshotBySeq(ctx, seq)
		if errors.Is(err, repo.ErrNoSnapshot) || errors.Is(err, repo.ErrAmbiguousSnapshot) {
			return nil, usageError{fmt.Errorf("%w %s", err, see)}
		}
		return s, err
	}
	if !isIDPrefix(sel) {
		return nil, usageError{fmt.Errorf("%q is not a snapshot: give %s", sel, snapshotSelectorHelp)}
	}
	prefix := strings.ToLower(sel)
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	var found *repo.Snapshot
	for _, s := range snaps {
		if strings.HasPrefix(s.ID.String(), prefix) {
			if found != nil {
				return nil, usageError{fmt.Errorf("%q names snapshots %d and %d: give more digits of the id %s", sel, found.Seq, s.Seq, see)}
			}
			found = s
		}
	}
	if found != nil {
		return found, nil
	}
	for _, f := range r.Forgotten() {
		if strings.HasPrefix(f.ID.String(), prefix) {
			return nil, usageError{fmt.Errorf("%w: snapshot %d (%s) was forgotten", repo.ErrNoSnapshot, f.Seq, f.ID.Short())}
		}
	}
	return nil, usageError{fmt.Errorf("%w: no snapshot id starts with %s %s", repo.ErrNoSnapshot, prefix, see)}
}

// readSnapshot selects the snapshot sel names (selectSnapshot) and makes
// its blobs readable: those of a fork snapshot no writer has recorded yet
// are listed by its own index objects only (repo.Repository.LoadIndexesOf).
func readSnapshot(ctx context.Context, r *repo.Repository, sel, remoteName string) (*repo.Snapshot, error) {
	s, err := selectSnapshot(ctx, r, sel, remoteName)
	if err != nil {
		return nil, err
	}
	return s, r.LoadIndexesOf(ctx, s)
}

// isIDPrefix reports whether s can be the start of a snapshot id: 4 to 64
// hex digits.
func isIDPrefix(s string) bool {
	if len(s) < 4 || len(s) > 64 {
		return false
	}
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil
}
