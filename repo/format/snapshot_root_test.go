package format

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sealfs/sealfs/crypt"
)

// TestSnapshotRootVersions: a version 2 snapshot carries the root's
// attributes and a version 1 one none; a version 3 one may carry them and
// may record forks, sorted; anything else is refused (SPEC §8).
func TestSnapshotRootVersions(t *testing.T) {
	root := &RootAttr{Mode: 0o1750, UID: 5, GID: 6, MtimeNs: 1, AtimeNs: 2, CtimeNs: 3}
	forks := []crypt.ID{{1}, {2}}
	for _, c := range []struct {
		version int
		root    *RootAttr
		forks   []crypt.ID
		err     string
	}{
		{FormatVersion, nil, nil, ""},
		{SnapshotRootVersion, root, nil, ""},
		{SnapshotForksVersion, root, nil, ""},
		{SnapshotForksVersion, nil, nil, ""},
		{SnapshotForksVersion, root, forks, ""},
		{FormatVersion, root, nil, "root attributes"},
		{SnapshotRootVersion, nil, nil, "root attributes"},
		{SnapshotRootVersion, root, forks, "records forks"},
		{FormatVersion, nil, forks, "records forks"},
		{SnapshotForksVersion, nil, []crypt.ID{{2}, {1}}, "not sorted"},
		{SnapshotForksVersion, nil, []crypt.ID{{1}, {1}}, "not sorted"},
		{SnapshotForksVersion, nil, []crypt.ID{{}}, "zero"},
		{4, root, nil, "version 4"},
		{SnapshotRootVersion, &RootAttr{Mode: 0o10000}, nil, "more than permission bits"},
	} {
		s := &Snapshot{Version: c.version, Seq: 1, Time: time.Unix(0, 0).UTC(), Root: c.root, Forks: c.forks}
		s.Tree[0] = 1
		b, err := EncodeSnapshot(s)
		if err != nil && c.err != "" && strings.Contains(err.Error(), c.err) {
			continue // refused as it is written, too
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeSnapshot(b)
		switch {
		case c.err == "" && (err != nil || (got.Root == nil) != (c.root == nil) || !reflect.DeepEqual(got.Root, c.root) || !reflect.DeepEqual(got.Forks, c.forks)):
			t.Errorf("version %d, root %v: %v, %+v", c.version, c.root, err, got)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("version %d, root %v: %v; want an error with %q", c.version, c.root, err, c.err)
		}
	}
}

// TestSnapshotPruneMark: a version 3 snapshot may be marked as the one a
// prune stored ("prune": true, SPEC §8.2), written only when set; an older
// version so marked is refused.
func TestSnapshotPruneMark(t *testing.T) {
	for _, c := range []struct {
		version int
		prune   bool
		err     string
	}{
		{SnapshotForksVersion, true, ""},
		{SnapshotForksVersion, false, ""},
		{SnapshotRootVersion, true, "marked as a prune's"},
		{FormatVersion, true, "marked as a prune's"},
	} {
		s := &Snapshot{Version: c.version, Seq: 2, Time: time.Unix(0, 0).UTC(), Tree: crypt.ID{1}, Prune: c.prune}
		if c.version == SnapshotRootVersion {
			s.Root = &RootAttr{Mode: 0o755}
		}
		b, err := EncodeSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `"prune"`) != c.prune {
			t.Errorf("version %d, prune %v encodes as %s", c.version, c.prune, b)
		}
		got, err := DecodeSnapshot(b)
		switch {
		case c.err == "" && (err != nil || got.Prune != c.prune):
			t.Errorf("version %d, prune %v: %v, %+v", c.version, c.prune, err, got)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("version %d, prune %v: %v; want an error with %q", c.version, c.prune, err, c.err)
		}
	}
}
