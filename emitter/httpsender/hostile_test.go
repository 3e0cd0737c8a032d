package httpsender

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryAfterIsCappedByRetryWaitMax has a real server answer its first
// request with a Retry-After of 999999 seconds (or a date a day away): the
// sender waits RetryWaitMax, not eleven days, and says so in its log.
func TestRetryAfterIsCappedByRetryWaitMax(t *testing.T) {
	const waitMax = 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		status int
		header func() string
	}{
		{"503, seconds", http.StatusServiceUnavailable, func() string { return "999999" }},
		{"429, seconds", http.StatusTooManyRequests, func() string { return "999999" }},
		{"503, a date a day away", http.StatusServiceUnavailable,
			func() string { return time.Now().Add(24 * time.Hour).UTC().Format(http.TimeFormat) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", tc.header())
					w.WriteHeader(tc.status)
				}
			}))
			defer srv.Close()
			log, logs := newLogger()
			o := options(srv.URL)
			o.RetryWaitMax, o.Logger = waitMax, log
			s := newSender(t, o)
			if err := sendWithin(t, s, context.Background(), event, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if n.Load() != 2 {
				t.Fatalf("%d requests, want 2", n.Load())
			}
			m := regexp.MustCompile(`retry_in=(\S+)`).FindStringSubmatch(logs.String())
			if m == nil {
				t.Fatalf("no retry_in in the log:\n%s", logs)
			}
			if d, err := time.ParseDuration(m[1]); err != nil || d > waitMax {
				t.Errorf("retry_in=%s, want at most RetryWaitMax %s", m[1], waitMax)
			}
		})
	}
}

// dribbler is a server that reads a request and answers with its status
// line one byte every gap, forever (or until the connection is closed).
// It counts the connections it saw.
func dribbler(t *testing.T, gap time.Duration) (url string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = &atomic.Int32{}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil { // the request (small: one read)
					return
				}
				line := "HTTP/1.1 200 OK, eventually" + strings.Repeat(".", 1<<20)
				tick := time.NewTicker(gap)
				defer tick.Stop()
				for i := range len(line) {
					select {
					case <-done:
						return
					case <-tick.C:
					}
					if _, err := c.Write([]byte{line[i]}); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), conns
}

// TestAttemptTimeoutEndsATargetThatDribblesItsStatusLine has a target send
// its status line one byte every 150 ms, under the 400 ms socket timeout, so
// that no silence ever ends the attempt: AttemptTimeout does, the attempt
// fails with ErrAttemptTimeout and is retried on a new connection.
func TestAttemptTimeoutEndsATargetThatDribblesItsStatusLine(t *testing.T) {
	url, conns := dribbler(t, 150*time.Millisecond)
	o := options(url)
	o.SocketTimeout, o.AttemptTimeout = 400*time.Millisecond, time.Second
	s := newSender(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Send(ctx, event.ID, event.Body) }()
	deadline := time.After(20 * time.Second)
	for conns.Load() < 2 {
		select {
		case err := <-done:
			t.Fatalf("Send returned %v while the target dribbles", err)
		case <-deadline:
			t.Fatalf("after 20s, %d connection(s): the dribbling attempt was never ended", conns.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	err := <-done
	if !errors.Is(err, ErrAttemptTimeout) || errors.Is(err, ErrSocketTimeout) {
		t.Fatalf("Send = %v, want the last attempt's ErrAttemptTimeout (not a socket timeout)", err)
	}
	if !errors.Is(s.LastError(), ErrAttemptTimeout) {
		t.Errorf("LastError() = %v, want ErrAttemptTimeout", s.LastError())
	}
}

// TestAttemptTimeoutLeavesAQuickResponseAlone pins that the deadline is per
// attempt and released with the response: many sends on one connection,
// each well under it, all succeed.
func TestAttemptTimeoutLeavesAQuickResponseAlone(t *testing.T) {
	srv, n := statusServer(t, http.StatusOK)
	o := options(srv.URL)
	o.AttemptTimeout = 200 * time.Millisecond
	s := newSender(t, o)
	start := time.Now()
	for time.Since(start) < 500*time.Millisecond {
		if err := s.Send(context.Background(), event.ID, event.Body); err != nil {
			t.Fatal(err)
		}
	}
	if n.Load() < 2 {
		t.Fatalf("%d sends in 500ms: the test proves nothing", n.Load())
	}
}

func TestNewRejectsANegativeAttemptTimeout(t *testing.T) {
	o := options("http://127.0.0.1:1/")
	o.AttemptTimeout = -time.Second
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "AttemptTimeout is -1s") {
		t.Fatalf("New = %v, want an error naming AttemptTimeout", err)
	}
}

// FuzzRetryAfter parses arbitrary Retry-After values, as a target sends
// them: the wait is never negative, never beyond RetryWaitMax, and a value
// that does not parse falls back to the backoff.
func FuzzRetryAfter(f *testing.F) {
	for _, v := range []string{"", "0", "120", "-5", "999999", "99999999999999999999", "Sat, 01 Mar 2025 12:00:30 GMT", " 7 ", "1e3"} {
		f.Add(v)
	}
	s := &Sender{now: func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := retryAfter(v, s.now())
		if d < 0 || d > maxRetryAfter || (!ok && d != 0) {
			t.Fatalf("retryAfter(%q) = %s, %v", v, d, ok)
		}
		lo, hi := time.Millisecond, 200*time.Millisecond
		resp := &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {v}}}
		if w := s.backoff(lo, hi, 3, resp); w < 0 || w > hi {
			t.Fatalf("Retry-After %q: wait %s, want within [0, %s]", v, w, hi)
		}
	})
}
