package mountopts

import (
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string // expected Args; nil with err set means an error
		src  string
		err  string
	}{
		{[]string{"gdrive:backups", "/mnt/b"}, nil, "gdrive:backups", ""},
		{[]string{"gdrive:backups", "/mnt/b", "-o", "ro,allow_other,default_permissions,_netdev,nofail,x-systemd.automount,x-systemd.requires=network-online.target"},
			[]string{"--read-only", "--allow-other"}, "gdrive:backups", ""},
		{[]string{"/srv/repo", "/mnt/b", "-o", "code_file=/etc/sealfs/code,cache_dir=/var/cache/sealfs,commit_delay=10s,sync=remote"},
			[]string{"--code-file", "/etc/sealfs/code", "--cache-dir", "/var/cache/sealfs", "--commit-delay", "10s", "--sync", "remote"}, "/srv/repo", ""},
		{[]string{"sealfs#/srv/repo", "/mnt/b", "-orw,vault=https://vault.example:8443,password_file=/run/credentials/x/pw"},
			[]string{"--vault", "https://vault.example:8443", "--password-file", "/run/credentials/x/pw"}, "/srv/repo", ""},
		{[]string{"sealfs#/srv/repo", "/mnt/b", "-ovault=https://vault.example:8443,vault_pin=sha256:00ff,vault_ca_file=/etc/sealfs/ca.pem"},
			[]string{"--vault", "https://vault.example:8443", "--vault-pin", "sha256:00ff", "--vault-ca-file", "/etc/sealfs/ca.pem"}, "/srv/repo", ""},
		{[]string{"r", "/m", "-o", `rclone_config="/a,b/rclone.conf",break_lease`}, []string{"--rclone-config", "/a,b/rclone.conf", "--break-lease"}, "r", ""},
		{[]string{"r", "/m", "-o", `bwlimit="08:00,512k 19:00,off",transfers=8`}, []string{"--bwlimit", "08:00,512k 19:00,off", "--transfers", "8"}, "r", ""},
		{[]string{"r", "/m", "-o", "bwlimit=1M:off"}, []string{"--bwlimit", "1M:off"}, "r", ""},
		{[]string{"r", "/m", "-n", "-s", "-v", "-r"}, []string{"--read-only"}, "r", ""},
		{[]string{"r", "/m", "-o", "snapshots_dir=history"}, []string{"--snapshots-dir", "history"}, "r", ""},
		{[]string{"r", "/m", "-o", "nosnapshots"}, []string{"--snapshots-dir="}, "r", ""},
		{[]string{"r", "/m", "-o", "nodiratime,suid,sync,sync=remote,users,iversion,x-a.b=c"},
			[]string{"--options", "nodiratime", "--options", "suid", "--options", "sync", "--sync", "remote"}, "r", ""},
		{[]string{"r", "/m", "-o", "nosymfollow"}, nil, "", "unknown mount option"},
		{[]string{"r", "/m", "-o", "bogus"}, nil, "", "unknown mount option"},
		{[]string{"r", "/m", "-o", "code_file"}, nil, "", "needs a value"},
		{[]string{"r", "/m", "-o", "ro=1"}, nil, "", "takes no value"},
		{[]string{"r"}, nil, "", "usage"},
		{[]string{"r", "/m", "-o"}, nil, "", "needs a list"},
		{[]string{"r", "/m", "-z"}, nil, "", "unknown mount helper flag"},
	} {
		p, err := Parse(c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q) = %v; want an error with %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", c.args, err)
			continue
		}
		if p.Source != c.src || !reflect.DeepEqual(p.Args, c.want) && !(len(p.Args) == 0 && len(c.want) == 0) {
			t.Errorf("Parse(%q) = %q %q; want %q %q", c.args, p.Source, p.Args, c.src, c.want)
		}
	}
}

// TestParseGeneric: the options mount.fuse3 adds to every mount (suid,
// dev) are ignored in the generic helper's form, the rest as Parse does.
func TestParseGeneric(t *testing.T) {
	// As mount.fuse3 gives them for -o ro,noatime,code_file=/c (and as
	// root, nothing about suid or dev).
	p, err := ParseGeneric([]string{"/srv/repo", "/mnt/b", "-o", "ro,noatime,code_file=/c,dev,suid"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--read-only", "--options", "noatime", "--code-file", "/c"}
	if p.Source != "/srv/repo" || p.Mountpoint != "/mnt/b" || !reflect.DeepEqual(p.Args, want) {
		t.Errorf("ParseGeneric = %q %q %q; want /srv/repo /mnt/b %q", p.Source, p.Mountpoint, p.Args, want)
	}
	if p, err := ParseGeneric([]string{"r", "/m", "-o", "rw,nosuid,dev"}); err != nil || !reflect.DeepEqual(p.Args, []string{"--options", "nosuid"}) {
		t.Errorf("ParseGeneric(nosuid,dev) = %v, %v", p, err)
	}
	if _, err := ParseGeneric([]string{"r", "/m", "-o", "suid=1"}); err == nil {
		t.Error("ParseGeneric took suid=1")
	}
}

// TestParseKernel: nosuid,nodev,relatime without options; the later of
// two contradicting options wins, as with mount(8).
func TestParseKernel(t *testing.T) {
	for _, c := range []struct {
		opts  []string
		flags uintptr
		atime Atime
	}{
		{nil, unix.MS_NOSUID | unix.MS_NODEV | unix.MS_RELATIME, Relatime},
		{[]string{"suid,dev", "noatime"}, unix.MS_NOATIME, Noatime},
		{[]string{"noatime,relatime,nodiratime,noexec,sync"}, unix.MS_NOSUID | unix.MS_NODEV | unix.MS_RELATIME | unix.MS_NODIRATIME | unix.MS_NOEXEC | unix.MS_SYNCHRONOUS, Relatime},
		{[]string{"strictatime,suid,nosuid,dirsync,lazytime"}, unix.MS_NOSUID | unix.MS_NODEV | unix.MS_STRICTATIME | unix.MS_DIRSYNC | unix.MS_LAZYTIME, Strictatime},
	} {
		k, err := ParseKernel(c.opts)
		if err != nil || k.Flags != c.flags || k.Atime != c.atime {
			t.Errorf("ParseKernel(%q) = %#x %s %v; want %#x %s", c.opts, k.Flags, k.Atime, err, c.flags, c.atime)
		}
	}
	if _, err := ParseKernel([]string{"ro"}); err == nil {
		t.Error("ParseKernel took ro, which is not a kernel option of --options")
	}
}

// TestNamesForFusermount: a mount by a user other than root passes the
// options to fusermount3, which refuses every option it does not know
// (fusermount3 3.14 knows no relatime, strictatime, nodiratime nor
// lazytime: a mount with them failed).
func TestNamesForFusermount(t *testing.T) {
	known := map[string]bool{"rw": true, "ro": true, "suid": true, "nosuid": true, "dev": true, "nodev": true,
		"exec": true, "noexec": true, "async": true, "sync": true, "atime": true, "noatime": true, "dirsync": true}
	for _, o := range append(KernelOptions(), "") {
		k, err := ParseKernel([]string{o})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range k.Names() {
			if !known[n] {
				t.Errorf("option %q gives %q, which fusermount3 refuses", o, n)
			}
		}
	}
}
