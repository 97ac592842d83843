package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// FindInDir looks for needle in every name and regular file under dir,
// reading only the data regions of sparse files. It returns a description
// of the first place it is found ("" if nowhere) and how many files it read.
func FindInDir(dir string, needle []byte) (string, int, error) {
	found, files := "", 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if strings.Contains(p, string(needle)) {
			found = "the name " + p
			return filepath.SkipAll
		}
		if !d.Type().IsRegular() {
			return nil
		}
		off, err := findInFile(p, needle)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		files++
		if off >= 0 {
			found = fmt.Sprintf("%s at byte %d", p, off)
			return filepath.SkipAll
		}
		return nil
	})
	return found, files, err
}

// findInFile returns the offset of needle in the file, or -1.
func findInFile(p string, needle []byte) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return -1, err
	}
	buf := make([]byte, 1<<20+len(needle))
	for off := int64(0); off < fi.Size(); {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return -1, nil
		} else if err != nil {
			data = off
		}
		// Read from a little before the data, to see a needle across it.
		start := max(data-int64(len(needle)), 0)
		n, err := f.ReadAt(buf, start)
		if i := bytes.Index(buf[:n], needle); i >= 0 {
			return start + int64(i), nil
		}
		if err != nil && err != io.EOF {
			return -1, err
		}
		if n < len(buf) {
			return -1, nil
		}
		off = start + int64(n) - int64(len(needle)) + 1
	}
	return -1, nil
}
