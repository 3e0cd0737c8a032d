package emitter

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

// countingTarget answers 200 and counts the webhook ids (uids) it got.
type countingTarget struct {
	mu   sync.Mutex
	uids map[string]int
}

func (c *countingTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	c.mu.Lock()
	c.uids[r.Header.Get("webhook-id")]++
	c.mu.Unlock()
}

func (c *countingTarget) got() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.uids {
		out[k] = v
	}
	return out
}

// testEmitter is an emitter whose target is a countingTarget on loopback.
func testEmitter(t *testing.T, edit func(*Config)) (*emitter, *countingTarget, *prometheus.Registry, string) {
	t.Helper()
	tg := &countingTarget{uids: map[string]int{}}
	srv := httptest.NewServer(tg)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cfg := validConfig()
	cfg.TargetURI, cfg.From = srv.URL, "beginning"
	cfg.SigningSecrets = []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} // every request carries its uid
	cfg.CheckpointPath = filepath.Join(dir, "cp.json")
	cfg.DeadLetterPath = filepath.Join(dir, "dead.jsonl")
	cfg.PollInterval = 5 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e, err := newEmitter(cfg, RunOptions{Logger: slog.New(slog.DiscardHandler), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return e, tg, reg, cfg.CheckpointPath
}

// oneSource gives every route src.
func oneSource(src source) sourceOf { return func(Filters) source { return src } }

// oneStore gives the (one) route store.
func oneStore(store checkpoint.Store) func(*route) checkpoint.Store {
	return func(*route) checkpoint.Store { return store }
}

func TestRunOnceDeliversEveryEventOnceFiltersTheRestAndSavesTheCheckpoint(t *testing.T) {
	src := newMemSource(acme)
	for i := range 120 {
		src.add(KindEvent, "r", strings.Repeat("e", 1+i%3)+string(rune('A'+i%26))+string(rune('a'+i/26)), 1700000000000+int64(i))
	}
	src.add(KindAdminEvent, "r", "a1", 1700000000050)
	e, tg, reg, cp := testEmitter(t, func(c *Config) {
		c.Once = true
		c.Filters.Operations = TypeFilter{Exclude: []string{"UPDATE"}} // the one admin event
	})
	if msg := e.ready.notReady(time.Now()); msg != "source not opened yet" {
		t.Errorf("before the source: notReady = %q", msg)
	}
	if err := e.run(context.Background(), oneSource(src), oneStore(checkpoint.NewFile(cp))); err != nil {
		t.Fatal(err)
	}
	got := tg.got()
	if len(got) != 120 {
		t.Fatalf("the target got %d distinct uids, want 120", len(got))
	}
	for uid, n := range got {
		if n != 1 {
			t.Errorf("uid %s delivered %d times", uid, n)
		}
	}
	if n := testutil.ToFloat64(e.metrics.filtered.of(KindAdminEvent)); n != 1 {
		t.Errorf("events_filtered_total{AdminEvent} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(e.metrics.delivered.of(KindEvent)); n != 120 {
		t.Errorf("events_delivered_total{Event} = %v, want 120", n)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	st, err := checkpoint.Load(cp)
	if err != nil {
		t.Fatal(err)
	}
	for key, s := range st.Streams {
		for id, en := range s.Window {
			if !en.Acked {
				t.Errorf("%s %s not acknowledged in the saved checkpoint", key, id)
			}
		}
	}
	if c := st.Streams["Event/r"].Cursor; c.Time != 1700000000119 {
		t.Errorf("saved cursor %+v, want the last event's time", c)
	}
}

func TestRunEndsOnCancelAfterDeliveringWhatIsBufferedAndANewRunSendsNothingTwice(t *testing.T) {
	src := newMemSource(acme)
	for i := range 30 {
		src.add(KindEvent, "r", "e"+string(rune('A'+i)), 1700000000000+int64(i))
	}
	e, tg, _, cp := testEmitter(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.run(ctx, oneSource(src), oneStore(checkpoint.NewFile(cp))) }()
	waitFor(t, "30 deliveries", func() bool { return len(tg.got()) == 30 })
	if msg := e.ready.notReady(time.Now()); msg != "" {
		t.Errorf("while running: notReady = %q, want ready", msg)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel = %v, want nil", err)
	}
	again, tg2, _, _ := testEmitter(t, func(c *Config) { c.Once = true; c.CheckpointPath = cp })
	if err := again.run(context.Background(), oneSource(src), oneStore(checkpoint.NewFile(cp))); err != nil {
		t.Fatal(err)
	}
	if n := len(tg2.got()); n != 0 {
		t.Fatalf("a second run from the saved checkpoint sent %d events again", n)
	}
}

func TestRunRefusesABadConfigurationWithAFieldError(t *testing.T) {
	var fe *FieldError
	if err := Run(context.Background(), Config{}, RunOptions{}); !errors.As(err, &fe) || fe.Field != "format" {
		t.Fatalf("Run(empty Config) = %v, want a FieldError naming format", err)
	}
}

func TestObserveKeepsABatcherABatcherAndCountsItsReads(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	for name, c := range map[string]struct {
		src     source
		batcher bool
	}{
		"per stream": {newMemSource(acme), false},
		"batched":    {&batchSource{memSource: newMemSource(acme)}, true},
	} {
		o, read := observe(c.src, m.SourceReads)
		if _, ok := read.(batcher); ok != c.batcher {
			t.Errorf("%s: the observed source is a batcher: %v, want %v", name, ok, c.batcher)
		}
		if b, ok := read.(batcher); ok {
			before := testutil.ToFloat64(m.SourceReads.WithLabelValues("ok"))
			if _, err := b.readBatch(context.Background(), nil, 1); err != nil {
				t.Fatal(err)
			}
			if testutil.ToFloat64(m.SourceReads.WithLabelValues("ok")) != before+1 {
				t.Errorf("%s: a batch read was not counted", name)
			}
			if ok, _, _ := o.last(); !ok {
				t.Errorf("%s: readiness did not see the batch read", name)
			}
		}
	}
}
