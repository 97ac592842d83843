package test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// statsFigures are the figures of one snapshot, or the total, of
// `sealfs stats --json`.
type statsFigures struct {
	Snapshot         struct{ Seq uint64 } `json:"snapshot"`
	Files            uint64               `json:"files"`
	LogicalBytes     uint64               `json:"logical_bytes"`
	Chunks           int                  `json:"chunks"`
	RawBytes         uint64               `json:"raw_bytes"`
	StoredBytes      uint64               `json:"stored_bytes"`
	DedupRatio       *float64             `json:"dedup_ratio"`
	CompressionRatio *float64             `json:"compression_ratio"`
	TreeBytes        uint64               `json:"tree_bytes"`
	IndexBytes       uint64               `json:"index_bytes"`
	SnapshotBytes    uint64               `json:"snapshot_bytes"`
	RemoteBytes      uint64               `json:"remote_bytes"`
}

type statsDoc struct {
	Snapshots []statsFigures `json:"snapshots"`
	Total     statsFigures   `json:"total"`
}

func runStats(t *testing.T, c cliRepo, args ...string) statsDoc {
	t.Helper()
	r := c.run(t, append([]string{"stats", "--json", "--quiet", c.remote}, args...)...)
	expect(t, r, 0, "")
	var d statsDoc
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, r.stdout)
	}
	return d
}

// TestStats: `sealfs stats` on a repository whose sizes the test arranged:
// a random file, a compressible text file (no two of its chunks alike) and
// a sparse file (64 KiB of random data in 8 MiB), then the same files and
// one more random file. The figures are held to what the files are: the
// logical bytes to their sizes (holes included), the unique bytes to the
// data written (holes not stored, the second snapshot's repeated files
// deduplicated), the stored bytes below them by the text's compression.
func TestStats(t *testing.T) {
	c := initRepo(t)
	src := t.TempDir()
	random := func(name string, n int) {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		writeFileT(t, src, name, string(b))
	}
	const mib = 1 << 20
	random("random", mib)
	var text strings.Builder
	for i := 0; text.Len() < mib; i++ {
		fmt.Fprintf(&text, "line %08d: the quick brown fox jumps over the lazy dog\n", i)
	}
	writeFileT(t, src, "text", text.String()[:mib])
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64<<10)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 4*mib); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 * mib); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	expect(t, c.run(t, "backup", src, c.remote), 0, "")
	random("new", 256<<10)
	expect(t, c.run(t, "backup", src, c.remote), 0, "")

	logical1 := uint64(mib + mib + 8*mib)
	logical2 := logical1 + 256<<10
	data1 := uint64(mib + mib + 64<<10)              // what snapshot 1 stores: no holes
	data2 := data1 + 256<<10                         // and snapshot 2: the files of 1 again, and "new"
	incompressible := uint64(mib + 64<<10 + 256<<10) // the random bytes

	d := runStats(t, c)
	if len(d.Snapshots) != 2 {
		t.Fatalf("%d snapshots, want 2: %+v", len(d.Snapshots), d)
	}
	s1, s2, tot := d.Snapshots[0], d.Snapshots[1], d.Total
	for i, want := range []struct{ files, logical, raw uint64 }{{3, logical1, data1}, {4, logical2, data2}} {
		s := d.Snapshots[i]
		if s.Snapshot.Seq != uint64(i+1) || s.Files != want.files || s.LogicalBytes != want.logical || s.RawBytes != want.raw {
			t.Errorf("snapshot %d: %+v; want %d files, %d logical bytes, %d unique", i+1, s, want.files, want.logical, want.raw)
		}
		if s.CompressionRatio == nil || *s.CompressionRatio <= 1 || s.StoredBytes >= s.RawBytes {
			t.Errorf("snapshot %d: no compression: %+v", i+1, s)
		}
	}
	if s2.Chunks <= s1.Chunks || tot.Chunks != s2.Chunks {
		t.Errorf("chunks: %d, %d, total %d; want the second's to hold the first's and more", s1.Chunks, s2.Chunks, tot.Chunks)
	}
	if tot.LogicalBytes != logical1+logical2 || tot.RawBytes != data2 {
		t.Errorf("total: %+v; want %d logical bytes, %d unique", tot, logical1+logical2, data2)
	}
	if want := float64(logical1+logical2) / float64(data2); tot.DedupRatio == nil || *tot.DedupRatio != want {
		t.Errorf("dedup ratio %v, want %v", tot.DedupRatio, want)
	}
	// Compressed: the text shrinks; the random bytes cannot, and sealing
	// adds to each chunk.
	if tot.StoredBytes >= tot.RawBytes-mib/2 || tot.StoredBytes < incompressible || *tot.CompressionRatio <= 1 {
		t.Errorf("stored %d bytes of %d unique (%d of them random)", tot.StoredBytes, tot.RawBytes, incompressible)
	}
	if tot.StoredBytes+tot.TreeBytes+tot.IndexBytes+tot.SnapshotBytes > tot.RemoteBytes || tot.TreeBytes == 0 || tot.IndexBytes == 0 || tot.SnapshotBytes == 0 {
		t.Errorf("the parts %+v exceed the remote's %d bytes, or are missing", tot, tot.RemoteBytes)
	}
	var onDisk uint64
	filepath.Walk(c.remote, func(_ string, fi os.FileInfo, err error) error { //nolint:errcheck // checked below
		if err == nil && fi.Mode().IsRegular() {
			onDisk += uint64(fi.Size())
		}
		return nil
	})
	if tot.RemoteBytes != onDisk {
		t.Errorf("remote bytes %d, the remote's files hold %d", tot.RemoteBytes, onDisk)
	}

	// A snapshot named: its figures alone, the same; the total is its own.
	one := runStats(t, c, "1")
	if len(one.Snapshots) != 1 || !sameFigures(one.Snapshots[0], s1) || one.Total.LogicalBytes != logical1 || one.Total.RawBytes != data1 {
		t.Errorf("stats 1: %+v; want %+v", one, s1)
	}
	expect(t, c.run(t, "stats", c.remote, "7"), 2, "no snapshot")

	// The text: a row per snapshot and the total.
	r := c.run(t, "stats", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "total of 2 snapshots") || strings.Count(r.stdout, "\n") != 5 {
		t.Errorf("stats:\n%s", r.stdout)
	}
}

// sameFigures reports whether a and b hold the same counts and sizes.
func sameFigures(a, b statsFigures) bool {
	return a.Snapshot == b.Snapshot && a.Files == b.Files && a.LogicalBytes == b.LogicalBytes && a.Chunks == b.Chunks &&
		a.RawBytes == b.RawBytes && a.StoredBytes == b.StoredBytes
}
