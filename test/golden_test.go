package test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/internal/testutil"
)

// TestGoldenRepositoryCLI: the sealfs command reads every golden repository
// (docs/SPEC.md §14) an older sealfs wrote: `snapshots` lists its
// snapshots, `check --read-data` finds it clean, `restore` of every present
// snapshot gives the files, modes, owners, times, devices, links and
// contents the manifest names, and a forgotten snapshot is refused as one;
// none of it changes an object.
func TestGoldenRepositoryCLI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("restoring device nodes and owners needs root")
	}
	for _, dir := range testutil.GoldenDirs(t, "../testdata/golden") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := testutil.ReadManifest(t, dir)
			remote := filepath.Join(t.TempDir(), "remote")
			testutil.CopyDir(t, filepath.Join(dir, testutil.GoldenRepoDir), remote)
			code, err := os.ReadFile(filepath.Join(dir, testutil.GoldenCodeFile))
			if err != nil {
				t.Fatal(err)
			}
			c := cliRepo{remote: remote, cache: filepath.Join(t.TempDir(), "cache"), codeFile: filepath.Join(t.TempDir(), "code")}
			if err := os.WriteFile(c.codeFile, code, 0o600); err != nil {
				t.Fatal(err)
			}
			r := c.run(t, "snapshots", remote)
			expect(t, r, 0, "")
			for _, s := range m.Snapshots {
				if !strings.Contains(r.stdout, s.ID[:8]) {
					t.Errorf("snapshots does not list snapshot %d (%s):\n%s", s.Seq, s.ID, r.stdout)
				}
			}
			expect(t, c.run(t, "check", "--read-data", remote), 0, "")
			for _, s := range m.Snapshots {
				out := filepath.Join(t.TempDir(), "restored")
				expect(t, c.run(t, "restore", "--snapshot", fmt.Sprint(s.Seq), remote, out), 0, "")
				compareRestored(t, out, s)
			}
			for _, f := range m.Forgotten {
				expect(t, c.run(t, "restore", "--snapshot", fmt.Sprint(f.Seq), remote, filepath.Join(t.TempDir(), "r")), 2, "forgotten")
			}
			testutil.SameObjects(t, remote, m.Objects)
		})
	}
}

// compareRestored compares the tree restored at dir with the manifest's
// snapshot: every entry's type, permission bits, owner, mtime (atime for
// files, taken before any content is read), size, device, symlink target,
// content and hard links, and nothing more. Xattrs are not compared:
// restore does not set them in format version 1.
func compareRestored(t *testing.T, dir string, s testutil.ManifestSnapshot) {
	t.Helper()
	want := map[string]testutil.ManifestEntry{}
	for _, e := range s.Entries {
		want[string(e.PathBytes())] = e
	}
	// Every entry is stat'ed before any content is read: reading a file
	// changes its atime, and the atime of its hard links.
	stats := map[string]*unix.Stat_t{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		stats[rel] = &unix.Stat_t{}
		return unix.Lstat(p, stats[rel])
	})
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[uint64]uint64{} // link group -> inode
	for rel, st := range stats {
		e, ok := want[rel]
		if !ok {
			t.Errorf("snapshot %d: restore made %q, which the manifest does not hold", s.Seq, rel)
			continue
		}
		delete(want, rel)
		compareEntry(t, s.Seq, filepath.Join(dir, rel), st, e, inodes)
	}
	for path := range want {
		t.Errorf("snapshot %d: restore did not make %q", s.Seq, path)
	}
}

var statTypes = map[string]uint32{
	"file": unix.S_IFREG, "dir": unix.S_IFDIR, "symlink": unix.S_IFLNK, "fifo": unix.S_IFIFO,
	"chardev": unix.S_IFCHR, "blockdev": unix.S_IFBLK, "socket": unix.S_IFSOCK,
}

func compareEntry(t *testing.T, seq uint64, p string, st *unix.Stat_t, e testutil.ManifestEntry, inodes map[uint64]uint64) {
	t.Helper()
	got := fmt.Sprintf("type %o mode %04o owner %d:%d mtime %d", st.Mode&unix.S_IFMT, st.Mode&07777, st.Uid, st.Gid, st.Mtim.Nano())
	wantS := fmt.Sprintf("type %o mode %s owner %d:%d mtime %d", statTypes[e.Type], e.Mode, e.UID, e.GID, e.MtimeNs)
	switch e.Type {
	case "file":
		got += fmt.Sprintf(" atime %d size %d sha256 %s", st.Atim.Nano(), st.Size, fileSHA256(t, p))
		wantS += fmt.Sprintf(" atime %d size %d sha256 %s", e.AtimeNs, e.Size, e.SHA256)
	case "symlink":
		target, _ := os.Readlink(p)
		got += " target " + target
		wantS += " target " + e.Target
	case "chardev", "blockdev":
		got += fmt.Sprintf(" rdev %d", st.Rdev)
		wantS += fmt.Sprintf(" rdev %d", e.Rdev)
	}
	if got != wantS {
		t.Errorf("snapshot %d: %s restored as %s,\nthe manifest says %s", seq, p, got, wantS)
	}
	if e.LinkGroup != 0 {
		if ino, ok := inodes[e.LinkGroup]; ok && ino != st.Ino {
			t.Errorf("snapshot %d: %s is not a hard link of the rest of link group %d", seq, p, e.LinkGroup)
		}
		inodes[e.LinkGroup] = st.Ino
	}
}

func fileSHA256(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
