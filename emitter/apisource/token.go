package apisource

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// token is an access token and when to stop using it.
type token struct {
	access  string
	refresh time.Time // renew at or after this time, before the token expires
}

// token returns a valid access token, authenticating when there is none or
// when the current one is about to expire.
func (c *Client) token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.access != "" && c.now().Before(c.tok.refresh) {
		return c.tok.access, nil
	}
	t, err := c.authenticate(ctx)
	if err != nil {
		return "", err
	}
	c.tok = t
	return t.access, nil
}

// invalidate forgets access if it is still the current token, so that the
// next call authenticates again.
func (c *Client) invalidate(access string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.access == access {
		c.tok = token{}
	}
}

// grant describes the configured grant for errors and logs, without secrets.
func (c *Client) grant() string {
	if c.cfg.ClientSecret != "" {
		return fmt.Sprintf("client_credentials grant of client %q in realm %q", c.cfg.ClientID, c.cfg.AuthRealm)
	}
	return fmt.Sprintf("password grant of user %q with client %q in realm %q", c.cfg.Username, c.cfg.ClientID, c.cfg.AuthRealm)
}

// authenticate obtains a new access token from the token endpoint.
func (c *Client) authenticate(ctx context.Context) (token, error) {
	form := url.Values{"client_id": {c.cfg.ClientID}}
	if c.cfg.ClientSecret != "" {
		form.Set("grant_type", "client_credentials")
		form.Set("client_secret", c.cfg.ClientSecret)
	} else {
		form.Set("grant_type", "password")
		form.Set("username", c.cfg.Username)
		form.Set("password", c.cfg.Password)
	}
	endpoint := c.base.String() + "/realms/" + url.PathEscape(c.cfg.AuthRealm) + "/protocol/openid-connect/token"
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, endpoint, []byte(form.Encode()))
	if err != nil {
		return token{}, fmt.Errorf("token (%s): %w", c.grant(), err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	start := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		return token{}, fmt.Errorf("token (%s): %w", c.grant(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return token{}, fmt.Errorf("token (%s): reading the response: %w", c.grant(), err)
	}
	var r struct {
		AccessToken      string `json:"access_token"`
		ExpiresIn        int64  `json:"expires_in"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if resp.StatusCode != http.StatusOK {
		se := &StatusError{Method: http.MethodPost, Path: req.URL.Path, StatusCode: resp.StatusCode, Body: snippet(body)}
		if json.Unmarshal(body, &r) == nil && r.Error != "" {
			se.Body = fmt.Sprintf("%s (%s)", r.Error, r.ErrorDescription)
		}
		return token{}, fmt.Errorf("token (%s): %w", c.grant(), se)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return token{}, fmt.Errorf("token (%s): decoding the response: %w", c.grant(), err)
	}
	if r.AccessToken == "" {
		return token{}, fmt.Errorf("token (%s): the response has no access_token", c.grant())
	}
	life := time.Duration(r.ExpiresIn) * time.Second
	// Renew when a fifth of the lifetime (at most 30s) is left, so that a
	// token never expires between our check and the server's.
	margin := min(life/5, 30*time.Second)
	c.log.Debug("apisource: authenticated", "grant", c.grant(), "expiresIn", life)
	return token{access: r.AccessToken, refresh: start.Add(life - margin)}, nil
}
