package main

import "testing"

func TestDaemonMountpoint(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		mp   string
		ok   bool
	}{
		{[]string{"/usr/bin/sealfs", "mount", "--cache-dir=/c", "--foreground", "--ready-fd=3", "--code-fd=4", "--", "r", "/mnt/x"}, "/mnt/x", true},
		{[]string{"sealfs", "mount", "--foreground", ":s3,secret_access_key=***:b", "/mnt/x", "--cache-dir", "/c"}, "/mnt/x", true},
		{[]string{"sealfs", "--cache-dir", "/c", "mount", "--foreground", "r", "rel"}, "rel", true},
		{[]string{"/sbin/mount.sealfs", "r", "/mnt/x", "-o", "foreground,cache_dir=/c"}, "/mnt/x", true},
		{[]string{"/sbin/mount.sealfs", "r", "/mnt/x", "-o", "cache_dir=/c"}, "", false},          // the helper that starts a daemon
		{[]string{"sealfs", "mount", "r", "/mnt/x"}, "", false},                                   // the command that starts a daemon
		{[]string{"sealfs", "mount", "--foreground", "r"}, "", false},                             // no mount point
		{[]string{"sealfs", "umount", "/mnt/x"}, "", false},                                       // another command
		{[]string{"sleep", "mount", "--foreground", "r", "/mnt/x"}, "/mnt/x", true},               // the executable is checked apart
		{[]string{"sealfs", "mount", "--foreground", "--no-such-flag", "r", "/mnt/x"}, "", false}, // not ours
		{[]string{"sealfs"}, "", false},
	} {
		mp, ok := daemonMountpoint(tc.argv)
		if mp != tc.mp || ok != tc.ok {
			t.Errorf("daemonMountpoint(%q) = %q, %v; want %q, %v", tc.argv, mp, ok, tc.mp, tc.ok)
		}
	}
}

func TestRedactArgs(t *testing.T) {
	in := []string{"mount", "--cache-dir=/c", ":s3,access_key_id=AK,secret_access_key=SK:b", "/mnt"}
	out, changed := redactArgs(in)
	if !changed || out[2] != ":s3,access_key_id=***,secret_access_key=***:b" || out[0] != "mount" || out[3] != "/mnt" {
		t.Fatalf("redactArgs = %q, %v", out, changed)
	}
	if in[2] != ":s3,access_key_id=AK,secret_access_key=SK:b" {
		t.Fatal("redactArgs changed its input")
	}
	if _, changed := redactArgs([]string{"mount", "gdrive:backups", "/mnt"}); changed {
		t.Fatal("a named remote was redacted")
	}
}
