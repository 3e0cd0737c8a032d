package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchBody returns a realistic delivery with the given uid.
func benchBody(uid int64) []byte {
	return fmt.Appendf(nil, `{"time":%d,"type":"LOGIN","realmId":"7c1b6f0e-3f4e-4c8e-9d2a-1b2c3d4e5f60",`+
		`"clientId":"account-console","userId":"0f8fad5b-d9cb-469f-a165-70867728950e","sessionId":"6a2f41a3-c54c-fce8-32d3-0324e1c32e22",`+
		`"ipAddress":"127.0.0.1","error":null,"details":{"auth_method":"openid-connect","redirect_uri":"http://127.0.0.1:8080/realms/demo/account/",`+
		`"consent":"no_consent_required","code_id":"6a2f41a3-c54c-fce8-32d3-0324e1c32e22","username":"alice"},"uid":%d,"id":"%016x-bench"}`,
		1_760_000_000_000+uid, uid, uid)
}

// BenchmarkReceiverStore posts b.N distinct events over loopback to the
// receiver (handler, decoder and store, as the binary wires them) from
// several concurrent clients, and reports the events stored per second.
func BenchmarkReceiverStore(b *testing.B) {
	stores := []struct {
		name string
		spec func(b *testing.B) storeSpec
	}{
		{"none", func(b *testing.B) storeSpec { return storeSpec{} }},
		{"jsonl", func(b *testing.B) storeSpec { return storeSpec{"jsonl", filepath.Join(b.TempDir(), "events.jsonl")} }},
		{"postgres", func(b *testing.B) storeSpec { return storeSpec{"postgres", newTestDatabase(b)} }},
	}
	for _, st := range stores {
		for _, sync := range []bool{true, false} {
			if st.name == "none" && !sync {
				continue
			}
			for _, clients := range []int{1, 8, 64} {
				name := fmt.Sprintf("%s/sync=%v/clients=%d", st.name, sync, clients)
				if st.name == "none" {
					name = fmt.Sprintf("none/clients=%d", clients) // HTTP, auth and decoding only
				}
				b.Run(name, func(b *testing.B) {
					benchReceiver(b, config{Path: "/event/receiver", Store: st.spec(b), NoSync: !sync, Numbering: "20.1",
						Quiet: true, Password: "pw", MaxBodyBytes: 1 << 20, Tolerance: time.Minute}, clients)
				})
			}
		}
	}
}

func benchReceiver(b *testing.B, cfg config, clients int) {
	a, err := newApp(b.Context(), cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(a.mux)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	url := srv.URL + cfg.Path
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				uid := next.Add(1)
				if uid > int64(b.N) {
					return
				}
				req, _ := http.NewRequest("POST", url, bytes.NewReader(benchBody(uid)))
				req.SetBasicAuth("bench", "pw")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("uid %d: status %d", uid, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	if got := a.stored.Load(); got != int64(b.N) && cfg.Store.Kind != "" {
		b.Fatalf("stored %d events, want %d", got, b.N)
	}
}
