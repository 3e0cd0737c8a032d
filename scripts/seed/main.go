// Command seed prepares a realm on a real Keycloak and makes real traffic in
// it, so that event_entity and admin_event_entity fill the way they do in
// production. It is the test fixture, the demo's traffic and the benchmarks'
// load generator.
//
//	go run ./scripts/seed [-realm demo] [-rounds 10] [-workers 1] [-interval 0]
//	go run ./scripts/seed -realm demo -delete
//
// Setup (idempotent): a realm with user events, admin events and admin event
// details enabled for every event type the server knows, self-registration
// on; a confidential client with a service account holding realm-management
// view-events and view-users; a public client allowing the direct grant and
// the browser flow, whose access tokens name the confidential client in
// their audience (it introspects them); a realm role. Then each round, for one new user:
// registration through the registration form, failed logins (wrong password,
// unknown user, wrong password in the login form), logins (direct grant and
// login form with code exchange), a token refresh, a userinfo call, logouts,
// a client-credentials login with a token introspection, and admin operations
// (create, update, reset password, add and remove a role mapping, update a
// client, delete the user).
//
// Keycloak is found in KCEE_TEST_KEYCLOAK_URL, _ADMIN and _ADMIN_PASSWORD (as
// `scripts/keycloak.sh env` prints them); only loopback addresses are accepted.
// The confidential client's secret goes to the file of -secret-file (mode
// 0600, shell exports), never to the output.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Names of what the seed creates in the realm.
const (
	confidentialClientID = "kcee-events-reader"
	publicClientID       = "kcee-app"
	realmRole            = "kcee-demo-role"
	redirectURI          = "http://127.0.0.1:9/callback" // never contacted: the code is read from the redirect
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	url, admin, password string
	realm                string
	rounds, workers      int
	interval             time.Duration
	secretFile           string
	setupOnly            bool
	delete               bool
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.url, "url", os.Getenv("KCEE_TEST_KEYCLOAK_URL"), "Keycloak's base URL (loopback only) [$KCEE_TEST_KEYCLOAK_URL]")
	fs.StringVar(&o.admin, "admin", envOr("KCEE_TEST_KEYCLOAK_ADMIN", "admin"), "master realm admin [$KCEE_TEST_KEYCLOAK_ADMIN]; the password comes from $KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD")
	fs.StringVar(&o.realm, "realm", "demo", "realm to create or reuse")
	fs.IntVar(&o.rounds, "rounds", 10, "rounds of traffic (each registers one user and runs every flow once)")
	fs.IntVar(&o.workers, "workers", 1, "rounds run in parallel")
	fs.DurationVar(&o.interval, "interval", 0, "pause of each worker between its rounds")
	fs.StringVar(&o.secretFile, "secret-file", "", "file for the client ids and secret as shell exports [.cache/seed/<realm>.env]")
	fs.BoolVar(&o.setupOnly, "setup-only", false, "create the realm and clients, make no traffic")
	fs.BoolVar(&o.delete, "delete", false, "delete the realm (and its events) instead, then exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.password = envOr("KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD", "admin")
	if o.secretFile == "" {
		o.secretFile = filepath.Join(envOr("KCEE_CACHE", ".cache"), "seed", o.realm+".env")
	}
	if err := validate(o); err != nil {
		fmt.Fprintln(stderr, "seed:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := seed(ctx, log, o, stdout); err != nil {
		log.Error("seed failed", "error", err)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func validate(o options) error {
	if o.url == "" {
		return errors.New("no Keycloak URL: set -url or KCEE_TEST_KEYCLOAK_URL (eval \"$(scripts/keycloak.sh env)\")")
	}
	u, err := url.Parse(o.url)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bad -url %q", o.url)
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url %q is not a loopback address", o.url)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(o.realm) || o.realm == "master" {
		return fmt.Errorf("bad -realm %q", o.realm)
	}
	if o.rounds < 0 || o.workers < 1 {
		return fmt.Errorf("-rounds must be >= 0 and -workers >= 1")
	}
	return nil
}

func seed(ctx context.Context, log *slog.Logger, o options, stdout io.Writer) error {
	base := strings.TrimRight(o.url, "/")
	// A fresh Keycloak on a loaded machine may take more than half a minute
	// to create its first realm.
	a := &adminAPI{base: base, user: o.admin, password: o.password, hc: &http.Client{Timeout: 2 * time.Minute}}
	if o.delete {
		_, err := a.do(ctx, "DELETE", "/realms/"+o.realm, nil, nil)
		switch {
		case statusOf(err) == http.StatusNotFound:
			fmt.Fprintf(stdout, "realm %s did not exist\n", o.realm)
		case err != nil:
			return err
		default:
			fmt.Fprintf(stdout, "realm %s deleted\n", o.realm)
		}
		return nil
	}
	s, err := setup(ctx, a, o.realm)
	if err != nil {
		return err
	}
	if err := writeSecretFile(o.secretFile, o.realm, s.secret); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "realm %s on %s (Keycloak %s): events, admin events and details on for %d event types\n",
		o.realm, base, s.version, s.eventTypes)
	fmt.Fprintf(stdout, "confidential client %s (service account with view-events, view-users; secret in %s)\n", confidentialClientID, o.secretFile)
	fmt.Fprintf(stdout, "public client %s (direct grant, browser flow)\n", publicClientID)
	if o.setupOnly || o.rounds == 0 {
		return nil
	}
	t := &traffic{a: a, base: base, realm: o.realm, secret: s.secret, roleID: s.roleID, publicID: s.publicID, runID: randomHex(3)}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.workers)
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r := int(next.Add(1))
				if r > o.rounds || ctx.Err() != nil {
					return
				}
				if err := t.round(ctx, r); err != nil {
					errs <- fmt.Errorf("round %d: %w", r, err)
					return
				}
				log.Info("round done", "round", r, "of", o.rounds)
				if o.interval > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(o.interval):
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintf(stdout, "%d rounds in %s: %s\n", o.rounds, time.Since(start).Round(time.Millisecond), t.counts.String())
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeSecretFile writes the realm's client ids and the confidential
// client's secret as shell exports, readable by the owner only.
func writeSecretFile(path, realm, secret string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("secret file %s: %w", path, err)
	}
	text := fmt.Sprintf("export KCEE_SEED_REALM='%s'\nexport KCEE_SEED_CLIENT_ID='%s'\nexport KCEE_SEED_CLIENT_SECRET='%s'\nexport KCEE_SEED_PUBLIC_CLIENT_ID='%s'\n",
		realm, confidentialClientID, secret, publicClientID)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return fmt.Errorf("secret file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("secret file %s: %w", path, err)
	}
	return nil
}

// httpError is a response with an unexpected status.
type httpError struct {
	what   string
	status int
	body   string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.what, e.status, e.body)
}

func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.status
	}
	return 0
}

func checkStatus(what string, resp *http.Response, want ...int) error {
	for _, w := range want {
		if resp.StatusCode == w {
			return nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return &httpError{what: what, status: resp.StatusCode, body: strings.TrimSpace(string(b))}
}

// adminAPI calls Keycloak's admin REST API as the master realm's admin,
// renewing its short-lived token before it expires.
type adminAPI struct {
	base, user, password string
	hc                   *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

func (a *adminAPI) accessToken(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && time.Now().Before(a.expires) {
		return a.token, nil
	}
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {a.user}, "password": {a.password}}
	var tok tokenResponse
	if err := postForm(ctx, a.hc, a.base+"/realms/master/protocol/openid-connect/token", form, &tok, "admin token for "+a.user); err != nil {
		return "", err
	}
	a.token = tok.AccessToken
	a.expires = time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second - 15*time.Second)
	return a.token, nil
}

// do sends a JSON request to /admin/realms... and decodes the JSON answer
// into out when out is not nil. It returns the Location header.
func (a *adminAPI) do(ctx context.Context, method, path string, in, out any) (string, error) {
	tok, err := a.accessToken(ctx)
	if err != nil {
		return "", err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+"/admin"+path, body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if err := checkStatus(method+" "+path, resp, 200, 201, 204); err != nil {
		return "", err
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return "", fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.Header.Get("Location"), nil
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
}

func postForm(ctx context.Context, hc *http.Client, u string, form url.Values, out any, what string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if err := checkStatus(what, resp, 200, 204); err != nil {
		return err
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("%s: decode: %w", what, err)
		}
	}
	return nil
}

// setupResult is what setup created or found.
type setupResult struct {
	version    string
	eventTypes int
	secret     string
	roleID     string
	publicID   string // the public client's internal id
}

func setup(ctx context.Context, a *adminAPI, realm string) (setupResult, error) {
	var res setupResult
	var info struct {
		SystemInfo struct {
			Version string `json:"version"`
		} `json:"systemInfo"`
		Enums map[string][]string `json:"enums"`
	}
	if _, err := a.do(ctx, "GET", "/serverinfo", nil, &info); err != nil {
		return res, err
	}
	res.version = info.SystemInfo.Version
	types := info.Enums["eventType"]
	if len(types) == 0 {
		return res, errors.New("serverinfo lists no event types (enums.eventType)")
	}
	res.eventTypes = len(types)

	r := "/realms/" + realm
	rep := map[string]any{"realm": realm, "enabled": true, "registrationAllowed": true, "resetPasswordAllowed": true}
	_, err := a.do(ctx, "GET", r, nil, nil)
	switch {
	case statusOf(err) == http.StatusNotFound:
		_, err = a.do(ctx, "POST", "/realms", rep, nil)
	case err == nil:
		_, err = a.do(ctx, "PUT", r, rep, nil) // only the fields given change
	}
	if err != nil {
		return res, err
	}
	// Always GET, change, PUT: a PUT that omits a field turns it off.
	var cfg map[string]any
	if _, err := a.do(ctx, "GET", r+"/events/config", nil, &cfg); err != nil {
		return res, err
	}
	cfg["eventsEnabled"] = true
	cfg["adminEventsEnabled"] = true
	cfg["adminEventsDetailsEnabled"] = true
	cfg["enabledEventTypes"] = types
	if _, err := a.do(ctx, "PUT", r+"/events/config", cfg, nil); err != nil {
		return res, err
	}

	var role struct {
		ID string `json:"id"`
	}
	if _, err := a.do(ctx, "GET", r+"/roles/"+realmRole, nil, &role); statusOf(err) == http.StatusNotFound {
		if _, err := a.do(ctx, "POST", r+"/roles", map[string]any{"name": realmRole, "description": "assigned and removed by the seed's admin operations"}, nil); err != nil {
			return res, err
		}
		if _, err := a.do(ctx, "GET", r+"/roles/"+realmRole, nil, &role); err != nil {
			return res, err
		}
	} else if err != nil {
		return res, err
	}
	res.roleID = role.ID

	confID, err := ensureClient(ctx, a, realm, map[string]any{
		"clientId": confidentialClientID, "name": "kc-event-emitter (reads events)", "enabled": true,
		"publicClient": false, "clientAuthenticatorType": "client-secret", "serviceAccountsEnabled": true,
		"standardFlowEnabled": false, "directAccessGrantsEnabled": false,
	})
	if err != nil {
		return res, err
	}
	var secret struct {
		Value string `json:"value"`
	}
	if _, err := a.do(ctx, "GET", r+"/clients/"+confID+"/client-secret", nil, &secret); err != nil {
		return res, err
	}
	res.secret = secret.Value
	var sa struct {
		ID string `json:"id"`
	}
	if _, err := a.do(ctx, "GET", r+"/clients/"+confID+"/service-account-user", nil, &sa); err != nil {
		return res, err
	}
	rmID, err := clientUUID(ctx, a, realm, "realm-management")
	if err != nil {
		return res, err
	}
	var roles []map[string]any
	for _, name := range []string{"view-events", "view-users"} {
		var role map[string]any
		if _, err := a.do(ctx, "GET", r+"/clients/"+rmID+"/roles/"+name, nil, &role); err != nil {
			return res, err
		}
		roles = append(roles, role)
	}
	if _, err := a.do(ctx, "POST", r+"/users/"+sa.ID+"/role-mappings/clients/"+rmID, roles, nil); err != nil {
		return res, err
	}

	res.publicID, err = ensureClient(ctx, a, realm, map[string]any{
		"clientId": publicClientID, "name": "demo application", "enabled": true, "publicClient": true,
		"standardFlowEnabled": true, "directAccessGrantsEnabled": true,
		"redirectUris": []string{redirectURI},
	})
	if err != nil {
		return res, err
	}
	return res, ensureAudience(ctx, a, realm, res.publicID, confidentialClientID)
}

// ensureAudience adds to the client with internal id clientUUID an audience
// mapper that puts audience in its access tokens. The confidential client
// introspects the public client's tokens, and since Keycloak 26.7 the
// introspection endpoint answers active=false to a client that is not in
// the token's audience.
func ensureAudience(ctx context.Context, a *adminAPI, realm, clientUUID, audience string) error {
	path := "/realms/" + realm + "/clients/" + clientUUID + "/protocol-mappers/models"
	name := "audience " + audience
	var mappers []struct {
		Name string `json:"name"`
	}
	if _, err := a.do(ctx, "GET", path, nil, &mappers); err != nil {
		return err
	}
	for _, m := range mappers {
		if m.Name == name {
			return nil
		}
	}
	_, err := a.do(ctx, "POST", path, map[string]any{
		"name": name, "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
		"config": map[string]string{"included.client.audience": audience, "access.token.claim": "true", "id.token.claim": "false"},
	}, nil)
	return err
}

// ensureClient creates the client unless one with its clientId exists, and
// returns its internal id.
func ensureClient(ctx context.Context, a *adminAPI, realm string, rep map[string]any) (string, error) {
	clientID := rep["clientId"].(string)
	if id, err := findClient(ctx, a, realm, clientID); err != nil || id != "" {
		return id, err
	}
	if _, err := a.do(ctx, "POST", "/realms/"+realm+"/clients", rep, nil); err != nil && statusOf(err) != http.StatusConflict {
		return "", err
	}
	return clientUUID(ctx, a, realm, clientID)
}

// findClient returns the internal id of the client, or "" when there is none.
func findClient(ctx context.Context, a *adminAPI, realm, clientID string) (string, error) {
	var found []struct {
		ID string `json:"id"`
	}
	if _, err := a.do(ctx, "GET", "/realms/"+realm+"/clients?clientId="+url.QueryEscape(clientID), nil, &found); err != nil {
		return "", err
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0].ID, nil
}

func clientUUID(ctx context.Context, a *adminAPI, realm, clientID string) (string, error) {
	id, err := findClient(ctx, a, realm, clientID)
	if err == nil && id == "" {
		err = fmt.Errorf("client %q not found in realm %s", clientID, realm)
	}
	return id, err
}

// counts tallies the operations the rounds made.
type counts struct {
	mu sync.Mutex
	n  map[string]int
	ks []string
}

func (c *counts) add(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if _, ok := c.n[kind]; !ok {
		c.ks = append(c.ks, kind)
	}
	c.n[kind]++
}

func (c *counts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	parts := make([]string, 0, len(c.ks))
	for _, k := range c.ks {
		parts = append(parts, fmt.Sprintf("%d %s", c.n[k], k))
	}
	return strings.Join(parts, ", ")
}

// traffic makes the rounds of real user and admin traffic.
type traffic struct {
	a                       *adminAPI
	base, realm, secret     string
	roleID, publicID, runID string
	counts                  counts
	// clientMu serializes the public client's updates: Keycloak 26 fails
	// concurrent updates of one client (duplicate key in client_attributes).
	clientMu sync.Mutex
}

func (t *traffic) oidc(path string) string {
	return t.base + "/realms/" + t.realm + "/protocol/openid-connect/" + path
}

// round registers one user and runs every flow once with it.
func (t *traffic) round(ctx context.Context, n int) error {
	user := fmt.Sprintf("user-%s-%d", t.runID, n)
	password := randomHex(12)
	b := newBrowser()

	code, err := b.register(ctx, t, user, password)
	if err != nil {
		return fmt.Errorf("registration of %s: %w", user, err)
	}
	t.counts.add("registrations")
	tok, err := t.exchange(ctx, b.hc, code)
	if err != nil {
		return err
	}
	if err := t.logout(ctx, tok.RefreshToken); err != nil {
		return err
	}
	t.counts.add("logouts")

	// Failed logins: a wrong password, an unknown user (direct grant), a
	// wrong password in the login form.
	for _, c := range []struct{ user, password string }{{user, "wrong-" + password}, {"nobody-" + user, password}} {
		_, err := t.passwordGrant(ctx, c.user, c.password)
		if !rejectedGrant(err) {
			return fmt.Errorf("failed login of %s: want a refusal (HTTP 401 or 400, error invalid_grant), got %v", c.user, err)
		}
		t.counts.add(fmt.Sprintf("failed logins (direct grant, HTTP %d)", statusOf(err)))
	}
	b = newBrowser()
	if _, err := b.login(ctx, t, user, "wrong-"+password); !errors.Is(err, errLoginRejected) {
		return fmt.Errorf("form login of %s with a wrong password: want a rejection, got %v", user, err)
	}
	t.counts.add("failed logins (form)")

	// Login by direct grant, refresh, userinfo, logout.
	tok, err = t.passwordGrant(ctx, user, password)
	if err != nil {
		return err
	}
	t.counts.add("logins")
	if tok, err = t.refresh(ctx, tok.RefreshToken); err != nil {
		return err
	}
	t.counts.add("token refreshes")
	if err := t.userinfo(ctx, tok.AccessToken); err != nil {
		return err
	}
	if err := t.logout(ctx, tok.RefreshToken); err != nil {
		return err
	}
	t.counts.add("logouts")

	// Login through the form (same browser: the failed attempt's session).
	code, err = b.login(ctx, t, user, password)
	if err != nil {
		return fmt.Errorf("form login of %s: %w", user, err)
	}
	t.counts.add("logins")
	if tok, err = t.exchange(ctx, b.hc, code); err != nil {
		return err
	}

	// The confidential client: client credentials, then an introspection.
	if err := t.clientLoginAndIntrospect(ctx, tok.AccessToken); err != nil {
		return err
	}
	t.counts.add("client logins")
	if err := t.logout(ctx, tok.RefreshToken); err != nil {
		return err
	}
	t.counts.add("logouts")

	return t.adminOperations(ctx, n)
}

// rejectedGrant tells whether err is the token endpoint refusing a direct
// grant's credentials. Versions answer differently (401 up to 26.5, 400 on
// 26.7), both with the OAuth error invalid_grant; what matters to the seed
// is that the attempt was made, which leaves a LOGIN_ERROR event.
func rejectedGrant(err error) bool {
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusUnauthorized && he.status != http.StatusBadRequest {
		return false
	}
	var body struct {
		Error string `json:"error"`
	}
	return json.Unmarshal([]byte(he.body), &body) == nil && body.Error == "invalid_grant"
}

func (t *traffic) passwordGrant(ctx context.Context, user, password string) (tokenResponse, error) {
	var tok tokenResponse
	form := url.Values{"grant_type": {"password"}, "client_id": {publicClientID}, "username": {user}, "password": {password}, "scope": {"openid"}}
	err := postForm(ctx, t.a.hc, t.oidc("token"), form, &tok, "direct grant login of "+user)
	return tok, err
}

func (t *traffic) refresh(ctx context.Context, refreshToken string) (tokenResponse, error) {
	var tok tokenResponse
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {publicClientID}, "refresh_token": {refreshToken}}
	err := postForm(ctx, t.a.hc, t.oidc("token"), form, &tok, "token refresh")
	return tok, err
}

func (t *traffic) exchange(ctx context.Context, hc *http.Client, code string) (tokenResponse, error) {
	var tok tokenResponse
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {publicClientID}, "code": {code}, "redirect_uri": {redirectURI}}
	err := postForm(ctx, hc, t.oidc("token"), form, &tok, "code exchange")
	return tok, err
}

func (t *traffic) logout(ctx context.Context, refreshToken string) error {
	form := url.Values{"client_id": {publicClientID}, "refresh_token": {refreshToken}}
	return postForm(ctx, t.a.hc, t.oidc("logout"), form, nil, "logout")
}

func (t *traffic) userinfo(ctx context.Context, accessToken string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.oidc("userinfo"), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := t.a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	defer resp.Body.Close()
	return checkStatus("userinfo", resp, 200)
}

func (t *traffic) clientLoginAndIntrospect(ctx context.Context, accessToken string) error {
	var tok tokenResponse
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {confidentialClientID}, "client_secret": {t.secret}}
	if err := postForm(ctx, t.a.hc, t.oidc("token"), form, &tok, "client credentials login of "+confidentialClientID); err != nil {
		return err
	}
	var active struct {
		Active bool `json:"active"`
	}
	form = url.Values{"client_id": {confidentialClientID}, "client_secret": {t.secret}, "token": {accessToken}}
	if err := postForm(ctx, t.a.hc, t.oidc("token/introspect"), form, &active, "token introspection"); err != nil {
		return err
	}
	if !active.Active {
		return errors.New("token introspection: a fresh token is not active")
	}
	return nil
}

// adminOperations makes admin events: a user created, updated, given a
// password, given and stripped of a realm role, deleted; a client updated.
func (t *traffic) adminOperations(ctx context.Context, n int) error {
	r := "/realms/" + t.realm
	name := fmt.Sprintf("admin-made-%s-%d", t.runID, n)
	loc, err := t.a.do(ctx, "POST", r+"/users", map[string]any{"username": name, "enabled": true, "email": name + "@example.test", "firstName": "Admin", "lastName": "Made"}, nil)
	if err != nil {
		return err
	}
	id := loc[strings.LastIndex(loc, "/")+1:]
	if id == "" {
		return fmt.Errorf("create user %s: no Location", name)
	}
	t.counts.add("users created")
	if _, err := t.a.do(ctx, "PUT", r+"/users/"+id, map[string]any{"firstName": "Renamed", "lastName": "Made", "email": name + "@example.test"}, nil); err != nil {
		return err
	}
	t.counts.add("users updated")
	if _, err := t.a.do(ctx, "PUT", r+"/users/"+id+"/reset-password", map[string]any{"type": "password", "value": randomHex(12), "temporary": false}, nil); err != nil {
		return err
	}
	role := []map[string]any{{"id": t.roleID, "name": realmRole}}
	if _, err := t.a.do(ctx, "POST", r+"/users/"+id+"/role-mappings/realm", role, nil); err != nil {
		return err
	}
	if _, err := t.a.do(ctx, "DELETE", r+"/users/"+id+"/role-mappings/realm", role, nil); err != nil {
		return err
	}
	t.counts.add("role mapping changes")
	t.counts.add("role mapping changes")
	if err := t.updateClient(ctx, fmt.Sprintf("updated by seed round %s-%d", t.runID, n)); err != nil {
		return err
	}
	t.counts.add("client updates")
	if _, err := t.a.do(ctx, "DELETE", r+"/users/"+id, nil, nil); err != nil {
		return err
	}
	t.counts.add("users deleted")
	return nil
}

// updateClient changes the public client's description (GET, change, PUT).
func (t *traffic) updateClient(ctx context.Context, description string) error {
	t.clientMu.Lock()
	defer t.clientMu.Unlock()
	path := "/realms/" + t.realm + "/clients/" + t.publicID
	var client map[string]any
	if _, err := t.a.do(ctx, "GET", path, nil, &client); err != nil {
		return err
	}
	client["description"] = description
	_, err := t.a.do(ctx, "PUT", path, client, nil)
	return err
}

// browser is one user agent: its own cookies, redirects followed only
// within Keycloak so that the code sent to the redirect URI can be read.
type browser struct {
	hc *http.Client
}

// httpsJar keeps Secure cookies over plain HTTP: the server is on loopback,
// where browsers treat http as a secure context too.
type httpsJar struct{ jar *cookiejar.Jar }

func asHTTPS(u *url.URL) *url.URL {
	c := *u
	c.Scheme = "https"
	return &c
}

func (j httpsJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	j.jar.SetCookies(asHTTPS(u), cookies)
}
func (j httpsJar) Cookies(u *url.URL) []*http.Cookie { return j.jar.Cookies(asHTTPS(u)) }

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{hc: &http.Client{
		Timeout: 30 * time.Second,
		Jar:     httpsJar{jar},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirectURI) || len(via) > 5 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

var errLoginRejected = errors.New("the login form came back (credentials rejected)")

// page is an HTML page of Keycloak's, or the code of the redirect to the
// client.
type page struct {
	body string
	code string
}

func (b *browser) do(ctx context.Context, method, u string, form url.Values) (page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return page{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && strings.HasPrefix(loc, redirectURI) {
		l, err := url.Parse(loc)
		if err != nil {
			return page{}, err
		}
		if e := l.Query().Get("error"); e != "" {
			return page{}, fmt.Errorf("redirected with error %s", e)
		}
		return page{code: l.Query().Get("code")}, nil
	}
	if err := checkStatus(method+" "+req.URL.Path, resp, 200, 400, 401); err != nil {
		return page{}, err
	}
	b2, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return page{body: string(b2)}, err
}

var formTag = regexp.MustCompile(`<form[^>]*>`)
var actionAttr = regexp.MustCompile(`action="([^"]*)"`)

// formAction returns the action URL of the form with the given id.
func formAction(body, id string) (string, bool) {
	for _, tag := range formTag.FindAllString(body, -1) {
		if !strings.Contains(tag, `id="`+id+`"`) {
			continue
		}
		if m := actionAttr.FindStringSubmatch(tag); m != nil {
			return html.UnescapeString(m[1]), true
		}
	}
	return "", false
}

func (t *traffic) authURL(endpoint string) string {
	q := url.Values{"client_id": {publicClientID}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {redirectURI}, "state": {randomHex(8)}}
	return t.oidc(endpoint) + "?" + q.Encode()
}

// register fills Keycloak's registration form and returns the code of the
// redirect that follows.
func (b *browser) register(ctx context.Context, t *traffic, user, password string) (string, error) {
	p, err := b.do(ctx, "GET", t.authURL("registrations"), nil)
	if err != nil {
		return "", err
	}
	action, ok := formAction(p.body, "kc-register-form")
	if !ok {
		return "", errors.New("no registration form (is registration allowed?)")
	}
	p, err = b.do(ctx, "POST", action, url.Values{
		"username": {user}, "email": {user + "@example.test"}, "firstName": {"Seed"}, "lastName": {"User"},
		"password": {password}, "password-confirm": {password},
	})
	if err != nil {
		return "", err
	}
	if p.code == "" {
		return "", fmt.Errorf("the registration form came back: %s", formError(p.body))
	}
	return p.code, nil
}

// login fills the login form (reusing the browser's session) and returns
// the code of the redirect, or errLoginRejected.
func (b *browser) login(ctx context.Context, t *traffic, user, password string) (string, error) {
	p, err := b.do(ctx, "GET", t.authURL("auth"), nil)
	if err != nil {
		return "", err
	}
	action, ok := formAction(p.body, "kc-form-login")
	if !ok {
		return "", errors.New("no login form")
	}
	p, err = b.do(ctx, "POST", action, url.Values{"username": {user}, "password": {password}, "credentialId": {""}})
	if err != nil {
		return "", err
	}
	if p.code == "" {
		if _, again := formAction(p.body, "kc-form-login"); again {
			return "", errLoginRejected
		}
		return "", fmt.Errorf("no redirect after the login form: %s", formError(p.body))
	}
	return p.code, nil
}

var feedback = regexp.MustCompile(`(?s)class="[^"]*(?:kc-feedback-text|pf-m-error|alert-error)[^"]*"[^>]*>(.*?)<`)

// formError extracts Keycloak's message from a page that came back.
func formError(body string) string {
	if m := feedback.FindStringSubmatch(body); m != nil {
		return strings.TrimSpace(html.UnescapeString(m[1]))
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return strings.TrimSpace(body)
}
