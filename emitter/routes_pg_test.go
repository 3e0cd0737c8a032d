package emitter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// TestARouteWhoseTargetIsDownHoldsOnlyItsOwnPositionAndCatchesUp runs two
// routes on a real PostgreSQL with overflow block while events arrive
// every 50 ms: the target of route late is cut off for 60 s (5 s with
// -short). Meanwhile route live delivers each event within a second of
// its time (measured per event, at the target); /readyz names route late;
// once its target is back, route late delivers every event, each once.
func TestARouteWhoseTargetIsDownHoldsOnlyItsOwnPositionAndCatchesUp(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	down := 60 * time.Second
	if testing.Short() {
		down = 5 * time.Second
	}
	live, liveSrv := newEventTarget(t)
	late, lateSrv := newEventTarget(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(lateSrv.URL, "http://"))
	dir := t.TempDir()
	cfg := validConfig()
	cfg.DatabaseURL, cfg.From, cfg.PollInterval = k.url, "beginning", 50*time.Millisecond
	cfg.CheckpointPath, cfg.ListenAddr = filepath.Join(dir, "cp.json"), freeAddr(t)
	a := httpRoute(dir, "live", liveSrv.URL)
	a.Overflow = buffer.Block
	b := httpRoute(dir, "late", "http://"+proxy.Addr+"/")
	b.Overflow, b.BufferCapacity, b.RetryWaitMax = buffer.Block, 20, 500*time.Millisecond
	b.Sink.HTTP.SocketTimeout, b.Sink.HTTP.RequestTimeout = 500*time.Millisecond, time.Second
	cfg.Routes = []Route{a, b}

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() {
		ran <- Run(ctx, cfg, RunOptions{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	}()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	// The writer: an event every 50 ms, stamped with the time of its insert.
	var mu sync.Mutex
	var ids []string
	inserted := map[string]time.Time{}
	stopWriting := make(chan struct{})
	written := make(chan error, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				written <- nil
				return
			case <-tick.C:
			}
			id, now := fmt.Sprintf("e-%05d", i), time.Now()
			if _, err := k.db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ($1, 'r', $2, 'LOGIN')`,
				id, now.UnixMilli()); err != nil {
				written <- err
				return
			}
			mu.Lock()
			ids, inserted[id] = append(ids, id), now
			mu.Unlock()
		}
	}()
	has := func(tg *eventTarget, n int) func() bool {
		return func() bool { return len(tg.got()) >= n }
	}
	waitLong(t, 30*time.Second, "both routes delivering", func() bool { return has(live, 10)() && has(late, 10)() })

	proxy.Cut()
	cutAt := time.Now()
	readyChecked := false
	for time.Since(cutAt) < down {
		if !readyChecked && time.Since(cutAt) > readyAfter+5*time.Second {
			status, body := getReady(t, cfg.ListenAddr)
			if status != http.StatusServiceUnavailable || !strings.Contains(body, "route late: target took no event") || strings.Contains(body, "route live") {
				t.Errorf("/readyz with route late's target cut for %s: %d %q, want 503 naming route late only", time.Since(cutAt).Round(time.Second), status, body)
			}
			readyChecked = true
		}
		time.Sleep(200 * time.Millisecond)
	}
	proxy.Heal()
	healAt := time.Now()
	close(stopWriting)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	all := slices.Clone(ids)
	mu.Unlock()

	waitLong(t, 30*time.Second, "route live has every event", has(live, len(all)))
	// Route live's latency while route late's target was down: the time
	// from each event's insert to its arrival at the target.
	var lat []time.Duration
	live.mu.Lock()
	for _, id := range all {
		if at, ins := live.at[id], inserted[id]; ins.After(cutAt) && ins.Before(healAt) {
			lat = append(lat, at.Sub(ins))
		}
	}
	live.mu.Unlock()
	slices.Sort(lat)
	if len(lat) < int(down/(100*time.Millisecond)) {
		t.Fatalf("only %d events written while the target was cut", len(lat))
	}
	p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	t.Logf("route live while route late's target was cut for %s: %d events, latency p50 %s p99 %s max %s",
		down, len(lat), p50, p99, worst)
	if p99 > time.Second || worst > 5*time.Second {
		t.Errorf("route live's latency while route late was down: p99 %s, max %s; want p99 <= 1s, max <= 5s", p99, worst)
	}
	lateDuringCut := 0
	late.mu.Lock()
	for _, at := range late.at {
		if at.After(cutAt.Add(2*time.Second)) && at.Before(healAt) {
			lateDuringCut++
		}
	}
	late.mu.Unlock()
	if lateDuringCut > 0 {
		t.Errorf("route late's target got %d events while it was cut off", lateDuringCut)
	}

	waitLong(t, 90*time.Second, "route late caught up", has(late, len(all)))
	t.Logf("route late caught up with %d events %s after its target came back", len(all), time.Since(healAt).Round(100*time.Millisecond))
	for name, tg := range map[string]*eventTarget{"live": live, "late": late} {
		got := tg.got()
		for _, id := range all {
			if got[id] != 1 {
				t.Errorf("route %s: event %s delivered %d times, want once", name, id, got[id])
			}
		}
	}
}

// waitLong polls cond every 50 ms for at most limit.
func waitLong(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within %s", what, limit)
}

// freeAddr returns a loopback address free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func getReady(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// BenchmarkIdleSourceTransactionsPerRoute measures what reading per route
// costs Keycloak's database while nothing happens: the transactions per
// second (xact_commit + xact_rollback of pg_stat_database) of the
// emitter's database over 20 s of an idle run with 1 and with 3 routes
// (pollInterval 200 ms, one realm). Run it with -benchtime 1x.
func BenchmarkIdleSourceTransactionsPerRoute(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			k := newKCDB(b)
			k.realm("r", "acme")
			_, srv := newEventTarget(b)
			dir := b.TempDir()
			cfg := validConfig()
			cfg.DatabaseURL, cfg.ListenAddr, cfg.CheckpointPath = k.url, "", filepath.Join(dir, "cp.json")
			for i := range n {
				cfg.Routes = append(cfg.Routes, httpRoute(dir, fmt.Sprintf("r%d", i), srv.URL))
			}
			xacts := func() float64 {
				var v float64
				if err := k.db.QueryRow(`SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&v); err != nil {
					b.Fatal(err)
				}
				return v
			}
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() {
				ran <- Run(ctx, cfg, RunOptions{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
			}()
			time.Sleep(3 * time.Second) // started, realms listed, first polls done
			b.ResetTimer()
			var perSec float64
			for range b.N {
				before, start := xacts(), time.Now()
				time.Sleep(20 * time.Second)
				time.Sleep(time.Second) // the statistics of the last second reach pg_stat_database
				after := xacts()
				perSec = (after - before - 1) / time.Since(start).Seconds() // less our own first query
			}
			b.StopTimer()
			cancel()
			if err := <-ran; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(perSec, "tx/s")
			b.ReportMetric(perSec/float64(n), "tx/s/route")
		})
	}
}

func TestClusterModeKeepsEachRoutesStateInItsOwnRowAndANewLeaderGoesOnFromIt(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	for i := range 5 {
		k.event(fmt.Sprintf("e-%d", i), "r", 1700000000000+int64(i), "LOGIN")
	}
	audit, auditSrv := newEventTarget(t)
	signups, signupsSrv := newEventTarget(t)
	dir := t.TempDir()
	cfg := validConfig()
	cfg.DatabaseURL, cfg.From, cfg.PollInterval, cfg.ListenAddr = k.url, "beginning", 20*time.Millisecond, ""
	cfg.Cluster = "kc"
	cfg.Routes = []Route{httpRoute(dir, "default", auditSrv.URL), httpRoute(dir, "signups", signupsSrv.URL)}
	term := func(want int) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() {
			ran <- Run(ctx, cfg, RunOptions{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
		}()
		waitLong(t, 30*time.Second, "both routes delivered", func() bool { return len(audit.got()) >= want && len(signups.got()) >= want })
		cancel()
		if err := <-ran; err != nil {
			t.Fatalf("Run = %v", err)
		}
	}
	term(5)
	rows, err := k.db.Query(`SELECT cluster, epoch, snapshot IS NOT NULL FROM kc_event_emitter.state ORDER BY cluster`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var name string
		var epoch int64
		var saved bool
		if err := rows.Scan(&name, &epoch, &saved); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s epoch %d saved %v", name, epoch, saved))
	}
	rows.Close()
	if want := []string{"kc epoch 1 saved true", "kc:signups epoch 1 saved true"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("state rows %q, want %q", got, want)
	}
	// The next term (another leader) goes on from each route's row.
	k.event("e-5", "r", 1700000000005, "LOGIN")
	term(6)
	for name, tg := range map[string]*eventTarget{"default": audit, "signups": signups} {
		for id, n := range tg.got() {
			if n != 1 {
				t.Errorf("route %s: %s delivered %d times across two terms", name, id, n)
			}
		}
	}
	var epochs int64
	if err := k.db.QueryRow(`SELECT sum(epoch) FROM kc_event_emitter.state`).Scan(&epochs); err != nil || epochs != 4 {
		t.Errorf("epochs after two terms: %d (%v), want 2 per route", epochs, err)
	}
}
