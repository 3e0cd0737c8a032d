package emitter

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOpsServerAnswersHealthReadinessAndMetricsAndBoundsConnections(t *testing.T) {
	ln, err := listenOps("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	problem := "source not read yet"
	srv := serveOps(ln, reg, func(time.Time) string { return problem }, nil)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		path, ready string
		status      int
		want        string
	}{
		{"/healthz", problem, 200, "ok"},
		{"/readyz", problem, 503, problem},
		{"/readyz", "", 200, "ready"},
		{"/metrics", "", 200, "kc_event_emitter_buffer_depth"},
	} {
		problem = c.ready
		if status, body := get(c.path); status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("GET %s (notReady %q) = %d %q, want %d with %q", c.path, c.ready, status, body, c.status, c.want)
		}
	}
	if srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("ops server without read, write, idle or header bounds: %+v", srv)
	}
	if _, err := listenOps(ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("a second listen on %s = %v, want an error naming listen", ln.Addr(), err)
	}
}

func TestReadinessSaysWhyNotReady(t *testing.T) {
	e, _, _, _ := testEmitter(t, nil)
	now := time.Now()
	if got := e.ready.notReady(now); got != "source not opened yet" {
		t.Errorf("no source: %q", got)
	}
	src := &observedSource{source: newMemSource(), reads: e.metrics.SourceReads}
	e.routes[0].src.Store(src)
	if got := e.ready.notReady(now); got != "source not read yet" {
		t.Errorf("not read: %q", got)
	}
	src.note(errors.New("connection refused"))
	if got := e.ready.notReady(now); !strings.HasPrefix(got, "source failing since") || !strings.Contains(got, "connection refused") {
		t.Errorf("failing: %q", got)
	}
	src.note(nil)
	if got := e.ready.notReady(now); got != "" {
		t.Errorf("read ok, nothing waiting: %q, want ready", got)
	}
}

func TestRunOnceFailsNamingAnUnreachableDatabaseWithoutItsPassword(t *testing.T) {
	port := closedPort(t)
	cfg := validConfig()
	cfg.Once, cfg.ListenAddr = true, "127.0.0.1:0"
	cfg.DatabaseURL = "postgres://keycloak:s3cret@127.0.0.1:" + port + "/keycloak?sslmode=disable&connect_timeout=2"
	cfg.CheckpointPath, cfg.DeadLetterPath = t.TempDir()+"/cp.json", t.TempDir()+"/dead.jsonl"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Run(ctx, cfg, RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "database") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Run = %v, want an error naming the database and hiding the password", err)
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

func TestRunOnceFailsNamingAnUnreachableAdminAPI(t *testing.T) {
	cfg := validConfig()
	cfg.Once, cfg.ListenAddr, cfg.Source = true, "", SourceAPI
	cfg.API.URL, cfg.API.ClientID, cfg.API.ClientSecret = "http://127.0.0.1:"+closedPort(t), "kc-event-emitter", "x"
	cfg.CheckpointPath, cfg.DeadLetterPath = t.TempDir()+"/cp.json", t.TempDir()+"/dead.jsonl"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Run(ctx, cfg, RunOptions{}); err == nil || !strings.Contains(err.Error(), "admin API") {
		t.Fatalf("Run = %v, want an error naming the admin API", err)
	}
}

func TestRunWaitsForAnUnreachableSourceUntilItsContextEnds(t *testing.T) {
	cfg := validConfig()
	cfg.ListenAddr = ""
	cfg.DatabaseURL = "postgres://keycloak@127.0.0.1:" + closedPort(t) + "/keycloak?sslmode=disable"
	cfg.CheckpointPath, cfg.DeadLetterPath = t.TempDir()+"/cp.json", t.TempDir()+"/dead.jsonl"
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := Run(ctx, cfg, RunOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatalf("Run = %v, want nil once its context ended", err)
	}
	if !strings.Contains(logs.String(), "not reachable yet; retrying") || !strings.Contains(logs.String(), "stopped before the source was reachable") {
		t.Fatalf("logs do not show the wait:\n%s", logs.String())
	}
}

func TestReadinessTurnsNotReadyWhenEventsWaitAndTheTargetTakesNoneForAWhile(t *testing.T) {
	e, _, _, _ := testEmitter(t, nil)
	src := &observedSource{source: newMemSource(), reads: e.metrics.SourceReads}
	src.note(nil)
	e.routes[0].src.Store(src)
	// An event waits and nothing takes it: a stalled target (one that
	// dribbles its answer fails nothing, so only the lack of progress shows).
	if err := e.routes[0].p.delivery.put(context.Background(), envelope{Kind: KindEvent, UID: 1, ID: "e", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if got := e.ready.notReady(now); got != "" {
		t.Errorf("just after the event arrived: %q, want ready", got)
	}
	if got := e.ready.notReady(now.Add(readyAfter + time.Second)); !strings.Contains(got, "target took no event") {
		t.Errorf("after %s without progress: %q, want not ready", readyAfter, got)
	}
}
