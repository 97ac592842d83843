package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// vaultServer is the command that serves the vault. It is a command of its
// own because the server needs cgo (PKCS#11), and sealfs is one static
// binary without it.
const vaultServer = "sealfs-vault"

// errNoVaultServer says that sealfs-vault is neither next to sealfs nor on
// PATH; cmd's table says how to install it.
var errNoVaultServer = errors.New("the vault server is the command " + vaultServer + ", which is not installed")

func newVaultCmd(*globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "Run the Backup Key Vault (password recovery through an HSM)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "serve [ARGS]",
		Short: "Serve the vault: hands over to sealfs-vault serve, with the same arguments",
		Long: `Serve the Backup Key Vault. The server is its own command, sealfs-vault (it
needs cgo for PKCS#11, and sealfs is one static binary without it): this runs
"sealfs-vault serve ARGS" in place of sealfs (same process, so signals reach
the server), found next to the sealfs executable first, then on PATH. Its
flags: the help of sealfs-vault serve.`,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			path, err := findVaultServer()
			if err != nil {
				return err
			}
			argv := append([]string{path, "serve"}, args...)
			return fmt.Errorf("failed to run %s: %w", path, syscall.Exec(path, argv, os.Environ()))
		},
	})
	return cmd
}

// findVaultServer finds sealfs-vault next to the running sealfs first (as
// make build and make install put them), then on PATH.
func findVaultServer() (string, error) {
	where := "not on PATH"
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), vaultServer)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
		where = "neither in " + filepath.Dir(self) + " (next to sealfs) nor on PATH"
	}
	if p, err := exec.LookPath(vaultServer); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: it is %s", errNoVaultServer, where)
}
