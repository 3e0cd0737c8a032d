// Package receiver is the receiving end of kc-event-emitter: an http.Handler
// that authenticates a delivery (Basic auth, Standard Webhooks signature),
// decodes its body with an injected decoder and acknowledges it only after a
// user function has handled it, and stores (JSON lines, PostgreSQL) that keep
// each uid once.
//
// The package does not know the event types: the caller injects the decoder
// (typically a closure over emitter.DecodePayload), so that it stays below
// package emitter in the import direction.
package receiver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// DefaultMaxBodyBytes is the body limit of a Config whose MaxBodyBytes is 0.
// Keycloak events are small; an admin event carrying a large representation
// stays well below it.
const DefaultMaxBodyBytes = 4 << 20

// DefaultTolerance is how far a webhook-timestamp may lie from the receiver's
// clock, in either direction, when Config.Tolerance is 0 (the Standard
// Webhooks recommendation).
const DefaultTolerance = 5 * time.Minute

// ErrUnavailable, wrapped in an error that Config.Handle returns, makes the
// handler answer 503 with a Retry-After header instead of 500: the receiver
// is temporarily unable to store, and the sender should slow down.
var ErrUnavailable = errors.New("receiver temporarily unavailable")

// ErrRejected, wrapped in an error that Config.Handle returns, makes the
// handler answer 400: the event can never be accepted (it breaks a rule of
// the store), so delivering it again is useless.
var ErrRejected = errors.New("event rejected")

// Config configures NewHandler. Decode and Handle are required.
type Config[T any] struct {
	// Decode turns a request body into a value. Its error is answered with
	// 400 and its text, so it should name the field and value at fault.
	Decode func(body []byte) (T, error)
	// Handle processes a decoded value. The handler answers 200 only after
	// it returned nil; an error is answered with 500 (503 when it wraps
	// ErrUnavailable), so the sender delivers the event again, or with 400
	// when it wraps ErrRejected.
	Handle func(ctx context.Context, v T) error
	// Username and Password are the Basic auth credentials a request must
	// carry. Both empty: no Basic auth. An empty Username with a Password
	// accepts any user name with that password (the original emitter sends
	// its HOSTNAME, which differs per replica). Compared in constant time.
	Username, Password string
	// SigningSecrets, when not empty, make the handler require a valid
	// Standard Webhooks signature (webhook-id, webhook-timestamp,
	// webhook-signature) made with any one of them (several: key rotation).
	SigningSecrets [][]byte
	// Tolerance bounds the age (and the advance) of webhook-timestamp;
	// 0 means DefaultTolerance.
	Tolerance time.Duration
	// MaxBodyBytes is the largest body accepted; larger ones get 413.
	// 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives one line per rejected or failed request; nil means
	// slog.Default(). Secrets and bodies are never logged.
	Logger *slog.Logger
	// Now returns the current time, for the timestamp window; nil means
	// time.Now. Tests set it.
	Now func() time.Time
}

type handler[T any] struct {
	cfg          Config[T]
	userHash     [sha256.Size]byte
	passHash     [sha256.Size]byte
	basicAuth    bool
	anyUser      bool
	tolerance    time.Duration
	maxBodyBytes int64
	log          *slog.Logger
	now          func() time.Time
}

// NewHandler returns an http.Handler that accepts POSTed events as cfg
// describes. It answers 405 to any other method, 401 to a request with wrong
// or missing credentials or signature or a stale timestamp, 413 to a body
// larger than cfg.MaxBodyBytes, 400 to a body cfg.Decode rejects, 500, 503
// or 400 when cfg.Handle fails (see Config.Handle), and 200 once cfg.Handle
// returned nil.
func NewHandler[T any](cfg Config[T]) (http.Handler, error) {
	if cfg.Decode == nil {
		return nil, errors.New("receiver: Config.Decode is required")
	}
	if cfg.Handle == nil {
		return nil, errors.New("receiver: Config.Handle is required")
	}
	if cfg.Username != "" && cfg.Password == "" {
		return nil, fmt.Errorf("receiver: Config.Username is %q but Password is empty", cfg.Username)
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("receiver: Config.MaxBodyBytes is %d, want >= 0", cfg.MaxBodyBytes)
	}
	if cfg.Tolerance < 0 {
		return nil, fmt.Errorf("receiver: Config.Tolerance is %s, want >= 0", cfg.Tolerance)
	}
	for i, s := range cfg.SigningSecrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("receiver: Config.SigningSecrets[%d] is empty", i)
		}
	}
	h := &handler[T]{
		cfg:          cfg,
		basicAuth:    cfg.Password != "",
		anyUser:      cfg.Username == "",
		userHash:     sha256.Sum256([]byte(cfg.Username)),
		passHash:     sha256.Sum256([]byte(cfg.Password)),
		tolerance:    cfg.Tolerance,
		maxBodyBytes: cfg.MaxBodyBytes,
		log:          cfg.Logger,
		now:          cfg.Now,
	}
	if h.tolerance == 0 {
		h.tolerance = DefaultTolerance
	}
	if h.maxBodyBytes == 0 {
		h.maxBodyBytes = DefaultMaxBodyBytes
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

func (h *handler[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, use POST", r.Method))
		return
	}
	if h.basicAuth && !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="kc-event-receiver", charset="UTF-8"`)
		h.reject(w, r, http.StatusUnauthorized, "missing or wrong Basic credentials")
		return
	}
	if r.ContentLength > h.maxBodyBytes {
		h.reject(w, r, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, h.maxBodyBytes))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.reject(w, r, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("body exceeds the limit of %d bytes", h.maxBodyBytes))
			return
		}
		h.reject(w, r, http.StatusBadRequest, fmt.Sprintf("reading body: %v", err))
		return
	}
	if len(h.cfg.SigningSecrets) > 0 {
		if err := VerifySignature(h.cfg.SigningSecrets, r.Header, body, h.now(), h.tolerance); err != nil {
			h.reject(w, r, http.StatusUnauthorized, err.Error())
			return
		}
	}
	v, err := h.cfg.Decode(body)
	if err != nil {
		h.reject(w, r, http.StatusBadRequest, fmt.Sprintf("decoding body: %v", err))
		return
	}
	if err := h.cfg.Handle(r.Context(), v); err != nil {
		switch {
		case errors.Is(err, ErrRejected):
			h.reject(w, r, http.StatusBadRequest, err.Error())
		case errors.Is(err, ErrUnavailable):
			w.Header().Set("Retry-After", "1")
			h.log.Error("handling event failed", "remote", r.RemoteAddr, "status", http.StatusServiceUnavailable, "err", err)
			http.Error(w, "receiver unavailable, deliver the event again later", http.StatusServiceUnavailable)
		default:
			h.log.Error("handling event failed", "remote", r.RemoteAddr, "status", http.StatusInternalServerError, "err", err)
			http.Error(w, "handling the event failed, deliver it again", http.StatusInternalServerError)
		}
		return
	}
	w.WriteHeader(http.StatusOK)
}

// authorized reports whether r carries the configured Basic credentials.
// Hashing both sides first makes the comparison independent of the lengths.
func (h *handler[T]) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	userOK := subtle.ConstantTimeCompare(u[:], h.userHash[:]) | boolInt(h.anyUser)
	passOK := subtle.ConstantTimeCompare(p[:], h.passHash[:])
	return userOK&passOK == 1
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reject answers code with msg as a plain text body and logs it.
func (h *handler[T]) reject(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.log.Warn("rejected delivery", "remote", r.RemoteAddr, "status", code, "reason", msg)
	http.Error(w, msg, code)
}
