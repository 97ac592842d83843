package keyvault

import (
	"errors"
	"fmt"
	"regexp"
)

// MaxMessageSize bounds every request and answer of the protocol: each is
// a few hundred bytes.
const MaxMessageSize = 16 << 10

// MaxAttempts is how many wrong guesses in a row destroy an enrolment's
// key at the vault, unless the enrolment asked for fewer
// (EnrolStartRequest.MaxAttempts).
const MaxAttempts = 10

// SecretSize is the size of the secret a vault keeps for a user: the
// client derives a key slot's key-encryption key from it.
const SecretSize = 32

// The HTTP endpoints of protocol version 1 (docs/VAULT.md §1.2). Each
// takes a POST of a JSON request.
const (
	PathEnrolStart      = "/v1/enrol/start"      // EnrolStartRequest -> EvalResponse
	PathEnrolFinish     = "/v1/enrol/finish"     // FinishRequest -> {}
	PathRecoverEvaluate = "/v1/recover/evaluate" // EvalRequest -> EvalResponse
	PathRecoverRelease  = "/v1/recover/release"  // ReleaseRequest -> ReleaseResponse
	// PathDestroy retires an enrolment, proved as a release is (after an
	// evaluation). Added in protocol version 1.1: a vault of 1.0 answers
	// it 404 without a vault error (ErrNoDestroy).
	PathDestroy = "/v1/destroy" // ReleaseRequest -> {}
)

// Requests and responses of the HTTP protocol (docs/VAULT.md §1.3). Byte
// fields are base64 in JSON.
type (
	// EvalRequest carries a blinded point.
	EvalRequest struct {
		User    string `json:"user"`
		Blinded []byte `json:"blinded"`
	}
	// EnrolStartRequest carries a blinded point and, from protocol
	// version 1.2, the enrolment's guess limit: 1 to MaxAttempts, 0
	// (left out) for MaxAttempts. A vault of 1.1 refuses the field
	// (bad_request).
	EnrolStartRequest struct {
		User        string `json:"user"`
		Blinded     []byte `json:"blinded"`
		MaxAttempts int    `json:"max_attempts,omitempty"`
	}
	// EvalResponse carries the evaluation. A vault of protocol 1.2
	// answers enrol/start with the enrolment's guess limit in
	// AttemptsLeft; evaluate, with the attempts left if the guess is
	// wrong.
	EvalResponse struct {
		Evaluated    []byte `json:"evaluated"`
		AttemptsLeft int    `json:"attempts_left,omitempty"`
	}
	// FinishRequest ends an enrolment.
	FinishRequest struct {
		User     string `json:"user"`
		Tag      []byte `json:"tag"`
		Envelope []byte `json:"envelope"`
	}
	// ReleaseRequest proves the password.
	ReleaseRequest struct {
		User string `json:"user"`
		Tag  []byte `json:"tag"`
	}
	// ReleaseResponse carries the envelope.
	ReleaseResponse struct {
		Envelope []byte `json:"envelope"`
	}
	// ErrorResponse says what went wrong; Code is one of the Code* constants.
	ErrorResponse struct {
		Error        string `json:"error"`
		Code         string `json:"code"`
		AttemptsLeft int    `json:"attempts_left,omitempty"`
	}
)

// The codes of an ErrorResponse, with the HTTP status the vault answers
// them with.
const (
	CodeBadRequest    = "bad_request"    // 400 (413 for a request over MaxMessageSize)
	CodeWrongPassword = "wrong_password" // 403, with AttemptsLeft
	CodeNotEnrolled   = "not_enrolled"   // 404
	CodeEnrolled      = "enrolled"       // 409
	CodeLockedOut     = "locked_out"     // 410
	CodeRateLimited   = "rate_limited"   // 429: the request did nothing; retry later
	CodeInternal      = "internal"       // 500
)

// Errors of the vault protocol, as the client returns them for an answer's
// code and as the vault's own operations return them.
var (
	ErrNotEnrolled   = errors.New("no vault enrolment for this user")
	ErrEnrolled      = errors.New("this user is enrolled already; enrol a new user id instead")
	ErrLockedOut     = errors.New("too many wrong passwords: the vault destroyed this key for good")
	ErrWrongPassword = errors.New("wrong password")
	// ErrNoDestroy: the vault speaks protocol version 1.0, which cannot
	// retire an enrolment.
	ErrNoDestroy = errors.New("the vault is too old to retire an enrolment (protocol 1.0, no /v1/destroy): its operator should upgrade it")
)

// WrongPasswordError says how many attempts are left.
type WrongPasswordError struct{ AttemptsLeft int }

// Error says that the password was wrong and how many attempts are left.
func (e *WrongPasswordError) Error() string {
	return fmt.Sprintf("wrong password: %d attempts left before the vault destroys the key", e.AttemptsLeft)
}

// Unwrap makes it match ErrWrongPassword.
func (e *WrongPasswordError) Unwrap() error { return ErrWrongPassword }

var userPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)

// ValidUser reports whether a user id is well formed (16 to 128 of
// A-Z a-z 0-9 _ -). Clients use random ids.
func ValidUser(u string) bool { return userPattern.MatchString(u) }
