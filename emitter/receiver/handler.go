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
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// DefaultMaxBodyBytes is the body limit of a Config whose MaxBodyBytes is 0.
// Keycloak events are small; an admin event carrying a large representation
// stays well below it.
const DefaultMaxBodyBytes = 4 << 20

// DefaultUnauthenticatedBodies is how many bodies of MaxBodyBytes the
// handler holds at once, when Config.MaxUnauthenticatedBytes is 0, for
// requests whose credentials it cannot check before reading them.
const DefaultUnauthenticatedBodies = 4

// unauthenticatedWait is how long a request waits for room among the
// unauthenticated bytes before it is answered 503.
const unauthenticatedWait = 2 * time.Second

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
	// MaxUnauthenticatedBytes bounds the bytes of the bodies held, summed
	// over all requests, before their sender is known: without Basic auth,
	// a body must be read before its signature can be checked (or, with
	// neither configured, it is never authenticated). Each such request
	// reserves its Content-Length (MaxBodyBytes when it has none) before
	// its body is read, and gives it back once the signature was verified
	// or the request ended; a request finding no room within 2 s is
	// answered 503 with Retry-After. So what unauthenticated clients send
	// costs at most this much memory, however many they are. Requests with
	// good Basic credentials are not counted: they are checked before the
	// body is read. 0 means DefaultUnauthenticatedBodies × MaxBodyBytes;
	// it must not be below MaxBodyBytes.
	MaxUnauthenticatedBytes int64
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
	unauth       *semaphore.Weighted // bytes of bodies read before authentication
	unauthWait   time.Duration
	log          *slog.Logger
	now          func() time.Time
}

// NewHandler returns an http.Handler that accepts POSTed events as cfg
// describes. It answers 405 to any other method, 401 to a request with wrong
// or missing credentials or signature or a stale timestamp, 413 to a body
// larger than cfg.MaxBodyBytes, 503 when the bodies of unauthenticated
// requests fill cfg.MaxUnauthenticatedBytes, 400 to a body cfg.Decode
// rejects, 500, 503 or 400 when cfg.Handle fails (see Config.Handle), and
// 200 once cfg.Handle returned nil. The method, the Basic credentials, the
// presence and timestamp of a signature and the Content-Length are all
// checked before the body is read.
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
	if cfg.MaxUnauthenticatedBytes < 0 {
		return nil, fmt.Errorf("receiver: Config.MaxUnauthenticatedBytes is %d, want >= 0", cfg.MaxUnauthenticatedBytes)
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
	unauth := cfg.MaxUnauthenticatedBytes
	if unauth == 0 {
		unauth = DefaultUnauthenticatedBodies * h.maxBodyBytes
	}
	if unauth < h.maxBodyBytes {
		return nil, fmt.Errorf("receiver: Config.MaxUnauthenticatedBytes is %d, below MaxBodyBytes %d: the largest body could never be read",
			unauth, h.maxBodyBytes)
	}
	h.unauth, h.unauthWait = semaphore.NewWeighted(unauth), unauthenticatedWait
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

func (h *handler[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Everything that can be checked before the body is read is checked
	// first: a client without credentials costs no body memory.
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
	signed := len(h.cfg.SigningSecrets) > 0
	if signed {
		if _, err := checkSignatureHeaders(r.Header, h.now(), h.tolerance); err != nil {
			h.reject(w, r, http.StatusUnauthorized, err.Error())
			return
		}
	}
	if r.ContentLength > h.maxBodyBytes {
		h.reject(w, r, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, h.maxBodyBytes))
		return
	}
	release := func() {}
	if !h.basicAuth {
		// The sender is not known yet: hold its body within the budget.
		n := r.ContentLength
		if n < 0 {
			n = h.maxBodyBytes
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.unauthWait)
		err := h.unauth.Acquire(ctx, n)
		cancel()
		if err != nil {
			w.Header().Set("Retry-After", "1")
			h.reject(w, r, http.StatusServiceUnavailable,
				fmt.Sprintf("too many bodies of unauthenticated requests being read (%d bytes would exceed the limit), deliver it again later", n))
			return
		}
		var once sync.Once
		release = func() { once.Do(func() { h.unauth.Release(n) }) }
		defer release()
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, h.maxBodyBytes), r.ContentLength, h.maxBodyBytes)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.reject(w, r, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("body exceeds the limit of %d bytes", h.maxBodyBytes))
			return
		}
		h.reject(w, r, http.StatusBadRequest, fmt.Sprintf("reading body: %v", err))
		return
	}
	if signed {
		if err := VerifySignature(h.cfg.SigningSecrets, r.Header, body, h.now(), h.tolerance); err != nil {
			h.reject(w, r, http.StatusUnauthorized, err.Error())
			return
		}
		release() // authenticated now
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
			h.log.Error("handling event failed", "remote", r.RemoteAddr, "status", http.StatusServiceUnavailable, "error", err)
			http.Error(w, "receiver unavailable, deliver the event again later", http.StatusServiceUnavailable)
		default:
			h.log.Error("handling event failed", "remote", r.RemoteAddr, "status", http.StatusInternalServerError, "error", err)
			http.Error(w, "handling the event failed, deliver it again", http.StatusInternalServerError)
		}
		return
	}
	w.WriteHeader(http.StatusOK)
}

// readBody reads a body of n bytes (n < 0: unknown, at most limit) into a
// buffer allocated once for a known length, and grown by doubling up to
// limit bytes otherwise, so that a body never costs much more than its
// size (io.ReadAll's growth can allocate more, and a last growth to
// limit+1 bytes would copy the whole body only to learn that it ended).
func readBody(r io.Reader, n, limit int64) ([]byte, error) {
	if n >= 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf := make([]byte, 0, min(limit, 4096))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= limit {
				// Full: the body must end here.
				var one [1]byte
				m, err := io.ReadAtLeast(r, one[:], 1)
				switch {
				case m > 0:
					return nil, &http.MaxBytesError{Limit: limit}
				case errors.Is(err, io.EOF):
					return buf, nil
				default:
					return nil, err
				}
			}
			next := make([]byte, len(buf), min(2*int64(cap(buf)), limit))
			copy(next, buf)
			buf = next
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
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
