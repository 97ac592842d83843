package daemon

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FSType is the filesystem type the kernel shows for a sealfs mount.
const FSType = "fuse.sealfs"

// Mount is one mount of /proc/self/mountinfo.
type Mount struct {
	Mountpoint string // absolute, as the kernel resolved it
	FSType     string // "fuse.sealfs" for a sealfs mount
	Source     string // the mount source (sealfs shows the redacted remote)
}

// CanonicalPath makes path absolute and resolves symlinks in its parent
// folders (not in its last element, which may be a dead mount), as the
// kernel shows mount points.
func CanonicalPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if abs == "/" {
		return abs, nil
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// LookupMount returns the topmost mount whose mount point is exactly path
// (an absolute, cleaned path with symlinks resolved), or nil when path is
// not a mount point.
func LookupMount(path string) (*Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("failed to read the mount table: %w", err)
	}
	defer f.Close()
	return lookupMount(f, path)
}

// lookupMount reads mountinfo lines (proc(5)): "ID PARENT MAJ:MIN ROOT
// MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS". Later
// lines are mounted on top of earlier ones.
func lookupMount(r io.Reader, path string) (*Mount, error) {
	var found *Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		if unescapeMountField(fields[4]) != path {
			continue
		}
		found = &Mount{Mountpoint: path, FSType: unescapeMountField(fields[sep+1]), Source: unescapeMountField(fields[sep+2])}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read the mount table: %w", err)
	}
	return found, nil
}

// unescapeMountField undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in a mountinfo field.
func unescapeMountField(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
