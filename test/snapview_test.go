package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// snapshotFolder is how the view names a snapshot's folder: its UTC time,
// and -SEQ for a second snapshot of one second.
var snapshotFolder = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d(-\d+(-[0-9a-f]{8})?)?$`)

// snapshotFolders lists the snapshots' folders of the view at dir (not
// latest), failing on a name of another shape.
func snapshotFolders(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		switch {
		case e.Name() == "latest":
			if e.Type() != os.ModeSymlink {
				t.Fatalf("latest is a %v, want a symlink", e.Type())
			}
		case !snapshotFolder.MatchString(e.Name()) || !e.IsDir():
			t.Fatalf("%s holds %q (%v)", dir, e.Name(), e.Type())
		default:
			out = append(out, e.Name())
		}
	}
	return out
}

// TestMountSnapshotsView: through the real binary, /.snapshots shows the
// history: a file's old version after it was changed, a file deleted
// since, latest linking to the newest; `cp -a` restores from it; it is
// read-only (EROFS), its name cannot be taken (EEXIST), and the newest
// snapshot, restored, holds no .snapshots.
func TestMountSnapshotsView(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--sync=remote"), 0, "")
	if err := writeSynced(filepath.Join(mnt, "doc"), []byte("version 1")); err != nil {
		t.Fatal(err)
	}
	if err := writeSynced(filepath.Join(mnt, "gone"), []byte("deleted later")); err != nil {
		t.Fatal(err)
	}
	if err := writeSynced(filepath.Join(mnt, "doc"), []byte("version 2, longer")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "gone")); err != nil {
		t.Fatal(err)
	}
	root, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sync(); err != nil { // commits the removal
		t.Fatal(err)
	}
	root.Close()

	view := filepath.Join(mnt, ".snapshots")
	folders := snapshotFolders(t, view)
	if len(folders) < 3 {
		t.Fatalf("ls .snapshots shows %q, want at least 3 snapshots", folders)
	}
	latest, err := os.Readlink(filepath.Join(view, "latest"))
	if err != nil || !slices.Contains(folders, latest) {
		t.Fatalf("latest -> %q (%v), not one of %q", latest, err, folders)
	}
	// Each writeSynced's fsync commits its file while it is still open (CI
	// once read "version 1" here, when that fsync left open files out and
	// the folder's fsync came before the kernel's asynchronous release of doc).
	if b, err := os.ReadFile(filepath.Join(view, "latest", "doc")); err != nil || string(b) != "version 2, longer" {
		t.Fatalf("latest/doc = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(view, "latest", "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("latest/gone: %v", err)
	}
	var old string
	for _, f := range folders {
		_, gone := os.Stat(filepath.Join(view, f, "gone"))
		if b, err := os.ReadFile(filepath.Join(view, f, "doc")); err == nil && string(b) == "version 1" && gone == nil {
			old = filepath.Join(view, f)
		}
	}
	if old == "" {
		t.Fatal("no snapshot shows doc's first version beside gone")
	}
	dst := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(old, "gone"), dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a from the view: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "gone")); err != nil || string(b) != "deleted later" {
		t.Fatalf("restored gone = %q, %v", b, err)
	}
	for what, err := range map[string]error{
		"write":  os.WriteFile(filepath.Join(old, "doc"), []byte("x"), 0o644),
		"create": os.WriteFile(filepath.Join(old, "new"), []byte("x"), 0o644),
		"unlink": os.Remove(filepath.Join(old, "doc")),
		"rename": os.Rename(filepath.Join(old, "doc"), filepath.Join(mnt, "doc2")),
		"chmod":  os.Chmod(filepath.Join(old, "doc"), 0o600),
		"mkdir":  os.Mkdir(filepath.Join(view, "mine"), 0o755),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s in the view: %v, want EROFS", what, err)
		}
	}
	if err := os.Mkdir(view, 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("mkdir .snapshots: %v, want EEXIST", err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "doc")); err != nil || string(b) != "version 2, longer" {
		t.Fatalf("live doc = %q, %v", b, err)
	}
	// sealfs backup of the mount does not copy the history.
	other := initRepo(t)
	expect(t, other.run(t, "backup", mnt, other.remote), 0, "")
	copied := filepath.Join(t.TempDir(), "copied")
	expect(t, other.run(t, "restore", other.remote, copied), 0, "")
	if names := listNames(t, copied); !slices.Equal(names, []string{"doc"}) {
		t.Fatalf("a backup of the mount holds %q", names)
	}
	c.umount(t, mnt)

	out := filepath.Join(t.TempDir(), "restored")
	expect(t, c.run(t, "restore", c.remote, out), 0, "")
	if _, err := os.Lstat(filepath.Join(out, ".snapshots")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the newest snapshot holds .snapshots: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "doc")); err != nil || string(b) != "version 2, longer" {
		t.Fatalf("restored doc = %q, %v", b, err)
	}
}

// TestMountSnapshotsDirClash: a folder .snapshots of the user's own (made
// with the view turned off) wins over the view, and the daemon's log says
// which flag shows the view; --snapshots-dir shows it under another name.
func TestMountSnapshotsDirClash(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	for _, bad := range []string{"a/b", "..", "."} {
		expect(t, c.mount(t, mnt, "--snapshots-dir="+bad), 2, "--snapshots-dir")
	}
	expect(t, c.mount(t, mnt, "--snapshots-dir="), 0, "")
	if err := os.Mkdir(filepath.Join(mnt, ".snapshots"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, ".snapshots", "snapper.xml"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)

	expect(t, c.mount(t, mnt), 0, "")
	if b, err := os.ReadFile(filepath.Join(mnt, ".snapshots", "snapper.xml")); err != nil || string(b) != "mine" {
		t.Fatalf("the user's .snapshots/snapper.xml = %q, %v", b, err)
	}
	c.umount(t, mnt)
	log, _ := os.ReadFile(filepath.Join(c.cache, "test-mount.log"))
	if !bytes.Contains(log, []byte("--snapshots-dir")) {
		t.Fatalf("the daemon's log does not name --snapshots-dir:\n%s", log)
	}

	expect(t, c.mount(t, mnt, "--snapshots-dir=history"), 0, "")
	defer c.umount(t, mnt)
	folders := snapshotFolders(t, filepath.Join(mnt, "history"))
	if len(folders) < 2 {
		t.Fatalf("ls history = %q", folders)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "history", "latest", ".snapshots", "snapper.xml")); err != nil || string(b) != "mine" {
		t.Fatalf("the newest snapshot's .snapshots/snapper.xml = %q, %v", b, err)
	}
}

// TestMountSnapshotsDamagedBlob: a damaged chunk of a file's old version
// makes a read of it in the view fail with EIO (never a short read), and
// the log names the damage; the live version reads on.
func TestMountSnapshotsDamagedBlob(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	oldData, newData := randomBytes(71, 300000), randomBytes(72, 200000)
	expect(t, c.mount(t, mnt), 0, "")
	if err := os.WriteFile(filepath.Join(mnt, "f"), oldData, 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)
	expect(t, c.mount(t, mnt), 0, "")
	if err := os.WriteFile(filepath.Join(mnt, "f"), newData, 0o644); err != nil {
		t.Fatal(err)
	}
	c.umount(t, mnt)

	// Damage the middle of the old version's first chunk.
	r, _ := c.openInProcess(t)
	snaps, err := r.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := r.LoadTree(context.Background(), snaps[len(snaps)-2].Tree)
	if err != nil {
		t.Fatal(err)
	}
	n := tree.Find([]byte("f"))
	if n == nil || n.Size != uint64(len(oldData)) {
		t.Fatalf("the snapshot before the newest holds f as %+v", n)
	}
	loc, ok := r.Index().Lookup(n.Content[0].ID)
	if !ok {
		t.Fatal("the old chunk is in no index")
	}
	flipByte(t, filepath.Join(c.remote, packObject(loc.Pack)), int64(loc.Offset+loc.Length/2))

	fresh := cliRepo{remote: c.remote, cache: filepath.Join(t.TempDir(), "fresh"), codeFile: c.codeFile}
	expect(t, fresh.mount(t, mnt, "--read-only"), 0, "")
	defer fresh.umount(t, mnt)
	if b, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || !bytes.Equal(b, newData) {
		t.Fatalf("live f: %d bytes, %v", len(b), err)
	}
	view := filepath.Join(mnt, ".snapshots")
	var old string
	for _, f := range snapshotFolders(t, view) {
		if fi, err := os.Stat(filepath.Join(view, f, "f")); err == nil && fi.Size() == int64(len(oldData)) {
			old = filepath.Join(view, f, "f")
		}
	}
	if old == "" {
		t.Fatal("no snapshot in the view holds f's old version")
	}
	b, err := os.ReadFile(old)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading a damaged old version: %d bytes, %v; want EIO", len(b), err)
	}
	log, _ := os.ReadFile(filepath.Join(fresh.cache, "test-mount.log"))
	if !strings.Contains(string(log), "integrity") {
		t.Fatalf("the log does not tell of the damage:\n%s", log)
	}
}

// TestMountSnapshotsViewThinned: a mount that thins its own snapshots
// (--keep-last) shows only those kept; a file of a forgotten one still
// open fails with ESTALE (never wrong data, never a crash), and its path
// is gone.
func TestMountSnapshotsViewThinned(t *testing.T) {
	needRoot(t)
	c := initRepo(t)
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt, "--keep-last", "2", "--forget-interval", "1s", "--commit-delay", "100ms"), 0, "")
	defer c.umount(t, mnt)
	view := filepath.Join(mnt, ".snapshots")
	var held *os.File
	var heldPath string
	for i := 1; i <= 3; i++ {
		if err := os.WriteFile(filepath.Join(mnt, "f"), []byte(fmt.Sprintf("version %d", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); mountStatus(t, mnt).SnapshotSeq != uint64(i); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("commit %d did not come", i)
			}
		}
		if i == 1 {
			target, err := os.Readlink(filepath.Join(view, "latest"))
			if err != nil {
				t.Fatal(err)
			}
			heldPath = filepath.Join(view, target, "f")
			if held, err = os.Open(heldPath); err != nil {
				t.Fatal(err)
			}
			defer held.Close()
		}
		time.Sleep(1100 * time.Millisecond) // the forget interval
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if len(snapshotFolders(t, view)) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the view still shows %q", snapshotFolders(t, view))
		}
	}
	time.Sleep(1100 * time.Millisecond) // the kernel's entry cache, and the view's recheck
	buf := make([]byte, 64)
	if n, err := held.ReadAt(buf, 0); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("reading a forgotten snapshot's file: %q, %v; want ESTALE", buf[:n], err)
	}
	if _, err := os.Stat(heldPath); !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("stat of a forgotten snapshot's file: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(view, "latest", "f")); err != nil || string(b) != "version 3" {
		t.Fatalf("latest/f = %q, %v", b, err)
	}
}

func listNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
