package main

import "testing"

// TestGenericHelperForm: `sealfs REMOTE DIR -o OPTS` (mount.fuse3's call)
// is told from a subcommand, help, a flag, a second argument that is not a
// folder, and a mistyped command followed by two folders.
func TestGenericHelperForm(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"/srv/repo", dir, "-o", "rw,code_file=/c,dev,suid"}, true},
		{[]string{"gdrive:backups", dir}, true},
		{[]string{"snapshots", dir}, false},
		{[]string{"ls", dir, "latest"}, false},
		{[]string{"key", "list", dir}, false},
		{[]string{"help", dir}, false},
		{[]string{"completion", "bash"}, false},
		{[]string{"--cache-dir", dir, "snapshots", dir}, false},
		{[]string{"/srv/repo", dir + "/none", "-o", "rw"}, false},
		{[]string{"/srv/repo"}, false},
		// A mistyped command with a local repository and a folder.
		{[]string{"restor", dir, dir}, false},
		{[]string{"bakup", dir, dir, "-o", "rw"}, false},
		{[]string{"/srv/repo", dir, "-o", "rw", "-o", "ro"}, true},
	} {
		if got := genericHelperForm(newRootCmd(), c.args); got != c.want {
			t.Errorf("genericHelperForm(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
