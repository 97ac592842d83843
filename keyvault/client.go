package keyvault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
	keys, err := c.EnrolStart(ctx, user, password, 0)
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
	if err := c.EnrolFinish(ctx, user, keys.Tag[:], env); err != nil {
		return nil, err
	}
	return secret, nil
}

// ErrNoAttemptLimit: the vault does not keep the guess limit an
// enrolment asked for (it speaks protocol 1.1 or older).
var ErrNoAttemptLimit = errors.New("the vault cannot keep a guess limit below 10 (it speaks protocol 1.1 or older, without max_attempts): its operator should upgrade it")

// EnrolStart starts the enrolment of user at the vault: the vault makes
// the user's key and evaluates the password blinded, and EnrolStart
// returns what the client derives from the evaluation. maxAttempts is the
// enrolment's guess limit, 1 to MaxAttempts (0: MaxAttempts); a vault
// that does not say it keeps that limit is ErrNoAttemptLimit. EnrolFinish
// ends the enrolment.
func (c *Client) EnrolStart(ctx context.Context, user string, password []byte, maxAttempts int) (*Keys, error) {
	if maxAttempts < 0 || maxAttempts > MaxAttempts {
		return nil, fmt.Errorf("a vault's guess limit is 1 to %d, not %d", MaxAttempts, maxAttempts)
	}
	b, err := Blind(Stretch(password, user))
	if err != nil {
		return nil, err
	}
	var ev EvalResponse
	err = c.call(ctx, PathEnrolStart, &EnrolStartRequest{User: user, Blinded: b.Element, MaxAttempts: maxAttempts}, &ev)
	if maxAttempts != 0 && err != nil && strings.Contains(err.Error(), "max_attempts") {
		return nil, fmt.Errorf("%w (vault %s: %v)", ErrNoAttemptLimit, c.URL, err)
	}
	if err != nil {
		return nil, err
	}
	if maxAttempts != 0 && ev.AttemptsLeft != maxAttempts {
		return nil, fmt.Errorf("%w (vault %s answered a limit of %d)", ErrNoAttemptLimit, c.URL, ev.AttemptsLeft)
	}
	return b.Finish(ev.Evaluated)
}

// EnrolFinish ends user's enrolment: the vault keeps the MAC of tag, the
// proof of the password that Release and Destroy ask for, and the
// envelope that Release returns.
func (c *Client) EnrolFinish(ctx context.Context, user string, tag, envelope []byte) error {
	return c.call(ctx, PathEnrolFinish, &FinishRequest{User: user, Tag: tag, Envelope: envelope}, nil)
}

// Recover gets the secret back with the password. A wrong password is an
// error wrapping ErrWrongPassword (a *WrongPasswordError says how many
// attempts are left); after too many, ErrLockedOut.
func (c *Client) Recover(ctx context.Context, user string, password []byte) ([]byte, error) {
	keys, _, err := c.Evaluate(ctx, user, password)
	if err != nil {
		return nil, err
	}
	env, err := c.Release(ctx, user, keys.Tag[:])
	if err != nil {
		return nil, err
	}
	return OpenEnvelope(keys.EnvelopeKey, user, env)
}

// Evaluate asks the vault to evaluate the password blinded, for user:
// the vault counts it as a guess. It returns what the client derives from
// the evaluation, and the attempts left at the vault if the guess is
// wrong. Release or Destroy then proves the password.
func (c *Client) Evaluate(ctx context.Context, user string, password []byte) (*Keys, int, error) {
	b, err := Blind(Stretch(password, user))
	if err != nil {
		return nil, 0, err
	}
	var ev EvalResponse
	if err := c.call(ctx, PathRecoverEvaluate, &EvalRequest{User: user, Blinded: b.Element}, &ev); err != nil {
		return nil, 0, err
	}
	keys, err := b.Finish(ev.Evaluated)
	return keys, ev.AttemptsLeft, err
}

// Release proves the password with tag after an Evaluate, which resets
// user's count at the vault, and returns the envelope the vault keeps. A
// wrong tag is a *WrongPasswordError.
func (c *Client) Release(ctx context.Context, user string, tag []byte) ([]byte, error) {
	var rel ReleaseResponse
	if err := c.call(ctx, PathRecoverRelease, &ReleaseRequest{User: user, Tag: tag}, &rel); err != nil {
		return nil, err
	}
	return rel.Envelope, nil
}

// Destroy retires user's enrolment at the vault for good, proving the
// password as Recover does: the evaluation counts as a guess, and a wrong
// password is a *WrongPasswordError. A vault too old to destroy is
// ErrNoDestroy.
func (c *Client) Destroy(ctx context.Context, user string, password []byte) error {
	keys, _, err := c.Evaluate(ctx, user, password)
	if err != nil {
		return err
	}
	return c.DestroyWithTag(ctx, user, keys.Tag[:])
}

// DestroyWithTag retires user's enrolment, proved with tag after an
// Evaluate (see Destroy).
func (c *Client) DestroyWithTag(ctx context.Context, user string, tag []byte) error {
	return c.call(ctx, PathDestroy, &ReleaseRequest{User: user, Tag: tag}, nil)
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
	if r.StatusCode >= 300 && r.StatusCode < 400 {
		return fmt.Errorf("the vault at %s answered %s, a redirect to %q: sealfs follows no redirect, so that what it sends goes to the vault named and nowhere else; give the vault's own URL", c.URL, printable(r.Status), r.Header.Get("Location"))
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

// answerError turns an error answer into the protocol's error for its
// code. What the vault says is printed with its control and format
// characters escaped (a lying vault must not redraw the user's terminal),
// and at most 300 characters of it.
func answerError(status string, body []byte) error {
	status = printable(status)
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
	return fmt.Errorf("the vault answered %s: %s", status, printable(e.Error))
}

// printable returns s with every character strconv.IsPrint refuses
// escaped as Go would quote it, cut to 300 characters.
func printable(s string) string {
	var b strings.Builder
	for i, r := range []rune(s) {
		if i == 300 {
			b.WriteString("…")
			break
		}
		if strconv.IsPrint(r) {
			b.WriteRune(r)
		} else {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}
