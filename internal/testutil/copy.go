package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// CopyMissing copies every file of the local remote directory from that to
// lacks into to, the lease aside: what the writer of a copy of the remote
// stored, landing late on the original (a fork).
func CopyMissing(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(from, p)
		if err != nil || d.IsDir() || rel == "lease" {
			return err
		}
		dst := filepath.Join(to, rel)
		if _, err := os.Stat(dst); err == nil {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
