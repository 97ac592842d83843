package testutil

import (
	"os"
	"syscall"
	"testing"
)

// SameInode checks that the paths are names of one inode that has nlink
// names, one mode, owner and mtime, and the content want (a file's bytes,
// a symlink's target, "" for the rest).
func SameInode(t testing.TB, nlink uint64, want string, paths ...string) {
	t.Helper()
	var first syscall.Stat_t
	for i, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if i == 0 {
			first = st
		}
		if st.Ino != first.Ino || st.Nlink != nlink || st.Mode != first.Mode || st.Uid != first.Uid ||
			st.Gid != first.Gid || st.Mtim != first.Mtim || st.Size != int64(len(want)) {
			t.Errorf("%s: ino %d nlink %d mode %o owner %d:%d mtime %v size %d; want ino %d nlink %d mode %o owner %d:%d mtime %v size %d",
				p, st.Ino, st.Nlink, st.Mode, st.Uid, st.Gid, st.Mtim, st.Size,
				first.Ino, nlink, first.Mode, first.Uid, first.Gid, first.Mtim, len(want))
		}
		var got []byte
		var err error
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			got, err = os.ReadFile(p)
		case syscall.S_IFLNK:
			var s string
			s, err = os.Readlink(p)
			got = []byte(s)
		}
		if err != nil || string(got) != want {
			t.Errorf("%s reads %q, %v; want %q", p, got, err, want)
		}
	}
}
