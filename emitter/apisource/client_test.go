package apisource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewRejectsIncompleteConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no base URL", Config{ClientID: "c", ClientSecret: "s"}, "BaseURL is empty"},
		{"base URL without scheme", Config{BaseURL: "127.0.0.1:8080", ClientID: "c", ClientSecret: "s"}, "127.0.0.1:8080"},
		{"no credentials", Config{BaseURL: "http://127.0.0.1"}, "no credentials"},
		{"secret without client", Config{BaseURL: "http://127.0.0.1", ClientSecret: "s"}, "ClientID is empty"},
		{"user without password", Config{BaseURL: "http://127.0.0.1", Username: "admin"}, `Username "admin"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// authServer issues numbered tokens ("t1", "t2", ...) living expiresIn
// seconds and answers GET /admin/realms with handler.
type authServer struct {
	*httptest.Server
	tokens    atomic.Int32
	expiresIn int
}

func newAuthServer(t *testing.T, expiresIn int, handler func(w http.ResponseWriter, r *http.Request, token string)) *authServer {
	s := &authServer{expiresIn: expiresIn}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /realms/demo/protocol/openid-connect/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.PostForm.Get("client_secret") != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"unauthorized_client","error_description":"Invalid client or Invalid client credentials"}`)
			return
		}
		n := s.tokens.Add(1)
		fmt.Fprintf(w, `{"access_token":"t%d","expires_in":%d}`, n, s.expiresIn)
	})
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		handler(w, r, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestTokenIsReusedUntilNearExpiryThenRenewed(t *testing.T) {
	var seen []string
	srv := newAuthServer(t, 60, func(w http.ResponseWriter, r *http.Request, tok string) {
		seen = append(seen, tok)
		fmt.Fprint(w, `[]`)
	})
	c := testClient(t, srv.URL)
	now := time.Now()
	c.now = func() time.Time { return now }
	ctx := context.Background()
	for _, step := range []time.Duration{0, 20 * time.Second, 27 * time.Second, 49 * time.Second} {
		now = now.Add(step)
		if _, err := c.Realms(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// 60s tokens are renewed once 48s have passed (a fifth of the lifetime left).
	if want := "t1 t1 t1 t2"; strings.Join(seen, " ") != want {
		t.Fatalf("tokens used %v, want %s", seen, want)
	}
}

func TestUnauthorizedTriggersOneReauthenticationAndRetry(t *testing.T) {
	srv := newAuthServer(t, 300, func(w http.ResponseWriter, r *http.Request, tok string) {
		if tok == "t1" { // revoked, e.g. the server restarted
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `[{"id":"r1","realm":"demo"}]`)
	})
	c := testClient(t, srv.URL)
	realms, err := c.Realms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(realms) != 1 || realms[0] != (Realm{ID: "r1", Name: "demo"}) {
		t.Fatalf("realms %v", realms)
	}
	if n := srv.tokens.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}
}

func TestUnauthorizedAfterReauthenticationIsAnErrorNotALoop(t *testing.T) {
	var calls atomic.Int32
	srv := newAuthServer(t, 300, func(w http.ResponseWriter, r *http.Request, tok string) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	})
	c := testClient(t, srv.URL)
	_, err := c.Events(context.Background(), "demo", Query{})
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Fatalf("err %v, want a 401 StatusError", err)
	}
	if calls.Load() != 2 || srv.tokens.Load() != 2 {
		t.Fatalf("%d calls and %d token requests, want 2 and 2", calls.Load(), srv.tokens.Load())
	}
}

func TestForbiddenErrorNamesTheMissingRole(t *testing.T) {
	srv := newAuthServer(t, 300, func(w http.ResponseWriter, r *http.Request, tok string) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":"HTTP 403 Forbidden"}`)
	})
	c := testClient(t, srv.URL)
	ctx := context.Background()
	_, errEvents := c.Events(ctx, "demo", Query{})
	_, errAdmin := c.AdminEvents(ctx, "demo", Query{})
	_, errUser := c.Username(ctx, "demo", "u1")
	for _, tt := range []struct {
		err  error
		role string
	}{{errEvents, `"view-events"`}, {errAdmin, `"view-events"`}, {errUser, `"view-users"`}} {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.role) || !strings.Contains(tt.err.Error(), "403") {
			t.Errorf("error %v, want a 403 naming role %s", tt.err, tt.role)
		}
	}
}

func TestServerErrorsAreRetriedWithBackoffThenReported(t *testing.T) {
	var calls atomic.Int32
	srv := newAuthServer(t, 300, func(w http.ResponseWriter, r *http.Request, tok string) {
		n := calls.Add(1)
		if r.URL.Path == "/admin/realms/flaky/events" && n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/admin/realms/broken/events" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, `[]`)
	})
	c := testClient(t, srv.URL) // RetryMax 4
	ctx := context.Background()
	if _, err := c.Events(ctx, "flaky", Query{}); err != nil {
		t.Fatalf("two 503s then 200: %v", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", calls.Load())
	}
	calls.Store(0)
	_, err := c.Events(ctx, "broken", Query{})
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 500 {
		t.Fatalf("err %v, want a 500 StatusError", err)
	}
	if calls.Load() != 5 {
		t.Fatalf("%d calls, want 5 (1 + RetryMax 4)", calls.Load())
	}
}

func TestConnectionErrorsAreRetriedThenReported(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			conn.Close() // reset before any response
		}
	}()
	t.Cleanup(func() { ln.Close() })
	c := testClient(t, "http://"+ln.Addr().String())
	_, err = c.Events(context.Background(), "demo", Query{})
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("err %v, want a token error", err)
	}
	if accepts.Load() < 5 {
		t.Fatalf("%d connections, want 5 (1 + RetryMax 4)", accepts.Load())
	}
}

func TestSecretsAppearNeitherInErrorsNorInLogs(t *testing.T) {
	srv := newAuthServer(t, 300, func(w http.ResponseWriter, r *http.Request, tok string) {
		w.WriteHeader(http.StatusUnauthorized)
	})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	good, _ := New(Config{BaseURL: srv.URL, AuthRealm: "demo", ClientID: "kc-event-emitter", ClientSecret: "s3cret", Logger: log})
	_, err1 := good.Events(context.Background(), "demo", Query{})
	bad, _ := New(Config{BaseURL: srv.URL, AuthRealm: "demo", ClientID: "kc-event-emitter", ClientSecret: "wrong-s3cret", Logger: log})
	_, err2 := bad.Events(context.Background(), "demo", Query{})
	if err2 == nil || !strings.Contains(err2.Error(), "Invalid client credentials") {
		t.Fatalf("bad secret: %v, want the token endpoint's error", err2)
	}
	var se *StatusError
	if !errors.As(err2, &se) || se.StatusCode != http.StatusUnauthorized || se.Method != http.MethodPost {
		t.Fatalf("bad secret: %v, want a StatusError of the token request with status 401", err2)
	}
	log.Info("config", "cfg", bad.cfg)
	all := fmt.Sprint(err1, err2) + logs.String()
	for _, secret := range []string{"s3cret", "Bearer t"} {
		if strings.Contains(all, secret) {
			t.Fatalf("%q leaked:\n%s", secret, all)
		}
	}
}

func TestRealmsKeepsConfiguredRealmsAndNamesAMissingOne(t *testing.T) {
	srv := newAuthServer(t, 300, func(w http.ResponseWriter, r *http.Request, tok string) {
		fmt.Fprint(w, `[{"id":"m","realm":"master"},{"id":"d","realm":"demo"}]`)
	})
	c := testClient(t, srv.URL)
	c.cfg.Realms = []string{"demo"}
	got, err := c.Realms(context.Background())
	if err != nil || len(got) != 1 || got[0].ID != "d" {
		t.Fatalf("Realms: %v, %v; want only demo", got, err)
	}
	c.cfg.Realms = []string{"demo", "nope"}
	if _, err := c.Realms(context.Background()); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("err %v, want one naming realm \"nope\"", err)
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		sync bool
		bad  bool
	}{
		{in: "26.5.6", want: Version{26, 5, 6, "26.5.6"}, sync: true},
		{in: "26.2.0", want: Version{26, 2, 0, "26.2.0"}, sync: true},
		{in: "26.1.4", want: Version{26, 1, 4, "26.1.4"}},
		{in: "25.0.6", want: Version{25, 0, 6, "25.0.6"}},
		{in: "999.0.0-SNAPSHOT", want: Version{999, 0, 0, "999.0.0-SNAPSHOT"}, sync: true},
		{in: "27.0", want: Version{27, 0, 0, "27.0"}, sync: true},
		{in: "banana", bad: true},
		{in: "26", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseVersion(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want || got.AtLeast(26, 2) != tt.sync {
			t.Errorf("ParseVersion(%q) = %+v, %v; want %+v, sync %v", tt.in, got, err, tt.want, tt.sync)
		}
	}
}

func TestSupportsSyncProbesWhenServerInfoHidesTheVersion(t *testing.T) {
	for _, tt := range []struct {
		name   string
		legacy bool
		info   string
		want   bool
	}{
		{"version shown, new", true, `{"systemInfo":{"version":"26.5.6"}}`, true},
		{"version shown, old", false, `{"systemInfo":{"version":"24.0.5"}}`, false},
		{"version hidden, server takes epoch ms", false, `{"enums":{}}`, true},
		{"version hidden, server rejects epoch ms", true, `{"enums":{}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newEventsServer(t, tt.legacy, nil)
			srv.Config.Handler.(*http.ServeMux).HandleFunc("GET /admin/serverinfo", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, tt.info)
			})
			got, err := testClient(t, srv.URL).SupportsSync(context.Background(), "demo")
			if err != nil || got != tt.want {
				t.Fatalf("SupportsSync = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
