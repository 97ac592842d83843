package testutil

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// CompareTrees fails the test at the first difference between two trees
// (returning how many entries it compared):
// type, mode, owner, mtime, size, device, link target, content, hard links.
func CompareTrees(t testing.TB, a, b string) int {
	t.Helper()
	n := 0
	inodes := map[uint64]string{}
	err := filepath.Walk(a, func(pa string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, pa)
		if rel == "." {
			return nil // the roots themselves are not part of the trees
		}
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
		}
		if sa.Nlink > 1 && sa.Mode&unix.S_IFMT != unix.S_IFDIR {
			if first, ok := inodes[sa.Ino]; ok {
				var sf unix.Stat_t
				_ = unix.Lstat(filepath.Join(b, first), &sf)
				if sf.Ino != sb.Ino {
					return fmt.Errorf("%s: hard link to %s not kept", rel, first)
				}
			}
			inodes[sa.Ino] = rel
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
