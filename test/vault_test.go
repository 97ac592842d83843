package test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The two ways to serve the vault: its own command, and sealfs's
// hand-over to it.
func directServe() []string   { return []string{vaultBin, "serve"} }
func handOverServe() []string { return []string{sealfsBin, "vault", "serve"} }

// serveWays names the two ways, for subtests.
func serveWays() []struct {
	name string
	argv []string
} {
	return []struct {
		name string
		argv []string
	}{{"sealfs-vault serve", directServe()}, {"sealfs vault serve", handOverServe()}}
}

// startVaultServer runs the real vault (serve: the command line up to its
// flags) on a free loopback port with its embedded SoftHSM2 token, and
// waits for /healthz. The process serving is sealfs-vault itself, however
// it was started (the hand-over replaces sealfs, so signals reach the
// server); at the end of the test SIGINT stops it cleanly.
func startVaultServer(t *testing.T, serve []string) string {
	t.Helper()
	return startVaultServerWith(t, serve, "", "")
}

// startVaultServerWith is startVaultServer with --tls-cert and --tls-key
// when certFile is given: then the URL is https://.
func startVaultServerWith(t *testing.T, serve []string, certFile, keyFile string) string {
	t.Helper()
	url, _ := startVaultIn(t, serve, certFile, keyFile, filepath.Join(t.TempDir(), "vault"))
	return url
}

// startVaultIn is startVaultServerWith with the vault's data directory
// (database, audit log, token and its PIN) in dataDir. stop stops it
// before the end of the test (once; the end of the test stops it
// otherwise).
func startVaultIn(t *testing.T, serve []string, certFile, keyFile, dataDir string) (url string, stop func()) {
	t.Helper()
	url, wait, stop := launchVaultServer(t, serve, certFile, keyFile, dataDir)
	wait()
	return url, stop
}

// launchVaultServer starts the vault as startVaultIn does, with the flags
// extra after the others (a later flag wins), and returns its URL, the
// function that waits until it is up, and the one that stops it.
func launchVaultServer(t *testing.T, serve []string, certFile, keyFile, dataDir string, extra ...string) (url string, wait, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append(append([]string{}, serve[1:]...), "--listen", addr, "--data-dir", dataDir)
	var get func(string) (*http.Response, error)
	url, get = "http://"+addr, http.Get
	if certFile != "" {
		args = append(args, "--tls-cert", certFile, "--tls-key", keyFile)
		url = "https://" + addr
		// Only to see that it is up; the tests check the trust.
		insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		get = insecure.Get
	}
	cmd := exec.Command(serve[0], append(args, extra...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop = func() { once.Do(func() { stopVaultServer(t, cmd, exited, &log) }) }
	t.Cleanup(stop)
	return url, func() {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; {
			if r, err := get(url + "/healthz"); err == nil && r.StatusCode == 200 {
				r.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the vault did not come up:\n%s", log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); err != nil || exe != vaultBin {
			t.Fatalf("%v serves as %q (%v), want %s in the same process", serve, exe, err, vaultBin)
		}
	}, stop
}

// stopVaultServer sends SIGINT and expects a clean exit.
func stopVaultServer(t *testing.T, cmd *exec.Cmd, exited <-chan error, log *bytes.Buffer) {
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the vault did not stop cleanly on SIGINT: %v\n%s", err, log.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Errorf("the vault did not stop within 30 s of SIGINT:\n%s", log.String())
	}
}

func writeFileT(t *testing.T, dir, name, content string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVaultRecovery: enrol at init, recover on a "new machine" with only
// the password, mount and read; wrong passwords say how many attempts are
// left; the password changes without touching data; after 10 wrong ones
// the key is gone and the recovery code is the only way back. Against the
// vault served both ways: by sealfs-vault, and through sealfs's hand-over.
func TestVaultRecovery(t *testing.T) {
	needRoot(t)
	for _, way := range serveWays() {
		t.Run(way.name, func(t *testing.T) { testVaultRecovery(t, startVaultServer(t, way.argv)) })
	}
}

func testVaultRecovery(t *testing.T, url string) {
	dir := t.TempDir()
	pw := writeFileT(t, dir, "pw", "a long and happy passphrase\n")
	bad := writeFileT(t, dir, "bad", "not the passphrase at all\n")
	short := writeFileT(t, dir, "short", "short\n")
	c := cliRepo{remote: filepath.Join(dir, "remote"), cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", short, c.remote), 2, "at least")
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", pw, c.remote), 0, "")
	mnt := mountpoint(t)
	expect(t, c.mount(t, mnt), 0, "")
	os.WriteFile(filepath.Join(mnt, "f"), []byte("kept by the vault"), 0o644)
	c.umount(t, mnt)

	vault := func(pwFile string, args ...string) result {
		return sealfs(t, nil, append([]string{"--cache-dir", t.TempDir(), "--vault", url, "--password-file", pwFile}, args...)...)
	}
	// A new machine: fresh cache, the password, no code.
	r := sealfs(t, nil, "mount", "--cache-dir", t.TempDir(), "--vault", url, "--password-file", pw, "--read-only", c.remote, mnt)
	expect(t, r, 0, "")
	if got, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(got) != "kept by the vault" {
		t.Fatalf("read through a vault-unlocked mount: %q %v", got, err)
	}
	sealfs(t, nil, "umount", mnt)
	for i := 1; i <= 9; i++ {
		expect(t, vault(bad, "snapshots", c.remote), 11, fmt.Sprintf("%d attempts left", 10-i))
	}
	expect(t, vault(pw, "snapshots", c.remote), 0, "") // the 10th try is right: it works and resets

	// Change the password: the old one stops working, the data stays, and
	// a copy of the repository made before (the provider's, a backup) no
	// longer opens with the old password either: the vault retired it.
	copied := filepath.Join(dir, "remote-copy")
	if out, err := exec.Command("cp", "-a", c.remote, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	expect(t, vault(pw, "snapshots", copied), 0, "")
	pw2 := writeFileT(t, dir, "pw2", "an even longer and happier passphrase\n")
	expect(t, sealfs(t, nil, "key", "passwd", "--cache-dir", t.TempDir(), "--vault", url, "--password-file", pw, "--new-password-file", pw2, c.remote), 0, "")
	expect(t, vault(pw, "snapshots", c.remote), 11, "")
	expect(t, vault(pw, "snapshots", copied), 1, "no vault enrolment")
	r = vault(pw2, "snapshots", c.remote)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "1 ") {
		t.Fatalf("snapshots after passwd: %s", r.stdout)
	}

	// Ten wrong guesses in a row destroy the key.
	var last result
	for range 10 {
		last = vault(bad, "snapshots", c.remote)
	}
	expect(t, last, 12, "recovery code is now the only way back")
	expect(t, vault(pw2, "snapshots", c.remote), 12, "destroyed")
	// The recovery code still opens it, and a new password can be enrolled.
	expect(t, c.run(t, "snapshots", c.remote), 0, "")
	expect(t, sealfs(t, nil, "key", "add-vault", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", pw, c.remote), 0, "")
	expect(t, vault(pw, "snapshots", c.remote), 0, "")
}

// TestVaultRefusesPlainHTTPOffLoopback: both ways, plain HTTP on a
// non-loopback address is a usage error (exit 2) unless --insecure-http.
func TestVaultRefusesPlainHTTPOffLoopback(t *testing.T) {
	for _, way := range serveWays() {
		cmd := exec.Command(way.argv[0], append(way.argv[1:], "--listen", "0.0.0.0:0", "--data-dir", t.TempDir())...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		expect(t, run(t, cmd), 2, "sealfs-vault: refusing plain HTTP")
	}
}

// TestVaultHandOver: sealfs vault serve runs sealfs-vault from next to
// sealfs, else from PATH; with neither it says what is missing and how to
// install it; its --help is sealfs-vault serve's.
func TestVaultHandOver(t *testing.T) {
	alone := filepath.Join(t.TempDir(), "sealfs")
	b, err := os.ReadFile(sealfsBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	serve := func(path string, args ...string) result {
		cmd := exec.Command(alone, append([]string{"vault", "serve"}, args...)...)
		cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir()}
		return run(t, cmd)
	}
	r := serve(t.TempDir(), "--listen", "0.0.0.0:0")
	want := "sealfs: the vault server is the command sealfs-vault, which is not installed: it is neither in " + filepath.Dir(alone) +
		" (next to sealfs) nor on PATH\nsealfs: install it next to sealfs: make install installs both commands (sealfs-vault is built with cgo: go build ./cmd/sealfs-vault)\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("without sealfs-vault: exit %d (want 1), stderr:\n%s\nwant:\n%s", r.code, r.stderr, want)
	}
	// On PATH only: found there, and it is sealfs-vault that refuses.
	expect(t, serve(filepath.Dir(vaultBin), "--listen", "0.0.0.0:0"), 2, "sealfs-vault: refusing plain HTTP")
	r = serve(filepath.Dir(vaultBin), "--help")
	expect(t, r, 0, "")
	for _, f := range []string{"--listen", "--data-dir", "--tls-cert", "--tls-key", "--insecure-http", "--hsm-module", "--hsm-token", "--hsm-pin-file"} {
		if !strings.Contains(r.stdout, f) {
			t.Errorf("sealfs vault serve --help does not show sealfs-vault serve's %s:\n%s", f, r.stdout)
		}
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir, and returns their files and the key's pin (sha256:HEX of the
// SubjectPublicKeyInfo).
func selfSigned(t *testing.T, dir string) (certFile, keyFile, pin string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sealfs test vault"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFileT(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFileT(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	c, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return certFile, keyFile, "sha256:" + hex.EncodeToString(sum[:])
}

// TestVaultTLS: sealfs talks to a real TLS vault (self-signed, on
// 127.0.0.1) only when told to trust its certificate: unpinned, it is
// refused with advice naming --vault-pin and --vault-ca-file; pinned or
// with the CA file it works. Plain http:// to a host that is not
// loopback is refused before any connection, as a usage error.
func TestVaultTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pin := selfSigned(t, dir)
	url := startVaultServerWith(t, directServe(), certFile, keyFile)
	pw := writeFileT(t, dir, "pw", "a long and happy passphrase\n")
	c := cliRepo{remote: filepath.Join(dir, "remote"), cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, c.remote), 0, "")
	addVault := func(trust ...string) result {
		args := append([]string{"key", "add-vault", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", pw}, trust...)
		return sealfs(t, nil, append(args, c.remote)...)
	}
	r := addVault()
	expect(t, r, 1, "not trusted")
	for _, opt := range []string{"--vault-pin", "--vault-ca-file"} {
		if !strings.Contains(r.stderr, opt) {
			t.Errorf("the refusal does not name %s:\n%s", opt, r.stderr)
		}
	}
	expect(t, addVault("--vault-pin", "sha256:"+strings.Repeat("ab", 32)), 1, "none of the pins")
	expect(t, addVault("--vault-pin", pin), 0, "")
	open := func(trust ...string) result {
		args := append([]string{"snapshots", "--cache-dir", t.TempDir(), "--vault", url, "--password-file", pw}, trust...)
		return sealfs(t, nil, append(args, c.remote)...)
	}
	expect(t, open(), 1, "--vault-pin")
	expect(t, open("--vault-pin", pin), 0, "")
	expect(t, open("--vault-ca-file", certFile), 0, "")
	r = sealfs(t, nil, "snapshots", "--cache-dir", t.TempDir(), "--vault", "http://vault.example.com:8443", "--password-file", pw, c.remote)
	expect(t, r, 2, "refusing plain http://")
}

// TestVaultKeyRemoveRetires: removing a vault slot with its vault named
// (--vault, the slot's password given) retires its enrolment at the
// vault, so a copy of the slot no longer opens with the password;
// --keep-at-vault only removes the slot. Unlocked with the recovery code
// and no --vault, the vault the slot names is not asked at all (a storage
// provider could plant a slot naming a vault of its own, which would get
// the password's tag): the slot stays, and the error says what to run.
func TestVaultKeyRemoveRetires(t *testing.T) {
	dir := t.TempDir()
	vaultDir := filepath.Join(dir, "vault")
	url, _ := startVaultIn(t, directServe(), "", "", vaultDir)
	audited := func() int {
		b, err := os.ReadFile(filepath.Join(vaultDir, "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Count(b, []byte("\n"))
	}
	pw := writeFileT(t, dir, "pw", "a long and happy passphrase\n")
	c := cliRepo{remote: filepath.Join(dir, "remote"), cache: filepath.Join(dir, "cache"), codeFile: filepath.Join(dir, "code")}
	expect(t, sealfs(t, nil, "init", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", pw, c.remote), 0, "")
	copied := filepath.Join(dir, "remote-copy")
	if out, err := exec.Command("cp", "-a", c.remote, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	vault := func(remote string) result {
		return sealfs(t, nil, "snapshots", "--cache-dir", t.TempDir(), "--vault", url, "--password-file", pw, remote)
	}
	expect(t, vault(copied), 0, "")
	list := c.run(t, "key", "list", c.remote)
	var slot string
	for _, l := range strings.Split(list.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "vault" {
			slot = f[0]
		}
	}
	if slot == "" {
		t.Fatalf("no vault slot listed:\n%s", list.stdout)
	}
	// Unlocked with the code, no --vault: the slot's URL is not contacted.
	before := audited()
	expect(t, c.run(t, "key", "remove", "--password-file", pw, slot, c.remote), 2, "--vault "+url)
	if n := audited(); n != before {
		t.Fatalf("key remove without --vault sent %d requests to the vault the slot names", n-before)
	}
	if list := c.run(t, "key", "list", c.remote); !strings.Contains(list.stdout, slot) {
		t.Fatalf("the refused key remove removed the slot:\n%s", list.stdout)
	}
	expect(t, vault(copied), 0, "")

	bad := writeFileT(t, dir, "bad", "not the passphrase at all\n")
	expect(t, c.run(t, "key", "remove", "--vault", url, "--password-file", bad, slot, c.remote), 11, "attempts left")
	expect(t, c.run(t, "key", "remove", "--vault", url, "--password-file", pw, slot, c.remote), 0, "")
	expect(t, vault(copied), 1, "no vault enrolment")

	// --keep-at-vault: the slot goes, the enrolment stays.
	expect(t, sealfs(t, nil, "key", "add-vault", "--cache-dir", c.cache, "--code-file", c.codeFile, "--vault", url, "--password-file", pw, c.remote), 0, "")
	copied2 := filepath.Join(dir, "remote-copy2")
	if out, err := exec.Command("cp", "-a", c.remote, copied2).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	list = c.run(t, "key", "list", c.remote)
	for _, l := range strings.Split(list.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "vault" {
			slot = f[0]
		}
	}
	expect(t, c.run(t, "key", "remove", "--keep-at-vault", slot, c.remote), 0, "")
	expect(t, vault(copied2), 0, "")
}
