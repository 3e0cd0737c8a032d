package emitter

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/receiver"
)

const (
	enterHold = "the target refuses every event: the route holds its position"
	leaveHold = "the target takes events again"
)

// readyOf is the readiness of a delivery whose source answers.
func readyOf(t *testing.T, d *delivery) func() string {
	src := &observedSource{source: newMemSource(), reads: newMetrics(prometheus.NewRegistry()).SourceReads}
	src.note(nil)
	r := readiness{routes: []routeReady{{name: defaultRoute, source: func() *observedSource { return src }, delivery: func() *delivery { return d }}}}
	return func() string { return r.notReady(time.Now()) }
}

func noDeadLetterFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		data, _ := os.ReadFile(path)
		t.Errorf("the dead-letter file exists (%v):\n%s", err, data)
	}
}

func TestDeliveryHoldsTheRouteWhileTheTargetRefusesEveryEventAndThenDeliversAllInOrder(t *testing.T) {
	for _, tc := range []struct {
		status, concurrency int
		hint                string
	}{
		{401, 1, "wrong secret"},
		{403, 1, "wrong secret or user"},
		{404, 4, "wrong path"},
		{410, 1, "disabled"},
	} {
		t.Run(fmt.Sprintf("%d/concurrency %d", tc.status, tc.concurrency), func(t *testing.T) {
			var refusing atomic.Bool
			refusing.Store(true)
			tg := &recordingTarget{answer: func(int64, int) int {
				if refusing.Load() {
					return tc.status
				}
				return http.StatusOK
			}}
			srv := httptest.NewServer(tg)
			defer srv.Close()
			f := newDeliveryFixture(t, srv.URL, func(o *deliveryOptions, so *httpsender.Options) {
				o.Concurrency, so.MaxConns = tc.concurrency, tc.concurrency
			})
			notReady := readyOf(t, f.d)
			wait := f.run(t, context.Background())
			f.put(t, testEnvelope(0), testEnvelope(1), testEnvelope(2), testEnvelope(3), testEnvelope(4),
				testEnvelope(5), testEnvelope(6), testEnvelope(7), testEnvelope(8), testEnvelope(9))
			waitUntil(t, "three refused attempts of the first event", func() bool {
				tg.mu.Lock()
				defer tg.mu.Unlock()
				return tg.attempts[0] >= 3
			})
			if n := f.acks.len(); n != 0 {
				t.Errorf("%d events acknowledged while the target refuses every one", n)
			}
			noDeadLetterFile(t, f.dlPath)
			if got := notReady(); !strings.Contains(got, "target refuses every event since") ||
				!strings.Contains(got, strconv.Itoa(tc.status)) || !strings.Contains(got, tc.hint) {
				t.Errorf("/readyz says %q, want the refusal, the status and the hint %q", got, tc.hint)
			}
			if g := testutil.ToFloat64(f.metrics.TargetHeld); g != 1 {
				t.Errorf("target_held = %v while refused, want 1", g)
			}
			refusing.Store(false)
			f.d.close()
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			got := f.acks.with(delivered)
			if tc.concurrency == 1 && !slices.Equal(got, uidRange(0, 9)) {
				t.Errorf("delivered %v, want 0..9 in order", got)
			}
			if slices.Sort(got); !slices.Equal(got, uidRange(0, 9)) || f.acks.len() != 10 {
				t.Errorf("delivered %v (%d acks), want each of 0..9 once", got, f.acks.len())
			}
			noDeadLetterFile(t, f.dlPath)
			logs := f.log()
			if n, m := strings.Count(logs, enterHold), strings.Count(logs, leaveHold); n != 1 || m != 1 {
				t.Errorf("logged the hold %d times and its end %d times, want once each:\n%s", n, m, logs)
			}
			if !strings.Contains(logs, "level=ERROR msg=\""+enterHold) || !strings.Contains(logs, "status="+strconv.Itoa(tc.status)) {
				t.Errorf("the hold is not logged at ERROR with its status:\n%s", logs)
			}
			if got := notReady(); got != "" || testutil.ToFloat64(f.metrics.TargetHeld) != 0 {
				t.Errorf("after the fix: /readyz %q, target_held %v; want ready, 0", got, testutil.ToFloat64(f.metrics.TargetHeld))
			}
		})
	}
}

// TestDeliveryHeldInDropOldestModeDropsTheOldestWaitingAndCountsThem: while
// held, a full buffer drops its oldest waiting events (the one being sent
// keeps its place), each logged and counted.
func TestDeliveryHeldInDropOldestModeDropsTheOldestWaitingAndCountsThem(t *testing.T) {
	var refusing atomic.Bool
	refusing.Store(true)
	tg := &recordingTarget{answer: func(int64, int) int {
		if refusing.Load() {
			return http.StatusUnauthorized
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, func(o *deliveryOptions, _ *httpsender.Options) {
		o.Capacity, o.Overflow = 3, buffer.DropOldest
	})
	wait := f.run(t, context.Background())
	f.put(t, testEnvelope(0))
	waitUntil(t, "the route held", func() bool { return f.d.hold.held.Load() })
	f.put(t, testEnvelope(1), testEnvelope(2), testEnvelope(3), testEnvelope(4), testEnvelope(5), testEnvelope(6),
		testEnvelope(7), testEnvelope(8))
	if got := f.acks.with(dropped); !slices.Equal(got, uidRange(1, 5)) {
		t.Errorf("dropped %v, want the five oldest waiting, 1..5", got)
	}
	if n := counterValue(t, f.metrics.Dropped.WithLabelValues("Event")); n != 5 {
		t.Errorf("events_dropped_total = %v, want 5", n)
	}
	refusing.Store(false)
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0, 6, 7, 8}) {
		t.Errorf("delivered %v, want [0 6 7 8]", got)
	}
}

func TestDeliveryHeldWaitsWhatRetryAfterAsksCappedByRetryWaitMax(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryAfter string
		waitMax    time.Duration
		min, max   time.Duration
	}{
		{"honoured", "1", 5 * time.Second, time.Second, 4 * time.Second},
		{"capped", "3600", 300 * time.Millisecond, 150 * time.Millisecond, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var at []time.Time
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				at = append(at, time.Now())
				if len(at) == 1 {
					w.Header().Set("Retry-After", tc.retryAfter)
					w.WriteHeader(http.StatusForbidden)
				}
			}))
			defer srv.Close()
			f := newDeliveryFixture(t, srv.URL, func(o *deliveryOptions, _ *httpsender.Options) {
				o.RetryWaitMin, o.RetryWaitMax = time.Millisecond, tc.waitMax
			})
			wait := f.run(t, context.Background())
			f.put(t, testEnvelope(0))
			f.d.close()
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			if len(at) != 2 {
				t.Fatalf("%d requests, want 2", len(at))
			}
			if gap := at[1].Sub(at[0]); gap < tc.min || gap > tc.max {
				t.Errorf("tried again after %s, want between %s and %s", gap, tc.min, tc.max)
			}
		})
	}
}

func TestHoldWaitGrowsFromRetryWaitMinToRetryWaitMaxWithJitter(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for n, want := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		want *= time.Millisecond
		for range 20 {
			if got := holdWait(lo, hi, n, 0); got < want/2 || got > want {
				t.Fatalf("holdWait(n=%d) = %s, want within [%s, %s]", n, got, want/2, want)
			}
		}
	}
	if got := holdWait(lo, hi, 100, 0); got < hi/2 || got > hi {
		t.Errorf("holdWait after many attempts = %s, want within the cap", got)
	}
}

// TestDeliveryHoldsOnAWrongPathUntilTheTargetServesIt changes the target's
// handler while the emitter runs: the path 404s, then serves.
func TestDeliveryHoldsOnAWrongPathUntilTheTargetServesIt(t *testing.T) {
	tg := &recordingTarget{}
	var current atomic.Pointer[http.ServeMux]
	before := http.NewServeMux()
	before.Handle("POST /v2/events", tg) // the receiver moved: the configured path is gone
	current.Store(before)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { current.Load().ServeHTTP(w, r) }))
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL+"/event/receiver", nil)
	notReady := readyOf(t, f.d)
	wait := f.run(t, context.Background())
	f.put(t, testEnvelope(0), testEnvelope(1), testEnvelope(2))
	waitUntil(t, "the route held", func() bool { return f.d.hold.held.Load() })
	if got := notReady(); !strings.Contains(got, "404 Not Found") || !strings.Contains(got, "wrong path in --targetUri") {
		t.Errorf("/readyz %q, want the 404 and the hint", got)
	}
	after := http.NewServeMux()
	after.Handle("POST /event/receiver", tg)
	current.Store(after)
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := tg.got(); !slices.Equal(got, uidRange(0, 2)) || !slices.Equal(f.acks.with(delivered), uidRange(0, 2)) {
		t.Errorf("target got %v, acks %v; want 0..2 in order", got, f.acks.with(delivered))
	}
	noDeadLetterFile(t, f.dlPath)
}

func TestDeliveryDeadLettersAStatusMovedToTheDeadLetterSide(t *testing.T) {
	tg := &recordingTarget{answer: func(uid int64, _ int) int {
		if uid == 1 {
			return http.StatusNotFound
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, func(o *deliveryOptions, so *httpsender.Options) {
		o.Answers = newAnswers([]int{400, 404, 413, 422}, []int{401, 403, 410})
		so.Retry = o.Answers.retry
	})
	wait := f.run(t, context.Background())
	f.put(t, testEnvelope(0), testEnvelope(1), testEnvelope(2))
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := f.acks.with(deadLettered); !slices.Equal(got, []int64{1}) || !slices.Equal(f.acks.with(delivered), []int64{0, 2}) {
		t.Errorf("dead-lettered %v, delivered %v; want [1], [0 2]", got, f.acks.with(delivered))
	}
	if recs := readDeadLetters(t, f.dlPath); len(recs) != 1 || recs[0].Status != 404 {
		t.Errorf("dead letters %+v", recs)
	}
	if strings.Contains(f.log(), enterHold) {
		t.Errorf("held on a status moved to the dead letters:\n%s", f.log())
	}
}

func TestDeliveryHoldsOnAnUntrustedCertificateAndReadinessNamesIt(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, nil)
	notReady := readyOf(t, f.d)
	ctx, cancel := context.WithCancel(context.Background())
	wait := f.run(t, ctx)
	f.put(t, testEnvelope(0))
	waitUntil(t, "the route held", func() bool { return f.d.hold.held.Load() })
	if got := notReady(); !strings.Contains(got, "(TLS: ") || !strings.Contains(got, "--caFile") {
		t.Errorf("/readyz %q, want the TLS failure and the --caFile hint", got)
	}
	if !f.d.targetFailing() {
		t.Error("targetFailing is false while held")
	}
	cancel()
	wait()
	if f.acks.len() != 0 {
		t.Errorf("acks %v, want none: the event is read again at the next start", f.acks.uids)
	}
}

// TestRunAgainstTheReferenceReceiverHoldsOnAWrongPasswordLosesNothingAndIsNotReady
// runs the emitter (in-process, on the in-memory source, block mode, a
// buffer smaller than the backlog) against the receiver package's handler
// holding another password: the route holds, /readyz says so, nothing is
// dead-lettered. Then the receiver gets the emitter's password (a secret
// rotated on one side, then on the other): every event arrives once.
func TestRunAgainstTheReferenceReceiverHoldsOnAWrongPasswordLosesNothingAndIsNotReady(t *testing.T) {
	var mu sync.Mutex
	uids := map[int64]int{}
	handler := func(password string) http.Handler {
		h, err := receiver.NewHandler(receiver.Config[Record]{
			Decode: func(b []byte) (Record, error) {
				r, _, err := DecodePayload(b, Numbering201)
				return r, err
			},
			Handle: func(_ context.Context, r Record) error {
				mu.Lock()
				uids[r.UID()]++
				mu.Unlock()
				return nil
			},
			Password: password, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	var current atomic.Pointer[http.Handler]
	old := handler("the-old-secret")
	current.Store(&old)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) }))
	defer srv.Close()

	src := newMemSource(acme)
	for i := range 40 {
		src.add(KindEvent, "r", fmt.Sprintf("e%02d", i), 1700000000000+int64(i))
	}
	dir := t.TempDir()
	cfg := validConfig()
	cfg.TargetURI, cfg.From, cfg.Overflow, cfg.BufferCapacity = srv.URL, "beginning", buffer.Block, 5
	cfg.Username, cfg.Password = "keycloak-0", "the-new-secret"
	cfg.CheckpointPath, cfg.DeadLetterPath = filepath.Join(dir, "cp.json"), filepath.Join(dir, "dead.jsonl")
	cfg.PollInterval, cfg.RetryWaitMin, cfg.RetryWaitMax = 5*time.Millisecond, time.Millisecond, 50*time.Millisecond
	var logs strings.Builder
	var logMu sync.Mutex
	e, err := newEmitter(cfg, RunOptions{Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil)), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.run(ctx, oneSource(src), oneStore(checkpoint.NewFile(cfg.CheckpointPath))) }()
	waitFor(t, "the route held", func() bool { return e.routes[0].p.delivery.hold.held.Load() })
	// Block: the tailer fills the buffer and waits; the event in flight is held.
	waitFor(t, "the buffer full", func() bool { return e.routes[0].p.delivery.len() == cfg.BufferCapacity+1 })
	if got := e.ready.notReady(time.Now()); !strings.Contains(got, "401 Unauthorized") || !strings.Contains(got, "wrong secret") {
		t.Errorf("/readyz while refused: %q, want the 401 and the hint", got)
	}
	noDeadLetterFile(t, cfg.DeadLetterPath)

	rotated := handler("the-new-secret")
	current.Store(&rotated)
	waitFor(t, "the 40 events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(uids) == 40
	})
	if got := e.ready.notReady(time.Now()); got != "" {
		t.Errorf("/readyz after the fix: %q, want ready", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for uid, n := range uids {
		if n != 1 {
			t.Errorf("uid %d stored %d times", uid, n)
		}
	}
	noDeadLetterFile(t, cfg.DeadLetterPath)
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Count(logs.String(), enterHold) != 1 || strings.Contains(logs.String(), "the-new-secret") {
		t.Errorf("the hold logged %d times (want once), or the secret logged:\n%s", strings.Count(logs.String(), enterHold), logs.String())
	}
}
