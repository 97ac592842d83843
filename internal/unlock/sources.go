package unlock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/keyvault"
)

// CodeEnv is the environment variable that may hold the recovery code.
const CodeEnv = "SEALFS_RECOVERY_CODE"

// Names of systemd credentials (LoadCredential=) under
// $CREDENTIALS_DIRECTORY.
const (
	CodeCredential     = "sealfs-recovery-code"
	PasswordCredential = "sealfs-vault-password"
)

// MinPassword is the length floor of a new vault password. The vault
// limits guesses to 10, so the floor guards against guessing in few tries,
// not offline cracking.
const MinPassword = 10

// maxPipeSecret bounds what FromPipe reads.
const maxPipeSecret = 4096

// Sources says where a secret may be found: the files the command was
// given, and the terminal to ask on. The environment and systemd
// credentials are looked at too (see the package comment for the order).
type Sources struct {
	CodeFile     string         // file holding the recovery code
	Vault        string         // the vaults' URLs, comma-separated: the secret is a password for them
	VaultTrust   keyvault.Trust // which certificate of the vault to trust
	PasswordFile string         // file holding the vault password
	Terminal     *os.File       // asked on when it is a terminal; nil: never
	Out          io.Writer      // prompts and warnings; nil: none
}

// VaultClient returns a client for the vault at url, trusting its
// certificate as VaultTrust says (keyvault.NewClient).
func (s Sources) VaultClient(url string) (*keyvault.Client, error) {
	return keyvault.NewClient(url, s.VaultTrust)
}

// ErrVaultList: a list of vault URLs has an empty or repeated entry, or
// more than keyvault.MaxVaults.
var ErrVaultList = errors.New("malformed list of vaults")

// sameVault reports whether two vault URLs name one vault, spelled
// differently: the scheme and host in another case, the default port
// written or not, a trailing slash. One vault named twice in a k-of-n
// list would hold two shares, and its operator alone k of 2 of 3.
func sameVault(a, b string) bool {
	key := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		scheme, port := strings.ToLower(u.Scheme), u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[scheme]
		}
		return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port) + strings.TrimRight(u.EscapedPath(), "/")
	}
	return key(a) == key(b)
}

// VaultClients returns a client for each vault of urls, a comma-separated
// list (one URL, or several for k of n vaults, each named once: see
// sameVault), each trusting its certificate as VaultTrust says: the same
// CA file and pins for all.
func (s Sources) VaultClients(urls string) ([]*keyvault.Client, error) {
	var clients []*keyvault.Client
	for u := range strings.SplitSeq(urls, ",") {
		u = strings.TrimSpace(u)
		if u == "" || slices.ContainsFunc(clients, func(c *keyvault.Client) bool { return sameVault(c.URL, u) }) {
			return nil, fmt.Errorf("%w %q: give one URL, or several separated by commas, each once", ErrVaultList, urls)
		}
		c, err := s.VaultClient(u)
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}
	if len(clients) > keyvault.MaxVaults {
		return nil, fmt.Errorf("%w: %d vaults, at most %d", ErrVaultList, len(clients), keyvault.MaxVaults)
	}
	return clients, nil
}

// Read returns the secret: the vault password when Vault is set, else the
// recovery code. A code with a typo is an error wrapping crypt.ErrCodeTypo.
// A vault URL the client refuses (keyvault.NewClient) is an error before
// any password is asked for.
func (s Sources) Read() (Secret, error) {
	if s.Vault != "" {
		cs, err := s.VaultClients(s.Vault)
		if err != nil {
			return Secret{}, err
		}
		file := s.PasswordFile
		if file == "" {
			file = credential(PasswordCredential)
		}
		pw, err := s.password(file, "Vault password: ", false)
		return Secret{password: pw, vault: s.Vault, clients: cs, warn: s.Out}, err
	}
	code, err := s.code()
	return Secret{code: code}, err
}

// NewPassword reads a new vault password from file (its first line), or
// asks for it twice on the terminal. It must have MinPassword characters.
func (s Sources) NewPassword(file string) ([]byte, error) {
	return s.password(file, "New vault password: ", true)
}

// FromPipe reads the secret that Secret.WriteTo wrote: a vault password
// when Vault is set, else a recovery code.
func (s Sources) FromPipe(r io.Reader) (Secret, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPipeSecret+1))
	defer clear(b)
	if err != nil {
		return Secret{}, fmt.Errorf("failed to read the secret from its pipe: %w", err)
	}
	if len(b) > maxPipeSecret {
		return Secret{}, fmt.Errorf("the secret in the pipe is longer than %d bytes", maxPipeSecret)
	}
	if s.Vault != "" {
		cs, err := s.VaultClients(s.Vault)
		if err != nil {
			return Secret{}, err
		}
		return Secret{password: bytes.Clone(bytes.TrimRight(b, "\r\n")), vault: s.Vault, clients: cs, warn: s.Out}, nil
	}
	code, err := crypt.ParseRecoveryCode(string(b))
	return Secret{code: code}, err
}

// code reads the recovery code from its sources, in order.
func (s Sources) code() (crypt.RecoveryCode, error) {
	file := s.CodeFile
	if file == "" {
		file = credential(CodeCredential)
	}
	var text string
	switch {
	case file != "":
		b, err := s.readFile(file, "the recovery code file")
		if err != nil {
			return crypt.RecoveryCode{}, fmt.Errorf("%w: %w", ErrCodeFile, err)
		}
		text = string(b)
	case os.Getenv(CodeEnv) != "":
		text = os.Getenv(CodeEnv)
	case s.isTerminal():
		b, err := s.ask("Recovery code (64 digits; spaces and dashes are ignored): ")
		if err != nil {
			return crypt.RecoveryCode{}, fmt.Errorf("failed to read the recovery code: %w", err)
		}
		text = string(b)
	default:
		return crypt.RecoveryCode{}, ErrNoCode
	}
	return crypt.ParseRecoveryCode(text)
}

// password reads a password from file (its first line) or the terminal;
// a new one (confirm) twice on the terminal, and it must meet the floor.
func (s Sources) password(file, prompt string, confirm bool) ([]byte, error) {
	var pw []byte
	switch {
	case file != "":
		b, err := s.readFile(file, "the password file")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPasswordFile, err)
		}
		pw = bytes.Clone(bytes.TrimRight(bytes.SplitN(b, []byte("\n"), 2)[0], "\r"))
		clear(b)
	case s.isTerminal():
		b, err := s.ask(prompt)
		if err != nil {
			return nil, fmt.Errorf("failed to read the password: %w", err)
		}
		pw = b
		if confirm {
			again, err := s.ask("Once more: ")
			if err != nil {
				return nil, fmt.Errorf("failed to read the password: %w", err)
			}
			same := bytes.Equal(again, pw)
			clear(again)
			if !same {
				return nil, ErrPasswordsDiffer
			}
		}
	default:
		return nil, ErrNoPassword
	}
	if confirm && len(pw) < MinPassword {
		return nil, fmt.Errorf("%w: it has %d characters", ErrShortPassword, len(pw))
	}
	return pw, nil
}

// readFile reads a file that holds a secret, warning first if others can
// read it.
func (s Sources) readFile(path, what string) ([]byte, error) {
	WarnIfReadable(s.out(), path, what)
	return os.ReadFile(path)
}

func (s Sources) isTerminal() bool {
	return s.Terminal != nil && term.IsTerminal(int(s.Terminal.Fd()))
}

// ask prompts on Out and reads a line from the terminal with no echo.
func (s Sources) ask(prompt string) ([]byte, error) {
	fmt.Fprint(s.out(), prompt)
	b, err := term.ReadPassword(int(s.Terminal.Fd()))
	fmt.Fprintln(s.out())
	return b, err
}

func (s Sources) out() io.Writer {
	if s.Out == nil {
		return io.Discard
	}
	return s.Out
}

// credential returns the path of a systemd credential, or "" when there
// is none of that name.
func credential(name string) string {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// WarnIfReadable writes a warning to w when the file at path, which holds
// a secret (what it is: "the password file"), can be read by its group or
// by others, and says how to fix it.
func WarnIfReadable(w io.Writer, path, what string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o044 == 0 {
		return
	}
	fmt.Fprintf(w, "sealfs: warning: %s %s can be read by other users (mode %04o); whoever reads it can open your backups. Make it private with: chmod 600 %s\n",
		what, path, fi.Mode().Perm(), path)
}
