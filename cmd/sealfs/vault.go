package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/internal/unlock"
	"github.com/sealfs/sealfs/keyvault"
)

func newVaultCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "Run the Backup Key Vault (password recovery through an HSM)",
	}
	var listen, dataDir, tlsCert, tlsKey, module, token, pinFile string
	var insecure bool
	serve := &cobra.Command{
		Use:   "serve [--listen ADDR] [--data-dir DIR]",
		Short: "Serve the vault; with no HSM flags, on an embedded SoftHSM2 token in DIR",
		Long: `Serve the Backup Key Vault over HTTP(S). Its secrets live in a PKCS#11 token: by
default an embedded SoftHSM2 token in the data directory (apt-get install softhsm2);
in production any PKCS#11 HSM (--hsm-module, --hsm-token, --hsm-pin-file). Plain
HTTP is refused on a non-loopback address unless --insecure-http is given; use
--tls-cert and --tls-key. GET /healthz answers 200 once it is ready.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			if dataDir == "" {
				base, err := os.UserHomeDir()
				if err != nil {
					return err
				}
				dataDir = filepath.Join(base, ".local", "share", "sealfs", "vault")
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return err
			}
			host, _, err := net.SplitHostPort(listen)
			if err != nil {
				return usageError{fmt.Errorf("--listen %q: %w", listen, err)}
			}
			ip := net.ParseIP(host)
			loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
			if tlsCert == "" && !loopback && !insecure {
				return usageError{fmt.Errorf("refusing plain HTTP on %s, which is not loopback: give --tls-cert and --tls-key (or --insecure-http behind a TLS proxy)", listen)}
			}
			var hsm keyvault.HSM
			if module != "" {
				pin := []byte(os.Getenv("SEALFS_HSM_PIN"))
				if pinFile != "" {
					unlock.WarnIfReadable(os.Stderr, pinFile, "the HSM PIN file")
					if pin, err = os.ReadFile(pinFile); err != nil {
						return usageError{fmt.Errorf("--hsm-pin-file: %w", err)}
					}
				}
				if len(pin) == 0 {
					return usageError{errors.New("give the token's user PIN with --hsm-pin-file FILE or SEALFS_HSM_PIN")}
				}
				hsm, err = keyvault.OpenPKCS11(module, token, string(bytes.TrimSpace(pin)))
				if err != nil {
					return err
				}
			} else if hsm, err = keyvault.OpenEmbedded(dataDir); err != nil {
				return err
			}
			defer hsm.Close()
			v, err := keyvault.NewVault(hsm, filepath.Join(dataDir, "vault.db"))
			if err != nil {
				return err
			}
			defer v.Close()
			srv, err := keyvault.NewServer(v, filepath.Join(dataDir, "audit.log"), log)
			if err != nil {
				return err
			}
			defer srv.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
			log.Info("vault serving", "listen", ln.Addr().String(), "data_dir", dataDir, "tls", tlsCert != "")
			done := make(chan error, 1)
			go func() {
				if tlsCert != "" {
					done <- hs.ServeTLS(ln, tlsCert, tlsKey)
				} else {
					done <- hs.Serve(ln)
				}
			}()
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
			select {
			case <-sig:
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return hs.Shutdown(ctx)
			case err := <-done:
				return err
			}
		},
	}
	f := serve.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8443", "address to listen on")
	f.StringVar(&dataDir, "data-dir", "", "database, audit log and embedded token (default ~/.local/share/sealfs/vault)")
	f.StringVar(&tlsCert, "tls-cert", "", "TLS certificate file")
	f.StringVar(&tlsKey, "tls-key", "", "TLS key file")
	f.BoolVar(&insecure, "insecure-http", false, "allow plain HTTP on a non-loopback address")
	f.StringVar(&module, "hsm-module", "", "PKCS#11 module of a production HSM (default: embedded SoftHSM2)")
	f.StringVar(&token, "hsm-token", "sealfs-vault", "label of the PKCS#11 token")
	f.StringVar(&pinFile, "hsm-pin-file", "", "file holding the token's user PIN (or the SEALFS_HSM_PIN environment variable)")
	cmd.AddCommand(serve)
	return cmd
}
