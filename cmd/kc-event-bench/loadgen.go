package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what a plain load generator achieved against the receiver.
type loadResult struct {
	tool     string
	conns    int
	requests int64
	errors   int64
	elapsed  time.Duration
}

func (l loadResult) rate() float64 { return perSecond(l.requests, l.elapsed) }

// goLoad POSTs body to url for d over conns keep-alive connections, each
// waiting for the answer before the next request (as the emitter does),
// with the headers the emitter sends.
func goLoad(ctx context.Context, url, password string, body []byte, conns int, d time.Duration) (loadResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var t tally
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
				if err != nil {
					t.first.CompareAndSwap(nil, err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.SetBasicAuth("kc-event-bench", password)
				t.do(ctx, client, req)
			}
		})
	}
	wg.Wait()
	r := loadResult{tool: "Go net/http client", conns: conns, requests: t.ok.Load(), errors: t.failed.Load(), elapsed: time.Since(start)}
	if err, _ := t.first.Load().(error); err != nil && r.requests == 0 {
		return r, err
	}
	return r, nil
}

// tally counts the answers to requests made until a context ends, from
// several goroutines.
type tally struct {
	ok, failed atomic.Int64
	first      atomic.Value // the first error
}

// do makes req with c and counts a 200 as ok and anything else as failed,
// but for a request cut by the end of ctx. It reads and closes the body, so
// that the connection is used again.
func (t *tally) do(ctx context.Context, c *http.Client, req *http.Request) {
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			t.failed.Add(1)
			t.first.CompareAndSwap(nil, err)
		}
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.ok.Add(1)
		return
	}
	t.failed.Add(1)
	t.first.CompareAndSwap(nil, fmt.Errorf("%s %s: %s", req.Method, req.URL, resp.Status))
}

// wrkScript makes wrk POST the body of a file with the emitter's headers.
const wrkScript = `local f = assert(io.open(%q, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = %q
`

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	wrkErrors   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// wrkLoad runs wrk (one thread, conns connections) with the same body and
// headers; it returns an error when wrk is not installed.
func wrkLoad(ctx context.Context, url, password string, body []byte, conns int, d time.Duration, dir string) (loadResult, error) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk is not installed (scripts/deps.sh bench installs it): %w", err)
	}
	bodyPath := filepath.Join(dir, "wrk-body")
	if err := os.WriteFile(bodyPath, body, 0o600); err != nil {
		return loadResult{}, err
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("kc-event-bench:"+password))
	script := filepath.Join(dir, "wrk-post.lua")
	if err := os.WriteFile(script, fmt.Appendf(nil, wrkScript, bodyPath, auth), 0o600); err != nil {
		return loadResult{}, err
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, wrk, "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s", "-s", script, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(out, conns)
}

// parseWrk reads wrk's summary: "N requests in 5.00s" minus the non-2xx
// answers; socket errors count as errors.
func parseWrk(out []byte, conns int) (loadResult, error) {
	m := wrkRequests.FindSubmatch(out)
	if m == nil {
		return loadResult{}, fmt.Errorf("wrk printed no request count:\n%s", out)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	v, _ := strconv.ParseFloat(string(m[2]), 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[string(m[3])]
	r := loadResult{tool: "wrk", conns: conns, requests: n, elapsed: time.Duration(v * float64(unit))}
	if e := wrkErrors.FindSubmatch(out); e != nil {
		bad, _ := strconv.ParseInt(string(e[1]), 10, 64)
		r.errors += bad
		r.requests -= min(r.requests, bad)
	}
	if e := wrkSocket.FindSubmatch(out); e != nil {
		for _, s := range e[1:] {
			bad, _ := strconv.ParseInt(string(s), 10, 64)
			r.errors += bad
		}
	}
	return r, nil
}
