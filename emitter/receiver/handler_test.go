package receiver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testEvent is what decodeTestEvent makes of a body: the handler is generic,
// these tests need no real event type.
type testEvent struct {
	UID int64 `json:"uid"`
}

func decodeTestEvent(body []byte) (testEvent, error) {
	var e testEvent
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("test event: %w", err)
	}
	if e.UID <= 0 {
		return e, fmt.Errorf("test event: uid is %d, want > 0", e.UID)
	}
	return e, nil
}

var quiet = slog.New(slog.DiscardHandler)

// sign returns a webhook-signature value: "v1,<base64 HMAC>" of id.ts.body.
func sign(secret []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

var (
	secretA = []byte("first secret key of 32 bytes....")
	secretB = []byte("second secret key, after rotate!")
	now     = time.Unix(1_760_000_000, 0)
	nowTS   = strconv.FormatInt(now.Unix(), 10)
)

func TestHandlerAnswers(t *testing.T) {
	good := []byte(`{"uid":42}`)
	type request struct {
		method  string
		body    []byte
		chunked bool // no Content-Length: the limit must hold while reading
		user    *[2]string
		headers map[string]string
	}
	basic := &[2]string{"kc-pod-1", "s3cret"}
	cases := []struct {
		name       string
		cfg        Config[testEvent]
		handleErr  error
		req        request
		wantCode   int
		wantInBody string
		wantHandle bool
		wantHeader [2]string
	}{
		{name: "valid post without auth configured is acknowledged",
			req: request{body: good}, wantCode: 200, wantHandle: true},
		{name: "GET is refused with 405 and Allow", req: request{method: "GET"},
			wantCode: 405, wantInBody: "method GET", wantHeader: [2]string{"Allow", "POST"}},
		{name: "PUT is refused with 405", req: request{method: "PUT", body: good}, wantCode: 405},
		{name: "right Basic credentials are acknowledged",
			cfg: Config[testEvent]{Username: "kc-pod-1", Password: "s3cret"},
			req: request{body: good, user: basic}, wantCode: 200, wantHandle: true},
		{name: "missing Basic credentials get 401 and a challenge",
			cfg: Config[testEvent]{Username: "kc-pod-1", Password: "s3cret"},
			req: request{body: good}, wantCode: 401, wantInBody: "Basic",
			wantHeader: [2]string{"WWW-Authenticate", `Basic realm="kc-event-receiver", charset="UTF-8"`}},
		{name: "wrong password gets 401",
			cfg: Config[testEvent]{Username: "kc-pod-1", Password: "s3cret"},
			req: request{body: good, user: &[2]string{"kc-pod-1", "s3cre"}}, wantCode: 401},
		{name: "wrong user name gets 401",
			cfg: Config[testEvent]{Username: "kc-pod-1", Password: "s3cret"},
			req: request{body: good, user: &[2]string{"kc-pod-2", "s3cret"}}, wantCode: 401},
		{name: "any user name is accepted when only a password is configured",
			cfg: Config[testEvent]{Password: "s3cret"},
			req: request{body: good, user: &[2]string{"whatever-hostname", "s3cret"}}, wantCode: 200, wantHandle: true},
		{name: "only a password configured still refuses a wrong password",
			cfg: Config[testEvent]{Password: "s3cret"},
			req: request{body: good, user: &[2]string{"whatever-hostname", "nope"}}, wantCode: 401},
		{name: "body over the limit with Content-Length gets 413",
			cfg: Config[testEvent]{MaxBodyBytes: 8},
			req: request{body: good}, wantCode: 413, wantInBody: "limit of 8 bytes"},
		{name: "chunked body over the limit gets 413",
			cfg: Config[testEvent]{MaxBodyBytes: 8},
			req: request{body: good, chunked: true}, wantCode: 413, wantInBody: "limit of 8 bytes"},
		{name: "body exactly at the limit is acknowledged",
			cfg: Config[testEvent]{MaxBodyBytes: int64(len(good))},
			req: request{body: good, chunked: true}, wantCode: 200, wantHandle: true},
		{name: "body that is not JSON gets 400 naming the problem",
			req: request{body: []byte("not json")}, wantCode: 400, wantInBody: "decoding body: test event: invalid character"},
		{name: "body the decoder refuses gets 400 with its reason",
			req: request{body: []byte(`{"uid":-1}`)}, wantCode: 400, wantInBody: "uid is -1"},
		{name: "empty body gets 400", req: request{body: nil}, wantCode: 400, wantInBody: "EOF"},
		{name: "failing handler gets 500 so that the sender retries",
			handleErr: errors.New("disk full"), req: request{body: good}, wantCode: 500, wantHandle: true},
		{name: "unavailable handler gets 503 with Retry-After",
			handleErr: fmt.Errorf("pool: %w", ErrUnavailable), req: request{body: good},
			wantCode: 503, wantHandle: true, wantHeader: [2]string{"Retry-After", "1"}},
		{name: "handler rejecting the event gets 400 with its reason",
			handleErr: fmt.Errorf("uid 42: %w: NUL in realm", ErrRejected), req: request{body: good},
			wantCode: 400, wantHandle: true, wantInBody: "NUL in realm"},
		{name: "valid signature is acknowledged",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA}},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": nowTS, "webhook-signature": sign(secretA, "msg_1", nowTS, good)}},
			wantCode: 200, wantHandle: true},
		{name: "signature with the rotated-in secret is acknowledged",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA, secretB}},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": nowTS, "webhook-signature": sign(secretB, "msg_1", nowTS, good)}},
			wantCode: 200, wantHandle: true},
		{name: "one valid signature among several is acknowledged",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretB}},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": nowTS,
				"webhook-signature": "v1a,xyz " + sign(secretA, "msg_1", nowTS, good) + " " + sign(secretB, "msg_1", nowTS, good)}},
			wantCode: 200, wantHandle: true},
		{name: "missing signature gets 401",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA}},
			req: request{body: good}, wantCode: 401, wantInBody: "missing header webhook-id"},
		{name: "signature by an unknown secret gets 401",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA}},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": nowTS, "webhook-signature": sign(secretB, "msg_1", nowTS, good)}},
			wantCode: 401, wantInBody: "no valid v1 signature"},
		{name: "signature of another body gets 401",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA}},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": nowTS, "webhook-signature": sign(secretA, "msg_1", nowTS, []byte(`{"uid":43}`))}},
			wantCode: 401},
		{name: "signature of another webhook-id gets 401",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA}},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_2", "webhook-timestamp": nowTS, "webhook-signature": sign(secretA, "msg_1", nowTS, good)}},
			wantCode: 401},
		{name: "stale timestamp gets 401 even when signed",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA}, Tolerance: time.Minute},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": "1759999939", "webhook-signature": sign(secretA, "msg_1", "1759999939", good)}},
			wantCode: 401, wantInBody: "61s in the past"},
		{name: "timestamp from the future gets 401",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA}, Tolerance: time.Minute},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": "1760000061", "webhook-signature": sign(secretA, "msg_1", "1760000061", good)}},
			wantCode: 401, wantInBody: "61s in the future"},
		{name: "timestamp at the edge of the tolerance is acknowledged",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA}, Tolerance: time.Minute},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": "1759999940", "webhook-signature": sign(secretA, "msg_1", "1759999940", good)}},
			wantCode: 200, wantHandle: true},
		{name: "timestamp that is not a number gets 401",
			cfg: Config[testEvent]{SigningSecrets: [][]byte{secretA}},
			req: request{body: good, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": "2025-10-09T10:00:00Z", "webhook-signature": sign(secretA, "msg_1", "2025-10-09T10:00:00Z", good)}},
			wantCode: 401, wantInBody: "want Unix seconds"},
		{name: "signature checked after Basic auth: wrong password with valid signature gets 401",
			cfg: Config[testEvent]{Password: "s3cret", SigningSecrets: [][]byte{secretA}},
			req: request{body: good, user: &[2]string{"u", "bad"}, headers: map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": nowTS, "webhook-signature": sign(secretA, "msg_1", nowTS, good)}},
			wantCode: 401, wantInBody: "Basic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var handled atomic.Int32
			var handledUID atomic.Int64
			cfg := tc.cfg
			cfg.Decode = decodeTestEvent
			cfg.Handle = func(_ context.Context, e testEvent) error {
				handled.Add(1)
				handledUID.Store(e.UID)
				return tc.handleErr
			}
			cfg.Logger = quiet
			cfg.Now = func() time.Time { return now }
			h, err := NewHandler(cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()

			method := tc.req.method
			if method == "" {
				method = http.MethodPost
			}
			var body io.Reader = bytes.NewReader(tc.req.body)
			if tc.req.chunked {
				body = io.MultiReader(body) // hides the length from net/http
			}
			req, err := http.NewRequest(method, srv.URL+"/event/receiver", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tc.req.user != nil {
				req.SetBasicAuth(tc.req.user[0], tc.req.user[1])
			}
			for k, v := range tc.req.headers {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode {
				t.Errorf("status = %d (%s), want %d", resp.StatusCode, strings.TrimSpace(string(got)), tc.wantCode)
			}
			if !strings.Contains(string(got), tc.wantInBody) {
				t.Errorf("body = %q, want it to contain %q", got, tc.wantInBody)
			}
			if k := tc.wantHeader[0]; k != "" && resp.Header.Get(k) != tc.wantHeader[1] {
				t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), tc.wantHeader[1])
			}
			wantCalls := int32(0)
			if tc.wantHandle {
				wantCalls = 1
				if handledUID.Load() != 42 {
					t.Errorf("Handle got uid %d, want 42", handledUID.Load())
				}
			}
			if handled.Load() != wantCalls {
				t.Errorf("Handle called %d times, want %d", handled.Load(), wantCalls)
			}
		})
	}
}

// TestHandlerAcknowledgesOnlyAfterHandleReturned pins that the 200 is not
// written before Handle finished (a receiver that answers first loses events
// when it crashes while storing).
func TestHandlerAcknowledgesOnlyAfterHandleReturned(t *testing.T) {
	release := make(chan struct{})
	var returned atomic.Bool
	h, err := NewHandler(Config[testEvent]{
		Decode: decodeTestEvent,
		Handle: func(ctx context.Context, _ testEvent) error {
			<-release
			returned.Store(true)
			return nil
		},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	type result struct {
		code          int
		afterReturned bool
	}
	done := make(chan result, 1)
	go func() {
		resp, err := srv.Client().Post(srv.URL, "application/json", strings.NewReader(`{"uid":7}`))
		if err != nil {
			done <- result{}
			return
		}
		resp.Body.Close()
		done <- result{resp.StatusCode, returned.Load()}
	}()
	select {
	case r := <-done:
		t.Fatalf("answered %d while Handle was still running", r.code)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	r := <-done
	if r.code != 200 || !r.afterReturned {
		t.Fatalf("got status %d, after Handle returned: %v; want 200 after", r.code, r.afterReturned)
	}
}

func TestNewHandlerRefusesBadConfig(t *testing.T) {
	dec := decodeTestEvent
	handle := func(context.Context, testEvent) error { return nil }
	cases := []struct {
		name string
		cfg  Config[testEvent]
		want string
	}{
		{"no decoder", Config[testEvent]{Handle: handle}, "Decode is required"},
		{"no handler", Config[testEvent]{Decode: dec}, "Handle is required"},
		{"user name without password", Config[testEvent]{Decode: dec, Handle: handle, Username: "bob"}, `Username is "bob" but Password is empty`},
		{"negative body limit", Config[testEvent]{Decode: dec, Handle: handle, MaxBodyBytes: -1}, "MaxBodyBytes is -1"},
		{"negative tolerance", Config[testEvent]{Decode: dec, Handle: handle, Tolerance: -time.Second}, "Tolerance is -1s"},
		{"empty signing secret", Config[testEvent]{Decode: dec, Handle: handle, SigningSecrets: [][]byte{secretA, {}}}, "SigningSecrets[1] is empty"},
		{"negative unauthenticated budget", Config[testEvent]{Decode: dec, Handle: handle, MaxUnauthenticatedBytes: -1}, "MaxUnauthenticatedBytes is -1"},
		{"unauthenticated budget below the body limit", Config[testEvent]{Decode: dec, Handle: handle, MaxBodyBytes: 100, MaxUnauthenticatedBytes: 99},
			"MaxUnauthenticatedBytes is 99, below MaxBodyBytes 100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewHandler(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzHandler feeds arbitrary bodies and headers to a handler with every
// check on, and to one with signatures only (whose body is read before it
// is authenticated): neither may panic, each answers only the documented
// codes, and none accepts a request without its credentials.
func FuzzHandler(f *testing.F) {
	body := []byte(`{"uid":42}`)
	f.Add("POST", body, "msg_1", nowTS, sign(secretA, "msg_1", nowTS, body), "Basic dTpzM2NyZXQ=", false)
	f.Add("POST", []byte(`{"uid":`), "", "", "", "", true)
	f.Add("GET", []byte{}, "x", "-1", "v1,", "Basic", false)
	f.Add("POST", []byte(`{"uid":1}{"uid":2}`), "msg", "99999999999999999999", "v1,AAAA v1a,zz", "Basic !!!", true)
	f.Add("POST", body, "msg_1", "-9223372036854775808", sign(secretA, "msg_1", "-9223372036854775808", body), "", true)
	newHandler := func(password string) http.Handler {
		h, err := NewHandler(Config[testEvent]{
			Decode:         decodeTestEvent,
			Handle:         func(context.Context, testEvent) error { return nil },
			Password:       password,
			SigningSecrets: [][]byte{secretA},
			MaxBodyBytes:   64,
			Logger:         quiet,
			Now:            func() time.Time { return now },
		})
		if err != nil {
			f.Fatal(err)
		}
		return h
	}
	withBasic, signedOnly := newHandler("s3cret"), newHandler("")
	allowed := map[int]bool{200: true, 400: true, 401: true, 405: true, 413: true, 503: true}
	f.Fuzz(func(t *testing.T, method string, body []byte, id, ts, sig, authz string, chunked bool) {
		if !validMethod(method) {
			method = "POST"
		}
		for name, h := range map[string]http.Handler{"basic and signature": withBasic, "signature only": signedOnly} {
			req := httptest.NewRequest("POST", "/event/receiver", bytes.NewReader(body))
			req.Method = method
			if chunked {
				req.ContentLength = -1
			}
			req.Header.Set("webhook-id", id)
			req.Header.Set("webhook-timestamp", ts)
			req.Header.Set("webhook-signature", sig)
			req.Header.Set("Authorization", authz)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if !allowed[rec.Code] {
				t.Fatalf("%s: status %d is not a documented answer", name, rec.Code)
			}
			if rec.Code == 200 {
				if VerifySignature([][]byte{secretA}, req.Header, body, now, DefaultTolerance) != nil {
					t.Fatalf("%s: accepted a request whose signature does not verify", name)
				}
				if h == withBasic && authz != "Basic dTpzM2NyZXQ=" {
					if u, p, ok := req.BasicAuth(); !ok || p != "s3cret" {
						t.Fatalf("%s: accepted Authorization %q (user %q)", name, authz, u)
					}
				}
			}
		}
	})
}

// FuzzVerifySignature checks arbitrary headers, bodies and clocks: a
// signature made with the key over id, timestamp and body verifies exactly
// when the timestamp is within the tolerance, and one made with another key
// never does.
func FuzzVerifySignature(f *testing.F) {
	f.Add("msg_1", int64(1_760_000_000), int64(1_760_000_000), []byte(`{"uid":1}`), "v1a,x")
	f.Add("", int64(-1<<63), int64(1_760_000_000), []byte{}, "v1,AAAA")
	f.Add("m", int64(1<<63-1), int64(-5), []byte("x"), "")
	f.Fuzz(func(t *testing.T, id string, ts, clock int64, body []byte, extra string) {
		tsText := strconv.FormatInt(ts, 10)
		at := time.Unix(clock, 0)
		h := http.Header{}
		h.Set(HeaderWebhookID, id)
		h.Set(HeaderWebhookTimestamp, tsText)
		h.Set(HeaderWebhookSignature, extra+" "+sign(secretA, h.Get(HeaderWebhookID), tsText, body))
		err := VerifySignature([][]byte{secretB, secretA}, h, body, at, time.Minute)
		dist := new(big.Int).Abs(new(big.Int).Sub(big.NewInt(clock), big.NewInt(ts)))
		within := dist.Cmp(big.NewInt(60)) <= 0
		switch {
		case h.Get(HeaderWebhookID) == "":
			if err == nil {
				t.Fatal("verified without a webhook-id")
			}
		case within && err != nil:
			t.Fatalf("ts %d at %d (within the tolerance): %v", ts, clock, err)
		case !within && err == nil:
			t.Fatalf("ts %d at %d (%s s away) verified", ts, clock, dist)
		}
		h.Set(HeaderWebhookSignature, extra+" "+sign(secretB, h.Get(HeaderWebhookID), tsText, body))
		if VerifySignature([][]byte{secretA}, h, body, at, time.Minute) == nil {
			t.Fatal("a signature made with another key verified")
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}
