// Package apisource reads Keycloak's stored events through the admin REST
// API: it authenticates, lists realms, fetches pages of events and admin
// events, and looks up users. It knows nothing of the emitter's types: the
// emitter package adapts what it returns.
package apisource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Config tells a Client where Keycloak is and how to authenticate.
//
// With ClientSecret set the Client uses the client_credentials grant of
// ClientID (a confidential client whose service account holds the
// realm-management roles view-events and view-users). Otherwise it uses the
// password grant with Username and Password and ClientID (default
// "admin-cli"). Secrets are never logged; the caller reads them from the
// environment or a file, never from argv.
type Config struct {
	// BaseURL is Keycloak's root URL, e.g. "http://127.0.0.1:8080" (with the
	// relative path, e.g. "/auth", if the server has one).
	BaseURL string
	// AuthRealm is the realm that issues the token; "master" when empty.
	AuthRealm    string
	ClientID     string
	ClientSecret string
	Username     string
	Password     string
	// Realms restricts Realms to these realm names; empty means every realm
	// the account can see.
	Realms []string
	// Timeout bounds one HTTP attempt (connect, request, response body);
	// 30s when zero.
	Timeout time.Duration
	// RetryMax is how many times a request that failed with a connection
	// error, a 429 or a 5xx is retried with backoff; 4 when zero, none when
	// negative.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the backoff between retries;
	// 250ms and 10s when zero.
	RetryWaitMin, RetryWaitMax time.Duration
	// Transport carries the requests; http.DefaultTransport's clone when nil.
	Transport http.RoundTripper
	// Logger receives retry and re-authentication messages; slog.Default() when nil.
	Logger *slog.Logger
}

// LogValue renders c for logs with its secrets redacted.
func (c Config) LogValue() slog.Value {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "REDACTED"
	}
	return slog.GroupValue(
		slog.String("baseURL", c.BaseURL),
		slog.String("authRealm", c.AuthRealm),
		slog.String("clientID", c.ClientID),
		slog.String("clientSecret", redact(c.ClientSecret)),
		slog.String("username", c.Username),
		slog.String("password", redact(c.Password)),
		slog.Any("realms", c.Realms),
	)
}

// Client talks to one Keycloak server's admin REST API. It is safe for
// concurrent use.
type Client struct {
	cfg  Config
	base *url.URL
	http *retryablehttp.Client
	log  *slog.Logger

	mu  sync.Mutex
	tok token
	now func() time.Time
}

// New checks cfg and returns a Client for it. It does not contact the
// server: the first call authenticates.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("apisource: BaseURL is empty")
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("apisource: BaseURL %q: %w", cfg.BaseURL, err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("apisource: BaseURL %q: want http(s)://host[:port][/path]", cfg.BaseURL)
	}
	if cfg.AuthRealm == "" {
		cfg.AuthRealm = "master"
	}
	switch {
	case cfg.ClientSecret != "":
		if cfg.ClientID == "" {
			return nil, errors.New("apisource: ClientID is empty but ClientSecret is set (client_credentials grant)")
		}
	case cfg.Username != "":
		if cfg.Password == "" {
			return nil, fmt.Errorf("apisource: Password is empty for Username %q (password grant)", cfg.Username)
		}
		if cfg.ClientID == "" {
			cfg.ClientID = "admin-cli"
		}
	default:
		return nil, errors.New("apisource: no credentials: set ClientID and ClientSecret, or Username and Password")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 4
	} else if cfg.RetryMax < 0 {
		cfg.RetryMax = 0
	}
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin = 250 * time.Millisecond
	}
	if cfg.RetryWaitMax == 0 {
		cfg.RetryWaitMax = 10 * time.Second
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: cfg.Transport, Timeout: cfg.Timeout}
	rc.RetryMax = cfg.RetryMax
	rc.RetryWaitMin = cfg.RetryWaitMin
	rc.RetryWaitMax = cfg.RetryWaitMax
	rc.Logger = retryLogger{cfg.Logger}
	// Keep the last response when retries run out, so the error names its status.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return &Client{cfg: cfg, base: base, http: rc, log: cfg.Logger, now: time.Now}, nil
}

// retryLogger passes go-retryablehttp's messages to slog at debug level,
// except for retries, which are warnings. Its messages carry method and
// URL, never headers or bodies.
type retryLogger struct{ l *slog.Logger }

func (r retryLogger) Error(msg string, kv ...any) { r.l.Warn("apisource: "+msg, kv...) }
func (r retryLogger) Warn(msg string, kv ...any)  { r.l.Warn("apisource: "+msg, kv...) }
func (r retryLogger) Info(msg string, kv ...any)  { r.l.Debug("apisource: "+msg, kv...) }
func (r retryLogger) Debug(msg string, kv ...any) { r.l.Debug("apisource: "+msg, kv...) }

// StatusError is an unexpected HTTP status from Keycloak.
type StatusError struct {
	Method     string
	Path       string // the request path, without the query
	StatusCode int
	// Body is the start of the response body (Keycloak's error JSON).
	Body string
	// Role is the realm-management role the call needs; set on 403.
	Role string
}

// Error names the call, the status and, for a 403, the missing role.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.StatusCode == http.StatusForbidden && e.Role != "" {
		msg += fmt.Sprintf(": the account lacks the realm-management role %q", e.Role)
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// ErrNotFound is wrapped by errors for a 404 (e.g. a deleted user).
var ErrNotFound = errors.New("not found")

// Unwrap returns ErrNotFound for a 404.
func (e *StatusError) Unwrap() error {
	if e.StatusCode == http.StatusNotFound {
		return ErrNotFound
	}
	return nil
}

const maxBody = 64 << 20 // a page of 10,000 events with large details fits

// get performs an authenticated GET of path (relative to BaseURL, already
// escaped) with query q, and returns the body of a 2xx response. A 401
// triggers one re-authentication and one retry. role names the
// realm-management role the call needs, for a 403's error.
func (c *Client) get(ctx context.Context, path string, q url.Values, role string) ([]byte, error) {
	u := c.base.String() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.token(ctx)
		if err != nil {
			return nil, err
		}
		req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("GET %s: reading the response: %w", path, err)
		}
		if len(body) > maxBody {
			return nil, fmt.Errorf("GET %s: response larger than %d bytes", path, maxBody)
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			c.log.Info("apisource: token rejected, authenticating again", "path", path)
			c.invalidate(tok)
			continue
		}
		if resp.StatusCode/100 != 2 {
			return nil, &StatusError{Method: http.MethodGet, Path: path, StatusCode: resp.StatusCode, Body: snippet(body), Role: role}
		}
		return body, nil
	}
}

// snippet returns the start of an error body, on one line.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
