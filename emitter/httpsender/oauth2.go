package httpsender

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// OAuth2 is an OAuth2 client credentials grant (RFC 6749 4.4): the Sender
// asks TokenURL for an access token with ClientID and ClientSecret and
// sends it as "Authorization: Bearer" with every request. The token is
// kept until shortly before it expires (a quarter of its lifetime, at most
// 30 s, before); a 401 answer makes the Sender fetch a new token and try
// the request again at once, once per Send.
type OAuth2 struct {
	TokenURL     string
	ClientID     string
	ClientSecret string // never logged
	Scopes       []string
}

// refreshEarly bounds how long before its expiry a token is replaced.
const refreshEarly = 30 * time.Second

// tokens is the cache of a Sender's access token. It is safe for
// concurrent use; one fetch runs at a time.
type tokens struct {
	cfg    clientcredentials.Config
	client *http.Client // for the token endpoint
	now    func() time.Time

	mu      sync.Mutex
	tok     *oauth2.Token
	renewAt time.Time // zero: no expiry given, kept until a 401
	fetches int
}

func newTokens(o *OAuth2, tlsCfg *tls.Config, timeout time.Duration, now func() time.Time) *tokens {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &tokens{
		cfg: clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL,
			Scopes: o.Scopes},
		client: &http.Client{Transport: tr, Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		now: now,
	}
}

// header returns the Authorization header value of the current token,
// fetching one when there is none or it is about to expire.
func (t *tokens) header(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.tok != nil && (t.renewAt.IsZero() || now.Before(t.renewAt)) {
		return "Bearer " + t.tok.AccessToken, nil
	}
	tok, err := t.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, t.client))
	if err != nil {
		return "", fmt.Errorf("OAuth2 token from %s: %w", t.cfg.TokenURL, err)
	}
	t.fetches++
	t.tok, t.renewAt = tok, time.Time{}
	if !tok.Expiry.IsZero() {
		life := tok.Expiry.Sub(now)
		t.renewAt = tok.Expiry.Add(-min(refreshEarly, life/4))
	}
	return "Bearer " + tok.AccessToken, nil
}

// refused forgets the token of the Authorization header used when the
// target answered 401, unless another was fetched meanwhile.
func (t *tokens) refused(used string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && "Bearer "+t.tok.AccessToken == used {
		t.tok = nil
	}
}

// bearer is a RoundTripper that sets the Authorization header of every
// request from the tokens; a failed token fetch fails the attempt.
type bearer struct {
	next   http.RoundTripper
	tokens *tokens
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	h, err := b.tokens.header(req.Context())
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", h)
	return b.next.RoundTrip(req)
}

// TokenFetches returns how many access tokens the Sender fetched (0
// without OAuth2).
func (s *Sender) TokenFetches() int {
	if s.tokens == nil {
		return 0
	}
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	return s.tokens.fetches
}
