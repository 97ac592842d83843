package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/internal/testutil"
	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// openClient opens the repository in dir as a new client, with a cache
// directory of its own (and a blob cache when cacheSize > 0).
func openClient(t *testing.T, dir string, code crypt.RecoveryCode, cacheSize int64) (*repo.Repository, *faulty.Remote) {
	t.Helper()
	rem := testutil.NewRemote(t, dir)
	r, err := repo.Open(context.Background(), rem, unlock.WithCode(code), repo.Options{CacheDir: t.TempDir(), CacheSize: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	return r, rem
}

// fileNode returns /name of the newest snapshot.
func fileNode(t *testing.T, r *repo.Repository, name string) *repo.Node {
	t.Helper()
	tree, err := r.LoadTree(context.Background(), r.Latest().Tree)
	if err != nil {
		t.Fatal(err)
	}
	n := tree.Find([]byte(name))
	if n == nil {
		t.Fatalf("no file %s", name)
	}
	return n
}

// TestRandomRangesMixedFormats: a repository holding data blobs of both
// formats (written whole, then segmented; a file sharing chunks with an
// old one keeps them, found by id) reads random ranges of every file,
// within a segment, across segments and across chunks, byte for byte,
// with caches and without; whole reads and check --read-data agree.
func TestRandomRangesMixedFormats(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	files := map[string][]byte{
		"old":     randomData(21, 3<<20),
		"oldtext": bytes.Repeat([]byte("old compressible line of text\n"), 90000),
	}
	repo.WholeDataBlobsForTest(env.Repo, true)
	storeFiles(t, env.Repo, files)
	repo.WholeDataBlobsForTest(env.Repo, false)
	files["new"] = randomData(22, 3<<20)
	files["newtext"] = bytes.Repeat([]byte("new compressible line of text, a little longer\n"), 70000)
	files["mixed"] = append(bytes.Clone(files["old"][:2<<20]), randomData(23, 1<<20)...)
	storeFiles(t, env.Repo, files)

	for _, cacheSize := range []int64{0, 64 << 20} {
		r, _ := openClient(t, env.Dir, env.Code, cacheSize)
		types := map[crypt.ObjectType]int{}
		for name, data := range files {
			n := fileNode(t, r, name)
			for _, e := range n.Content {
				if l, ok := r.Index().Lookup(e.ID); ok {
					types[l.Type]++
				}
			}
			readRandomRanges(t, r, n, data, 200)
			if got, err := readFile(r, name); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s read whole: %v", name, err)
			}
		}
		if types[crypt.TypeDataBlob] == 0 || types[crypt.TypeSegmentedBlob] == 0 {
			t.Fatalf("blob types %v: want both formats", types)
		}
		rep, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
		if err != nil || !rep.OK() {
			t.Fatalf("check --read-data: %v %v", err, rep.Problems)
		}
	}
}

// readRandomRanges reads count random ranges of n through one reader and
// compares them with data.
func readRandomRanges(t *testing.T, r *repo.Repository, n *repo.Node, data []byte, count int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(data)), 7))
	fr := r.OpenFile(n)
	sizes := []int{1, 4096, format.SegmentSize + 7, 200000, 1 << 20}
	for range count {
		off := rng.IntN(len(data))
		buf := make([]byte, sizes[rng.IntN(len(sizes))])
		got, err := fr.ReadAt(context.Background(), buf, int64(off))
		want := min(len(buf), len(data)-off)
		if got != want || (err != nil && !(errors.Is(err, io.EOF) && off+len(buf) > len(data))) {
			t.Fatalf("read %d+%d: %d bytes, %v; want %d", off, len(buf), got, err, want)
		}
		if !bytes.Equal(buf[:got], data[off:off+got]) {
			t.Fatalf("read %d+%d returned other bytes", off, len(buf))
		}
	}
}

// TestRandomReadFetchesSegments: a 4 KiB read at random in a file (within
// one segment), on a new client with nothing cached, fetches the chunk's
// segment table and that segment, not the chunk; a few small reads in a
// row there fetch nothing more (they are no sequential stream yet).
func TestRandomReadFetchesSegments(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	data := randomData(31, 4<<20)
	storeFile(t, env.Repo, "f", data)
	r, rem := openClient(t, env.Dir, env.Code, 64<<20)
	n := fileNode(t, r, "f")
	e, start := chunkAfter(t, n, 2<<20)
	off := int64(start + format.SegmentSize + 100) // within segment 1
	before := rem.Stats()
	buf := make([]byte, 4096)
	if _, err := r.OpenFile(n).ReadAt(context.Background(), buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
		t.Fatalf("random read: %v", err)
	}
	got := rem.Stats().BytesGot - before.BytesGot
	if max := int64(format.SegmentSize + 1024); got > max {
		t.Fatalf("a 4 KiB read fetched %d bytes of a %d-byte chunk; want one segment and its table (at most %d)", got, e.Size, max)
	}
	// The pieces after it, read in a row as a database reads a page or
	// a program a header, are in the segment read: no request.
	again := rem.Stats()
	fr := r.OpenFile(n)
	for k := range int64(4) {
		at := off + k*4096
		if _, err := fr.ReadAt(context.Background(), buf, at); err != nil || !bytes.Equal(buf, data[at:at+4096]) {
			t.Fatalf("read at %d: %v", at, err)
		}
	}
	if d := rem.Stats().Gets - again.Gets; d != 0 {
		t.Fatalf("small reads in a row within a segment in memory made %d requests (%d bytes)", d, rem.Stats().BytesGot-again.BytesGot)
	}
}

// chunkAfter returns the first data extent of n that starts at or after
// off, with at least three segments, and where it starts.
func chunkAfter(t *testing.T, n *repo.Node, off uint64) (repo.Extent, uint64) {
	t.Helper()
	var start uint64
	for _, e := range n.Content {
		if start >= off && !e.Hole && e.Size > 2*format.SegmentSize {
			return e, start
		}
		start += e.Size
	}
	t.Fatalf("no chunk of three segments after %d", off)
	return repo.Extent{}, 0
}

// segmentedBlob is where a segmented blob of random (raw-stored) data
// lies in its pack file, and the bounds of its parts there.
type segmentedBlob struct {
	pack   string // the pack file
	start  uint64 // the chunk's offset in its file
	e      repo.Extent
	bounds []int64 // bounds[0] is the table's start; part i+1 is segment i
}

func locateSegmented(t *testing.T, r *repo.Repository, dir string, e repo.Extent, start uint64) segmentedBlob {
	t.Helper()
	l, ok := r.Index().Lookup(e.ID)
	if !ok || l.Type != crypt.TypeSegmentedBlob {
		t.Fatalf("chunk %s: %v %v, want a segmented blob", e.ID.Short(), l.Type, ok)
	}
	b := segmentedBlob{pack: filepath.Join(dir, format.PackName(l.Pack)), start: start, e: e}
	at := int64(l.Offset)
	b.bounds = append(b.bounds, at)
	at += int64(format.SegmentTableLen(l.RawLength))
	b.bounds = append(b.bounds, at)
	for i := range format.SegmentCount(l.RawLength) {
		at += int64(crypt.Overhead + 1 + format.SegmentRawLen(l.RawLength, i))
		b.bounds = append(b.bounds, at)
	}
	if at != int64(l.Offset+l.Length) {
		t.Fatalf("the segments of random data end at %d, the blob at %d", at, l.Offset+l.Length)
	}
	return b
}

// insideSegment returns an offset in the file inside segment i of the
// chunk: 100 bytes into it, or its middle when it is shorter (the last
// segment of a chunk can be a few bytes long: a read 100 bytes in would
// then be a read of the next chunk).
func (b segmentedBlob) insideSegment(i int) int64 {
	seg := min(uint64(format.SegmentSize), b.e.Size-uint64(i)*format.SegmentSize)
	return int64(b.start) + int64(i)*format.SegmentSize + int64(min(100, seg/2))
}

// segment returns the offsets in the pack file of segment i (-1: the table).
func (b segmentedBlob) segment(i int) (int64, int64) { return b.bounds[i+1], b.bounds[i+2] }

// TestSegmentTamper: each change to a segmented blob — a byte flipped in
// its table or in any segment, two segments swapped, the last segment
// dropped, a segment swapped with the same segment of another blob — is an
// integrity error on a read of just that segment and on a read of the
// whole file, and no read returns other bytes; a read of another segment
// of the blob (when its table is whole) still returns the right bytes.
func TestSegmentTamper(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	f, g := randomData(41, 4<<20), randomData(42, 4<<20)
	storeFiles(t, env.Repo, map[string][]byte{"f": f, "g": g})
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, _ := openClient(t, env.Dir, env.Code, 0)
	ef, sf := chunkAfter(t, fileNode(t, r, "f"), 2<<20)
	eg, sg := chunkAfter(t, fileNode(t, r, "g"), 2<<20)
	bf := locateSegmented(t, r, env.Dir, ef, sf)
	bg := locateSegmented(t, r, env.Dir, eg, sg)
	n := len(bf.bounds) - 2
	type tamper struct {
		name   string
		seg    int // the segment a partial read of which must fail (-1: any)
		edit   func(t *testing.T, dir string)
		intact int // a segment still readable in part (-1: none)
	}
	var cases []tamper
	for i := -1; i < n; i++ {
		i := i
		intact := 0
		if i == 0 {
			intact = 1
		}
		if i < 0 {
			intact = -1
		}
		cases = append(cases, tamper{name: "flip in part " + string(rune('1'+i)), seg: max(i, 0), intact: intact,
			edit: func(t *testing.T, dir string) {
				s, e := bf.segment(i)
				flipByte(t, rebase(bf.pack, env.Dir, dir), s+(e-s)/2)
			}})
	}
	cases = append(cases,
		tamper{name: "swap segments 0 and 1", seg: 0, intact: 2, edit: func(t *testing.T, dir string) {
			p := rebase(bf.pack, env.Dir, dir)
			s0, e0 := bf.segment(0)
			s1, e1 := bf.segment(1)
			a, b := readAt(t, p, s0, e0-s0), readAt(t, p, s1, e1-s1)
			writeAt(t, p, s0, b)
			writeAt(t, p, s1, a)
		}},
		tamper{name: "drop the last segment", seg: n - 1, intact: -1, edit: func(t *testing.T, dir string) {
			p := rebase(bf.pack, env.Dir, dir)
			s, e := bf.segment(n - 1)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, append(b[:s:s], b[e:]...), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		tamper{name: "swap segment 1 with another blob's", seg: 1, intact: 0, edit: func(t *testing.T, dir string) {
			pf, pg := rebase(bf.pack, env.Dir, dir), rebase(bg.pack, env.Dir, dir)
			sf, ef := bf.segment(1)
			sg, eg := bg.segment(1)
			a, b := readAt(t, pf, sf, ef-sf), readAt(t, pg, sg, eg-sg)
			writeAt(t, pf, sf, b)
			writeAt(t, pg, sg, a)
		}},
	)
	cases = append(cases, tamper{name: "another blob's bytes over the blob", seg: 0, intact: -1, edit: func(t *testing.T, dir string) {
		pf, pg := rebase(bf.pack, env.Dir, dir), rebase(bg.pack, env.Dir, dir)
		lf, lg := bf.bounds[len(bf.bounds)-1]-bf.bounds[0], bg.bounds[len(bg.bounds)-1]-bg.bounds[0]
		writeAt(t, pf, bf.bounds[0], readAt(t, pg, bg.bounds[0], min(lf, lg)))
	}})
	// A mount reads whole chunks without recomputing their ids
	// (TrustSegments): every change is found all the same.
	for _, trust := range []bool{false, true} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/trust=%v", c.name, trust), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "remote")
				testutil.CopyDir(t, env.Dir, dir)
				c.edit(t, dir)
				r, err := repo.Open(context.Background(), testutil.NewRemote(t, dir), unlock.WithCode(env.Code),
					repo.Options{CacheDir: t.TempDir(), TrustSegments: trust})
				if err != nil {
					t.Fatal(err)
				}
				segmentTamperCase(t, r, c.seg, c.intact, f, bf)
			})
		}
	}
}

// segmentTamperCase reads a damaged chunk of f (at bf) through r: in part
// at segment seg, which must fail, and at segment intact (unless -1),
// which must succeed; and whole, which must fail after only right bytes.
func segmentTamperCase(t *testing.T, r *repo.Repository, seg, intact int, f []byte, bf segmentedBlob) {
	node := fileNode(t, r, "f")
	off := bf.insideSegment(seg)
	buf := make([]byte, 4096)
	if got, err := r.OpenFile(node).ReadAt(context.Background(), buf, off); !errors.Is(err, repo.ErrIntegrity) || got != 0 {
		t.Fatalf("a read of the segment: %d bytes, %v; want an integrity error", got, err)
	}
	if intact >= 0 {
		off := bf.insideSegment(intact)
		if _, err := r.OpenFile(node).ReadAt(context.Background(), buf, off); err != nil || !bytes.Equal(buf, f[off:off+4096]) {
			t.Fatalf("a read of untouched segment %d: %v", intact, err)
		}
	}
	var out bytes.Buffer
	_, err := r.OpenFile(node).CopyTo(context.Background(), &out)
	if !errors.Is(err, repo.ErrIntegrity) {
		t.Fatalf("a whole read: %v, want an integrity error", err)
	}
	if !bytes.HasPrefix(f, out.Bytes()) || uint64(out.Len()) > bf.start {
		t.Fatalf("a whole read returned %d bytes, other bytes or past the damaged chunk at %d", out.Len(), bf.start)
	}
}

func rebase(p, from, to string) string {
	rel, _ := filepath.Rel(from, p)
	return filepath.Join(to, rel)
}

func flipByte(t *testing.T, p string, off int64) {
	b := readAt(t, p, off, 1)
	writeAt(t, p, off, []byte{b[0] ^ 0x40})
}

func readAt(t *testing.T, p string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeAt(t *testing.T, p string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestNearbyRandomReadsReadSegments: 4 KiB reads at random offsets that
// happen to fall near each other (all within 448 KiB) are no sequential
// stream: they read the segments they fall in (at most 8 in 448 KiB) and
// the table, never the whole chunk or chunks ahead.
func TestNearbyRandomReadsReadSegments(t *testing.T) {
	// Chunks of 1 to 4 MiB: a whole chunk is many times what the reads
	// need.
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 4 << 20, Chunking: chunker.Params{Min: 1 << 20, Avg: 2 << 20, Max: 4 << 20}})
	data := randomData(51, 12<<20)
	storeFile(t, env.Repo, "f", data)
	r, rem := openClient(t, env.Dir, env.Code, 64<<20)
	n := fileNode(t, r, "f")
	e, start := chunkAfter(t, n, 2<<20)
	span := min(int(e.Size), 448<<10) - 4096
	fr := r.OpenFile(n)
	rng := rand.New(rand.NewPCG(8, 9))
	before := rem.Stats()
	const reads = 24
	for range reads {
		off := int64(start) + int64(rng.IntN(span))
		buf := make([]byte, 4096)
		if _, err := fr.ReadAt(context.Background(), buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	got := rem.Stats().BytesGot - before.BytesGot
	if max := int64(8*(format.SegmentSize+crypt.Overhead+1) + 1024); got > max {
		t.Fatalf("%d random 4 KiB reads near each other fetched %d bytes, more than the 8 segments they fall in (%d): whole chunks were read", reads, got, max)
	}
}

// TestDamagedSegmentFailsOnlyItself: through one reader, a read of a
// damaged segment fails, and so does the next one of it (held, not read
// again); a read of another segment of the same chunk right after returns
// the right bytes (it failed for 5 s before: the whole chunk was held as
// failed), and a whole read of the chunk still fails.
func TestDamagedSegmentFailsOnlyItself(t *testing.T) {
	env := testutil.NewRepo(t, repo.InitOptions{PackSize: 1 << 20})
	f := randomData(43, 4<<20)
	storeFiles(t, env.Repo, map[string][]byte{"f": f})
	if err := env.Repo.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, _ := openClient(t, env.Dir, env.Code, 0)
	e, start := chunkAfter(t, fileNode(t, r, "f"), 2<<20)
	b := locateSegmented(t, r, env.Dir, e, start)
	s, end := b.segment(1)
	flipByte(t, b.pack, s+(end-s)/2)
	r, _ = openClient(t, env.Dir, env.Code, 0)
	fr := r.OpenFile(fileNode(t, r, "f"))
	buf := make([]byte, 4096)
	at := func(seg int) int64 { return int64(start) + int64(seg)*format.SegmentSize + 100 }
	for range 2 {
		if n, err := fr.ReadAt(context.Background(), buf, at(1)); !errors.Is(err, repo.ErrIntegrity) || n != 0 {
			t.Fatalf("a read of the damaged segment: %d bytes, %v; want an integrity error", n, err)
		}
	}
	for _, seg := range []int{0, 2, 3} {
		if _, err := fr.ReadAt(context.Background(), buf, at(seg)); err != nil || !bytes.Equal(buf, f[at(seg):at(seg)+4096]) {
			t.Fatalf("a read of intact segment %d after the damaged one failed: %v", seg, err)
		}
	}
	if _, err := fr.CopyTo(context.Background(), io.Discard); !errors.Is(err, repo.ErrIntegrity) {
		t.Fatalf("a whole read: %v, want an integrity error", err)
	}
}
