package keyvault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tlsVault is a real TLS server on 127.0.0.1 with a self-signed
// certificate, answering a release with an envelope.
func tlsVault(t *testing.T) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(&ReleaseResponse{Envelope: []byte("sealed")})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func release(c *Client) error {
	var rel ReleaseResponse
	return c.call(context.Background(), PathRecoverRelease, &ReleaseRequest{User: "u0123456789abcdef", Tag: make([]byte, 32)}, &rel)
}

// TestClientVerifiesTLS: a vault whose certificate no trusted CA signed
// is refused, with an error that says to pin it or give its CA; pinned
// (key or whole certificate) or with its CA file, it is reached; a wrong
// pin is refused.
func TestClientVerifiesTLS(t *testing.T) {
	srv := tlsVault(t)
	cert := srv.Certificate()
	whole := sha256.Sum256(cert.Raw)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		trust Trust
		ok    bool
	}{
		"no trust":       {Trust{}, false},
		"key pin":        {Trust{Pins: []string{PinOf(cert)}}, true},
		"cert pin":       {Trust{Pins: []string{"sha256:" + hex.EncodeToString(whole[:])}}, true},
		"one pin of two": {Trust{Pins: []string{"sha256:" + strings.Repeat("00", 32), PinOf(cert)}}, true},
		"wrong pin":      {Trust{Pins: []string{"sha256:" + strings.Repeat("ab", 32)}}, false},
		"CA file":        {Trust{CAFile: caFile}, true},
		"CA file, pin":   {Trust{CAFile: caFile, Pins: []string{PinOf(cert)}}, true},
		"CA, wrong pin":  {Trust{CAFile: caFile, Pins: []string{"sha256:" + strings.Repeat("ab", 32)}}, false},
	} {
		cl, err := NewClient(srv.URL, c.trust)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = release(cl)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", name, err)
		case !c.ok && !errors.Is(err, ErrUntrustedCertificate):
			t.Errorf("%s: %v, want ErrUntrustedCertificate", name, err)
		case !c.ok && !strings.Contains(err.Error(), "pin"):
			t.Errorf("%s: the error does not say to pin the certificate: %v", name, err)
		}
	}
}

// TestClientRefusesPlainHTTPOffLoopback: http:// to a host that is not
// loopback is refused by NewClient, before any connection (no request is
// ever made here to a non-loopback address); loopback is allowed;
// anything but http(s) is malformed.
func TestClientRefusesPlainHTTPOffLoopback(t *testing.T) {
	for _, u := range []string{"http://vault.example.com", "http://vault.example.com:8443/v", "http://10.1.2.3:80", "http://[2001:db8::1]:80", "HTTP://192.0.2.1"} {
		if _, err := NewClient(u, Trust{}); !errors.Is(err, ErrPlainHTTP) {
			t.Errorf("%s: %v, want ErrPlainHTTP", u, err)
		}
	}
	for _, u := range []string{"ftp://127.0.0.1", "127.0.0.1:8443", "https://", "https://u:p@vault.example.com", "https://vault.example.com/?x=1"} {
		if _, err := NewClient(u, Trust{}); !errors.Is(err, ErrBadURL) {
			t.Errorf("%s: %v, want ErrBadURL", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8443", "http://localhost:1", "http://[::1]:8443", "https://vault.example.com"} {
		if _, err := NewClient(u, Trust{}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	if _, err := NewClient("https://vault.example.com", Trust{Pins: []string{"md5:00"}}); err == nil {
		t.Error("a malformed pin was accepted")
	}
}

// TestClientFollowsNoRedirect: a vault's answer that redirects (307 and
// 308 keep the method and the body) is not followed, to another host or
// a plain http:// one: the release tag goes to the vault named and
// nowhere else, and the redirect is an error.
func TestClientFollowsNoRedirect(t *testing.T) {
	var elsewhere []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere = append(elsewhere, r.Method+" "+r.URL.Path)
		json.NewEncoder(w).Encode(&ReleaseResponse{Envelope: []byte("sealed")})
	}))
	defer other.Close()
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+r.URL.Path, code)
		}))
		c, err := NewClient(vault.URL, Trust{})
		if err != nil {
			t.Fatal(err)
		}
		err = release(c)
		vault.Close()
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Errorf("%d: a redirecting vault gave %v, want an error that says it redirects", code, err)
		}
	}
	if len(elsewhere) > 0 {
		t.Fatalf("the client followed the vault's redirects to another host: %v", elsewhere)
	}
}

// TestClientLocalhostIsLoopback: http://localhost is allowed as loopback
// without resolving the name, so it must also be reached without
// resolving it: where the name resolves elsewhere (no localhost in
// /etc/hosts, and a DNS search domain or a man in the middle answers it)
// the password's tag would go in plain HTTP to that host. The test runs
// itself again in a mount namespace of its own whose /etc/hosts says
// localhost is 127.0.0.2 (standing for any other host), with the vault
// on 127.0.0.1 and the impostor on 127.0.0.2, one port: only the vault
// may be asked.
func TestClientLocalhostIsLoopback(t *testing.T) {
	if os.Getenv("SEALFS_TEST_HOSTS_NS") == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root: a mount namespace with its own /etc/hosts")
		}
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Skip("needs unshare(1)")
		}
		hosts := filepath.Join(t.TempDir(), "hosts")
		if err := os.WriteFile(hosts, []byte("127.0.0.2 localhost\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
			`mount --bind "$0" /etc/hosts && exec "$1" -test.run '^TestClientLocalhostIsLoopback$' -test.v`, hosts, os.Args[0])
		cmd.Env = append(os.Environ(), "SEALFS_TEST_HOSTS_NS=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestClientLocalhostIsLoopback") {
			t.Fatalf("in a mount namespace with localhost at 127.0.0.2: %v\n%s", err, out)
		}
		return
	}
	// In the namespace.
	if addrs, err := net.LookupHost("localhost"); err != nil || len(addrs) == 0 || addrs[0] != "127.0.0.2" {
		t.Fatalf("localhost resolves to %v (%v) in the namespace, want 127.0.0.2", addrs, err)
	}
	var vault, impostor []string
	serve := func(ln net.Listener, got *[]string) {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			*got = append(*got, r.URL.Path)
			json.NewEncoder(w).Encode(&ReleaseResponse{Envelope: []byte("sealed")})
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	var port string
	for range 20 {
		ln1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(ln1.Addr().String())
		ln2, err := net.Listen("tcp", "127.0.0.2:"+port)
		if err != nil {
			ln1.Close()
			continue
		}
		serve(ln1, &vault)
		serve(ln2, &impostor)
		break
	}
	c, err := NewClient("http://localhost:"+port, Trust{})
	if err != nil {
		t.Fatal(err)
	}
	if err := release(c); err != nil {
		t.Fatal(err)
	}
	if len(impostor) > 0 || len(vault) != 1 {
		t.Fatalf("http://localhost reached the host the name resolves to (%v), not this machine's loopback (%v)", impostor, vault)
	}
}

// TestVaultErrorsArePrintable: what a vault says in an error answer (its
// error text, its status line) ends up on the user's terminal: a vault of
// a k-of-n list that lies must not redraw it with control characters.
func TestVaultErrorsArePrintable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(&ErrorResponse{Error: "bad\x1b[2K\rsealfs: the vault at https://other is down\u202e", Code: "teapot"})
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, Trust{})
	if err != nil {
		t.Fatal(err)
	}
	err = release(c)
	if err == nil {
		t.Fatal("an error answer gave no error")
	}
	for _, r := range err.Error() {
		if !strconv.IsPrint(r) {
			t.Fatalf("the error shows the vault's control character %U: %q", r, err.Error())
		}
	}
}
