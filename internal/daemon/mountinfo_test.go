package daemon

import (
	"strings"
	"testing"
)

func TestLookupMount(t *testing.T) {
	table := `22 1 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:50 / /mnt/with\040space rw - tmpfs tmpfs rw,size=1024k
31 30 0:51 / /mnt/with\040space rw,nosuid,nodev shared:7 - fuse.sealfs :s3,secret_access_key=***:b rw,user_id=0
32 22 0:52 / /mnt/other rw - ext4 /dev/vda rw
broken line
`
	m, err := lookupMount(strings.NewReader(table), "/mnt/with space")
	if err != nil || m == nil {
		t.Fatalf("lookup: %v, %v", m, err)
	}
	if m.FSType != FSType || m.Source != ":s3,secret_access_key=***:b" {
		t.Fatalf("the topmost mount is %+v", m)
	}
	if m, _ := lookupMount(strings.NewReader(table), "/mnt"); m != nil {
		t.Fatalf("/mnt is no mount point, got %+v", m)
	}
	for in, want := range map[string]string{`a\040b`: "a b", `a\134b`: `a\b`, `a\0`: `a\0`, `\12x`: `\12x`} {
		if got := unescapeMountField(in); got != want {
			t.Errorf("unescape %q = %q, want %q", in, got, want)
		}
	}
}
