package vaultserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/miekg/pkcs11"

	"github.com/sealfs/sealfs/internal/atomicfile"
)

// SoftHSMModule is where Debian's softhsm2 package puts the module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// EmbeddedTokenLabel is the label of the embedded SoftHSM2 token.
const EmbeddedTokenLabel = "sealfs-vault"

// SoftHSMConfEnv is the environment variable that SoftHSM2 reads the path
// of its configuration from, when the module is initialised. SoftHSM2
// offers no other way to be given one (C_Initialize has no such argument;
// without the variable it reads /etc/softhsm/softhsm2.conf).
const SoftHSMConfEnv = "SOFTHSM2_CONF"

// EmbeddedConf makes dataDir/tokens and writes dataDir/softhsm2.conf, a
// SoftHSM2 configuration that keeps its tokens there, and returns the
// configuration's path: the value SoftHSMConfEnv must have when
// OpenEmbedded runs.
func EmbeddedConf(dataDir string) (string, error) {
	tokens := filepath.Join(dataDir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", fmt.Errorf("failed to make the token directory: %w", err)
	}
	conf := filepath.Join(dataDir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)
	// Replaced whole, and only when it differs: another process serving
	// the same directory (--db) may be reading it as it starts.
	if old, err := os.ReadFile(conf); err == nil && string(old) == body {
		return conf, nil
	}
	if err := atomicfile.Write(conf, []byte(body), 0o600); err != nil {
		return "", fmt.Errorf("failed to write the SoftHSM2 configuration: %w", err)
	}
	return conf, nil
}

// OpenEmbedded opens (creating it the first time) a SoftHSM2 token kept in
// dataDir/tokens, with a random PIN in dataDir/token-pin (mode 0600).
//
// SoftHSM2 finds its configuration only through SoftHSMConfEnv, so that
// variable must name EmbeddedConf(dataDir) before the module is loaded.
// This package does not set it: the environment belongs to the process,
// and a library that changed it would redirect every other PKCS#11 user in
// the process, and every child it starts, behind their backs. The command
// sets it, as the first thing it does with the token (cmd/sealfs-vault);
// OpenEmbedded refuses to run when it names anything else, for SoftHSM2
// would then make or open the token in the system's token directory.
func OpenEmbedded(dataDir string) (*PKCS11, error) {
	if _, err := os.Stat(SoftHSMModule); err != nil {
		return nil, fmt.Errorf("SoftHSM2 is not installed (%s missing): apt-get install softhsm2, or give --hsm-module", SoftHSMModule)
	}
	conf := filepath.Join(dataDir, "softhsm2.conf")
	if got := os.Getenv(SoftHSMConfEnv); got != conf {
		return nil, fmt.Errorf("%s is %q, not the embedded token's configuration %s: the command sets it (from EmbeddedConf) before it opens the token", SoftHSMConfEnv, got, conf)
	}
	pin, err := embeddedPIN(dataDir)
	if err != nil {
		return nil, err
	}
	return OpenPKCS11(SoftHSMModule, EmbeddedTokenLabel, strings.TrimSpace(string(pin)))
}

// embeddedPIN reads the embedded token's PIN, making the token the first
// time, under a lock on dataDir/token.lock: several processes that serve
// one data directory (with --db) and start together make one token.
func embeddedPIN(dataDir string) ([]byte, error) {
	lock, err := os.OpenFile(filepath.Join(dataDir, "token.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open the token's lock: %w", err)
	}
	defer lock.Close() // and unlocks
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("failed to lock the token: %w", err)
	}
	pinFile := filepath.Join(dataDir, "token-pin")
	pin, err := os.ReadFile(pinFile)
	if errors.Is(err, os.ErrNotExist) {
		return initEmbeddedToken(pinFile)
	}
	return pin, err
}

func randomPIN() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func initEmbeddedToken(pinFile string) ([]byte, error) {
	ctx := pkcs11.New(SoftHSMModule)
	if ctx == nil {
		return nil, fmt.Errorf("failed to load %s", SoftHSMModule)
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil {
		return nil, err
	}
	defer ctx.Finalize()
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return nil, err
	}
	free := -1
	for _, s := range slots {
		if ti, err := ctx.GetTokenInfo(s); err == nil && ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			free = int(s)
			break
		}
	}
	if free < 0 {
		return nil, errors.New("SoftHSM2 offers no free slot for the vault's token")
	}
	so, pin := randomPIN(), randomPIN()
	if err := ctx.InitToken(uint(free), so, EmbeddedTokenLabel); err != nil {
		return nil, fmt.Errorf("failed to initialise the vault token: %w", err)
	}
	slot, err := findToken(ctx, EmbeddedTokenLabel)
	if err != nil {
		return nil, err
	}
	sess, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, err
	}
	defer ctx.CloseSession(sess)
	if err := ctx.Login(sess, pkcs11.CKU_SO, so); err != nil {
		return nil, err
	}
	if err := ctx.InitPIN(sess, pin); err != nil {
		return nil, err
	}
	ctx.Logout(sess)
	if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []byte(pin), nil
}
