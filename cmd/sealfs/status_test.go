package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/internal/daemon"
	"github.com/sealfs/sealfs/internal/worktree"
)

// TestPrintStatusEscapes: every text of a status comes from the mount
// that answered it (any FUSE mount of type fuse.sealfs, another user's
// too) or from names in the snapshots; none reaches the terminal with a
// terminal escape in it, in printStatus or in --watch's statusLine.
func TestPrintStatusEscapes(t *testing.T) {
	const esc = "\x1b]0;owned\a\x1b[2J"
	now := time.Now()
	st := &daemon.Status{PID: 1, Remote: "r" + esc, Repository: "id" + esc, Mountpoint: "/m" + esc, Lease: "l" + esc,
		LastError: "e" + esc, LastErrorTime: now, BwLimit: "1M" + esc, Transfers: 4,
		Forget:        &daemon.ForgetStatus{Policy: "p" + esc, Interval: "i" + esc, Last: now, Error: "f" + esc},
		ConflictCount: 1, Conflicts: []worktree.Conflict{{Path: "c" + esc, Kind: "k", Kept: "c" + esc + ".conflict", Time: now}}}
	var b bytes.Buffer
	printStatus(&b, st)
	b.WriteString(statusLine(now, st))
	if strings.ContainsAny(b.String(), "\x1b\a") {
		t.Errorf("the status shows an escape raw:\n%q", b.String())
	}
}
