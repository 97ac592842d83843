package keyvault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// SecretSize is the size of the secret a vault keeps for a user: the
// client derives a key slot's key-encryption key from it.
const SecretSize = 32

// Client talks to a vault. It never sends the password: only a blinded
// point and, to recover, the unlock tag derived from the evaluation.
type Client struct {
	URL  string
	HTTP *http.Client
}

// NewClient returns a client for the vault at url.
func NewClient(url string) *Client {
	return &Client{URL: url, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

func envelopeAD(user string) []byte { return append([]byte("sealfs vault v1 envelope\x00"), user...) }

func sealEnvelope(key [32]byte, user string, secret []byte) ([]byte, error) {
	block, _ := aes.NewCipher(key[:])
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, secret, envelopeAD(user)), nil
}

func openEnvelope(key [32]byte, user string, env []byte) ([]byte, error) {
	block, _ := aes.NewCipher(key[:])
	aead, _ := cipher.NewGCM(block)
	if len(env) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("the vault returned a truncated envelope")
	}
	s, err := aead.Open(nil, env[:aead.NonceSize()], env[aead.NonceSize():], envelopeAD(user))
	if err != nil || len(s) != SecretSize {
		return nil, errors.New("the vault returned an envelope that does not open: it was changed")
	}
	return s, nil
}

// Enrol makes a new random secret, protects it with password at the vault
// under user (a fresh random id), and returns it.
func (c *Client) Enrol(ctx context.Context, user string, password []byte) ([]byte, error) {
	b, err := Blind(Stretch(password, user))
	if err != nil {
		return nil, err
	}
	var ev EvalResponse
	if err := c.call(ctx, "/v1/enrol/start", &EvalRequest{User: user, Blinded: b.Element}, &ev); err != nil {
		return nil, err
	}
	keys, err := b.Finish(ev.Evaluated)
	if err != nil {
		return nil, err
	}
	secret := make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	env, err := sealEnvelope(keys.EnvelopeKey, user, secret)
	if err != nil {
		return nil, err
	}
	if err := c.call(ctx, "/v1/enrol/finish", &FinishRequest{User: user, Tag: keys.Tag[:], Envelope: env}, nil); err != nil {
		return nil, err
	}
	return secret, nil
}

// Recover gets the secret back with the password. A wrong password is an
// error wrapping ErrWrongPassword (a *WrongPasswordError says how many
// attempts are left); after too many, ErrLockedOut.
func (c *Client) Recover(ctx context.Context, user string, password []byte) ([]byte, error) {
	b, err := Blind(Stretch(password, user))
	if err != nil {
		return nil, err
	}
	var ev EvalResponse
	if err := c.call(ctx, "/v1/recover/evaluate", &EvalRequest{User: user, Blinded: b.Element}, &ev); err != nil {
		return nil, err
	}
	keys, err := b.Finish(ev.Evaluated)
	if err != nil {
		return nil, err
	}
	var rel ReleaseResponse
	if err := c.call(ctx, "/v1/recover/release", &ReleaseRequest{User: user, Tag: keys.Tag[:]}, &rel); err != nil {
		return nil, err
	}
	return openEnvelope(keys.EnvelopeKey, user, rel.Envelope)
}

func (c *Client) call(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var r *http.Response
	// A rate-limited request did nothing at the vault: wait and retry.
	for wait := 500 * time.Millisecond; ; wait *= 2 {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		hr.Header.Set("Content-Type", "application/json")
		if r, err = c.HTTP.Do(hr); err != nil {
			return fmt.Errorf("failed to reach the vault at %s: %w", c.URL, err)
		}
		if r.StatusCode != http.StatusTooManyRequests || wait > 8*time.Second {
			break
		}
		r.Body.Close()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRequest))
	if err != nil {
		return err
	}
	if r.StatusCode != http.StatusOK {
		var e ErrorResponse
		json.Unmarshal(b, &e)
		switch e.Code {
		case "wrong_password":
			return &WrongPasswordError{AttemptsLeft: e.AttemptsLeft}
		case "locked_out":
			return ErrLockedOut
		case "not_enrolled":
			return ErrNotEnrolled
		case "enrolled":
			return ErrEnrolled
		}
		return fmt.Errorf("the vault answered %s: %s", r.Status, e.Error)
	}
	if resp == nil {
		return nil
	}
	return json.Unmarshal(b, resp)
}
