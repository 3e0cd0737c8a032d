package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseWrkCountsOnlySuccessfulRequests(t *testing.T) {
	out := `Running 5s test @ http://127.0.0.1:40000/event/receiver
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   220.12us  100.01us   3.10ms   90.00%
  90000 requests in 5.00s, 7.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 1000
Requests/sec:  18000.00
Transfer/sec:      1.40MB
`
	r, err := parseWrk([]byte(out), 4)
	if err != nil {
		t.Fatal(err)
	}
	if r.requests != 89000 || r.errors != 1003 || r.elapsed != 5*time.Second || r.conns != 4 {
		t.Errorf("got %+v; want 89000 requests, 1003 errors, 5s, 4 connections", r)
	}
	if got := r.rate(); got != 17800 {
		t.Errorf("rate %.0f, want 17800", got)
	}
	if _, err := parseWrk([]byte("wrk: unable to connect"), 1); err == nil {
		t.Error("no error for output without a request count")
	}
}

func TestTallyCountsA200AsOkAndTheRestAsFailedButNotACutRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var tl tally
	do := func(ctx context.Context, path string) {
		req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		tl.do(ctx, srv.Client(), req)
	}
	do(t.Context(), "/ok")
	do(t.Context(), "/ok")
	do(t.Context(), "/down")
	cut, cancel := context.WithCancel(t.Context())
	cancel()
	do(cut, "/ok") // the context ended: neither ok nor failed
	err, _ := tl.first.Load().(error)
	if tl.ok.Load() != 2 || tl.failed.Load() != 1 || err == nil || !strings.Contains(err.Error(), "POST "+srv.URL+"/down: 503") {
		t.Errorf("ok %d, failed %d, first error %v; want 2, 1 and the 503 of /down", tl.ok.Load(), tl.failed.Load(), err)
	}
}
