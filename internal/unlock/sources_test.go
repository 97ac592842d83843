package unlock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sealfs/sealfs/crypt"
)

// openPTY opens a real pseudo-terminal: the terminal end a program reads
// from, and the end a person types into.
func openPTY(t *testing.T) (tty, typist *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, m
}

func newCode(t *testing.T) crypt.RecoveryCode {
	t.Helper()
	c, err := crypt.NewRecoveryCode()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeSecret(t *testing.T, dir, name, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// noSecrets clears the environment a secret may come from.
func noSecrets(t *testing.T) {
	t.Setenv(CodeEnv, "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
}

// TestCodeSourcesInOrder: the code file, then the systemd credential, then
// the environment, then the terminal; with none of them, ErrNoCode.
func TestCodeSourcesInOrder(t *testing.T) {
	noSecrets(t)
	dir := t.TempDir()
	fileCode, credCode, envCode, termCode := newCode(t), newCode(t), newCode(t), newCode(t)
	file := writeSecret(t, dir, "code", fileCode.Reveal()+"\n", 0o600)
	creds := t.TempDir()
	writeSecret(t, creds, CodeCredential, credCode.Reveal(), 0o600)
	tty, typist := openPTY(t)
	var out bytes.Buffer
	read := func(src Sources) (crypt.RecoveryCode, error) {
		t.Helper()
		s, err := src.Read()
		if err == nil && (s.vault != "" || s.password != nil) {
			t.Fatal("a code source gave a password")
		}
		return s.code, err
	}
	t.Setenv(CodeEnv, strings.ToLower(envCode.Reveal()))
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	for _, tc := range []struct {
		name  string
		src   Sources
		setup func()
		want  crypt.RecoveryCode
	}{
		{"file first", Sources{CodeFile: file, Terminal: tty, Out: &out}, func() {}, fileCode},
		{"then the credential", Sources{Terminal: tty, Out: &out}, func() {}, credCode},
		{"then the environment", Sources{Terminal: tty, Out: &out}, func() { t.Setenv("CREDENTIALS_DIRECTORY", "") }, envCode},
		{"then the terminal", Sources{Terminal: tty, Out: &out}, func() {
			t.Setenv(CodeEnv, "")
			typist.WriteString(strings.ReplaceAll(termCode.Reveal(), " ", "-") + "\n")
		}, termCode},
	} {
		tc.setup()
		got, err := read(tc.src)
		if err != nil || !got.Equal(tc.want) {
			t.Fatalf("%s: got another code or %v", tc.name, err)
		}
	}
	if !strings.HasPrefix(out.String(), "Recovery code (64 digits") {
		t.Errorf("the terminal was not prompted on Out: %q", out.String())
	}
	// Neither a terminal nor a pipe that is not one is asked.
	pr, pw, _ := os.Pipe()
	defer pr.Close()
	defer pw.Close()
	for _, term := range []*os.File{nil, pr} {
		if _, err := read(Sources{Terminal: term}); !errors.Is(err, ErrNoCode) {
			t.Errorf("no source at all: %v, want ErrNoCode", err)
		}
	}
	if _, err := read(Sources{CodeFile: filepath.Join(dir, "missing")}); !errors.Is(err, ErrCodeFile) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing code file: %v", err)
	}
	typo := []byte(fileCode.Reveal())
	typo[0] ^= 1
	if _, err := read(Sources{CodeFile: writeSecret(t, dir, "typo", string(typo), 0o600)}); !errors.Is(err, crypt.ErrCodeTypo) {
		t.Errorf("a code with a typo: %v", err)
	}
}

// TestPasswordSourcesInOrder: with a vault named, the secret is a password:
// the password file's first line, then the credential, then the terminal.
func TestPasswordSourcesInOrder(t *testing.T) {
	noSecrets(t)
	dir := t.TempDir()
	file := writeSecret(t, dir, "pw", "from the file\r\nsecond line\n", 0o600)
	creds := t.TempDir()
	writeSecret(t, creds, PasswordCredential, "from the credential\n", 0o600)
	t.Setenv(CodeEnv, newCode(t).Reveal()) // not a password source
	tty, typist := openPTY(t)
	var out bytes.Buffer
	src := Sources{Vault: "https://vault.example", PasswordFile: file, Terminal: tty, Out: &out}
	read := func(src Sources, want string) {
		t.Helper()
		s, err := src.Read()
		if err != nil || string(s.password) != want || s.vault != src.Vault {
			t.Fatalf("password %q, vault %q, %v; want %q", s.password, s.vault, err, want)
		}
	}
	read(src, "from the file")
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	src.PasswordFile = ""
	read(src, "from the credential")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	typist.WriteString("typed on the terminal\n")
	read(src, "typed on the terminal")
	if out.String() != "Vault password: \n" {
		t.Errorf("prompt %q", out.String())
	}
	src.Terminal = nil
	if _, err := src.Read(); !errors.Is(err, ErrNoPassword) {
		t.Errorf("no password source: %v", err)
	}
	src.PasswordFile = filepath.Join(dir, "missing")
	if _, err := src.Read(); !errors.Is(err, ErrPasswordFile) {
		t.Errorf("a missing password file: %v", err)
	}
}

// TestNewPassword: a new password is asked twice and must match; from a
// file or the terminal it must have MinPassword characters.
func TestNewPassword(t *testing.T) {
	noSecrets(t)
	dir := t.TempDir()
	tty, typist := openPTY(t)
	src := Sources{Terminal: tty, Out: io.Discard}
	typist.WriteString("a long passphrase\na long passphrase\n")
	if pw, err := src.NewPassword(""); err != nil || string(pw) != "a long passphrase" {
		t.Fatalf("typed twice: %q %v", pw, err)
	}
	typist.WriteString("a long passphrase\nanother passphrase\n")
	if _, err := src.NewPassword(""); !errors.Is(err, ErrPasswordsDiffer) {
		t.Fatalf("two different: %v", err)
	}
	typist.WriteString("short\nshort\n")
	if _, err := src.NewPassword(""); !errors.Is(err, ErrShortPassword) {
		t.Fatalf("short on the terminal: %v", err)
	}
	if _, err := src.NewPassword(writeSecret(t, dir, "short", "123456789\n", 0o600)); !errors.Is(err, ErrShortPassword) {
		t.Fatalf("9 characters in a file: %v", err)
	}
	if pw, err := src.NewPassword(writeSecret(t, dir, "ok", "1234567890\n", 0o600)); err != nil || string(pw) != "1234567890" {
		t.Fatalf("10 characters in a file: %q %v", pw, err)
	}
}

// TestPipeRoundTrip: what Secret.WriteTo writes, FromPipe reads back, for
// a code and for a password; more than a secret's worth is refused.
func TestPipeRoundTrip(t *testing.T) {
	code := newCode(t)
	var b bytes.Buffer
	if _, err := (Secret{code: code}).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if got, err := (Sources{}).FromPipe(&b); err != nil || !got.code.Equal(code) || got.vault != "" {
		t.Fatalf("code through the pipe: %v", err)
	}
	vault := Sources{Vault: "https://vault.example"}
	(Secret{password: []byte("pass word\t"), vault: vault.Vault}).WriteTo(&b)
	if got, err := vault.FromPipe(&b); err != nil || string(got.password) != "pass word\t" || got.vault != vault.Vault {
		t.Fatalf("password through the pipe: %q %v", got.password, err)
	}
	if _, err := vault.FromPipe(strings.NewReader(strings.Repeat("x", maxPipeSecret+1))); err == nil {
		t.Fatal("an over-long secret was taken")
	}
	if _, err := (Sources{}).FromPipe(strings.NewReader("1234\n")); !errors.Is(err, crypt.ErrCodeTypo) {
		t.Fatalf("a cut-off code: %v", err)
	}
	if s := fmt.Sprintf("%v %+v %#v", Secret{code: code}, Secret{code: code}, Secret{code: code}); strings.Contains(s, code.Reveal()[:4]) {
		t.Fatalf("a secret printed itself: %s", s)
	}
}

// TestWarnIfReadable: a secret file its group or others can read draws a
// warning on Out when it is read; a private one does not.
func TestWarnIfReadable(t *testing.T) {
	noSecrets(t)
	dir := t.TempDir()
	code := newCode(t).Reveal()
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o640, true}, {0o604, true}, {0o400, false}} {
		var out bytes.Buffer
		file := writeSecret(t, dir, fmt.Sprintf("code%o", tc.mode), code, 0o600)
		os.Chmod(file, tc.mode)
		if _, err := (Sources{CodeFile: file, Out: &out}).Read(); err != nil {
			t.Fatal(err)
		}
		want := ""
		if tc.warn {
			want = fmt.Sprintf("sealfs: warning: the recovery code file %s can be read by other users (mode %04o); whoever reads it can open your backups. Make it private with: chmod 600 %s\n", file, tc.mode, file)
		}
		if out.String() != want {
			t.Errorf("mode %04o: %q, want %q", tc.mode, out.String(), want)
		}
	}
}

// TestVaultListNamesEachVaultOnce: two spellings of one vault in a list
// (case of the scheme or host, the default port, a trailing slash) would
// give one vault two shares of a k-of-n slot, so that its operator alone
// holds k of 2-of-3 and guesses offline: such a list is malformed.
func TestVaultListNamesEachVaultOnce(t *testing.T) {
	var s Sources
	for _, list := range []string{
		"https://v.example,https://w.example,https://V.Example",
		"https://v.example,https://v.example:443",
		"https://v.example/vault,https://v.example/vault/",
		"HTTPS://v.example,https://v.example",
		"http://127.0.0.1:80,http://127.0.0.1",
		"http://localhost:8443,http://LOCALHOST:8443/",
	} {
		if cs, err := s.VaultClients(list); !errors.Is(err, ErrVaultList) {
			t.Errorf("%s: %d clients, %v; want ErrVaultList", list, len(cs), err)
		}
	}
	for _, list := range []string{"https://v.example,https://v.example:8443", "https://v.example/a,https://v.example/b", "http://127.0.0.1:8443,http://127.0.0.2:8443"} {
		if cs, err := s.VaultClients(list); err != nil || len(cs) != 2 {
			t.Errorf("%s: %d clients, %v; want 2", list, len(cs), err)
		}
	}
}
