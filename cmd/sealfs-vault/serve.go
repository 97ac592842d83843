package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealfs/sealfs/internal/vaultserver"
	"github.com/sealfs/sealfs/keyvault"
)

// serveOptions are the flags of sealfs-vault serve.
type serveOptions struct {
	listen, dataDir, tlsCert, tlsKey string
	db                               string
	insecure                         bool
	module, token, pinFile           string
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	serve := &cobra.Command{
		Use:   "serve [--listen ADDR] [--data-dir DIR]",
		Short: "Serve the vault; with no HSM flags, on an embedded SoftHSM2 token in DIR",
		Long: `Serve the Backup Key Vault over HTTP(S) until SIGTERM or SIGINT. Its secrets live
in a PKCS#11 token: by default an embedded SoftHSM2 token in the data directory
(apt-get install softhsm2); in production any PKCS#11 HSM (--hsm-module,
--hsm-token, --hsm-pin-file). Plain HTTP is refused on a non-loopback address
unless --insecure-http is given; use --tls-cert and --tls-key. GET /healthz
answers 200 once it is ready.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cobra.NoArgs(cmd, args); err != nil {
				return usageError{fmt.Errorf("%v (usage: %s)", err, cmd.UseLine())}
			}
			return o.run(cmd.Context())
		},
	}
	f := serve.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8443", "address to listen on")
	f.StringVar(&o.dataDir, "data-dir", "", "database, audit log and embedded token (default ~/.local/share/sealfs/vault)")
	f.StringVar(&o.db, "db", "", "keep the records in PostgreSQL at this postgres:// URL, shared by several serve processes on one HSM token (default: bbolt, DIR/vault.db)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS key file")
	f.BoolVar(&o.insecure, "insecure-http", false, "allow plain HTTP on a non-loopback address")
	f.StringVar(&o.module, "hsm-module", "", "PKCS#11 module of a production HSM (default: embedded SoftHSM2)")
	f.StringVar(&o.token, "hsm-token", vaultserver.EmbeddedTokenLabel, "label of the PKCS#11 token")
	f.StringVar(&o.pinFile, "hsm-pin-file", "", "file holding the token's user PIN (or the SEALFS_HSM_PIN environment variable)")
	return serve
}

// run checks the options, opens the HSM, the database and the audit log,
// and serves until ctx ends.
func (o *serveOptions) run(ctx context.Context) error {
	if err := o.check(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	hsm, err := o.openHSM()
	if err != nil {
		return err
	}
	defer hsm.Close()
	v, err := o.openVault(hsm)
	if err != nil {
		return err
	}
	defer v.Close()
	srv, err := vaultserver.NewServer(v, filepath.Join(o.dataDir, "audit.log"), log)
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx, stop := context.WithCancel(ctx)
	expired := make(chan struct{})
	go expirePending(ctx, v, log, expired)
	defer func() { stop(); <-expired }() // before the database closes
	return o.serve(ctx, srv.Handler(), log)
}

// openVault opens the records: in PostgreSQL with --db, else in bbolt
// in the data directory.
func (o *serveOptions) openVault(hsm vaultserver.HSM) (*vaultserver.Vault, error) {
	if o.db == "" {
		return vaultserver.NewVault(hsm, filepath.Join(o.dataDir, "vault.db"))
	}
	s, err := vaultserver.OpenPostgresStore(o.db)
	if err != nil {
		return nil, err
	}
	v, err := vaultserver.OpenVault(hsm, s)
	if err != nil {
		s.Close()
	}
	return v, err
}

// expirePending forgets the enrolments left unfinished for too long
// (vaultserver.PendingTTL), every minute until ctx ends; then it closes
// done.
func expirePending(ctx context.Context, v *vaultserver.Vault, log *slog.Logger, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := v.ExpirePending(); err != nil {
				log.Warn("failed to expire unfinished enrolments", "err", err, "expired", n)
			}
		}
	}
}

// check refuses plain HTTP off loopback and makes the data directory
// (by default ~/.local/share/sealfs/vault).
func (o *serveOptions) check() error {
	host, _, err := net.SplitHostPort(o.listen)
	if err != nil {
		return usageError{fmt.Errorf("--listen %q: %w", o.listen, err)}
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if o.tlsCert == "" && !loopback && !o.insecure {
		return usageError{fmt.Errorf("refusing plain HTTP on %s, which is not loopback: give --tls-cert and --tls-key (or --insecure-http behind a TLS proxy)", o.listen)}
	}
	if o.db != "" && !strings.HasPrefix(o.db, "postgres://") && !strings.HasPrefix(o.db, "postgresql://") {
		return usageError{errors.New("--db takes a PostgreSQL URL, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]")}
	}
	if o.dataDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return err
		}
		o.dataDir = filepath.Join(home, ".local", "share", "sealfs", "vault")
	}
	return os.MkdirAll(o.dataDir, 0o700)
}

// openHSM opens the production HSM given by --hsm-module, else the
// embedded SoftHSM2 token in the data directory.
func (o *serveOptions) openHSM() (vaultserver.HSM, error) {
	if o.module == "" {
		return openEmbedded(o.dataDir)
	}
	pin, err := o.readPIN()
	if err != nil {
		return nil, err
	}
	return vaultserver.OpenPKCS11(o.module, o.token, pin)
}

// openEmbedded opens the embedded SoftHSM2 token in dataDir.
//
// SoftHSM2 reads where its tokens are from one place only, the
// SOFTHSM2_CONF environment variable, when the module is initialised. The
// command sets it here, before anything in this process loads the module:
// the environment is the process's, so the command that owns the process
// changes it, and the library only checks it (a library that set it would
// redirect every other PKCS#11 user in the process behind its back). This
// process serves one vault, so it has one token directory for its whole
// life; a re-exec with the variable set would do the same with one more
// process image.
func openEmbedded(dataDir string) (vaultserver.HSM, error) {
	conf, err := vaultserver.EmbeddedConf(dataDir)
	if err != nil {
		return nil, err
	}
	if err := os.Setenv(vaultserver.SoftHSMConfEnv, conf); err != nil {
		return nil, fmt.Errorf("failed to set %s: %w", vaultserver.SoftHSMConfEnv, err)
	}
	return vaultserver.OpenEmbedded(dataDir)
}

// readPIN reads the token's user PIN from --hsm-pin-file, else from
// SEALFS_HSM_PIN.
func (o *serveOptions) readPIN() (string, error) {
	pin := []byte(os.Getenv("SEALFS_HSM_PIN"))
	if o.pinFile != "" {
		if fi, err := os.Stat(o.pinFile); err == nil && fi.Mode().Perm()&0o044 != 0 {
			fmt.Fprintf(os.Stderr, "sealfs-vault: warning: the HSM PIN file %s can be read by other users (mode %04o); whoever reads it can use the vault's HSM token. Make it private with: chmod 600 %s\n",
				o.pinFile, fi.Mode().Perm(), o.pinFile)
		}
		var err error
		if pin, err = os.ReadFile(o.pinFile); err != nil {
			return "", usageError{fmt.Errorf("--hsm-pin-file: %w", err)}
		}
	}
	if len(pin) == 0 {
		return "", usageError{errors.New("give the token's user PIN with --hsm-pin-file FILE or SEALFS_HSM_PIN")}
	}
	return string(bytes.TrimSpace(pin)), nil
}

// certPin loads the TLS certificate and key and returns the pin of the
// certificate's key (keyvault.PinOf), which clients give as --vault-pin.
func certPin(certFile, keyFile string) (string, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return "", fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("--tls-cert: %w", err)
	}
	return keyvault.PinOf(leaf), nil
}

// serve answers HTTP(S) on --listen until ctx ends, then shuts down,
// giving requests in flight up to 10 s.
func (o *serveOptions) serve(ctx context.Context, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	attrs := []any{"listen", ln.Addr().String(), "data_dir", o.dataDir, "tls", o.tlsCert != ""}
	if o.tlsCert != "" {
		pin, err := certPin(o.tlsCert, o.tlsKey)
		if err != nil {
			ln.Close()
			return err
		}
		attrs = append(attrs, "pin", pin) // what clients give as --vault-pin
	}
	log.Info("vault serving", attrs...)
	done := make(chan error, 1)
	go func() {
		if o.tlsCert != "" {
			done <- hs.ServeTLS(ln, o.tlsCert, o.tlsKey)
		} else {
			done <- hs.Serve(ln)
		}
	}()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	case err := <-done:
		return err
	}
}
