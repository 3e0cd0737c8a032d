package httpsender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// tokenIssuer is an OAuth2 token endpoint that issues tok-1, tok-2, ...
// (each valid for life) and a target that takes only the token issued
// last: a fetch rotates the token, and the previous one is revoked.
type tokenIssuer struct {
	life time.Duration

	mu      sync.Mutex
	issued  int
	scopes  []string
	authOK  bool
	seen    []string // Authorization headers the target got, in order
	failing bool     // the target answers 401 to every request
}

func (ti *tokenIssuer) token(w http.ResponseWriter, r *http.Request) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	user, pass, ok := r.BasicAuth()
	ti.authOK = ok && user == "emitter" && pass == "s3cret"
	if r.FormValue("grant_type") != "client_credentials" || !ti.authOK {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	ti.scopes = append(ti.scopes, r.FormValue("scope"))
	ti.issued++
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", ti.issued), "token_type": "Bearer",
		"expires_in": int(ti.life.Seconds())})
}

func (ti *tokenIssuer) target(w http.ResponseWriter, r *http.Request) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	got := r.Header.Get("Authorization")
	ti.seen = append(ti.seen, got)
	if ti.failing || got != fmt.Sprintf("Bearer tok-%d", ti.issued) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// rotate revokes the current token as an identity provider's rotation
// does: the target takes only the next one.
func (ti *tokenIssuer) rotate() {
	ti.mu.Lock()
	ti.issued++
	ti.mu.Unlock()
}

func (ti *tokenIssuer) requests() []string {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return append([]string(nil), ti.seen...)
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func oauth2Sender(t *testing.T, ti *tokenIssuer, clock *fakeClock, retry func(int, error) bool) *Sender {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", ti.token)
	mux.HandleFunc("POST /events", ti.target)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	o := options(srv.URL + "/events")
	o.OAuth2 = &OAuth2{TokenURL: srv.URL + "/token", ClientID: "emitter", ClientSecret: "s3cret", Scopes: []string{"events.write", "audit"}}
	o.Now, o.Retry = clock.now, retry
	return newSender(t, o)
}

func TestOAuth2TokenIsCachedAndRefreshedBeforeItExpires(t *testing.T) {
	ti := &tokenIssuer{life: time.Hour}
	clock := &fakeClock{t: time.Now()}
	s := oauth2Sender(t, ti, clock, nil)
	ctx := context.Background()
	for range 3 {
		if err := s.Send(ctx, event.ID, event.Body); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.TokenFetches(); n != 1 {
		t.Errorf("three sends within the token's life fetched %d tokens, want 1 (cached)", n)
	}
	clock.add(time.Hour - 31*time.Second)
	if err := s.Send(ctx, event.ID, event.Body); err != nil || s.TokenFetches() != 1 {
		t.Errorf("31s before the expiry: %v, %d fetches, want the cached token", err, s.TokenFetches())
	}
	clock.add(2 * time.Second) // 29s before: within the refresh margin
	if err := s.Send(ctx, event.ID, event.Body); err != nil || s.TokenFetches() != 2 {
		t.Errorf("29s before the expiry: %v, %d fetches, want a new token", err, s.TokenFetches())
	}
	got := ti.requests()
	want := []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the target got %q, want %q", got, want)
	}
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if !ti.authOK || len(ti.scopes) != 2 || ti.scopes[0] != "events.write audit" {
		t.Errorf("token requests: client auth %v, scopes %q", ti.authOK, ti.scopes)
	}
}

func TestOAuth2A401RefreshesTheTokenOnceAndRetriesAtOnce(t *testing.T) {
	ti := &tokenIssuer{life: time.Hour}
	clock := &fakeClock{t: time.Now()}
	var retried []int
	s := oauth2Sender(t, ti, clock, func(status int, _ error) bool {
		retried = append(retried, status)
		return status != http.StatusUnauthorized // as the answer table: a 401 holds the route
	})
	ctx := context.Background()
	if err := s.Send(ctx, event.ID, event.Body); err != nil {
		t.Fatal(err)
	}
	ti.rotate() // tok-1 revoked before its expiry
	start := time.Now()
	if err := s.Send(ctx, event.ID, event.Body); err != nil {
		t.Fatalf("after a rotation: %v, want the retry with a new token to succeed", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the retry after the 401 took %s", took)
	}
	if got, want := fmt.Sprint(ti.requests()), fmt.Sprint([]string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-3"}); got != want {
		t.Errorf("the target got %s, want %s", got, want)
	}
	if len(retried) != 0 {
		t.Errorf("the 401 went to Retry (%v): the refresh is the sender's own", retried)
	}

	// A target that refuses every token: one refresh, then the 401 is
	// the caller's (the answer table holds the route).
	ti.mu.Lock()
	ti.failing = true
	ti.mu.Unlock()
	before, fetches := len(ti.requests()), s.TokenFetches()
	err := s.Send(ctx, event.ID, event.Body)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Fatalf("a target refusing every token: %v, want the 401", err)
	}
	if n := len(ti.requests()) - before; n != 2 || s.TokenFetches() != fetches+1 {
		t.Errorf("a refusing target got %d attempts and %d new tokens, want 2 and 1", n, s.TokenFetches()-fetches)
	}
}

func TestOAuth2AFailingTokenEndpointFailsTheAttemptWithoutTheSecret(t *testing.T) {
	ti := &tokenIssuer{life: time.Hour}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", ti.token)
	mux.HandleFunc("POST /events", ti.target)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	o := options(srv.URL + "/events")
	o.OAuth2 = &OAuth2{TokenURL: srv.URL + "/token", ClientID: "emitter", ClientSecret: "wrong-secret"}
	var errs []error
	o.Retry = func(_ int, err error) bool { errs = append(errs, err); return false }
	s := newSender(t, o)
	err := s.Send(context.Background(), event.ID, event.Body)
	if err == nil || len(errs) != 1 {
		t.Fatalf("Send = %v (retry saw %v), want the token endpoint's refusal", err, errs)
	}
	if msg := err.Error(); !strings.Contains(msg, "OAuth2 token from "+srv.URL+"/token") || strings.Contains(msg, "wrong-secret") {
		t.Errorf("error %q: want it to name the token endpoint and not the secret", msg)
	}
	if len(ti.requests()) != 0 {
		t.Errorf("the target got %d requests without a token", len(ti.requests()))
	}
}

func TestOAuth2AndBasicAuthDoNotGoTogether(t *testing.T) {
	o := options("http://127.0.0.1:9/x")
	o.Password = "pw"
	o.OAuth2 = &OAuth2{TokenURL: "http://127.0.0.1:9/t", ClientID: "c", ClientSecret: "s"}
	if _, err := New(o); err == nil {
		t.Fatal("New accepted OAuth2 with a Basic auth password")
	}
}
