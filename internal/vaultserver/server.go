package vaultserver

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

	"github.com/sealfs/sealfs/keyvault"
)

// decodeRequest parses a request body strictly: known fields only, one
// object, nothing after it.
func decodeRequest(b []byte, v any) error {
	if len(b) > keyvault.MaxMessageSize {
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
	mux.HandleFunc("POST "+keyvault.PathEnrolStart, s.handle("enrol-start", func(b []byte) (any, string, error) {
		var req keyvault.EnrolStartRequest
		if err := decodeRequest(b, &req); err != nil {
			return nil, "", err
		}
		x, limit, err := s.v.EnrolStart(req.User, req.Blinded, req.MaxAttempts)
		return &keyvault.EvalResponse{Evaluated: x, AttemptsLeft: limit}, req.User, err
	}))
	mux.HandleFunc("POST "+keyvault.PathEnrolFinish, s.handle("enrol-finish", func(b []byte) (any, string, error) {
		var req keyvault.FinishRequest
		if err := decodeRequest(b, &req); err != nil {
			return nil, "", err
		}
		return struct{}{}, req.User, s.v.EnrolFinish(req.User, req.Tag, req.Envelope)
	}))
	mux.HandleFunc("POST "+keyvault.PathRecoverEvaluate, s.handle("evaluate", func(b []byte) (any, string, error) {
		var req keyvault.EvalRequest
		if err := decodeRequest(b, &req); err != nil {
			return nil, "", err
		}
		x, left, err := s.v.Evaluate(req.User, req.Blinded)
		return &keyvault.EvalResponse{Evaluated: x, AttemptsLeft: left}, req.User, err
	}))
	mux.HandleFunc("POST "+keyvault.PathRecoverRelease, s.handle("release", func(b []byte) (any, string, error) {
		var req keyvault.ReleaseRequest
		if err := decodeRequest(b, &req); err != nil {
			return nil, "", err
		}
		env, err := s.v.Release(req.User, req.Tag)
		return &keyvault.ReleaseResponse{Envelope: env}, req.User, err
	}))
	mux.HandleFunc("POST "+keyvault.PathDestroy, s.handle("destroy", func(b []byte) (any, string, error) {
		var req keyvault.ReleaseRequest
		if err := decodeRequest(b, &req); err != nil {
			return nil, "", err
		}
		return struct{}{}, req.User, s.v.Destroy(req.User, req.Tag)
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
			s.reply(w, http.StatusTooManyRequests, &keyvault.ErrorResponse{Error: "too many requests from this address; wait a moment", Code: keyvault.CodeRateLimited})
			return
		}
		body := http.MaxBytesReader(w, r.Body, keyvault.MaxMessageSize)
		b, err := io.ReadAll(body)
		if err != nil {
			s.reply(w, http.StatusRequestEntityTooLarge, &keyvault.ErrorResponse{Error: "request too large", Code: keyvault.CodeBadRequest})
			return
		}
		var user string
		var peek struct {
			User string `json:"user"`
		}
		// Only a well-formed id gets a bucket: a malformed one fails anyway,
		// and must not fill the table with 16 KiB keys.
		if json.Unmarshal(b, &peek) == nil && keyvault.ValidUser(peek.User) && !s.users.allow(peek.User) {
			s.limited.Add(1)
			s.reply(w, http.StatusTooManyRequests, &keyvault.ErrorResponse{Error: "too many requests for this user; wait a moment", Code: keyvault.CodeRateLimited})
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
	var wp *keyvault.WrongPasswordError
	switch {
	case errors.As(err, &wp):
		s.wrong.Add(1)
		s.reply(w, http.StatusForbidden, &keyvault.ErrorResponse{Error: err.Error(), Code: keyvault.CodeWrongPassword, AttemptsLeft: wp.AttemptsLeft})
	case errors.Is(err, keyvault.ErrLockedOut):
		s.lockouts.Add(1)
		s.reply(w, http.StatusGone, &keyvault.ErrorResponse{Error: err.Error(), Code: keyvault.CodeLockedOut})
	case errors.Is(err, keyvault.ErrNotEnrolled):
		s.reply(w, http.StatusNotFound, &keyvault.ErrorResponse{Error: err.Error(), Code: keyvault.CodeNotEnrolled})
	case errors.Is(err, keyvault.ErrEnrolled):
		s.reply(w, http.StatusConflict, &keyvault.ErrorResponse{Error: err.Error(), Code: keyvault.CodeEnrolled})
	case errors.Is(err, ErrBusy):
		s.limited.Add(1)
		s.reply(w, http.StatusTooManyRequests, &keyvault.ErrorResponse{Error: err.Error(), Code: keyvault.CodeRateLimited})
	case errors.Is(err, ErrBadRequest):
		s.reply(w, http.StatusBadRequest, &keyvault.ErrorResponse{Error: err.Error(), Code: keyvault.CodeBadRequest})
	default:
		s.log.Error("vault request failed", "err", err)
		s.reply(w, http.StatusInternalServerError, &keyvault.ErrorResponse{Error: "internal error", Code: keyvault.CodeInternal})
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
