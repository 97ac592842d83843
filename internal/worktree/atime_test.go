package worktree

import (
	"testing"
	"time"

	"github.com/sealfs/sealfs/repo"
)

// TestAtimeDue: the kernel's relatime rule (relatime_need_update), and
// strictatime and noatime.
func TestAtimeDue(t *testing.T) {
	now := time.Now().UnixNano()
	h := int64(time.Hour)
	for _, c := range []struct {
		mode                AtimeMode
		atime, mtime, ctime int64
		want                bool
	}{
		{Relatime, now - h, now - 2*h, now - 2*h, false},     // read after the last change
		{Relatime, now - h, now - h, now - 2*h, true},        // atime == mtime
		{Relatime, now - 2*h, now - 3*h, now - h, true},      // changed (chmod) since
		{Relatime, now - 25*h, now - 26*h, now - 26*h, true}, // a day old
		{Relatime, now, now - h, now - h, false},             // already now
		{Strictatime, now - h, now - 2*h, now - 2*h, true},
		{Noatime, now - 25*h, now, now, false},
	} {
		n := &repo.Node{AtimeNs: c.atime, MtimeNs: c.mtime, CtimeNs: c.ctime}
		if got := atimeDue(c.mode, n, now); got != c.want {
			t.Errorf("mode %d, atime %+dh mtime %+dh ctime %+dh: due %v, want %v", c.mode,
				(c.atime-now)/h, (c.mtime-now)/h, (c.ctime-now)/h, got, c.want)
		}
	}
}
