package keyvault

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Trust says which vault certificate a client accepts. The zero Trust
// accepts what the system's CAs accept for the URL's host name.
type Trust struct {
	// CAFile is a PEM file of the CAs that sign the vault's certificate,
	// trusted instead of the system's.
	CAFile string
	// Pins are pins of the vault's certificate (see ParsePin): with pins,
	// the certificate must match one, and without a CAFile it need not
	// be signed by any CA (a self-signed vault).
	Pins []string
}

// Errors of the connection to a vault.
var (
	// ErrPlainHTTP: a vault URL with http:// names a host that is not
	// loopback, where a man in the middle could answer for the vault.
	ErrPlainHTTP = errors.New("refusing plain http:// to a vault that is not on this machine (loopback): a man in the middle could answer for it and test passwords offline")
	// ErrUntrustedCertificate: the vault's TLS certificate is signed by
	// no CA this client trusts, names another host, or matches no pin.
	ErrUntrustedCertificate = errors.New("the vault's TLS certificate is not trusted")
	// ErrBadURL: the vault URL is not an http(s) URL with a host.
	ErrBadURL = errors.New("malformed vault URL")
)

// PinOf returns the pin of a certificate's public key:
// "sha256:" || hex(SHA-256(SubjectPublicKeyInfo)), what sealfs-vault
// serve prints at start. A pin of the certificate itself (SHA-256 of its
// DER) is accepted too.
func PinOf(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(h[:])
}

// ParsePin reads a pin: "sha256:" then the SHA-256 of the certificate's
// SubjectPublicKeyInfo or of the whole certificate (DER), in hex or
// base64.
func ParsePin(s string) ([]byte, error) {
	v, ok := strings.CutPrefix(strings.TrimSpace(s), "sha256:")
	if !ok {
		return nil, fmt.Errorf("pin %q does not start with \"sha256:\"", s)
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		b, err = base64.StdEncoding.DecodeString(v)
	}
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("pin %q is not sha256: followed by 32 bytes in hex or base64", s)
	}
	return b, nil
}

// isLoopback reports whether host is this machine: localhost or a
// loopback address. No name is resolved.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewClient returns a client for the vault at rawURL, trusting its
// certificate as trust says. It refuses (ErrPlainHTTP) an http:// URL
// whose host is not loopback, before any connection is made. The client
// follows no redirect: it talks to rawURL only.
func NewClient(rawURL string, trust Trust) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w %q: want https://HOST[:PORT][/PATH]", ErrBadURL, rawURL)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%w (vault %s)", ErrPlainHTTP, rawURL)
		}
	default:
		return nil, fmt.Errorf("%w %q: the scheme must be https (or http to loopback)", ErrBadURL, rawURL)
	}
	cfg, err := trust.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.Proxy = nil // the vault is reached directly: a proxy would be a man in the middle for http://
	tr.DialContext = dialLocalhostAsLoopback(tr.DialContext)
	// No redirect is followed: 307 and 308 would send the request (a
	// release tag) again to whatever host they name, over any scheme.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{URL: rawURL, HTTP: &http.Client{Timeout: 30 * time.Second, Transport: tr, CheckRedirect: noRedirect}}, nil
}

// dialLocalhostAsLoopback dials "localhost" at 127.0.0.1, else ::1,
// without resolving the name, as isLoopback judged it: where it resolves
// elsewhere (no localhost in /etc/hosts, then a DNS search domain or a
// man in the middle answering), plain http:// would go to that host.
func dialLocalhostAsLoopback(dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || !strings.EqualFold(host, "localhost") {
			return dial(ctx, network, addr)
		}
		c, err := dial(ctx, network, net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			if c6, err6 := dial(ctx, network, net.JoinHostPort("::1", port)); err6 == nil {
				return c6, nil
			}
		}
		return c, err
	}
}

// tlsConfig is TLS 1.2 or later with verification on: against CAFile's
// CAs (else the system's), and the pins.
func (t Trust) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read the vault's CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the vault's CA file %s holds no PEM certificate", t.CAFile)
		}
	}
	var pins [][]byte
	for _, p := range t.Pins {
		b, err := ParsePin(p)
		if err != nil {
			return nil, err
		}
		pins = append(pins, b)
	}
	if len(pins) == 0 {
		return cfg, nil
	}
	// A pin alone trusts the pinned certificate, signed by any CA or none;
	// with a CA file too, the chain is verified as well.
	cfg.InsecureSkipVerify = t.CAFile == ""
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: it presented none", ErrUntrustedCertificate)
		}
		leaf := cs.PeerCertificates[0]
		if cfg.InsecureSkipVerify {
			// Still a certificate in date for the key it pins.
			if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
				return fmt.Errorf("%w: the pinned certificate is valid from %s to %s", ErrUntrustedCertificate, leaf.NotBefore, leaf.NotAfter)
			}
		}
		spki, whole := sha256.Sum256(leaf.RawSubjectPublicKeyInfo), sha256.Sum256(leaf.Raw)
		for _, p := range pins {
			if subtle.ConstantTimeCompare(p, spki[:]) == 1 || subtle.ConstantTimeCompare(p, whole[:]) == 1 {
				return nil
			}
		}
		return fmt.Errorf("%w: it matches none of the pins given", ErrUntrustedCertificate)
	}
	return cfg, nil
}

// connError says what failed in reaching the vault; a certificate that
// is not trusted becomes ErrUntrustedCertificate, with what to do.
func (c *Client) connError(err error) error {
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var inv x509.CertificateInvalidError
	switch {
	case errors.Is(err, ErrUntrustedCertificate):
		return fmt.Errorf("failed to reach the vault at %s: %w", c.URL, err)
	case errors.As(err, &verr), errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &inv):
		return fmt.Errorf("failed to reach the vault at %s: %w (%v): pin its certificate (the pin sealfs-vault serve prints at start) or give the CA file that signed it", c.URL, ErrUntrustedCertificate, err)
	}
	return fmt.Errorf("failed to reach the vault at %s: %w", c.URL, err)
}
