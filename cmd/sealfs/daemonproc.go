package main

import (
	"path/filepath"

	"github.com/sealfs/sealfs/internal/mountopts"
)

// daemonMountpoint returns the mount point of a `sealfs mount --foreground`
// command line (the one a background mount starts, or systemd's), or of
// the mount helper with -o foreground; false for any other command line.
// It is how this command recognises its daemons (daemon.CommandLine).
func daemonMountpoint(argv []string) (string, bool) {
	if len(argv) < 2 {
		return "", false
	}
	switch filepath.Base(argv[0]) {
	case "mount.sealfs", "mount.fuse.sealfs":
		p, err := mountopts.Parse(argv[1:])
		if err != nil {
			return "", false
		}
		for _, a := range p.Args {
			if a == "--foreground" {
				return p.Mountpoint, true
			}
		}
		return "", false
	}
	cmd, rest, err := newRootCmd().Find(argv[1:])
	if err != nil || cmd.Name() != "mount" {
		return "", false
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return "", false
	}
	fg, err := cmd.Flags().GetBool("foreground")
	pos := cmd.Flags().Args()
	if err != nil || !fg || len(pos) != 2 {
		return "", false
	}
	return pos[1], true
}
