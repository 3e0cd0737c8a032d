package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// floodClients and floodBody are the load of BenchmarkUnauthenticatedFlood:
// that many clients, each POSTing a body of that size, all at once.
const (
	floodClients = 150
	floodBody    = 4 << 20
)

// BenchmarkUnauthenticatedFlood runs the receiver as a process with a
// signing secret and no Basic password, and has 150 clients that hold no
// credential POST a 4 MiB body each, all at once, b.N times: once with no
// signature headers at all, once with well-formed ones (a fresh timestamp,
// a v1 entry of the right length, the wrong HMAC), which pass every check
// but the HMAC itself. It reports the receiver's peak resident memory
// (VmHWM) and its resident memory before the flood.
func BenchmarkUnauthenticatedFlood(b *testing.B) {
	for _, headers := range []string{"none", "forged", "forged-chunked"} {
		b.Run("headers="+headers, func(b *testing.B) {
			secretFile := b.TempDir() + "/secret"
			if err := os.WriteFile(secretFile, []byte("whsec_"+base64.StdEncoding.EncodeToString([]byte("flood-secret-0123456789abcdef!!"))+"\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			c := startChild(b, nil, "--signing-secret-file", secretFile, "--quiet", "--every", "1h")
			pid := c.cmd.Process.Pid
			idle := procStatusKiB(b, pid, "VmRSS")
			body := bytes.Repeat([]byte("x"), floodBody)
			sig := "v1," + base64.StdEncoding.EncodeToString(hmac.New(sha256.New, []byte("not the key")).Sum(nil))
			codes := map[int]int{}
			var mu sync.Mutex
			b.ResetTimer()
			for range b.N {
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range floodClients {
					wg.Go(func() {
						var r io.Reader = bytes.NewReader(body)
						if headers == "forged-chunked" {
							r = io.MultiReader(r) // hides the length: chunked
						}
						req, _ := http.NewRequest("POST", c.url+"/event/receiver", r)
						req.Header.Set("Content-Type", "application/json")
						if headers != "none" {
							req.Header.Set("webhook-id", "msg_"+strconv.Itoa(i))
							req.Header.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
							req.Header.Set("webhook-signature", sig)
						}
						client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Minute}
						<-start
						code := 0
						if resp, err := client.Do(req); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							code = resp.StatusCode
						}
						mu.Lock()
						codes[code]++
						mu.Unlock()
					})
				}
				close(start)
				wg.Wait()
			}
			b.StopTimer()
			peak := procStatusKiB(b, pid, "VmHWM")
			b.ReportMetric(float64(idle)/1024, "idle-RSS-MiB")
			b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
			b.Logf("answers (0: the connection failed): %v", codes)
			if codes[200] != 0 {
				b.Errorf("%d requests without credentials were accepted", codes[200])
			}
		})
	}
}

// procStatusKiB returns a "<key>: <n> kB" field of /proc/<pid>/status.
func procStatusKiB(tb testing.TB, pid int, key string) int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("%s: %q: %v", key, v, err)
			}
			return n
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}
