package format

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSnapshotRootVersions: a version 2 snapshot carries the root's
// attributes and a version 1 one none; anything else is refused (SPEC §8).
func TestSnapshotRootVersions(t *testing.T) {
	root := &RootAttr{Mode: 0o1750, UID: 5, GID: 6, MtimeNs: 1, AtimeNs: 2, CtimeNs: 3}
	for _, c := range []struct {
		version int
		root    *RootAttr
		err     string
	}{
		{FormatVersion, nil, ""},
		{SnapshotRootVersion, root, ""},
		{FormatVersion, root, "root attributes"},
		{SnapshotRootVersion, nil, "root attributes"},
		{3, root, "version 3"},
		{SnapshotRootVersion, &RootAttr{Mode: 0o10000}, "more than permission bits"},
	} {
		s := &Snapshot{Version: c.version, Seq: 1, Time: time.Unix(0, 0).UTC(), Root: c.root}
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
		case c.err == "" && (err != nil || (got.Root == nil) != (c.root == nil) || !reflect.DeepEqual(got.Root, c.root)):
			t.Errorf("version %d, root %v: %v, %+v", c.version, c.root, err, got)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("version %d, root %v: %v; want an error with %q", c.version, c.root, err, c.err)
		}
	}
}
