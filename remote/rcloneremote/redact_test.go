package rcloneremote

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		":s3,provider=Other,access_key_id=AK,secret_access_key=SK:bucket/repo": ":s3,access_key_id=***,provider=***,secret_access_key=***:bucket/repo",
		`:s3,secret_access_key="a,b:c",endpoint='http://x:9':b`:                ":s3,endpoint=***,secret_access_key=***:b",
		"gdrive,team_drive=TD:backups":                                         "gdrive,team_drive=***:backups",
		"gdrive:backups":                                                       "gdrive:backups",
		"/srv/backups":                                                         "/srv/backups",
		"relative/dir":                                                         "relative/dir",
		":sftp,host=h,pass=P":                                                  ":sftp," + Redacted,
		`:crypt,remote=':s3,key=K:b',password=PW:`:                             ":crypt,password=***,remote=***:",
	} {
		got := Redact(in)
		if got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
		for _, secret := range []string{"AK", "SK", "a,b:c", "TD", "=P", "K:b", "PW"} {
			if strings.Contains(in, secret) && strings.Contains(got, secret) {
				t.Errorf("Redact(%q) = %q still shows %q", in, got, secret)
			}
		}
	}
}
