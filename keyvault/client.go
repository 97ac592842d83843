package keyvault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sealfs/sealfs/crypt"
)

// Client talks to a vault. It never sends the password: only a blinded
// point and, to recover, the unlock tag derived from the evaluation.
// NewClient makes one.
type Client struct {
	URL  string       // the vault, as given to NewClient
	HTTP *http.Client // TLS verification on, as NewClient's Trust says
}

// envelopeAD is the envelope's associated data (docs/VAULT.md §1.1):
// "sealfs vault v1 envelope" || 0x00 || user.
func envelopeAD(user string) []byte { return append([]byte("sealfs vault v1 envelope\x00"), user...) }

// sealEnvelope seals the secret for user under the envelope key:
// nonce (12) || AES-256-GCM(key, secret, envelopeAD(user)), crypt's
// sealing construction.
func sealEnvelope(key [32]byte, user string, secret []byte) ([]byte, error) {
	s, err := crypt.NewSealer(key[:])
	if err != nil {
		return nil, err
	}
	return s.Seal(envelopeAD(user), secret)
}

// OpenEnvelope opens an envelope a vault released, sealed for user under
// the envelope key of Keys (docs/VAULT.md §1.1). It fails, releasing
// nothing, unless it opens under the key and user and holds a secret.
func OpenEnvelope(key [32]byte, user string, env []byte) ([]byte, error) {
	s, err := crypt.NewSealer(key[:])
	if err != nil {
		return nil, err
	}
	secret, err := s.Open(envelopeAD(user), env)
	if err != nil {
		return nil, fmt.Errorf("the vault returned an envelope that does not open: it was changed or truncated: %w", err)
	}
	if len(secret) != SecretSize {
		clear(secret)
		return nil, fmt.Errorf("the vault returned an envelope holding %d bytes, not a %d-byte secret", len(secret), SecretSize)
	}
	return secret, nil
}

// Enrol makes a new random secret, protects it with password at the vault
// under user (a fresh random id), and returns it.
func (c *Client) Enrol(ctx context.Context, user string, password []byte) ([]byte, error) {
	b, err := Blind(Stretch(password, user))
	if err != nil {
		return nil, err
	}
	var ev EvalResponse
	if err := c.call(ctx, PathEnrolStart, &EvalRequest{User: user, Blinded: b.Element}, &ev); err != nil {
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
	if err := c.call(ctx, PathEnrolFinish, &FinishRequest{User: user, Tag: keys.Tag[:], Envelope: env}, nil); err != nil {
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
	if err := c.call(ctx, PathRecoverEvaluate, &EvalRequest{User: user, Blinded: b.Element}, &ev); err != nil {
		return nil, err
	}
	keys, err := b.Finish(ev.Evaluated)
	if err != nil {
		return nil, err
	}
	var rel ReleaseResponse
	if err := c.call(ctx, PathRecoverRelease, &ReleaseRequest{User: user, Tag: keys.Tag[:]}, &rel); err != nil {
		return nil, err
	}
	return OpenEnvelope(keys.EnvelopeKey, user, rel.Envelope)
}

// Destroy retires user's enrolment at the vault for good, proving the
// password as Recover does: the evaluation counts as a guess, and a wrong
// password is a *WrongPasswordError. A vault too old to destroy is
// ErrNoDestroy.
func (c *Client) Destroy(ctx context.Context, user string, password []byte) error {
	b, err := Blind(Stretch(password, user))
	if err != nil {
		return err
	}
	var ev EvalResponse
	if err := c.call(ctx, PathRecoverEvaluate, &EvalRequest{User: user, Blinded: b.Element}, &ev); err != nil {
		return err
	}
	keys, err := b.Finish(ev.Evaluated)
	if err != nil {
		return err
	}
	return c.call(ctx, PathDestroy, &ReleaseRequest{User: user, Tag: keys.Tag[:]}, nil)
}

// call posts req to path and decodes the answer into resp (nil: an empty
// answer is expected); an error answer becomes the protocol's error.
func (c *Client) call(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	r, err := c.post(ctx, path, body)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxMessageSize))
	if err != nil {
		return fmt.Errorf("failed to read the answer of the vault at %s: %w", c.URL, err)
	}
	if r.StatusCode == http.StatusNotFound && path == PathDestroy && json.Unmarshal(b, new(ErrorResponse)) != nil {
		return fmt.Errorf("%w (vault %s)", ErrNoDestroy, c.URL)
	}
	if r.StatusCode != http.StatusOK {
		return answerError(r.Status, b)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(b, resp); err != nil {
		return fmt.Errorf("the vault at %s gave an answer that is not the protocol's: %w", c.URL, err)
	}
	return nil
}

// post sends one request; a rate-limited request did nothing at the
// vault, so it waits and sends it again, up to about 15 s in all.
func (c *Client) post(ctx context.Context, path string, body []byte) (*http.Response, error) {
	for wait := 500 * time.Millisecond; ; wait *= 2 {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		hr.Header.Set("Content-Type", "application/json")
		r, err := c.HTTP.Do(hr)
		if err != nil {
			return nil, c.connError(err)
		}
		if r.StatusCode != http.StatusTooManyRequests || wait > 8*time.Second {
			return r, nil
		}
		r.Body.Close()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// answerError turns an error answer into the protocol's error for its code.
func answerError(status string, body []byte) error {
	var e ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("the vault answered %s, without a vault error in the body (is a proxy in between?)", status)
	}
	switch e.Code {
	case CodeWrongPassword:
		return &WrongPasswordError{AttemptsLeft: e.AttemptsLeft}
	case CodeLockedOut:
		return ErrLockedOut
	case CodeNotEnrolled:
		return ErrNotEnrolled
	case CodeEnrolled:
		return ErrEnrolled
	}
	return fmt.Errorf("the vault answered %s: %s", status, e.Error)
}
