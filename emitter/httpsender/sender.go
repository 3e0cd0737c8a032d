// Package httpsender delivers encoded events to the target over HTTP, as
// the original emitter did: one POST per event, Basic auth, the original's
// three timeouts, plus retries with backoff, TLS options and Standard
// Webhooks signatures. It knows nothing of the events it carries, nor what
// the target's answers mean: the caller's Options.Retry says which
// failures are tried again.
package httpsender

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/webhook"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/tlsfiles"
)

// Defaults applied to a zero field of Options; the emitter's defaults
// (emitter.DefaultConfig) are these.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultSocketTimeout  = 10 * time.Second
	DefaultMaxConns       = 1
	DefaultRetryWaitMin   = 100 * time.Millisecond
	DefaultRetryWaitMax   = 30 * time.Second
)

// maxRetryAfter bounds a parsed Retry-After before RetryWaitMax cuts it
// (a huge number of seconds must not overflow a Duration).
const maxRetryAfter = time.Hour

// bodyExcerpt is how much of a refusing response's body a StatusError keeps.
const bodyExcerpt = 512

// drainLimit is how much of a response body is read so that its connection
// can be reused; a longer body costs the connection instead.
const drainLimit = 64 << 10

// The errors that mark an attempt ended by one of the three timeouts;
// errors.Is matches them in Send's and LastError's errors.
var (
	ErrConnectTimeout = errors.New("connect timeout")
	ErrRequestTimeout = errors.New("connection request timeout")
	ErrSocketTimeout  = errors.New("socket timeout")
	// ErrAttemptTimeout marks an attempt ended by Options.AttemptTimeout.
	ErrAttemptTimeout = errors.New("attempt timeout")
)

// Options configures a Sender. URL is required; a zero duration or count
// takes its default.
type Options struct {
	// URL is the target every event is POSTed to (http or https). It must
	// not carry credentials: use Username and Password.
	URL string
	// ConnectTimeout bounds establishing a connection: the TCP connect and,
	// for https, the TLS handshake (connectTimeoutMillis).
	ConnectTimeout time.Duration
	// RequestTimeout bounds the wait for a free connection when all
	// MaxConns are busy (connectionRequestTimeoutMillis).
	RequestTimeout time.Duration
	// SocketTimeout bounds any silence on a connection: waiting for the
	// response to start, between its bytes, and while writing
	// (socketTimeoutMillis). It is not a limit on the total time (see
	// AttemptTimeout). An idle pooled connection is closed after it too.
	SocketTimeout time.Duration
	// AttemptTimeout, when not 0, bounds one whole attempt: from the moment
	// it has a connection slot (see RequestTimeout) through connecting,
	// writing the request and reading the whole response, so that a
	// target that sends a byte just before each SocketTimeout cannot hold
	// an event forever. The attempt then fails with ErrAttemptTimeout and
	// is retried. 0 means no bound beyond SocketTimeout's, as the original.
	AttemptTimeout time.Duration
	// MaxConns is the most connections (and so requests in flight) to the
	// target; set it to at least the number of concurrent Sends.
	MaxConns int
	// Username and Password are sent as Basic auth (the original sent
	// HOSTNAME and CT_KEYCLOAK_BRIDGE_SECRET_TOKEN). An empty Password
	// sends no Authorization header. Neither is ever logged.
	Username, Password string
	// CAFile names a PEM file of the CAs that verify an https target,
	// instead of the system's. ClientCertFile and ClientKeyFile name the
	// PEM client certificate and key for mutual TLS (both or neither).
	// They apply to the token endpoint of OAuth2 too.
	CAFile, ClientCertFile, ClientKeyFile string
	// OAuth2, when set, sends a bearer token of a client credentials grant
	// with every request instead of Basic auth (Password must be empty).
	OAuth2 *OAuth2
	// SigningSecrets, when not empty, make every request carry Standard
	// Webhooks headers: webhook-id (Message.ID), webhook-timestamp, and a
	// webhook-signature with one "v1,<base64 HMAC-SHA256>" per secret.
	// A secret is "whsec_" followed by the base64 key.
	SigningSecrets []string
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts (jittered). A Retry-After header on 429 or 503 replaces the
	// backoff, but RetryWaitMax stays the longest wait between two
	// attempts: a longer Retry-After (999999 s) is cut to it.
	RetryWaitMin, RetryWaitMax time.Duration
	// Retry reports whether a failed attempt is tried again: status is the
	// target's non-2xx answer (0 when there was none), err the transport
	// error (nil when there was an answer). Send returns the first failure
	// Retry refuses: a *StatusError for an answer, the transport error
	// otherwise. nil tries every failure again.
	Retry func(status int, err error) bool
	// Logger receives one INFO line per failed attempt that will be
	// retried; nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time (webhook-timestamp, Retry-After dates);
	// nil means time.Now.
	Now func() time.Time
}

// message is one event on the wire.
type message struct {
	// ID identifies the event across retries and redeliveries: the uid in
	// decimal. It is the webhook-id of a signed request.
	ID string
	// Body is sent as is, as application/json.
	Body []byte
}

// StatusError is a non-2xx answer of the target that Options.Retry did not
// retry. What it means (the event refused, or the target not set up to take
// any) is the caller's business.
type StatusError struct {
	Status int    // the HTTP status code
	Body   string // the start of the response body, for logs and dead letters
	// RetryAfter is the wait the answer's Retry-After header asked for
	// (capped at an hour); 0 when it had none.
	RetryAfter time.Duration
}

// StatusCode returns the target's answer.
func (e *StatusError) StatusCode() int { return e.Status }

// RetryAfterDelay returns the wait the target asked for; 0 when none.
func (e *StatusError) RetryAfterDelay() time.Duration { return e.RetryAfter }

func (e *StatusError) Error() string {
	return fmt.Sprintf("target answered %d %s: %q", e.Status, http.StatusText(e.Status), e.Body)
}

// Sender POSTs messages to one target. It is safe for concurrent use.
type Sender struct {
	url        string
	logURL     string // url without the secrets its query may hold
	client     *http.Client
	user, pass string
	keys       [][]byte
	waitMin    time.Duration
	waitMax    time.Duration
	retry      func(status int, err error) bool
	log        *slog.Logger
	now        func() time.Time
	tokens     *tokens // nil: no OAuth2

	lastSuccess atomic.Int64 // UnixNano; 0 = never
	lastError   atomic.Pointer[error]
}

// New returns a Sender for o, or an error naming the option at fault.
func New(o Options) (*Sender, error) {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("httpsender: target URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("httpsender: target URL scheme %q: want http or https", u.Scheme)
	case u.Host == "":
		return nil, fmt.Errorf("httpsender: target URL %q has no host", redactURL(u))
	case u.User != nil:
		return nil, fmt.Errorf("httpsender: target URL %q carries credentials: use the username and password options", redactURL(u))
	}
	for name, d := range map[string]*time.Duration{
		"ConnectTimeout": &o.ConnectTimeout, "RequestTimeout": &o.RequestTimeout,
		"SocketTimeout": &o.SocketTimeout, "AttemptTimeout": &o.AttemptTimeout,
		"RetryWaitMin": &o.RetryWaitMin, "RetryWaitMax": &o.RetryWaitMax,
	} {
		if *d < 0 {
			return nil, fmt.Errorf("httpsender: %s is %s, want >= 0", name, *d)
		}
	}
	if o.MaxConns < 0 {
		return nil, fmt.Errorf("httpsender: MaxConns is %d, want >= 0", o.MaxConns)
	}
	setDefault(&o.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&o.RequestTimeout, DefaultRequestTimeout)
	setDefault(&o.SocketTimeout, DefaultSocketTimeout)
	setDefault(&o.MaxConns, DefaultMaxConns)
	setDefault(&o.RetryWaitMin, DefaultRetryWaitMin)
	setDefault(&o.RetryWaitMax, DefaultRetryWaitMax)
	if o.RetryWaitMax < o.RetryWaitMin {
		return nil, fmt.Errorf("httpsender: RetryWaitMax %s is below RetryWaitMin %s", o.RetryWaitMax, o.RetryWaitMin)
	}
	tlsCfg, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	if o.OAuth2 != nil && o.Password != "" {
		return nil, errors.New("httpsender: OAuth2 and a Basic auth password are both set: the target gets one Authorization header")
	}
	if u.Scheme == "http" && (o.CAFile != "" || o.ClientCertFile != "") {
		return nil, fmt.Errorf("httpsender: TLS files are set but the target URL %q is not https", redactURL(u))
	}
	s := &Sender{
		url: u.String(), logURL: redactURL(u), user: o.Username, pass: o.Password,
		waitMin: o.RetryWaitMin, waitMax: o.RetryWaitMax, retry: o.Retry,
		log: o.Logger, now: o.Now,
	}
	if s.retry == nil {
		s.retry = func(int, error) bool { return true }
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i, secret := range o.SigningSecrets {
		key, err := webhook.ParseSecret(secret)
		if err != nil {
			return nil, fmt.Errorf("httpsender: SigningSecrets[%d]: %w", i, err)
		}
		s.keys = append(s.keys, key)
	}
	d := &dialer{connect: o.ConnectTimeout, socket: o.SocketTimeout, tls: tlsCfg,
		net: net.Dialer{KeepAlive: 30 * time.Second}}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         d.dial,
		DialTLSContext:      d.dialTLS,
		TLSClientConfig:     tlsCfg, // used only through a proxy
		TLSHandshakeTimeout: o.ConnectTimeout,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1: one request per connection
		MaxConnsPerHost:     o.MaxConns,
		MaxIdleConns:        o.MaxConns,
		MaxIdleConnsPerHost: o.MaxConns,
		IdleConnTimeout:     90 * time.Second,
	}
	var next http.RoundTripper = tr
	if o.OAuth2 != nil {
		if o.OAuth2.TokenURL == "" || o.OAuth2.ClientID == "" {
			return nil, errors.New("httpsender: OAuth2 needs a token URL and a client id")
		}
		s.tokens = newTokens(o.OAuth2, tlsCfg, o.ConnectTimeout+o.SocketTimeout, s.now)
		next = &bearer{next: tr, tokens: s.tokens}
	}
	s.client = &http.Client{
		Transport: &pool{next: next, slots: make(chan struct{}, o.MaxConns), wait: o.RequestTimeout, attempt: o.AttemptTimeout},
		// A redirect would turn the POST into a GET or send it elsewhere:
		// a 3xx is a failed attempt like any other non-2xx status.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// redactURL returns u for logs and errors: without its password and the
// values of its query parameters whose names look like secrets (token=,
// sig=, code=, ...; see package redact).
func redactURL(u *url.URL) string { return redact.URL(u.String()) }

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func tlsConfig(o Options) (*tls.Config, error) {
	cfg, err := tlsfiles.Files{CAFile: o.CAFile, CertFile: o.ClientCertFile, KeyFile: o.ClientKeyFile}.Config()
	if err != nil {
		return nil, fmt.Errorf("httpsender: %w", err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	return cfg, nil
}

// attempts is the state of one Send across its attempts.
type attempts struct {
	n     int
	last  error // the failure of the latest attempt
	final error // the transport error Retry refused
	// reauth: the target answered 401 to a bearer token, which was
	// dropped; the next attempt, with a new token, goes at once. Once per
	// Send.
	reauth, reauthed bool
}

// Send POSTs body, the event whose id (the uid in decimal: the webhook-id of
// a signed request) is id, and returns nil once the target answered 2xx. Any other
// answer or a transport error is retried, forever, with jittered
// exponential backoff (or the Retry-After of a 429 or 503), until ctx ends;
// Send then returns an error wrapping ctx.Err() and the last attempt's
// error. A failure that Options.Retry refuses ends Send at once: an answer
// as a *StatusError, a transport error wrapped.
func (s *Sender) Send(ctx context.Context, id string, body []byte) error {
	m := message{ID: id, Body: body}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, s.url, m.Body)
	if err != nil {
		return fmt.Errorf("building request for uid %s: %w", m.ID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.pass != "" {
		req.SetBasicAuth(s.user, s.pass)
	}
	s.sign(req.Request.Header, m)
	var a attempts
	c := &retryablehttp.Client{
		HTTPClient:   s.client,
		RetryWaitMin: s.waitMin,
		RetryWaitMax: s.waitMax,
		RetryMax:     math.MaxInt, // forever: only ctx or a failure Retry refuses ends Send
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			return s.checkRetry(ctx, &a, resp, err)
		},
		Backoff: func(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
			if a.reauth {
				a.reauth = false
				return 0
			}
			wait := s.backoff(lo, hi, n, resp)
			s.logRetry(m, &a, resp, wait)
			return wait
		},
		PrepareRetry: func(r *http.Request) error {
			// A fresh timestamp and signature for each attempt; the
			// header map is shared with the previous attempt's request.
			r.Header = r.Header.Clone()
			s.sign(r.Header, m)
			return nil
		},
	}
	resp, err := c.Do(req)
	if err != nil {
		// Do's own error quotes the URL with its query: build ours.
		if a.final != nil && ctx.Err() == nil {
			return fmt.Errorf("sending uid %s: %w", m.ID, a.final)
		}
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		if a.last != nil {
			return fmt.Errorf("sending uid %s: %w; the last of %d attempts failed: %w", m.ID, err, a.n, a.last)
		}
		return fmt.Errorf("sending uid %s: %w", m.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Read what is left so the connection can be reused; a stalled
		// body is cut by the socket timeout and only costs the connection.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		s.lastSuccess.Store(s.now().UnixNano())
		s.lastError.Store(nil)
		return nil
	}
	excerpt, rerr := io.ReadAll(io.LimitReader(resp.Body, bodyExcerpt))
	answer := strings.ToValidUTF8(string(excerpt), "\uFFFD")
	if rerr != nil {
		answer += fmt.Sprintf(" (reading the body: %v)", rerr)
	}
	serr := &StatusError{Status: resp.StatusCode, Body: answer}
	serr.RetryAfter, _ = retryAfter(resp.Header.Get("Retry-After"), s.now())
	s.setLastError(serr)
	return serr
}

// checkRetry ends the attempts on a 2xx and on a failure that s.retry
// refuses; everything else is retried until ctx ends.
func (s *Sender) checkRetry(ctx context.Context, a *attempts, resp *http.Response, err error) (bool, error) {
	a.n++
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			uerr.URL = s.logURL
		}
		err = redact.Error(err, s.url) // in case a cause quotes the URL too
		a.last = err
		s.setLastError(err)
		if !s.retry(0, err) {
			a.final = err
			return false, nil
		}
		return true, nil
	}
	if resp.StatusCode == http.StatusUnauthorized && s.tokens != nil && !a.reauthed {
		// The token may have been revoked or rotated before its expiry.
		a.reauth, a.reauthed = true, true
		s.tokens.refused(resp.Request.Header.Get("Authorization"))
		a.last = fmt.Errorf("target answered %s to the bearer token: fetching a new one", resp.Status)
		return true, nil
	}
	if resp.StatusCode/100 == 2 || !s.retry(resp.StatusCode, nil) {
		return false, nil
	}
	a.last = fmt.Errorf("target answered %s", resp.Status)
	s.setLastError(a.last)
	return true, nil
}

// backoff is the wait before the attempt after attempt n (0-based):
// lo·2ⁿ capped at hi, drawn uniformly from its upper half, or the
// Retry-After of a 429 or 503 answer when it has one, capped at hi too.
func (s *Sender) backoff(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), s.now()); ok {
			return min(d, hi)
		}
	}
	return Backoff(lo, hi, n)
}

// Backoff is the jittered exponential wait before the attempt after
// attempt n (0-based): lo·2ⁿ capped at hi, drawn uniformly from its upper
// half.
func Backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n < 62 {
		if exp := lo << n; exp > 0 && exp>>n == lo && exp < hi {
			d = exp
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}

func (s *Sender) logRetry(m message, a *attempts, resp *http.Response, wait time.Duration) {
	attrs := []any{"uid", m.ID, "attempt", a.n, "retry_in", wait}
	if resp != nil {
		attrs = append(attrs, "status", resp.StatusCode)
	}
	if a.last != nil {
		attrs = append(attrs, "error", a.last)
	}
	s.log.Info("delivery attempt failed, retrying", attrs...)
}

// sign sets the Standard Webhooks headers when signing secrets are configured.
func (s *Sender) sign(h http.Header, m message) {
	if len(s.keys) == 0 {
		return
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	sigs := make([]string, 0, len(s.keys))
	for _, key := range s.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(m.ID))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(m.Body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	h.Set("webhook-id", m.ID)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", strings.Join(sigs, " "))
}

func (s *Sender) setLastError(err error) { s.lastError.Store(&err) }

// LastSuccess returns when the target last acknowledged an event; the zero
// time if it never did.
func (s *Sender) LastSuccess() time.Time {
	if ns := s.lastSuccess.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Failing tells whether the last attempt failed without an answer that
// Send returned (a *StatusError): the target is failing or unreachable.
func (s *Sender) Failing() bool {
	err := s.LastError()
	var serr *StatusError
	return err != nil && !errors.As(err, &serr)
}

// LastError returns the error of the latest attempt when it failed, and nil
// when it succeeded or none was made.
func (s *Sender) LastError() error {
	if p := s.lastError.Load(); p != nil {
		return *p
	}
	return nil
}

// CloseIdleConnections closes the connections not in use.
func (s *Sender) CloseIdleConnections() { s.client.CloseIdleConnections() }
