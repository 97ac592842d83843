package mountopts

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Atime says when reading a file or listing a directory updates its
// access time, as the mount(8) options of the same names.
type Atime string

// Access-time modes.
const (
	// Relatime (the default): only when the access time is not after the
	// modification time, or is a day old.
	Relatime Atime = "relatime"
	// Strictatime: on every access.
	Strictatime Atime = "strictatime"
	// Noatime: never.
	Noatime Atime = "noatime"
)

// Kernel is what a mount asks of the kernel's VFS, from the standard
// mount(8) options given to `sealfs mount --options` (the helper passes
// them on): the mount(2) flags and how the daemon keeps access times
// (a FUSE filesystem keeps them itself; the kernel's flags alone do not).
type Kernel struct {
	Flags      uintptr // MS_* flags for mount(2)
	Atime      Atime
	NoDirAtime bool // listing a directory never updates its access time
}

// kernelOption is one VFS option: the flags it sets and clears, and its
// effect on the access-time mode.
type kernelOption struct {
	set, clear uintptr
	atime      Atime
	noDirAtime *bool
}

var (
	yes, no = true, false
	// atimeFlags are the flags that say how access times are kept.
	atimeFlags uintptr = unix.MS_NOATIME | unix.MS_RELATIME | unix.MS_STRICTATIME
)

// kernelOptions are the VFS options mount(8) knows, as mount(2) takes them
// (the later of two contradicting options wins, as with mount(8)).
// norelatime and nostrictatime fall back to relatime, as the kernel does
// without MS_STRICTATIME.
var kernelOptions = map[string]kernelOption{
	"suid": {clear: unix.MS_NOSUID}, "nosuid": {set: unix.MS_NOSUID},
	"dev": {clear: unix.MS_NODEV}, "nodev": {set: unix.MS_NODEV},
	"exec": {clear: unix.MS_NOEXEC}, "noexec": {set: unix.MS_NOEXEC},
	"sync": {set: unix.MS_SYNCHRONOUS}, "async": {clear: unix.MS_SYNCHRONOUS},
	"dirsync":  {set: unix.MS_DIRSYNC},
	"lazytime": {set: unix.MS_LAZYTIME}, "nolazytime": {clear: unix.MS_LAZYTIME},
	"atime": {atime: Relatime}, "relatime": {atime: Relatime}, "norelatime": {atime: Relatime},
	"nostrictatime": {atime: Relatime}, "strictatime": {atime: Strictatime}, "noatime": {atime: Noatime},
	"diratime": {noDirAtime: &no}, "nodiratime": {noDirAtime: &yes},
}

// atimeFlag is the mount(2) flag of an access-time mode.
var atimeFlag = map[Atime]uintptr{Relatime: unix.MS_RELATIME, Strictatime: unix.MS_STRICTATIME, Noatime: unix.MS_NOATIME}

// ParseKernel reads a list of VFS options (each may itself be a
// comma-separated list). Without any, a mount is nosuid,nodev,relatime:
// suid and dev must be asked for, and only root's daemon mounts with them
// (fusermount3 refuses them to other users).
func ParseKernel(opts []string) (Kernel, error) {
	k := Kernel{Flags: unix.MS_NOSUID | unix.MS_NODEV, Atime: Relatime}
	for _, list := range opts {
		for _, o := range strings.Split(list, ",") {
			if o == "" {
				continue
			}
			ko, ok := kernelOptions[o]
			if !ok {
				return Kernel{}, fmt.Errorf("unknown mount option %q (kernel options: %s)", o, strings.Join(KernelOptions(), ", "))
			}
			k.Flags = k.Flags&^ko.clear | ko.set
			if ko.atime != "" {
				k.Atime = ko.atime
			}
			if ko.noDirAtime != nil {
				k.NoDirAtime = *ko.noDirAtime
			}
		}
	}
	k.Flags = k.Flags&^atimeFlags | atimeFlag[k.Atime]
	if k.NoDirAtime {
		k.Flags |= unix.MS_NODIRATIME
	}
	return k, nil
}

// Names returns the options as fusermount3 takes them, for a mount by a
// user other than root, which cannot call mount(2) itself. fusermount3
// knows fewer than mount(2) (not relatime, strictatime, nodiratime nor
// lazytime): those are left out. Access times follow Atime and NoDirAtime
// all the same (the daemon keeps them); only /proc/mounts does not show
// them.
func (k Kernel) Names() []string {
	var out []string
	for _, o := range []struct {
		flag     uintptr
		set, off string
	}{
		{unix.MS_NOSUID, "nosuid", "suid"}, {unix.MS_NODEV, "nodev", "dev"}, {unix.MS_NOEXEC, "noexec", ""},
		{unix.MS_SYNCHRONOUS, "sync", ""}, {unix.MS_DIRSYNC, "dirsync", ""}, {unix.MS_NOATIME, "noatime", ""},
	} {
		if k.Flags&o.flag != 0 {
			out = append(out, o.set)
		} else if o.off != "" {
			out = append(out, o.off)
		}
	}
	return out
}

// KernelOptions lists the VFS options ParseKernel takes, sorted.
func KernelOptions() []string {
	var names []string
	for n := range kernelOptions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
