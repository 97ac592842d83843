package archiver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/archiver"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/repo"
)

const gib = 1 << 30

// makeEdgeTree builds a directory with the cases backup tools meet.
func makeEdgeTree(t *testing.T, root string, smallFiles int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write("empty", nil, 0o644)
	write("exec.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	write("private", []byte("secret-ish"), 0o600)
	write("setuid", []byte("x"), 0o4755)
	write("big-random", random(9<<20+12345), 0o644)
	write("compressible.txt", bytes.Repeat([]byte("all work and no play makes jack a dull boy\n"), 100000), 0o644)

	// Sparse: a 5 GiB file with data at the start, across the 4 GiB mark
	// and at the end; a 0-byte-data 2 GiB hole-only file.
	f, err := os.Create(filepath.Join(root, "sparse-5g"))
	must(err)
	_, err = f.WriteAt(random(300000), 1000)
	must(err)
	_, err = f.WriteAt(random(2<<20), 4*gib-1<<20)
	must(err)
	_, err = f.WriteAt([]byte("tail"), 5*gib-4)
	must(err)
	must(f.Close())
	write("hole-only-2g", nil, 0o644)
	must(os.Truncate(filepath.Join(root, "hole-only-2g"), 2*gib))

	// Many small files, some identical.
	for i := range smallFiles {
		write(fmt.Sprintf("many/d%02d/f%05d", i%20, i), []byte(fmt.Sprintf("small file %d\n", i%(smallFiles/2+1))), 0o644)
	}
	// Deep path.
	deep := "deep"
	for i := range 40 {
		deep = filepath.Join(deep, fmt.Sprintf("level%02d", i))
	}
	write(filepath.Join(deep, "bottom.txt"), []byte("bottom"), 0o644)
	// Long and non-UTF-8 names.
	write(strings.Repeat("n", 255), []byte("long name"), 0o644)
	write("names/\xff\xfe\xfd-not-utf8", []byte("latin1"), 0o644)
	write("names/héllo wörld ✓", []byte("utf8"), 0o644)
	write("names/with\nnewline", []byte("nl"), 0o644)
	// Symlinks, hard links, fifo, device node, empty dir.
	must(os.Symlink("exec.sh", filepath.Join(root, "link-rel")))
	must(os.Symlink("/nonexistent/target", filepath.Join(root, "link-dangling")))
	must(os.Link(filepath.Join(root, "private"), filepath.Join(root, "names", "hardlink-to-private")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o640))
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(root, "null-dev"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(os.Lchown(filepath.Join(root, "private"), 1234, 5678))
	}
	must(os.MkdirAll(filepath.Join(root, "empty-dir"), 0o700))
	// Times with nanoseconds, on files, a symlink and directories (last).
	when := time.Date(2001, 2, 3, 4, 5, 6, 789012345, time.UTC)
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		must(err)
		ts := []unix.Timespec{unix.NsecToTimespec(when.Add(-time.Hour).UnixNano()), unix.NsecToTimespec(when.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// compareTrees fails the test at the first difference between two trees:
// type, mode, owner, mtime, size, device, link target, content, hard links.
func compareTrees(t *testing.T, a, b string) int {
	t.Helper()
	n := 0
	inodes := map[uint64]string{}
	err := filepath.Walk(a, func(pa string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, pa)
		pb := filepath.Join(b, rel)
		var sa, sb unix.Stat_t
		if err := unix.Lstat(pa, &sa); err != nil {
			return err
		}
		if err := unix.Lstat(pb, &sb); err != nil {
			return fmt.Errorf("%s missing after restore: %w", rel, err)
		}
		n++
		if sa.Mode != sb.Mode || sa.Uid != sb.Uid || sa.Gid != sb.Gid || sa.Rdev != sb.Rdev {
			return fmt.Errorf("%s: mode/owner/rdev %o %d:%d %d, restored %o %d:%d %d", rel, sa.Mode, sa.Uid, sa.Gid, sa.Rdev, sb.Mode, sb.Uid, sb.Gid, sb.Rdev)
		}
		if sa.Mtim != sb.Mtim {
			return fmt.Errorf("%s: mtime %v, restored %v", rel, sa.Mtim, sb.Mtim)
		}
		switch sa.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			ta, _ := os.Readlink(pa)
			tb, _ := os.Readlink(pb)
			if ta != tb {
				return fmt.Errorf("%s: link target %q, restored %q", rel, ta, tb)
			}
		case unix.S_IFREG:
			if sa.Size != sb.Size {
				return fmt.Errorf("%s: size %d, restored %d", rel, sa.Size, sb.Size)
			}
			if sa.Size > 1<<30 && sb.Blocks*512 > 64<<20 {
				return fmt.Errorf("%s: restored sparse file uses %d bytes of disk", rel, sb.Blocks*512)
			}
			if err := sameContent(pa, pb); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			if sa.Nlink > 1 {
				if first, ok := inodes[sa.Ino]; ok {
					var sf unix.Stat_t
					_ = unix.Lstat(filepath.Join(b, first), &sf)
					if sf.Ino != sb.Ino {
						return fmt.Errorf("%s: hard link to %s not kept", rel, first)
					}
				}
				inodes[sa.Ino] = rel
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dataSegments lists the [start, end) data regions of a file (SEEK_DATA/SEEK_HOLE).
func dataSegments(f *os.File) ([][2]int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var segs [][2]int64
	for off := int64(0); off < fi.Size(); {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		} else if err != nil {
			return nil, err
		}
		h, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		segs = append(segs, [2]int64{d, h})
		off = h
	}
	return segs, nil
}

// sameContent compares two files byte for byte over the data regions of a,
// and checks that b has no data where a has a hole (holes read as zeros).
func sameContent(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	segsA, err := dataSegments(fa)
	if err != nil {
		return err
	}
	segsB, err := dataSegments(fb)
	if err != nil {
		return err
	}
	for _, sb := range segsB {
		inside := false
		for _, sa := range segsA {
			inside = inside || (sb[0] >= sa[0] && sb[1] <= sa[1])
		}
		if !inside {
			return fmt.Errorf("restored file has data at %d..%d where the original has a hole", sb[0], sb[1])
		}
	}
	ba, bb := make([]byte, 4<<20), make([]byte, 4<<20)
	for _, sa := range segsA {
		for off := sa[0]; off < sa[1]; off += int64(len(ba)) {
			n := min(int64(len(ba)), sa[1]-off)
			if _, err := fa.ReadAt(ba[:n], off); err != nil {
				return err
			}
			if _, err := fb.ReadAt(bb[:n], off); err != nil && err != io.EOF {
				return err
			}
			if !bytes.Equal(ba[:n], bb[:n]) {
				return fmt.Errorf("content differs in %d..%d", off, off+n)
			}
		}
	}
	return nil
}

func TestSaveRestoreEdgeCases(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	makeEdgeTree(t, src, 10000)
	env := testutil.NewRepo(t, repo.InitOptions{})
	s := archiver.NewSaver(env.Repo)
	t0 := time.Now()
	root, err := s.SaveDir(ctx, src)
	t.Logf("save %v", time.Since(t0))
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if _, err := env.Repo.Commit(ctx, root, repo.CommitInfo{Files: st.Files, Bytes: st.Bytes}); err != nil {
		t.Fatal(err)
	}
	// The 7 GiB of sparse files and the 10k small files cost little to store.
	if put := env.Remote.Stats().BytesPut; put > 20<<20 {
		t.Errorf("storing the tree uploaded %d bytes, want < 20 MiB", put)
	}

	// A new client: fresh cache directory, only the recovery code.
	r2, err := env.Reopen(t, filepath.Join(t.TempDir(), "fresh-cache"), false)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := archiver.NewRestorer(r2).RestoreTree(ctx, r2.Latest().Tree, dst); err != nil {
		t.Fatal(err)
	}
	// The root itself is not part of the tree; compare everything below it.
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{{}, mtimeOf(t, src)}, 0)
	_ = os.Chmod(dst, modeOf(t, src))
	t.Logf("restore done %v", time.Since(t0))
	if n := compareTrees(t, src, dst); n < 10000 {
		t.Logf("compare done %v", time.Since(t0))
		t.Fatalf("compared only %d entries", n)
	}

	// Random access across the 4 GiB mark through the file reader.
	tree, err := r2.LoadTree(ctx, r2.Latest().Tree)
	if err != nil {
		t.Fatal(err)
	}
	node := tree.Find([]byte("sparse-5g"))
	want := make([]byte, 3<<20)
	f, _ := os.Open(filepath.Join(src, "sparse-5g"))
	defer f.Close()
	if _, err := f.ReadAt(want, 4*gib-2<<20); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := r2.OpenFile(ctx, node).ReadAt(got, 4*gib-2<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("ReadAt across the 4 GiB mark returned wrong bytes")
	}
}

func mtimeOf(t *testing.T, p string) unix.Timespec {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mtim
}

func modeOf(t *testing.T, p string) os.FileMode {
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
