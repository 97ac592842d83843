package rcloneremote

import (
	"sort"
	"strings"

	"github.com/rclone/rclone/fs/fspath"
)

// Redacted stands for a parameter value that Redact hid.
const Redacted = "***"

// Redact returns spec for display (the mount table, the status, logs, a
// process's arguments): the value of every connection-string parameter is
// replaced by Redacted, since parameters carry credentials
// (":s3,access_key_id=***,secret_access_key=***:bucket"). The backend or
// remote name and the path are kept; a spec without parameters (a named
// remote, a local path) is returned as it is. A spec that does not parse
// keeps only what comes before its first comma.
func Redact(spec string) string {
	p, err := fspath.Parse(spec)
	if err != nil {
		if name, _, found := strings.Cut(spec, ","); found {
			return name + "," + Redacted
		}
		return spec
	}
	if len(p.Config) == 0 {
		return spec
	}
	keys := make([]string, 0, len(p.Config))
	for k := range p.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(p.Name)
	for _, k := range keys {
		b.WriteString("," + k + "=" + Redacted)
	}
	b.WriteString(":" + p.Path)
	return b.String()
}
