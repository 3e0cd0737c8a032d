package httpsender

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var event = message{ID: "7338720473829523456", Body: []byte(`{"type":"LOGIN","uid":7338720473829523456}`)}

// options returns Options for url with short waits, so that retries are quick.
func options(url string) Options {
	return Options{
		URL:            url,
		ConnectTimeout: 5 * time.Second,
		RequestTimeout: 5 * time.Second,
		SocketTimeout:  5 * time.Second,
		RetryWaitMin:   time.Millisecond,
		RetryWaitMax:   5 * time.Millisecond,
	}
}

func newSender(t *testing.T, o Options) *Sender {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.CloseIdleConnections)
	return s
}

// sendWithin calls Send with ctx and fails the test if it has not
// returned after limit: the behaviour under test must end the call, not
// the test's patience.
func sendWithin(t *testing.T, s *Sender, ctx context.Context, m message, limit time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Send(ctx, m.ID, m.Body) }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("Send has not returned after %s", limit)
		return nil
	}
}

// statusServer answers the i-th request (from 0) with statuses[i], the last
// one for all later requests, and counts the requests.
func statusServer(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		i := int(n.Add(1)) - 1
		w.WriteHeader(statuses[min(i, len(statuses)-1)])
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestNewRejectsBadOptions(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no URL", func(o *Options) { o.URL = "" }, "scheme"},
		{"ftp", func(o *Options) { o.URL = "ftp://127.0.0.1/x" }, `"ftp"`},
		{"no host", func(o *Options) { o.URL = "http:///x" }, "no host"},
		{"credentials in URL", func(o *Options) { o.URL = "http://u:secret@127.0.0.1/x" }, "credentials"},
		{"negative connect timeout", func(o *Options) { o.ConnectTimeout = -1 }, "ConnectTimeout"},
		{"negative socket timeout", func(o *Options) { o.SocketTimeout = -1 }, "SocketTimeout"},
		{"negative max conns", func(o *Options) { o.MaxConns = -2 }, "MaxConns is -2"},
		{"max wait below min", func(o *Options) { o.RetryWaitMin, o.RetryWaitMax = time.Second, time.Millisecond }, "RetryWaitMax"},
		{"missing CA file", func(o *Options) { o.URL = "https://127.0.0.1/"; o.CAFile = "/nonexistent/ca.pem" }, "/nonexistent/ca.pem"},
		{"CA file without PEM", func(o *Options) { o.URL = "https://127.0.0.1/"; o.CAFile = p.clientKey }, "no PEM certificate"},
		{"cert without key", func(o *Options) { o.URL = "https://127.0.0.1/"; o.ClientCertFile = p.clientCert }, "both or neither"},
		{"TLS files for http", func(o *Options) { o.CAFile = p.caFile }, "not https"},
		{"empty secret", func(o *Options) { o.SigningSecrets = []string{"whsec_"} }, `SigningSecrets[0]`},
		{"secret not base64", func(o *Options) { o.SigningSecrets = []string{"whsec_c2VjcmV0", "whsec_!!"} }, `SigningSecrets[1]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options("http://127.0.0.1:1/events")
			tc.edit(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret@") || strings.Contains(err.Error(), "!!") {
				t.Errorf("error %q quotes secret material", err)
			}
		})
	}
}

func TestSendPostsTheBodyAsJSONWithBasicAuth(t *testing.T) {
	for _, tc := range []struct {
		name, user, pass string
		wantAuth         bool
	}{
		{"basic auth", "keycloak-0", "s3cret", true},
		{"no password, no header", "keycloak-0", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *http.Request
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r
				body, _ = io.ReadAll(r.Body)
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			o := options(srv.URL + "/event/receiver")
			o.Username, o.Password = tc.user, tc.pass
			s := newSender(t, o)
			if err := s.Send(context.Background(), event.ID, event.Body); err != nil {
				t.Fatal(err)
			}
			if got.Method != http.MethodPost || got.URL.Path != "/event/receiver" ||
				got.Header.Get("Content-Type") != "application/json" || string(body) != string(event.Body) {
				t.Errorf("got %s %s %q %q", got.Method, got.URL.Path, got.Header.Get("Content-Type"), body)
			}
			user, pass, ok := got.BasicAuth()
			if ok != tc.wantAuth || (ok && (user != tc.user || pass != tc.pass)) {
				t.Errorf("Basic auth = %q %q %v, want %q %q %v", user, pass, ok, tc.user, tc.pass, tc.wantAuth)
			}
			if got.Header.Get("webhook-signature") != "" {
				t.Error("signed without signing secrets")
			}
			if s.LastSuccess().IsZero() || s.LastError() != nil {
				t.Errorf("LastSuccess %v, LastError %v after a success", s.LastSuccess(), s.LastError())
			}
		})
	}
}

// TestSendSignsEveryAttemptWithStandardWebhooks checks the three headers
// against an HMAC computed here: a constant webhook-id, the timestamp of
// each attempt, one v1 signature per secret.
func TestSendSignsEveryAttemptWithStandardWebhooks(t *testing.T) {
	keys := [][]byte{[]byte("first key"), []byte("second key, rotated in")}
	var mu sync.Mutex
	var headers []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		headers = append(headers, r.Header.Clone())
		n := len(headers)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	o := options(srv.URL)
	for _, k := range keys {
		o.SigningSecrets = append(o.SigningSecrets, "whsec_"+base64.StdEncoding.EncodeToString(k))
	}
	var clock atomic.Int64
	clock.Store(1_700_000_000)
	o.Now = func() time.Time { return time.Unix(clock.Add(60), 0) }
	s := newSender(t, o)
	if err := s.Send(context.Background(), event.ID, event.Body); err != nil {
		t.Fatal(err)
	}
	if len(headers) != 2 {
		t.Fatalf("%d requests, want 2", len(headers))
	}
	var stamps []string
	for _, h := range headers {
		ts := h.Get("webhook-timestamp")
		stamps = append(stamps, ts)
		if h.Get("webhook-id") != event.ID {
			t.Errorf("webhook-id %q, want %q", h.Get("webhook-id"), event.ID)
		}
		var want []string
		for _, k := range keys {
			mac := hmac.New(sha256.New, k)
			fmt.Fprintf(mac, "%s.%s.%s", event.ID, ts, event.Body)
			want = append(want, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		}
		if got := h.Get("webhook-signature"); got != strings.Join(want, " ") {
			t.Errorf("webhook-signature %q, want %q", got, strings.Join(want, " "))
		}
	}
	if stamps[0] == stamps[1] {
		t.Errorf("both attempts carry webhook-timestamp %s: a retry must be signed afresh", stamps[0])
	}
}

func TestSendRetriesFailuresUntilA2xx(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int
	}{
		{"500 then 200", []int{500, 200}},
		{"502, 504 then 201", []int{502, 504, 201}},
		{"redirect is not followed but retried", []int{301, 307, 202}},
		{"other 4xx and 501 are retried", []int{405, 409, 501, 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := statusServer(t, tc.statuses...)
			log, logs := newLogger()
			o := options(srv.URL)
			o.Password = "p4ssw0rd-never-logged"
			o.Logger = log
			s := newSender(t, o)
			if err := s.Send(context.Background(), event.ID, event.Body); err != nil {
				t.Fatal(err)
			}
			if int(n.Load()) != len(tc.statuses) {
				t.Errorf("%d requests, want %d", n.Load(), len(tc.statuses))
			}
			out := logs.String()
			if c := strings.Count(out, "level=INFO msg=\"delivery attempt failed, retrying\""); c != len(tc.statuses)-1 {
				t.Errorf("%d INFO retry lines, want %d:\n%s", c, len(tc.statuses)-1, out)
			}
			if !strings.Contains(out, fmt.Sprintf("status=%d", tc.statuses[0])) || !strings.Contains(out, "uid="+event.ID) {
				t.Errorf("the retry log lacks the status or the uid:\n%s", out)
			}
			if strings.Contains(out, o.Password) || strings.Contains(out, "LOGIN") {
				t.Errorf("the log holds the password or the body:\n%s", out)
			}
		})
	}
}

// refuse returns a Retry that refuses the given statuses and retries
// everything else.
func refuse(statuses ...int) func(int, error) bool {
	return func(status int, _ error) bool { return !slices.Contains(statuses, status) }
}

func TestSendReturnsTheAnswersRetryRefusesAtOnceAndRetriesTheOthers(t *testing.T) {
	long := strings.Repeat("x", 2000)
	for _, status := range []int{400, 401, 404, 409, 500} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(status)
				io.WriteString(w, "bad event: "+long)
			}))
			defer srv.Close()
			o := options(srv.URL)
			o.Retry = refuse(status)
			s := newSender(t, o)
			err := s.Send(context.Background(), event.ID, event.Body)
			serr, ok := errors.AsType[*StatusError](err)
			if !ok || serr.Status != status || serr.StatusCode() != status {
				t.Fatalf("Send = %v, want a *StatusError with status %d", err, status)
			}
			if !strings.HasPrefix(serr.Body, "bad event: x") || len(serr.Body) > bodyExcerpt {
				t.Errorf("Body is %d bytes starting %.20q, want the first %d bytes of the answer", len(serr.Body), serr.Body, bodyExcerpt)
			}
			if serr.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter = %s, want the 7s the answer asked for", serr.RetryAfter)
			}
			if n.Load() != 1 {
				t.Errorf("%d requests, want 1", n.Load())
			}
			if _, ok := errors.AsType[*StatusError](s.LastError()); !ok || s.Failing() {
				t.Errorf("LastError = %v, Failing = %v; want the answer, not failing", s.LastError(), s.Failing())
			}
		})
	}
	// A status Retry accepts is retried until the target takes the event.
	srv, n := statusServer(t, 404, 404, 200)
	o := options(srv.URL)
	o.Retry = refuse(400)
	if err := newSender(t, o).Send(context.Background(), event.ID, event.Body); err != nil || n.Load() != 3 {
		t.Errorf("Send = %v after %d requests, want nil after 3", err, n.Load())
	}
}

// TestSendHonoursRetryAfter checks that the wait before the next attempt
// is the one the target asked for, not the (much shorter) backoff.
func TestSendHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		status int
		header func(now time.Time) string
	}{
		{http.StatusTooManyRequests, func(time.Time) string { return "1" }},
		{http.StatusServiceUnavailable, func(now time.Time) string { return now.Add(2 * time.Second).UTC().Format(http.TimeFormat) }},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			var mu sync.Mutex
			var at []time.Time
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				at = append(at, time.Now())
				first := len(at) == 1
				mu.Unlock()
				if first {
					w.Header().Set("Retry-After", tc.header(time.Now()))
					w.WriteHeader(tc.status)
				}
			}))
			defer srv.Close()
			o := options(srv.URL)
			o.RetryWaitMax = 3 * time.Second // the longest wait; Retry-After asks for less
			s := newSender(t, o)
			if err := s.Send(context.Background(), event.ID, event.Body); err != nil {
				t.Fatal(err)
			}
			if len(at) != 2 {
				t.Fatalf("%d requests, want 2", len(at))
			}
			// An HTTP date has whole seconds: 2 s from now is at least 1 s.
			if gap := at[1].Sub(at[0]); gap < time.Second {
				t.Errorf("retried after %s, the target asked for at least 1s", gap)
			}
		})
	}
}

func TestRetryAfterParsesSecondsAndDates(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"120", 2 * time.Minute, true},
		{"0", 0, true},
		{"-5", 0, false},
		{"soon", 0, false},
		{"Sat, 01 Mar 2025 12:00:30 GMT", 30 * time.Second, true},
		{"Sat, 01 Mar 2025 11:00:00 GMT", 0, true},
		{"999999999", maxRetryAfter, true},
	} {
		got, ok := retryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %s %v, want %s %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBackoffGrowsExponentiallyWithJitterUpToTheCap(t *testing.T) {
	s := &Sender{now: time.Now}
	lo, hi := 100*time.Millisecond, 3*time.Second
	for n, ceiling := range []time.Duration{100, 200, 400, 800, 1600, 3000, 3000} {
		ceiling *= time.Millisecond
		if ceiling > hi {
			ceiling = hi
		}
		for range 50 {
			if d := s.backoff(lo, hi, n, nil); d < ceiling/2 || d > ceiling {
				t.Fatalf("backoff(attempt %d) = %s, want within [%s, %s]", n, d, ceiling/2, ceiling)
			}
		}
	}
	if d := s.backoff(lo, hi, 1000, nil); d < hi/2 || d > hi {
		t.Errorf("backoff(attempt 1000) = %s, want within the cap", d)
	}
}

func TestSendReturnsTheLastFailureWhenTheContextEnds(t *testing.T) {
	srv, n := statusServer(t, http.StatusInternalServerError)
	s := newSender(t, options(srv.URL))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for n.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err := sendWithin(t, s, ctx, event, 10*time.Second)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "500") {
		t.Errorf("Send = %v, want context.Canceled and the last 500", err)
	}
	if s.LastError() == nil || !s.LastSuccess().IsZero() {
		t.Errorf("LastError %v, LastSuccess %v after failures only", s.LastError(), s.LastSuccess())
	}
}

// TestConnectTimeoutEndsAConnectThatHangs dials a listener whose accept
// queue is full (the SYN goes unanswered) and a server that never answers
// the TLS handshake: each attempt must end at the connect timeout, so the
// error of the context's end carries ErrConnectTimeout.
func TestConnectTimeoutEndsAConnectThatHangs(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
	}{
		{"TCP connect to a full backlog", "http://" + fullBacklogAddr(t) + "/"},
		{"TLS handshake never answered", "https://" + silentAddr(t) + "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options(tc.url)
			o.ConnectTimeout = 100 * time.Millisecond
			s := newSender(t, o)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := sendWithin(t, s, ctx, event, 10*time.Second)
			if !errors.Is(err, ErrConnectTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Send = %v, want attempts ended by ErrConnectTimeout", err)
			}
			if !errors.Is(s.LastError(), ErrConnectTimeout) {
				t.Errorf("LastError = %v", s.LastError())
			}
		})
	}
}

// TestRequestTimeoutEndsTheWaitForABusyConnection holds the only
// connection of a MaxConns=1 sender busy: a second Send cannot get one and
// each of its attempts ends at the request timeout; once the connection is
// free it gets through.
func TestRequestTimeoutEndsTheWaitForABusyConnection(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	arrived := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-release
	}))
	defer srv.Close()
	defer free() // before srv.Close, which waits for the handler
	o := options(srv.URL)
	o.MaxConns = 1
	o.RequestTimeout = 100 * time.Millisecond
	s := newSender(t, o)
	first := make(chan error, 1)
	go func() { first <- s.Send(context.Background(), event.ID, event.Body) }()
	<-arrived

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := sendWithin(t, s, ctx, event, 10*time.Second)
	if !errors.Is(err, ErrRequestTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Send = %v, want attempts ended by ErrRequestTimeout", err)
	}
	free()
	if err := <-first; err != nil {
		t.Fatalf("first Send = %v", err)
	}
	if err := sendWithin(t, s, context.Background(), event, 10*time.Second); err != nil {
		t.Errorf("Send once the connection is free = %v", err)
	}
}

// stallingServer answers its first request with stall (which must block
// until done is closed) and later ones with 200.
func stallingServer(t *testing.T, stall func(w http.ResponseWriter, done <-chan struct{})) (*httptest.Server, *atomic.Int32) {
	done := make(chan struct{})
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.Add(1) == 1 {
			stall(w, done)
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv, &n
}

func TestSocketTimeoutEndsSilence(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stall    func(w http.ResponseWriter, done <-chan struct{})
		requests int32
	}{
		{"slow headers", func(w http.ResponseWriter, done <-chan struct{}) { <-done }, 2},
		{"500 whose body stalls", func(w http.ResponseWriter, done <-chan struct{}) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			<-done
		}, 2},
		// The event is acknowledged by the status: a body that then
		// stalls must not hold the sender, nor make it send again.
		{"200 whose body stalls", func(w http.ResponseWriter, done <-chan struct{}) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			<-done
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := stallingServer(t, tc.stall)
			log, logs := newLogger()
			o := options(srv.URL)
			o.SocketTimeout = 200 * time.Millisecond
			o.Logger = log
			s := newSender(t, o)
			if err := sendWithin(t, s, context.Background(), event, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if n.Load() != tc.requests {
				t.Errorf("%d requests, want %d", n.Load(), tc.requests)
			}
			if tc.requests > 1 && !strings.Contains(logs.String(), "socket timeout") && !strings.Contains(logs.String(), "500") {
				t.Errorf("the retry log names neither the socket timeout nor the status:\n%s", logs)
			}
		})
	}
}

// TestSocketTimeoutBoundsSilenceNotTheTotal trickles a response one byte at
// a time, each within the socket timeout but the whole well beyond it: the
// attempt must succeed.
func TestSocketTimeoutBoundsSilenceNotTheTotal(t *testing.T) {
	const gap, timeout = 10 * time.Millisecond, 400 * time.Millisecond
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 60\r\nX-Padding: " + strings.Repeat("p", 50) + "\r\n\r\n" + strings.Repeat("b", 60)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		for i := range len(resp) {
			time.Sleep(gap)
			buf.WriteByte(resp[i])
			if err := buf.Flush(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	o := options(srv.URL)
	o.SocketTimeout = timeout
	s := newSender(t, o)
	start := time.Now()
	if err := sendWithin(t, s, context.Background(), event, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1: the trickle must not time out", n.Load())
	}
	if took := time.Since(start); took < 2*timeout {
		t.Fatalf("the response took %s, less than twice the socket timeout: the test proves nothing", took)
	}
}

func TestSendVerifiesTheTargetWithTheCAFileAndPresentsTheClientCertificate(t *testing.T) {
	p := newPKI(t)
	srvCert, srvKey := p.issue(t, t.TempDir(), "server", x509.ExtKeyUsageServerAuth)
	cert, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	var peer atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}
	srv.StartTLS()
	defer srv.Close()

	o := options(srv.URL)
	o.CAFile, o.ClientCertFile, o.ClientKeyFile = p.caFile, p.clientCert, p.clientKey
	if err := newSender(t, o).Send(context.Background(), event.ID, event.Body); err != nil {
		t.Fatal(err)
	}
	if peer.Load() != "client" {
		t.Errorf("the server saw client certificate %v", peer.Load())
	}

	// Without the CA the target's certificate is unknown: every attempt fails.
	o = options(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := newSender(t, o).Send(ctx, event.ID, event.Body); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Send without the CA file = %v, want a certificate error", err)
	}

	// A Retry that refuses the failure ends Send at once with it, its URL
	// without the query.
	o = options(srv.URL + "/?token=s3cret")
	var seen error
	o.Retry = func(status int, err error) bool {
		seen = err
		return status != 0
	}
	s := newSender(t, o)
	err = sendWithin(t, s, context.Background(), event, 5*time.Second)
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok || seen == nil {
		t.Fatalf("Send = %v (Retry saw %v), want the certificate verification error", err, seen)
	}
	if strings.Contains(err.Error(), "s3cret") || !s.Failing() {
		t.Errorf("Send = %q, Failing = %v; want no query, failing", err, s.Failing())
	}
}

// BenchmarkSend measures events/s through Send against a minimal local
// receiver: one connection (one Send after the other, as strict order
// delivers) and several connections used by as many goroutines.
func BenchmarkSend(b *testing.B) {
	body := []byte(`{"time":1700000000000,"type":"LOGIN","realmId":"8c1b8e83-6c1e-4a25-8d55-2f1f2a7e0f6e",` +
		`"clientId":"account-console","userId":"0b2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f","sessionId":"1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",` +
		`"ipAddress":"10.0.0.7","error":null,"details":{"auth_method":"openid-connect","username":"alice"},"uid":7338720473829523456,"id":"e7a9"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	// The floor: net/http alone, no retries, no pool limit, no auth.
	b.Run("net/http alone, conns=1", func(b *testing.B) {
		c := &http.Client{}
		defer c.CloseIdleConnections()
		cpu0 := processCPU(b)
		for range b.N {
			resp, err := c.Post(srv.URL, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
	})
	for _, conns := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			o := options(srv.URL)
			o.MaxConns = conns
			o.Username, o.Password = "keycloak-0", "bridge-token"
			s, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.CloseIdleConnections()
			m := message{ID: "7338720473829523456", Body: body}
			b.SetParallelism((conns + 1) / 2) // GOMAXPROCS is 2 here: conns goroutines
			b.ResetTimer()
			cpu0 := processCPU(b)
			if conns == 1 {
				for range b.N {
					if err := s.Send(context.Background(), m.ID, m.Body); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := s.Send(context.Background(), m.ID, m.Body); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}

func TestRetryLogsAndErrorsMaskTheSecretParametersOfTheTargetURL(t *testing.T) {
	log, logs := newLogger()
	o := options("http://" + fullBacklogAddr(t) + "/events?realm=demo&token=s3cr3t-in-query&code=s3cr3t-code")
	o.ConnectTimeout = 50 * time.Millisecond
	o.Logger = log
	s := newSender(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := s.Send(ctx, event.ID, event.Body)
	if err == nil || !strings.Contains(logs.String(), "connect timeout") {
		t.Fatalf("Send = %v; logs:\n%s", err, logs)
	}
	for _, text := range []string{logs.String(), err.Error(), s.LastError().Error()} {
		if strings.Contains(text, "s3cr3t") {
			t.Errorf("a secret of the query leaked: %s", text)
		}
	}
	if !strings.Contains(logs.String(), "realm=demo&token=xxxxx&code=xxxxx") {
		t.Errorf("the logs do not show the URL with its secrets masked and its other parameters kept:\n%s", logs)
	}
	if !errors.Is(s.LastError(), ErrConnectTimeout) {
		t.Errorf("LastError() = %v, want one matching ErrConnectTimeout", s.LastError())
	}
}

// TestSendReusesConnectionsAndStaysWithinMaxConns counts the connections a
// server sees: sequential sends share one, concurrent ones never open more
// than MaxConns.
func TestSendReusesConnectionsAndStaysWithinMaxConns(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(time.Millisecond)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	o := options(srv.URL)
	o.MaxConns = 3
	s := newSender(t, o)
	for range 10 {
		if err := s.Send(context.Background(), event.ID, event.Body); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("10 sequential sends opened %d connections, want 1", n)
	}
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			if err := s.Send(context.Background(), event.ID, event.Body); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := conns.Load(); n > 3 {
		t.Errorf("12 concurrent sends opened %d connections in all, want at most MaxConns 3", n)
	}
}

// TestSocketTimeoutEndsSlowHeadersOverTLS checks that the socket timeout
// also bounds a TLS connection once its handshake is done.
func TestSocketTimeoutEndsSlowHeadersOverTLS(t *testing.T) {
	done := make(chan struct{})
	var n atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.Add(1) == 1 {
			<-done
		}
	}))
	defer srv.Close()
	defer close(done)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, ca, "CERTIFICATE", srv.Certificate().Raw)
	o := options(srv.URL)
	o.CAFile = ca
	o.SocketTimeout = 200 * time.Millisecond
	s := newSender(t, o)
	if err := sendWithin(t, s, context.Background(), event, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2 (the first cut by the socket timeout)", n.Load())
	}
}

// processCPU returns the CPU time (user and system) the test process has
// used: client and receiver share the process, so per event it is the
// cost of both ends, which the load of other processes does not inflate as
// it does the wall-clock rate.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
