// Package mountopts turns the arguments mount(8) gives a mount helper
// (`mount.sealfs SOURCE MOUNTPOINT [-sfnvr] [-o OPTIONS]`, as for
// mount.fuse3 and mount.rclone) into the arguments of `sealfs mount`.
package mountopts

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Parsed is a helper invocation turned into sealfs arguments.
type Parsed struct {
	Source, Mountpoint string
	// Args are the flags for `sealfs mount`, before SOURCE and MOUNTPOINT.
	Args    []string
	Verbose bool
	Fake    bool // -f: parse only, mount nothing
}

// value options: name=value -> --flag value.
var valueOptions = map[string]string{
	"code_file":      "--code-file",
	"password_file":  "--password-file",
	"vault":          "--vault",
	"vault_pin":      "--vault-pin",
	"vault_ca_file":  "--vault-ca-file",
	"cache_dir":      "--cache-dir",
	"rclone_config":  "--rclone-config",
	"commit_delay":   "--commit-delay",
	"drain_timeout":  "--drain-timeout",
	"sync":           "--sync",
	"cache_size":     "--cache-size",
	"transfers":      "--transfers",
	"bwlimit":        "--bwlimit",
	"log_file":       "--log-file",
	"log_format":     "--log-format",
	"snapshots_dir":  "--snapshots-dir",
	"metrics_listen": "--metrics-listen",
	// A retention policy: the mount thins its own snapshots.
	"keep_last":       "--keep-last",
	"keep_hourly":     "--keep-hourly",
	"keep_daily":      "--keep-daily",
	"keep_weekly":     "--keep-weekly",
	"keep_monthly":    "--keep-monthly",
	"keep_yearly":     "--keep-yearly",
	"keep_within":     "--keep-within",
	"group_by":        "--group-by",
	"forget_interval": "--forget-interval",
}

// flag options: name -> --flag.
var flagOptions = map[string]string{
	"ro":                   "--read-only",
	"allow_other":          "--allow-other",
	"break_lease":          "--break-lease",
	"accept_rollback":      "--accept-rollback",
	"foreground":           "--foreground",
	"nosnapshots":          "--snapshots-dir=", // no snapshots view
	"metrics_allow_remote": "--metrics-allow-remote",
}

// ignored are options mount(8), fstab or systemd use that mean nothing to
// sealfs (default_permissions is always on; a FUSE mount has no i_version
// nor mandatory locks).
var ignored = map[string]bool{
	"rw": true, "defaults": true, "auto": true, "noauto": true, "user": true, "users": true, "nouser": true,
	"_netdev": true, "nofail": true, "default_permissions": true, "sync_io": true, "owner": true, "group": true,
	"comment": true, "iversion": true, "noiversion": true, "mand": true, "nomand": true, "silent": true,
	"loud": true,
}

// kernelFlag is the flag that passes one of the kernel's VFS options
// (KernelOptions: suid, nodev, noatime, ...) on to `sealfs mount`.
const kernelFlag = "--options"

// genericAdded are the options the generic FUSE helper (mount.fuse3,
// which mount(8) runs for a fuse.sealfs mount when there is no
// mount.fuse.sealfs) adds to every mount unless their opposites were given
// (mount(8)'s defaults: a root mount is suid and dev unless told
// otherwise). Given by it, they cannot be told from options the user
// asked for.
var genericAdded = map[string]bool{"suid": true, "dev": true}

// Parse reads a helper's arguments (without the program name).
func Parse(args []string) (*Parsed, error) { return parse(args, nil) }

// ParseGeneric reads the arguments mount.fuse3 gives the program of a
// fuse.sealfs mount (`sealfs SOURCE MOUNTPOINT -o OPTIONS`) as Parse does,
// but ignores suid and dev, which mount.fuse3 adds to every mount: the
// mount stays nosuid,nodev, as through mount.fuse.sealfs without them
// (a snapshot's setuid files and device nodes come from every writer
// of the repository).
func ParseGeneric(args []string) (*Parsed, error) { return parse(args, genericAdded) }

// parse is Parse, ignoring the options in drop.
func parse(args []string, drop map[string]bool) (*Parsed, error) {
	p := &Parsed{}
	var pos, opts []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o":
			if i+1 >= len(args) {
				return nil, fmt.Errorf("-o needs a list of options")
			}
			i++
			opts = append(opts, args[i])
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			opts = append(opts, a[2:])
		case a == "-v":
			p.Verbose = true
		case a == "-f":
			p.Fake = true
		case a == "-n", a == "-s":
			// no mtab; sloppy: nothing to do
		case a == "-r":
			opts = append(opts, "ro")
		case strings.HasPrefix(a, "-") && a != "-":
			return nil, fmt.Errorf("unknown mount helper flag %q", a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, fmt.Errorf("usage: mount.sealfs REMOTE MOUNTPOINT [-o OPTIONS] (got %d operands)", len(pos))
	}
	p.Source, p.Mountpoint = pos[0], pos[1]
	// mount.fuse style "sealfs#REMOTE" sources are accepted too.
	p.Source = strings.TrimPrefix(p.Source, "sealfs#")
	for _, list := range opts {
		for _, o := range splitOptions(list) {
			if o == "" {
				continue
			}
			name, value, hasValue := strings.Cut(o, "=")
			switch {
			case ignored[name] || strings.HasPrefix(name, "x-") || (name == "comment" && hasValue) || (drop[name] && !hasValue):
			case !hasValue && slices.Contains(KernelOptions(), name):
				p.Args = append(p.Args, kernelFlag, name)
			case valueOptions[name] != "":
				if !hasValue || value == "" {
					return nil, fmt.Errorf("option %s needs a value (%s=...)", name, name)
				}
				p.Args = append(p.Args, valueOptions[name], value)
			case flagOptions[name] != "":
				if hasValue {
					return nil, fmt.Errorf("option %s takes no value", name)
				}
				p.Args = append(p.Args, flagOptions[name])
			default:
				return nil, fmt.Errorf("unknown mount option %q (sealfs options: %s)", o, known())
			}
		}
	}
	return p, nil
}

// splitOptions splits on commas, except inside double quotes (values such
// as rclone connection strings may hold commas).
func splitOptions(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

func known() string { return strings.Join(Options(), ", ") }

// Options lists the options the helper turns into flags, sorted: "name="
// for those that take a value, "name" for the others (the kernel's VFS
// options among them).
func Options() []string {
	names := KernelOptions()
	for n := range valueOptions {
		names = append(names, n+"=")
	}
	for n := range flagOptions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
