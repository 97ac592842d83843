package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
	"github.com/sealfs/sealfs/repo/format"
)

// readCheck is what reading a file back through the mount gave.
type readCheck struct {
	returned int64 // bytes returned (all of them, before and after any error)
	wrong    int64 // of those, bytes that differ from the original
	short    int   // times the file seemed to end before its size
	err      error // the first error, nil when the whole file read back
}

// preadCheck reads path with pread calls of bufSize bytes, as an
// application reading a file does, and compares every byte returned with
// want. A read that spans several pages may return the pages before a
// failing one (POSIX read semantics); the next read must then fail. A
// short read that is not followed by an error, or the end of the file
// before its size, is counted as short: the kernel takes a short FUSE read
// for the end of the file, which is how a damaged file would silently
// become a shorter one.
func preadCheck(t *testing.T, path string, want []byte, bufSize int) readCheck {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		return readCheck{err: err}
	}
	defer unix.Close(fd)
	var rc readCheck
	buf := make([]byte, bufSize)
	size := int64(len(want))
	pending := false // the last read was short: this one must fail
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			rc.err = err
			return rc
		}
		if pending {
			rc.short++
			pending = false
		}
		rc.returned += int64(n)
		for i, b := range buf[:n] {
			if off+int64(i) >= size || want[off+int64(i)] != b {
				rc.wrong++
			}
		}
		if n == 0 {
			if off < size {
				rc.short++
			}
			return rc
		}
		pending = int64(n) < min(int64(bufSize), size-off)
		off += int64(n)
	}
}

// randomBytes returns n bytes that do not compress, the same for a seed.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7}).Read(b)
	return b
}

// TestMountDamagedChunkMidFile (issue 8, defect 1): with one byte flipped in
// the middle of each pack of a 64 MiB file, reading the file through a
// fresh mount fails with EIO at the first damaged chunk. It used to end
// early instead: the handle returned the bytes read before the error as a
// short read, the kernel took that for the end of the file, and cat exited 0
// with a truncated copy.
func TestMountDamagedChunkMidFile(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	data := randomBytes(1, 64<<20)
	if err := os.WriteFile(filepath.Join(mnt, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)
	packs, _ := filepath.Glob(filepath.Join(c.remote, "data", "*", "*"))
	if len(packs) < 3 {
		t.Fatalf("a 64 MiB file made only %d packs", len(packs))
	}
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, how := range []string{"pread", "cat"} {
		fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
		expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
		path := filepath.Join(mnt, "big")
		if how == "cat" {
			var out bytes.Buffer
			cmd := exec.Command("cat", path)
			cmd.Stdout = &out
			err := cmd.Run()
			if err == nil {
				t.Errorf("cat of a damaged file exited 0 after %d of %d bytes", out.Len(), len(data))
			}
			if !bytes.Equal(out.Bytes(), data[:min(out.Len(), len(data))]) {
				t.Errorf("cat returned wrong bytes")
			}
		} else {
			rc := preadCheck(t, path, data, 1<<20+4096)
			if !errors.Is(rc.err, unix.EIO) || rc.wrong != 0 || rc.short != 0 {
				t.Errorf("reading a damaged file: %d bytes returned, %d wrong, %d short reads, error %v; want EIO, no wrong bytes, no short read", rc.returned, rc.wrong, rc.short, rc.err)
			}
		}
		fresh.umount(t, mnt)
		log, _ := os.ReadFile(filepath.Join(fresh.cache, "test-mount.log"))
		if !strings.Contains(string(log), "integrity") || !strings.Contains(string(log), "data/") {
			t.Errorf("the daemon log does not name the damaged pack:\n%s", log)
		}
	}
}

// blobAt is a data blob of a file in the tamper matrix's repository, with
// where the index says it is stored.
type blobAt struct {
	file string
	id   crypt.ID
	loc  repo.Location
}

// object returns the remote name of the pack that holds the blob.
func (b blobAt) object() string { return packObject(b.loc.Pack) }

func packObject(id crypt.ID) string {
	s := id.String()
	return "data/" + s[:2] + "/" + s
}

// tamperRepo is the repository every case of the tamper matrix starts from
// (each case damages its own copy): snapshot 1 holds a small and a large
// file, snapshot 2 adds a note, so its root tree lies in a pack of its own
// and damage to the files' packs leaves the tree readable.
type tamperRepo struct {
	c        cliRepo
	snap1    string            // a copy of the remote as it was after snapshot 1
	foreign  string            // the remote of another repository holding the same files
	files    map[string][]byte // the newest snapshot's files
	blobs    map[string][]blobAt
	packs    map[crypt.ID][]blobAt // the known blobs of each pack
	treePack crypt.ID              // the pack holding snapshot 2's root tree
	snaps    []*repo.Snapshot
}

func newTamperRepo(t *testing.T, large int) *tamperRepo {
	t.Helper()
	g := &tamperRepo{c: initRepo(t), files: map[string][]byte{
		"a-small": randomBytes(2, 100_000),
		"b-large": randomBytes(3, large),
	}}
	src := t.TempDir()
	for name, data := range g.files {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, g.c.run(t, "backup", src, g.c.remote), 0, "")
	g.snap1 = filepath.Join(t.TempDir(), "snap1")
	copyRemote(t, g.c.remote, g.snap1)
	foreign := initRepo(t)
	expect(t, foreign.run(t, "backup", src, foreign.remote), 0, "")
	g.foreign = foreign.remote
	g.files["c-note"] = []byte("added in snapshot 2\n")
	if err := os.WriteFile(filepath.Join(src, "c-note"), g.files["c-note"], 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, g.c.run(t, "backup", src, g.c.remote), 0, "")

	// Find where every blob lies, as a reader of the repository does.
	ctx := context.Background()
	r, _ := g.c.openInProcess(t)
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps { // whole, with their index lists
		full, err := r.LoadSnapshot(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		g.snaps = append(g.snaps, full)
	}
	if len(g.snaps) != 2 {
		t.Fatalf("%d snapshots, want 2", len(g.snaps))
	}
	root, err := r.LoadTree(ctx, g.snaps[1].Tree)
	if err != nil {
		t.Fatal(err)
	}
	rootLoc, _ := r.Index().Lookup(g.snaps[1].Tree)
	g.treePack = rootLoc.Pack
	g.blobs, g.packs = map[string][]blobAt{}, map[crypt.ID][]blobAt{}
	for _, n := range root.Nodes {
		name := string(n.Name)
		for _, e := range n.Content {
			if e.Hole {
				continue
			}
			l, ok := r.Index().Lookup(e.ID)
			if !ok {
				t.Fatalf("blob %s of %s is in no index", e.ID.Short(), name)
			}
			b := blobAt{file: name, id: e.ID, loc: l}
			g.blobs[name] = append(g.blobs[name], b)
			g.packs[l.Pack] = append(g.packs[l.Pack], b)
		}
	}
	for name, data := range g.files {
		if len(data) > 0 && len(g.blobs[name]) == 0 {
			t.Fatalf("%s has no stored blobs", name)
		}
	}
	if g.blobs["c-note"][0].loc.Pack != g.treePack {
		t.Fatal("the note added in snapshot 2 is not in the pack of snapshot 2's tree")
	}
	for _, b := range append(g.blobs["a-small"], g.blobs["b-large"]...) {
		if b.loc.Pack == g.treePack {
			t.Fatalf("blob %s of %s shares a pack with snapshot 2's root tree", b.id.Short(), b.file)
		}
	}
	return g
}

// copyRemote copies a local remote's directory, keeping sparse files sparse.
func copyRemote(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", "--sparse=always", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
}

// flipByte flips one bit of the byte at off in a file.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// oversize replaces path with a sparse file of size bytes that keeps the
// first keep bytes of the original.
func oversize(t *testing.T, path string, keep, size int64) {
	t.Helper()
	if err := os.Truncate(path, keep); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// firstFile returns the first object of a remote directory, by name.
func firstFile(t *testing.T, dir string) string {
	t.Helper()
	var found string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && found == "" {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no object under %s", dir)
	}
	return found
}

// overSized is larger than any object sealfs accepts (packs are at most
// 1 GiB, index and snapshot objects smaller still); sparse, it costs no disk.
const overSized = 1<<30 + 1<<20

// chunkFault damages the copy dir of the repository at blob b. It returns
// which blobs are damaged now and the names of the damaged objects (a log
// line or error message must name one of them).
type chunkFault struct {
	name  string
	apply func(t *testing.T, g *tamperRepo, dir string, b blobAt) (damaged func(blobAt) bool, objects []string)
}

func inPacks(packs ...crypt.ID) func(blobAt) bool {
	return func(x blobAt) bool {
		for _, p := range packs {
			if x.loc.Pack == p {
				return true
			}
		}
		return false
	}
}

var chunkFaults = []chunkFault{
	{"bit flip", func(t *testing.T, g *tamperRepo, dir string, b blobAt) (func(blobAt) bool, []string) {
		flipByte(t, filepath.Join(dir, b.object()), int64(b.loc.Offset)+int64(b.loc.Length)/2)
		return func(x blobAt) bool { return x.id == b.id }, []string{b.object()}
	}},
	{"truncation", func(t *testing.T, g *tamperRepo, dir string, b blobAt) (func(blobAt) bool, []string) {
		cut := int64(b.loc.Offset) + int64(b.loc.Length)/2
		if err := os.Truncate(filepath.Join(dir, b.object()), cut); err != nil {
			t.Fatal(err)
		}
		return func(x blobAt) bool { return x.loc.Pack == b.loc.Pack && int64(x.loc.Offset+x.loc.Length) > cut }, []string{b.object()}
	}},
	{"swapped with another pack", func(t *testing.T, g *tamperRepo, dir string, b blobAt) (func(blobAt) bool, []string) {
		var other crypt.ID
		for p := range g.packs {
			if p != b.loc.Pack && p != g.treePack {
				other = p
			}
		}
		if other.IsZero() {
			t.Fatal("the files fill only one pack: nothing to swap with")
		}
		x, y := filepath.Join(dir, b.object()), filepath.Join(dir, packObject(other))
		tmp := x + ".swap"
		for _, mv := range [][2]string{{x, tmp}, {y, x}, {tmp, y}} {
			if err := os.Rename(mv[0], mv[1]); err != nil {
				t.Fatal(err)
			}
		}
		return inPacks(b.loc.Pack, other), []string{b.object(), packObject(other)}
	}},
	{"pack of another repository", func(t *testing.T, g *tamperRepo, dir string, b blobAt) (func(blobAt) bool, []string) {
		foreign, err := os.ReadFile(firstFile(t, filepath.Join(g.foreign, "data")))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, b.object()), foreign, 0o644); err != nil {
			t.Fatal(err)
		}
		return inPacks(b.loc.Pack), []string{b.object()}
	}},
	{"deleted pack", func(t *testing.T, g *tamperRepo, dir string, b blobAt) (func(blobAt) bool, []string) {
		if err := os.Remove(filepath.Join(dir, b.object())); err != nil {
			t.Fatal(err)
		}
		return inPacks(b.loc.Pack), []string{b.object()}
	}},
	{"oversized pack", func(t *testing.T, g *tamperRepo, dir string, b blobAt) (func(blobAt) bool, []string) {
		oversize(t, filepath.Join(dir, b.object()), 0, overSized)
		return inPacks(b.loc.Pack), []string{b.object()}
	}},
}

// repoFault damages the copy dir of the repository as a whole. It returns
// the names of the damaged objects (one of which the error must name) and
// the cache directory to open it with (empty: a fresh one). Mount and
// restore must both fail with exit code code; with code 0 the damage is
// harmless and every file must read back whole.
type repoFault struct {
	name  string
	code  int
	skip  string // why the case cannot pass yet
	apply func(t *testing.T, g *tamperRepo, dir string) (objects []string, cache string)
}

func snapshotObject(s *repo.Snapshot) string { return format.SnapshotSeqName(s.Seq, s.ID) }
func indexObject(id crypt.ID) string         { return "index/" + id.String() }

// dataIndex returns the index object written with snapshot 1: it lists
// the files' blobs.
func (g *tamperRepo) dataIndex(t *testing.T) crypt.ID {
	t.Helper()
	if len(g.snaps[0].Indexes) != 1 || len(g.snaps[1].Indexes) != 2 {
		t.Fatalf("snapshots name %d and %d indexes, want 1 and 2", len(g.snaps[0].Indexes), len(g.snaps[1].Indexes))
	}
	return g.snaps[0].Indexes[0]
}

// otherIndex returns the index object written with snapshot 2.
func (g *tamperRepo) otherIndex(t *testing.T) crypt.ID {
	t.Helper()
	for _, x := range g.snaps[1].Indexes {
		if x != g.dataIndex(t) {
			return x
		}
	}
	t.Fatal("snapshot 2 names no index of its own")
	return crypt.ID{}
}

func writeObject(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readObject(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomName() string {
	var id crypt.ID
	for i := range id {
		id[i] = byte(rand.Uint32())
	}
	return id.String()
}

var repoFaults = []repoFault{
	{name: "deleted older snapshot", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		s1 := g.snaps[0].ID
		if err := os.Remove(filepath.Join(dir, snapshotObject(g.snaps[0]))); err != nil {
			t.Fatal(err)
		}
		return []string{s1.String(), s1.Short(), "snapshot 1"}, ""
	}},
	{name: "rolled back repository", code: 10, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		cache := t.TempDir() // a client that has seen snapshot 2
		expect(t, sealfs(t, nil, "snapshots", "--cache-dir", cache, "--code-file", g.c.codeFile, dir), 0, "")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		copyRemote(t, g.snap1, dir)
		return []string{"rolled back"}, cache
	}},
	{name: "oversized index", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		x := indexObject(g.dataIndex(t))
		oversize(t, filepath.Join(dir, x), 0, overSized)
		return []string{x}, ""
	}},
	{name: "oversized snapshot", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		s := snapshotObject(g.snaps[1])
		oversize(t, filepath.Join(dir, s), 0, overSized)
		return []string{s}, ""
	}},
	{name: "oversized key slot", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		k := "keys/" + randomName()
		writeObject(t, filepath.Join(dir, k), nil)
		oversize(t, filepath.Join(dir, k), 0, overSized)
		return []string{k}, ""
	}},
	{name: "duplicated index under a new name", code: 0, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		x := indexObject(g.dataIndex(t))
		writeObject(t, filepath.Join(dir, "index", randomName()), readObject(t, filepath.Join(dir, x)))
		return nil, "" // no snapshot names the copy: it is not read
	}},
	{name: "index replaced by a copy of another", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		x := indexObject(g.dataIndex(t))
		writeObject(t, filepath.Join(dir, x), readObject(t, filepath.Join(dir, indexObject(g.otherIndex(t)))))
		return []string{x}, ""
	}},
	{name: "index of another repository", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		x := indexObject(g.dataIndex(t))
		writeObject(t, filepath.Join(dir, x), readObject(t, firstFile(t, filepath.Join(g.foreign, "index"))))
		return []string{x}, ""
	}},
	{name: "deleted index", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		x := indexObject(g.dataIndex(t))
		if err := os.Remove(filepath.Join(dir, x)); err != nil {
			t.Fatal(err)
		}
		return []string{x}, ""
	}},
	{name: "bit flip in an index", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		x := indexObject(g.dataIndex(t))
		flipByte(t, filepath.Join(dir, x), 40)
		return []string{x}, ""
	}},
	{name: "truncated index", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		x := indexObject(g.dataIndex(t))
		if err := os.Truncate(filepath.Join(dir, x), 100); err != nil {
			t.Fatal(err)
		}
		return []string{x}, ""
	}},
	{name: "swapped snapshots", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		a, b := snapshotObject(g.snaps[0]), snapshotObject(g.snaps[1])
		da, db := readObject(t, filepath.Join(dir, a)), readObject(t, filepath.Join(dir, b))
		writeObject(t, filepath.Join(dir, a), db)
		writeObject(t, filepath.Join(dir, b), da)
		return []string{a, b}, ""
	}},
	{name: "snapshot of another repository in place of the newest", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		s := snapshotObject(g.snaps[1])
		writeObject(t, filepath.Join(dir, s), readObject(t, firstFile(t, filepath.Join(g.foreign, "snapshots"))))
		return []string{s}, ""
	}},
	{name: "snapshot of another repository added", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		f := firstFile(t, filepath.Join(g.foreign, "snapshots"))
		s := "snapshots/" + filepath.Base(f)
		writeObject(t, filepath.Join(dir, s), readObject(t, f))
		return []string{s}, ""
	}},
	{name: "bit flip in the newest snapshot", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		s := snapshotObject(g.snaps[1])
		flipByte(t, filepath.Join(dir, s), 30)
		return []string{s}, ""
	}},
	{name: "deleted pack of the root tree", code: 7, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		p := packObject(g.treePack)
		if err := os.Remove(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
		return []string{p}, ""
	}},
	{name: "oversized pack, its content intact", code: 0, apply: func(t *testing.T, g *tamperRepo, dir string) ([]string, string) {
		p := packObject(g.blobs["b-large"][0].loc.Pack)
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		oversize(t, filepath.Join(dir, p), fi.Size(), overSized)
		return nil, "" // every blob is read by its range and verified
	}},
}

// matrixCounts are the tamper matrix's totals.
type matrixCounts struct {
	cases, faults, filesVerified, damagedReads int
	wrongBytes, shortReads                     int64
}

// checkMount mounts the damaged copy dir read-only with the cache
// directory cache (empty: a fresh one). The mount must refuse with exit
// code want, naming a damaged object, or come up (want 0, or 7 when it
// fails every read of a damaged file instead). Then every file is read
// back: a damaged file fails with EIO after returning only right bytes,
// with no short read; an intact one reads back whole; the daemon's log
// names a damaged object, and the daemon survives.
func checkMount(t *testing.T, g *tamperRepo, dir, cache string, want int, damaged map[string]bool, objects []string, n *matrixCounts) {
	t.Helper()
	if cache == "" {
		cache = t.TempDir()
	}
	c := cliRepo{remote: dir, cache: cache, codeFile: g.c.codeFile}
	mnt := mountpoint(t)
	r := c.mount(t, mnt, "--read-only")
	// A mount may also come up and fail each read of what it cannot
	// verify (the checks below) rather than refuse with the integrity code.
	deferred := want == 7 && r.code == 0
	if (r.code != want && !deferred) || (r.code != 0 && !containsAny(r.stderr, objects)) {
		t.Errorf("mount: exit %d, stderr %q; want exit %d naming one of %v", r.code, r.stderr, want, objects)
	}
	if r.code != 0 {
		return
	}
	for _, name := range sortedNames(g.files) {
		data := g.files[name]
		rc := preadCheck(t, filepath.Join(mnt, name), data, 256<<10+4096)
		n.filesVerified++
		n.wrongBytes += rc.wrong
		n.shortReads += int64(rc.short)
		switch {
		case rc.wrong != 0 || rc.short != 0:
			t.Errorf("mount: %s: %d wrong bytes, %d short reads (%d bytes returned, error %v)", name, rc.wrong, rc.short, rc.returned, rc.err)
		case damaged[name] && !errors.Is(rc.err, unix.EIO):
			t.Errorf("mount: damaged %s read %d of %d bytes with error %v, want EIO", name, rc.returned, len(data), rc.err)
		case !damaged[name] && (rc.err != nil || rc.returned != int64(len(data))):
			t.Errorf("mount: intact %s read %d of %d bytes with error %v", name, rc.returned, len(data), rc.err)
		}
		if damaged[name] {
			n.damagedReads++
		}
	}
	if !isMounted(mnt) {
		t.Fatal("the daemon died while reading damaged files")
	}
	mountStatus(t, mnt) // the daemon still answers
	c.umount(t, mnt)
	log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
	if strings.Contains(string(log), "panic") {
		t.Errorf("the daemon panicked:\n%s", log)
	}
	if len(damaged) > 0 && (!strings.Contains(string(log), "integrity") || !containsAny(string(log), objects)) {
		t.Errorf("mount: the daemon log names none of %v as damaged:\n%s", objects, log)
	}
}

// checkRestore restores the damaged copy dir with the cache directory
// cache (empty: a fresh one): it exits with code want (the integrity code
// when a file is damaged), naming a damaged object; every intact file is
// restored whole and no damaged file is restored at all.
func checkRestore(t *testing.T, g *tamperRepo, dir, cache string, want int, damaged map[string]bool, objects []string, n *matrixCounts) {
	t.Helper()
	if cache == "" {
		cache = t.TempDir()
	}
	dst := filepath.Join(t.TempDir(), "restored")
	r := sealfs(t, nil, "restore", "--cache-dir", cache, "--code-file", g.c.codeFile, dir, dst)
	if r.code != want || (want != 0 && !containsAny(r.stderr, objects)) {
		t.Errorf("restore: exit %d, stderr %q; want exit %d naming one of %v", r.code, r.stderr, want, objects)
	}
	for _, name := range sortedNames(g.files) {
		got, err := os.ReadFile(filepath.Join(dst, name))
		n.filesVerified++
		switch {
		case damaged[name] && !errors.Is(err, os.ErrNotExist):
			w := wrongBytes(got, g.files[name])
			t.Errorf("restore: damaged %s was restored (%d bytes, %d of them wrong or missing, error %v)", name, len(got), w, err)
			n.wrongBytes += w
		case !damaged[name] && err != nil:
			t.Errorf("restore: intact %s was not restored: %v", name, err)
		case !damaged[name]:
			if w := wrongBytes(got, g.files[name]); w != 0 {
				t.Errorf("restore: %s has %d wrong bytes", name, w)
				n.wrongBytes += w
			}
		}
	}
}

// checkOverlay mounts the damaged copy dir for writing, changes 4 KiB in
// the large file through an open descriptor and reads the file back
// through another while the first stays open: the new bytes and the
// intact old ones read back, a damaged chunk fails with EIO after only
// right bytes, with no short read.
func checkOverlay(t *testing.T, g *tamperRepo, dir string, damaged bool, objects []string, n *matrixCounts) {
	t.Helper()
	c := cliRepo{remote: dir, cache: t.TempDir(), codeFile: g.c.codeFile}
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--drain-timeout", "2s"), 0, "")
	path := filepath.Join(mnt, "b-large")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(g.files["b-large"])
	patch := bytes.Repeat([]byte{0xee}, 4096)
	const at = 1<<20 - 100
	copy(want[at:], patch)
	if _, err := f.WriteAt(patch, at); err != nil {
		t.Fatal(err)
	}
	rc := preadCheck(t, path, want, 256<<10+4096)
	f.Close()
	n.filesVerified++
	n.wrongBytes += rc.wrong
	n.shortReads += int64(rc.short)
	switch {
	case rc.wrong != 0 || rc.short != 0:
		t.Errorf("overlay: %d wrong bytes, %d short reads (%d bytes returned, error %v)", rc.wrong, rc.short, rc.returned, rc.err)
	case damaged && !errors.Is(rc.err, unix.EIO):
		t.Errorf("overlay: damaged file read %d of %d bytes with error %v, want EIO", rc.returned, len(want), rc.err)
	case !damaged && (rc.err != nil || rc.returned != int64(len(want))):
		t.Errorf("overlay: intact file read %d of %d bytes with error %v", rc.returned, len(want), rc.err)
	}
	if damaged {
		n.damagedReads++
	}
	if !isMounted(mnt) {
		t.Fatal("the daemon died while reading a damaged file")
	}
	sealfs(t, nil, "umount", mnt)
	log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
	if strings.Contains(string(log), "panic") {
		t.Errorf("the daemon panicked:\n%s", log)
	}
	if damaged && (!strings.Contains(string(log), "integrity") || !containsAny(string(log), objects)) {
		t.Errorf("overlay: the daemon log names none of %v as damaged:\n%s", objects, log)
	}
}

func wrongBytes(got, want []byte) int64 {
	var w int64
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			w++
		}
	}
	return w
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// TestTamperMatrix (issue 8): the remote is damaged as an adversary would
// (bit flip, truncation, a swapped object, an object of another repository,
// a deleted object, an oversized object) at the first, middle and last chunk
// of a large file and at a small file, and as a whole (a deleted older
// snapshot, a rollback, oversized, duplicated, swapped, foreign, deleted
// and damaged index and snapshot objects). Each case is read through a
// fresh read-only mount and restored with `sealfs restore`. Every damaged
// file fails (EIO, exit code 7; 10 for the rollback) after returning only
// right bytes, no read is short, the log or error names the object, intact
// files read back whole, nothing crashes. SEALFS_SOAK=1 uses a larger file
// and more chunk positions.
func TestTamperMatrix(t *testing.T) {
	needRoot(t)
	large, extra := 18<<20, 0
	if os.Getenv("SEALFS_SOAK") != "" {
		large, extra = 80<<20, 12
	}
	g := newTamperRepo(t, large)
	lb := g.blobs["b-large"]
	type place struct {
		name string
		b    blobAt
	}
	places := []place{{"small file", g.blobs["a-small"][0]}, {"first chunk", lb[0]}, {"middle chunk", lb[len(lb)/2]}, {"last chunk", lb[len(lb)-1]}}
	rng := rand.New(rand.NewPCG(8, 8))
	for range extra {
		i := rng.IntN(len(lb))
		places = append(places, place{fmt.Sprintf("chunk %d", i), lb[i]})
	}
	var n matrixCounts
	for _, f := range chunkFaults {
		for _, p := range places {
			t.Run(f.name+"/"+p.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "remote")
				copyRemote(t, g.c.remote, dir)
				isDamaged, objects := f.apply(t, g, dir, p.b)
				n.cases++
				n.faults++
				damaged := map[string]bool{}
				for _, bs := range g.blobs {
					for _, b := range bs {
						if isDamaged(b) {
							damaged[b.file] = true
						}
					}
				}
				if !damaged[p.b.file] {
					t.Fatalf("the fault did not damage %s", p.b.file)
				}
				checkMount(t, g, dir, "", 0, damaged, objects, &n)
				restoreCode := 0
				if len(damaged) > 0 {
					restoreCode = 7
				}
				checkRestore(t, g, dir, "", restoreCode, damaged, objects, &n)
			})
		}
	}
	// A file changed in place (an overlay) reads its unchanged ranges from
	// the damaged repository: the same rules hold for it.
	for _, p := range places {
		t.Run("bit flip/"+p.name+"/overlay", func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "remote")
			copyRemote(t, g.c.remote, dir)
			isDamaged, objects := chunkFaults[0].apply(t, g, dir, p.b)
			n.cases++
			n.faults++
			damaged := false
			for _, b := range lb {
				damaged = damaged || isDamaged(b)
			}
			checkOverlay(t, g, dir, damaged, objects, &n)
		})
	}
	all := map[string]bool{}
	for name := range g.files {
		all[name] = true
	}
	for _, f := range repoFaults {
		t.Run(f.name, func(t *testing.T) {
			if f.skip != "" {
				t.Skip(f.skip)
			}
			dir := filepath.Join(t.TempDir(), "remote")
			copyRemote(t, g.c.remote, dir)
			objects, cache := f.apply(t, g, dir)
			n.cases++
			n.faults++
			damaged := all
			if f.code == 0 {
				damaged = nil
			}
			checkMount(t, g, dir, cache, f.code, damaged, objects, &n)
			checkRestore(t, g, dir, cache, f.code, damaged, objects, &n)
		})
	}
	t.Logf("tamper matrix: %d cases, %d faults injected, %d files verified (%d damaged reads through the mount), %d wrong bytes returned, %d short reads",
		n.cases, n.faults, n.filesVerified, n.damagedReads, n.wrongBytes, n.shortReads)
}

// refusingS3 is an in-process S3 server on loopback that answers every
// request with 403 Forbidden while down is set: a remote that is reachable
// no more, failing at once (a 503 would make rclone slow its pace for
// minutes, which only costs time here).
type refusingS3 struct {
	srv  *httptest.Server
	down atomic.Bool
}

func newRefusingS3(t *testing.T) *refusingS3 {
	f := &refusingS3{}
	inner := gofakes3.New(s3mem.New()).Server()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// TestMountRemoteDownMidRead: when the remote fails in the middle of a
// read, the read fails with EIO after only right bytes and no short read;
// once the remote is back, the same file reads back whole through the
// same mount (no failure was cached as data). When the remote is gone for
// good (connections refused), reads fail with EIO too, and the log says why.
func TestMountRemoteDownMidRead(t *testing.T) {
	needRoot(t)
	s3 := newRefusingS3(t)
	dir := t.TempDir()
	c := cliRepo{remote: fmt.Sprintf(":s3,provider=Other,access_key_id=k,secret_access_key=s,region=us-east-1,force_path_style=true,endpoint='%s':down/repo", s3.srv.URL),
		cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, c.remote), 0, "")
	src := t.TempDir()
	data, other := randomBytes(4, 12<<20), randomBytes(5, 2<<20)
	if err := os.WriteFile(filepath.Join(src, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "g"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, c.run(t, "backup", src, c.remote), 0, "")
	fresh := cliRepo{remote: c.remote, cache: t.TempDir(), codeFile: c.codeFile}
	mnt := mountpoint(t)
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	path := filepath.Join(mnt, "f")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 64<<10)
	if _, err := f.ReadAt(head, 0); err != nil || !bytes.Equal(head, data[:len(head)]) {
		t.Fatalf("first read: %v", err)
	}
	f.Close()
	s3.down.Store(true)
	rc := preadCheck(t, path, data, 256<<10+4096)
	if !errors.Is(rc.err, unix.EIO) || rc.wrong != 0 || rc.short != 0 {
		t.Errorf("with the remote down: %d bytes returned, %d wrong, %d short reads, error %v; want EIO, no wrong bytes, no short read", rc.returned, rc.wrong, rc.short, rc.err)
	}
	s3.down.Store(false)
	rc = preadCheck(t, path, data, 256<<10+4096)
	if rc.err != nil || rc.wrong != 0 || rc.short != 0 || rc.returned != int64(len(data)) {
		t.Errorf("with the remote back: %d of %d bytes returned, %d wrong, %d short reads, error %v", rc.returned, len(data), rc.wrong, rc.short, rc.err)
	}
	// The server goes away: connections are refused. read(2) fails with
	// EIO, not with a network errno no program expects from a file.
	if _, err := os.Stat(filepath.Join(mnt, "g")); err != nil {
		t.Fatal(err)
	}
	s3.srv.Listener.Close()
	s3.srv.CloseClientConnections()
	rc = preadCheck(t, filepath.Join(mnt, "g"), other, 256<<10+4096)
	if !errors.Is(rc.err, unix.EIO) || rc.wrong != 0 || rc.short != 0 {
		t.Errorf("with the remote gone: %d bytes returned, %d wrong, %d short reads, error %v; want EIO, no wrong bytes, no short read", rc.returned, rc.wrong, rc.short, rc.err)
	}
	fresh.umount(t, mnt)
	log, _ := os.ReadFile(filepath.Join(fresh.cache, "test-mount.log"))
	if !strings.Contains(string(log), "refused") {
		t.Errorf("the daemon log does not say why reads failed:\n%s", log)
	}
}
