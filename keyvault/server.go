package keyvault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Message size limit: every request is a few hundred bytes.
const maxRequest = 16 << 10

// Requests and responses of the HTTP protocol (docs/VAULT.md). Byte
// fields are base64 in JSON.
type (
	// EvalRequest carries a blinded point.
	EvalRequest struct {
		User    string `json:"user"`
		Blinded []byte `json:"blinded"`
	}
	// EvalResponse carries the evaluation.
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
	// ErrorResponse says what went wrong.
	ErrorResponse struct {
		Error        string `json:"error"`
		Code         string `json:"code"` // bad_request, not_enrolled, enrolled, wrong_password, locked_out, rate_limited, internal
		AttemptsLeft int    `json:"attempts_left,omitempty"`
	}
)

// DecodeRequest parses a request body strictly: known fields only, one
// object, nothing after it.
func DecodeRequest(b []byte, v any) error {
	if len(b) > maxRequest {
		return fmt.Errorf("%w: request of %d bytes", ErrBadRequest, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data", ErrBadRequest)
	}
	return nil
}

// Server serves a Vault over HTTP with rate limits, an append-only audit
// log (no secrets in it), /healthz and /metrics.
type Server struct {
	v     *Vault
	log   *slog.Logger
	audit *os.File
	amu   sync.Mutex
	ips   *limiter
	users *limiter

	requests, wrong, lockouts, releases, limited atomic.Int64
}

// NewServer serves v, appending audit records to auditPath.
func NewServer(v *Vault, auditPath string, log *slog.Logger) (*Server, error) {
	f, err := os.OpenFile(auditPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open the audit log: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{v: v, log: log, audit: f, ips: newLimiter(20, 40), users: newLimiter(5, 20)}, nil
}

// Close closes the audit log.
func (s *Server) Close() error { return s.audit.Close() }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("POST /v1/enrol/start", s.handle("enrol-start", func(b []byte) (any, string, error) {
		var req EvalRequest
		if err := DecodeRequest(b, &req); err != nil {
			return nil, "", err
		}
		x, err := s.v.EnrolStart(req.User, req.Blinded)
		return &EvalResponse{Evaluated: x}, req.User, err
	}))
	mux.HandleFunc("POST /v1/enrol/finish", s.handle("enrol-finish", func(b []byte) (any, string, error) {
		var req FinishRequest
		if err := DecodeRequest(b, &req); err != nil {
			return nil, "", err
		}
		return struct{}{}, req.User, s.v.EnrolFinish(req.User, req.Tag, req.Envelope)
	}))
	mux.HandleFunc("POST /v1/recover/evaluate", s.handle("evaluate", func(b []byte) (any, string, error) {
		var req EvalRequest
		if err := DecodeRequest(b, &req); err != nil {
			return nil, "", err
		}
		x, left, err := s.v.Evaluate(req.User, req.Blinded)
		return &EvalResponse{Evaluated: x, AttemptsLeft: left}, req.User, err
	}))
	mux.HandleFunc("POST /v1/recover/release", s.handle("release", func(b []byte) (any, string, error) {
		var req ReleaseRequest
		if err := DecodeRequest(b, &req); err != nil {
			return nil, "", err
		}
		env, err := s.v.Release(req.User, req.Tag)
		return &ReleaseResponse{Envelope: env}, req.User, err
	}))
	return mux
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) handle(op string, fn func([]byte) (any, string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		ip := clientIP(r)
		if !s.ips.allow(ip) {
			s.limited.Add(1)
			s.reply(w, http.StatusTooManyRequests, &ErrorResponse{Error: "too many requests from this address; wait a moment", Code: "rate_limited"})
			return
		}
		body := http.MaxBytesReader(w, r.Body, maxRequest)
		b, err := io.ReadAll(body)
		if err != nil {
			s.reply(w, http.StatusRequestEntityTooLarge, &ErrorResponse{Error: "request too large", Code: "bad_request"})
			return
		}
		var user string
		var peek struct {
			User string `json:"user"`
		}
		if json.Unmarshal(b, &peek) == nil && peek.User != "" && !s.users.allow(peek.User) {
			s.limited.Add(1)
			s.reply(w, http.StatusTooManyRequests, &ErrorResponse{Error: "too many requests for this user; wait a moment", Code: "rate_limited"})
			return
		}
		resp, user, err := fn(b)
		s.auditRecord(op, ip, user, err)
		if err != nil {
			s.replyError(w, err)
			return
		}
		if op == "release" {
			s.releases.Add(1)
		}
		s.reply(w, http.StatusOK, resp)
	}
}

func (s *Server) replyError(w http.ResponseWriter, err error) {
	var wp *WrongPasswordError
	switch {
	case errors.As(err, &wp):
		s.wrong.Add(1)
		s.reply(w, http.StatusForbidden, &ErrorResponse{Error: err.Error(), Code: "wrong_password", AttemptsLeft: wp.AttemptsLeft})
	case errors.Is(err, ErrLockedOut):
		s.lockouts.Add(1)
		s.reply(w, http.StatusGone, &ErrorResponse{Error: err.Error(), Code: "locked_out"})
	case errors.Is(err, ErrNotEnrolled):
		s.reply(w, http.StatusNotFound, &ErrorResponse{Error: err.Error(), Code: "not_enrolled"})
	case errors.Is(err, ErrEnrolled):
		s.reply(w, http.StatusConflict, &ErrorResponse{Error: err.Error(), Code: "enrolled"})
	case errors.Is(err, ErrBadRequest):
		s.reply(w, http.StatusBadRequest, &ErrorResponse{Error: err.Error(), Code: "bad_request"})
	default:
		s.log.Error("vault request failed", "err", err)
		s.reply(w, http.StatusInternalServerError, &ErrorResponse{Error: "internal error", Code: "internal"})
	}
}

func (s *Server) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// auditRecord appends one line: time, operation, address, user id and the
// outcome. Never a password, point, tag or envelope.
func (s *Server) auditRecord(op, ip, user string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = err.Error()
	}
	b, _ := json.Marshal(map[string]string{"time": time.Now().UTC().Format(time.RFC3339Nano), "op": op, "ip": ip, "user": user, "outcome": outcome})
	s.amu.Lock()
	defer s.amu.Unlock()
	s.audit.Write(append(b, '\n'))
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "sealfs_vault_requests_total %d\nsealfs_vault_wrong_passwords_total %d\nsealfs_vault_lockouts_total %d\nsealfs_vault_releases_total %d\nsealfs_vault_rate_limited_total %d\n",
		s.requests.Load(), s.wrong.Load(), s.lockouts.Load(), s.releases.Load(), s.limited.Load())
}

// limiter is a token bucket per key.
type limiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) > 100000 {
			l.buckets = map[string]*bucket{} // bound memory under a flood
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
