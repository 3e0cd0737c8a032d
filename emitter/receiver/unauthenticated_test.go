package receiver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// trapBody is a request body that records whether the handler read it.
type trapBody struct{ read atomic.Bool }

func (b *trapBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return 0, io.EOF
}

func (b *trapBody) Close() error { return nil }

// TestHandlerRefusesBeforeReadingTheBody pins that every check that needs no
// body runs before the body is read: a client without credentials costs no
// body memory.
func TestHandlerRefusesBeforeReadingTheBody(t *testing.T) {
	stale := strconv.FormatInt(now.Unix()-3600, 10)
	basic := Config[testEvent]{Password: "s3cret"}
	signed := Config[testEvent]{SigningSecrets: [][]byte{secretA}}
	wellFormed := sign(secretA, "msg_1", nowTS, []byte("anything"))
	for _, tc := range []struct {
		name     string
		cfg      Config[testEvent]
		headers  map[string]string
		length   int64
		wantCode int
	}{
		{"no Basic credentials", basic, nil, 10, 401},
		{"wrong Basic password", basic, map[string]string{"Authorization": "Basic dTpub3Bl"}, 10, 401},
		{"no signature headers", signed, nil, 10, 401},
		{"no webhook-signature", signed, map[string]string{"webhook-id": "msg_1", "webhook-timestamp": nowTS}, 10, 401},
		{"stale timestamp", signed, map[string]string{"webhook-id": "msg_1", "webhook-timestamp": stale, "webhook-signature": wellFormed}, 10, 401},
		{"malformed signature", signed, map[string]string{"webhook-id": "msg_1", "webhook-timestamp": nowTS, "webhook-signature": "v1,AAAA"}, 10, 401},
		{"Content-Length over the limit", Config[testEvent]{MaxBodyBytes: 8}, nil, 9, 413},
		{"GET", Config[testEvent]{}, nil, 10, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Decode, tc.cfg.Logger, tc.cfg.Now = decodeTestEvent, quiet, func() time.Time { return now }
			tc.cfg.Handle = func(context.Context, testEvent) error { return nil }
			h, err := NewHandler(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			body := &trapBody{}
			method := "POST"
			if tc.wantCode == 405 {
				method = "GET"
			}
			req := httptest.NewRequest(method, "/", body)
			req.ContentLength = tc.length
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Errorf("status = %d (%s), want %d", rec.Code, strings.TrimSpace(rec.Body.String()), tc.wantCode)
			}
			if body.read.Load() {
				t.Error("the body was read before the request was refused")
			}
		})
	}
}

// blockingBody is a body whose Read blocks until release is closed (and then
// ends the body), and that signals its first Read on started: by then the
// handler has reserved the body's bytes.
type blockingBody struct {
	started chan struct{}
	release chan struct{}
	once    atomic.Bool
}

func newBlockingBody() *blockingBody {
	return &blockingBody{started: make(chan struct{}), release: make(chan struct{})}
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if b.once.CompareAndSwap(false, true) {
		close(b.started)
	}
	<-b.release
	return 0, io.ErrUnexpectedEOF
}

func (b *blockingBody) Close() error { return nil }

// TestHandlerBoundsTheBytesOfUnauthenticatedBodies fills
// MaxUnauthenticatedBytes with bodies that never arrive: the next
// unauthenticated request is answered 503 with Retry-After without its body
// being read, and gets in once room is given back.
func TestHandlerBoundsTheBytesOfUnauthenticatedBodies(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config[testEvent]
	}{
		{"signatures only", Config[testEvent]{SigningSecrets: [][]byte{secretA}}},
		{"no credentials at all", Config[testEvent]{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Decode, cfg.Logger, cfg.Now = decodeTestEvent, quiet, func() time.Time { return now }
			cfg.Handle = func(context.Context, testEvent) error { return nil }
			cfg.MaxBodyBytes, cfg.MaxUnauthenticatedBytes = 1000, 2000
			hh, err := NewHandler(cfg)
			if err != nil {
				t.Fatal(err)
			}
			hh.(*handler[testEvent]).unauthWait = 50 * time.Millisecond
			good := []byte(`{"uid":42}`)
			request := func(body io.ReadCloser, length int64) *http.Request {
				req := httptest.NewRequest("POST", "/", body)
				req.ContentLength = length
				req.Header.Set("webhook-id", "msg_1")
				req.Header.Set("webhook-timestamp", nowTS)
				req.Header.Set("webhook-signature", sign(secretA, "msg_1", nowTS, good))
				return req
			}
			// Two stalled bodies of 1000 bytes fill the 2000.
			var stalled []*blockingBody
			done := make(chan int, 2)
			for range 2 {
				b := newBlockingBody()
				stalled = append(stalled, b)
				go func() {
					rec := httptest.NewRecorder()
					hh.ServeHTTP(rec, request(b, 1000))
					done <- rec.Code
				}()
				<-b.started
			}
			trap := &trapBody{}
			rec := httptest.NewRecorder()
			hh.ServeHTTP(rec, request(trap, int64(len(good))))
			if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
				t.Errorf("with the budget full: status %d, Retry-After %q; want 503 and a Retry-After", rec.Code, rec.Header().Get("Retry-After"))
			}
			if trap.read.Load() {
				t.Error("the refused request's body was read")
			}
			close(stalled[0].release)
			if code := <-done; code != 400 {
				t.Errorf("cut body: status %d, want 400", code)
			}
			rec = httptest.NewRecorder()
			hh.ServeHTTP(rec, request(io.NopCloser(strings.NewReader(string(good))), int64(len(good))))
			if rec.Code != 200 {
				t.Errorf("after room was given back: status %d (%s), want 200", rec.Code, rec.Body)
			}
			close(stalled[1].release)
			<-done
		})
	}
}

// TestHandlerGivesBackTheBytesOnceTheSignatureIsVerified pins that a signed
// request stops counting as unauthenticated once verified: while its Handle
// runs, a body of the whole budget can still be read.
func TestHandlerGivesBackTheBytesOnceTheSignatureIsVerified(t *testing.T) {
	inHandle, release := make(chan struct{}), make(chan struct{})
	h, err := NewHandler(Config[testEvent]{
		Decode: decodeTestEvent,
		Handle: func(context.Context, testEvent) error {
			close(inHandle)
			<-release
			return nil
		},
		SigningSecrets: [][]byte{secretA}, MaxBodyBytes: 1000, MaxUnauthenticatedBytes: 1000,
		Logger: quiet, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.(*handler[testEvent]).unauthWait = 50 * time.Millisecond
	good := []byte(`{"uid":42}`)
	req := func(body string) *http.Request {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("webhook-id", "msg_1")
		r.Header.Set("webhook-timestamp", nowTS)
		r.Header.Set("webhook-signature", sign(secretA, "msg_1", nowTS, good))
		return r
	}
	done := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req(string(good)))
		done <- rec.Code
	}()
	<-inHandle
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req(strings.Repeat(" ", 1000))) // the whole budget; its signature is wrong
	if rec.Code != 401 {
		t.Errorf("a full-budget body while a verified one is handled: status %d (%s), want 401 (read and refused, not 503)", rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("verified request: status %d, want 200", code)
	}
}

// TestReadBodyReadsUpToTheLimitWhateverTheLength pins readBody with and
// without a known length, around the limit and across buffer growths.
func TestReadBodyReadsUpToTheLimitWhateverTheLength(t *testing.T) {
	const limit = 10_000
	for _, size := range []int{0, 1, 4095, 4096, 4097, limit - 1, limit, limit + 1, 3 * limit} {
		for _, known := range []bool{true, false} {
			body := strings.Repeat("b", size)
			n := int64(-1)
			if known {
				n = int64(size)
			}
			// As the handler does: the server has checked a known length
			// against the limit already.
			if known && size > limit {
				continue
			}
			got, err := readBody(http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(chunked(body)), limit), n, limit)
			if size > limit {
				if _, ok := errors.AsType[*http.MaxBytesError](err); !ok {
					t.Errorf("size %d, known %v: err = %v, want a MaxBytesError", size, known, err)
				}
				continue
			}
			if err != nil || string(got) != body {
				t.Errorf("size %d, known %v: got %d bytes, %v; want the body", size, known, len(got), err)
			}
			if !known && cap(got) > limit {
				t.Errorf("size %d: buffer of %d bytes, more than the limit", size, cap(got))
			}
		}
	}
}

// chunked returns a reader of s that returns at most 1000 bytes per
// Read, as a network would.
func chunked(s string) io.Reader { return &chunkReader{s: s} }

type chunkReader struct{ s string }

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1000)], r.s)
	r.s = r.s[n:]
	return n, nil
}
