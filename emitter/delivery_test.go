package emitter

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/receiver"
)

// testEnvelope is event i of a test: uid i, its body names the uid.
func testEnvelope(i int) envelope {
	return envelope{
		Kind: KindEvent, UID: int64(i), ID: fmt.Sprintf("kc-id-%d", i), RealmID: "realm-1", Type: "LOGIN",
		Time: time.Now().UnixMilli(), Body: fmt.Appendf(nil, `{"uid":%d,"type":"LOGIN","secretMarker":"body-%d"}`, i, i),
	}
}

// acks records what Delivery acknowledged.
type ackLog struct {
	mu   sync.Mutex
	uids []int64
	outs []outcome
}

func (a *ackLog) ack(env envelope, o outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.uids = append(a.uids, env.UID)
	a.outs = append(a.outs, o)
}

func (a *ackLog) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.uids)
}

// with returns, in ack order, the uids acknowledged with o.
func (a *ackLog) with(o outcome) []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var uids []int64
	for i, out := range a.outs {
		if out == o {
			uids = append(uids, a.uids[i])
		}
	}
	return uids
}

// recordingTarget is a receiving server that records the uids it accepted, in
// order; answer decides each answer from the uid and its attempt number
// (1 for the first).
type recordingTarget struct {
	mu       sync.Mutex
	accepted []int64
	attempts map[int64]int
	answer   func(uid int64, attempt int) int
}

func (tg *recordingTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct{ UID int64 }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.attempts == nil {
		tg.attempts = map[int64]int{}
	}
	tg.attempts[body.UID]++
	status := http.StatusOK
	if tg.answer != nil {
		status = tg.answer(body.UID, tg.attempts[body.UID])
	}
	if status == http.StatusOK {
		tg.accepted = append(tg.accepted, body.UID)
	}
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status))
}

func (tg *recordingTarget) got() []int64 {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.Clone(tg.accepted)
}

// waitUntil polls cond until it holds or 20 seconds pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func uidRange(from, to int) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, int64(i))
	}
	return s
}

// deliveryFixture is a Delivery sending to url, with its acks, metrics and logs.
type deliveryFixture struct {
	d       *delivery
	acks    *ackLog
	reg     *prometheus.Registry
	metrics *metrics
	logs    *strings.Builder
	logMu   *sync.Mutex
	dlPath  string
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s lockedWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func newDeliveryFixture(t *testing.T, url string, edit func(*deliveryOptions, *httpsender.Options)) *deliveryFixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	f := &deliveryFixture{acks: &ackLog{}, reg: reg, metrics: newMetrics(reg),
		logs: &strings.Builder{}, logMu: &sync.Mutex{}, dlPath: filepath.Join(t.TempDir(), "dead.jsonl")}
	log := slog.New(slog.NewTextHandler(lockedWriter{f.logMu, f.logs}, nil))
	def := DefaultConfig()
	ans := newAnswers(def.DeadLetterStatuses, def.HoldStatuses)
	so := httpsender.Options{URL: url, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
		Retry: ans.retry, Logger: slog.New(slog.DiscardHandler)}
	do := deliveryOptions{Capacity: 16, Overflow: buffer.Block, DeadLetterPath: f.dlPath, Ack: f.acks.ack, Metrics: f.metrics, Logger: log,
		Answers: ans, RetryWaitMin: time.Millisecond, RetryWaitMax: 20 * time.Millisecond}
	if edit != nil {
		edit(&do, &so)
	}
	s, err := httpsender.New(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.CloseIdleConnections)
	do.Sink = httpSink{s}
	if f.d, err = newDelivery(do); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *deliveryFixture) log() string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.logs.String()
}

// run starts Run and returns a function that waits for its result.
func (f *deliveryFixture) run(t *testing.T, ctx context.Context) func() error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f.d.run(ctx) }()
	return func() error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("Run has not returned")
			return nil
		}
	}
}

func (f *deliveryFixture) put(t *testing.T, envs ...envelope) {
	t.Helper()
	for _, env := range envs {
		if err := f.d.put(context.Background(), env); err != nil {
			t.Fatalf("Put uid %d: %v", env.UID, err)
		}
	}
}

// downAddr returns a loopback address where nothing listens (connections
// are refused) and a function that starts h there.
func downAddr(t *testing.T) (string, func(h http.Handler)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, func(h http.Handler) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the port of the target was taken meanwhile: %v", err)
		}
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
		srv.Start()
		t.Cleanup(srv.Close)
	}
}

func TestDeliveryKeepsOrderUnderRetries(t *testing.T) {
	// Every third event fails twice (500, then 503), the others go through.
	tg := &recordingTarget{answer: func(uid int64, attempt int) int {
		if uid%3 == 0 && attempt <= 2 {
			return []int{http.StatusInternalServerError, http.StatusServiceUnavailable}[attempt-1]
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, nil)
	wait := f.run(t, context.Background())
	for i := range 30 {
		f.put(t, testEnvelope(i))
	}
	f.d.close()
	if err := wait(); err != nil {
		t.Fatalf("Run = %v, want nil once drained after Close", err)
	}
	if got := tg.got(); !slices.Equal(got, uidRange(0, 29)) {
		t.Errorf("the target accepted %v, want 0..29 in order", got)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, uidRange(0, 29)) || f.acks.len() != 30 {
		t.Errorf("acks %v (%d in all), want 0..29 delivered, in order, once each", got, f.acks.len())
	}
	if n := counterValue(t, f.metrics.delivered.of(KindEvent)); n != 30 {
		t.Errorf("delivered counter %v, want 30", n)
	}
	var h dto.Metric
	if err := f.metrics.Latency.Write(&h); err != nil {
		t.Fatal(err)
	}
	if n := h.GetHistogram().GetSampleCount(); n != 30 || f.d.lastSuccess().IsZero() || f.d.len() != 0 {
		t.Errorf("latency observations %d, LastSuccess %v, Len %d; want 30, a time, 0", n, f.d.lastSuccess(), f.d.len())
	}
}

func TestDeliveryTargetDownThenUpInBlockModeLosesNothing(t *testing.T) {
	addr, up := downAddr(t)
	f := newDeliveryFixture(t, "http://"+addr, func(o *deliveryOptions, _ *httpsender.Options) {
		o.Capacity, o.Overflow = 3, buffer.Block
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := f.run(t, ctx)
	var puts atomic.Int32
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for i := range 20 {
			if err := f.d.put(ctx, testEnvelope(i)); err != nil {
				t.Errorf("Put uid %d: %v", i, err)
				return
			}
			puts.Add(1)
		}
	}()
	// One event in flight, three queued: the producer must be held there.
	waitUntil(t, "a full buffer", func() bool { return puts.Load() == 4 && f.d.len() == 4 })
	time.Sleep(100 * time.Millisecond)
	if n := puts.Load(); n != 4 {
		t.Fatalf("%d Puts returned while the target is down, want 4 (capacity 3 + 1 in flight)", n)
	}
	var depth dto.Metric
	if err := f.metrics.BufferDepth.Write(&depth); err != nil || depth.GetGauge().GetValue() != 4 {
		t.Errorf("buffer depth gauge %v, %v; want 4", depth.GetGauge().GetValue(), err)
	}
	up(&recordingTarget{})
	<-producerDone
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, uidRange(0, 19)) || f.acks.len() != 20 {
		t.Errorf("acks %v, want 0..19 delivered in order", got)
	}
	if n := counterValue(t, f.metrics.Dropped.WithLabelValues("Event")); n != 0 {
		t.Errorf("dropped counter %v, want 0", n)
	}
}

func TestDeliveryTargetDownThenUpInDropOldestModeDropsExactlyTheOldest(t *testing.T) {
	addr, up := downAddr(t)
	f := newDeliveryFixture(t, "http://"+addr, func(o *deliveryOptions, _ *httpsender.Options) {
		o.Capacity, o.Overflow = 3, buffer.DropOldest
	})
	wait := f.run(t, context.Background())
	f.put(t, testEnvelope(0))
	waitUntil(t, "event 0 in flight", func() bool { return f.d.ring.Len() == 0 })
	for i := 1; i <= 9; i++ {
		f.put(t, testEnvelope(i))
	}
	// 0 is being sent and cannot be evicted; of 1..9 the buffer keeps the
	// newest three.
	if got := f.acks.with(dropped); !slices.Equal(got, uidRange(1, 6)) || f.acks.len() != 6 {
		t.Fatalf("dropped %v (%d acks in all), want exactly 1..6", got, f.acks.len())
	}
	if n := counterValue(t, f.metrics.Dropped.WithLabelValues("Event")); n != 6 {
		t.Errorf("dropped counter %v, want 6", n)
	}
	logs := f.log()
	for i := 1; i <= 6; i++ {
		if !strings.Contains(logs, fmt.Sprintf("level=ERROR msg=\"buffer full: event dropped\" uid=%d kind=Event type=LOGIN time=", i)) {
			t.Errorf("no ERROR line for the drop of uid %d:\n%s", i, logs)
		}
	}
	if strings.Contains(logs, "secretMarker") {
		t.Errorf("a body was logged:\n%s", logs)
	}
	up(&recordingTarget{})
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0, 7, 8, 9}) {
		t.Errorf("delivered %v, want [0 7 8 9]", got)
	}
}

// counterValue reads a counter of metrics.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func readDeadLetters(t *testing.T, path string) []deadletter.Record {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var recs []deadletter.Record
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var r deadletter.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestDeliveryDeadLettersA400AndMovesOn(t *testing.T) {
	tg := &recordingTarget{answer: func(uid int64, _ int) int {
		if uid == 2 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, nil)
	wait := f.run(t, context.Background())
	for i := range 5 {
		f.put(t, testEnvelope(i))
	}
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := f.acks.with(deadLettered); !slices.Equal(got, []int64{2}) {
		t.Errorf("dead-lettered %v, want [2]", got)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0, 1, 3, 4}) {
		t.Errorf("delivered %v, want [0 1 3 4]", got)
	}
	if tg.attempts[2] != 1 {
		t.Errorf("the 400 was tried %d times, want once", tg.attempts[2])
	}
	recs := readDeadLetters(t, f.dlPath)
	want := testEnvelope(2)
	if len(recs) != 1 {
		t.Fatalf("%d dead-letter records, want 1", len(recs))
	}
	r := recs[0]
	if r.UID != 2 || r.Kind != string(KindEvent) || r.ID != want.ID || r.RealmID != want.RealmID || r.Type != "LOGIN" ||
		r.Status != 400 || !strings.Contains(r.Reason, "Bad Request") || r.Body != string(want.Body) || r.At.IsZero() {
		t.Errorf("dead-letter record %+v", r)
	}
	if n := counterValue(t, f.metrics.DeadLettered.WithLabelValues("Event")); n != 1 {
		t.Errorf("dead-lettered counter %v, want 1", n)
	}
	if fi, err := os.Stat(f.dlPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dead-letter file mode %v, %v; want 0600 (bodies hold personal data)", fi.Mode(), err)
	}
}

func TestDeadLetterKeepsABinaryBodyAsBase64AndCountsAnEncodeFailure(t *testing.T) {
	f := newDeliveryFixture(t, "http://127.0.0.1:1/", nil)
	env := testEnvelope(7)
	env.Kind = KindAdminEvent
	env.Body = []byte{0xff, 0x00, 0xfe}
	if err := f.d.deadLetter(env, 0, errors.New("encode: too large")); err != nil {
		t.Fatal(err)
	}
	recs := readDeadLetters(t, f.dlPath)
	if len(recs) != 1 || recs[0].Body != "" || string(recs[0].BodyBase64) != string(env.Body) ||
		recs[0].Status != 0 || recs[0].Reason != "encode: too large" {
		t.Errorf("records %+v", recs)
	}
	if got := f.acks.with(deadLettered); !slices.Equal(got, []int64{7}) {
		t.Errorf("acks %v", got)
	}
	if n := counterValue(t, f.metrics.DeadLettered.WithLabelValues("AdminEvent")); n != 1 {
		t.Errorf("dead-lettered counter %v, want 1", n)
	}
	line, _ := os.ReadFile(f.dlPath)
	if !strings.Contains(string(line), `"bodyBase64":"`+base64.StdEncoding.EncodeToString(env.Body)+`"`) {
		t.Errorf("line %s", line)
	}
}

// TestDeliveryHoldsARejectedEventUntilItsDeadLetterIsWritten makes the
// dead-letter path unwritable (a directory took its place): the rejected
// event is neither acknowledged nor passed over until the write succeeds.
func TestDeliveryHoldsARejectedEventUntilItsDeadLetterIsWritten(t *testing.T) {
	tg := &recordingTarget{answer: func(uid int64, _ int) int {
		if uid == 1 {
			return http.StatusUnprocessableEntity
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, nil)
	if err := os.Mkdir(f.dlPath, 0o700); err != nil {
		t.Fatal(err)
	}
	wait := f.run(t, context.Background())
	f.put(t, testEnvelope(0), testEnvelope(1), testEnvelope(2))
	waitUntil(t, "the failed dead-letter write", func() bool { return strings.Contains(f.log(), "writing the dead-letter file failed") })
	if got := f.acks.with(deadLettered); len(got) != 0 || slices.Contains(tg.got(), 2) {
		t.Fatalf("dead-lettered %v, target got %v: event 1 must hold the stream until it is on disk", got, tg.got())
	}
	if err := os.Remove(f.dlPath); err != nil {
		t.Fatal(err)
	}
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := f.acks.with(deadLettered); !slices.Equal(got, []int64{1}) {
		t.Errorf("dead-lettered %v, want [1]", got)
	}
	if recs := readDeadLetters(t, f.dlPath); len(recs) != 1 || recs[0].UID != 1 {
		t.Errorf("records %+v", recs)
	}
	if got := tg.got(); !slices.Equal(got, []int64{0, 2}) {
		t.Errorf("target got %v, want [0 2]", got)
	}
}

func TestNewDeliveryRejectsBadOptions(t *testing.T) {
	sender, err := httpsender.New(httpsender.Options{URL: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatal(err)
	}
	s := httpSink{sender}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		o    deliveryOptions
		want string
	}{
		{"no sink", deliveryOptions{Capacity: 1, DeadLetterPath: filepath.Join(dir, "a")}, "Sink"},
		{"no dead-letter path", deliveryOptions{Sink: s, Capacity: 1}, "DeadLetterPath"},
		{"no capacity", deliveryOptions{Sink: s, DeadLetterPath: filepath.Join(dir, "b")}, "capacity 0"},
		{"negative concurrency", deliveryOptions{Sink: s, Capacity: 1, Concurrency: -1, DeadLetterPath: filepath.Join(dir, "c")}, "Concurrency is -1"},
		{"dead-letter path is a directory", deliveryOptions{Sink: s, Capacity: 1, DeadLetterPath: dir}, dir},
		{"dead-letter directory missing", deliveryOptions{Sink: s, Capacity: 1, DeadLetterPath: filepath.Join(dir, "no", "such")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newDelivery(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newDelivery = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDeliveryWithConcurrencyAcksEveryEnvelopeOnce(t *testing.T) {
	tg := &recordingTarget{answer: func(uid int64, attempt int) int {
		if uid%5 == 0 && attempt == 1 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, func(o *deliveryOptions, so *httpsender.Options) {
		o.Concurrency, so.MaxConns = 4, 4
	})
	wait := f.run(t, context.Background())
	for i := range 200 {
		f.put(t, testEnvelope(i))
	}
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := f.acks.with(delivered)
	slices.Sort(got)
	if !slices.Equal(got, uidRange(0, 199)) || f.acks.len() != 200 {
		t.Errorf("%d acks, delivered (sorted) %v..., want each of 0..199 once", f.acks.len(), got[:min(len(got), 10)])
	}
	accepted := tg.got()
	slices.Sort(accepted)
	if !slices.Equal(accepted, uidRange(0, 199)) {
		t.Errorf("the target accepted %d events, want 200 distinct", len(accepted))
	}
}

func TestDeliveryStopsWithoutAcknowledgingWhenItsContextEnds(t *testing.T) {
	srv := httptest.NewServer(&recordingTarget{answer: func(int64, int) int { return http.StatusInternalServerError }})
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	wait := f.run(t, ctx)
	f.put(t, testEnvelope(0), testEnvelope(1))
	waitUntil(t, "event 0 in flight", func() bool { return f.d.ring.Len() == 1 })
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if f.acks.len() != 0 {
		t.Errorf("acks %v: an undelivered event must not be acknowledged", f.acks.uids)
	}
	f.d.close()
	if err := f.d.put(context.Background(), testEnvelope(2)); !errors.Is(err, buffer.ErrClosed) {
		t.Errorf("Put after Close = %v, want buffer.ErrClosed", err)
	}
}

// flakySender fails its first n calls with a transport-like error that is
// not the end of its context.
type flakySender struct {
	n    atomic.Int32
	next sink
}

func (s *flakySender) Send(ctx context.Context, env envelope) error {
	if s.n.Add(-1) >= 0 {
		return errors.New("connection reset")
	}
	return s.next.Send(ctx, env)
}

func TestDeliveryTriesAgainAfterAnErrorThatIsNotTheEnd(t *testing.T) {
	tg := &recordingTarget{}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, nil)
	flaky := &flakySender{next: f.d.opts.Sink}
	flaky.n.Store(1)
	f.d.opts.Sink = flaky
	wait := f.run(t, context.Background())
	f.put(t, testEnvelope(0), testEnvelope(1))
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0, 1}) || !slices.Equal(tg.got(), []int64{0, 1}) {
		t.Errorf("acks %v, recordingTarget %v; want [0 1] both", got, tg.got())
	}
}

// TestDeliverySignedEventsPassTheReceiversChecks sends through the
// receiver package's handler: Basic auth and Standard Webhooks signature
// made by httpsender must verify there.
func TestDeliverySignedEventsPassTheReceiversChecks(t *testing.T) {
	key := []byte("a shared signing key of 32 bytes")
	var mu sync.Mutex
	var got []string
	h, err := receiver.NewHandler(receiver.Config[[]byte]{
		Decode: func(b []byte) ([]byte, error) { return b, nil },
		Handle: func(_ context.Context, b []byte) error {
			mu.Lock()
			got = append(got, string(b))
			mu.Unlock()
			return nil
		},
		Username: "keycloak-0", Password: "bridge-token", SigningSecrets: [][]byte{key},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, func(_ *deliveryOptions, so *httpsender.Options) {
		so.Username, so.Password = "keycloak-0", "bridge-token"
		so.SigningSecrets = []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("an old key")), "whsec_" + base64.StdEncoding.EncodeToString(key)}
	})
	wait := f.run(t, context.Background())
	f.put(t, testEnvelope(0), testEnvelope(1))
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != string(testEnvelope(1).Body) || len(f.acks.with(delivered)) != 2 {
		t.Errorf("the receiver got %q; acks %v %v", got, f.acks.uids, f.acks.outs)
	}
}

// BenchmarkDelivery measures events/s from Put to acknowledgement through
// the whole delivery path (buffer, httpsender with Basic auth, loopback
// HTTP) into the receiver package's handler as cmd/kc-event-receiver wires
// it (Basic auth check, DecodePayload) with a store that keeps nothing.
func BenchmarkDelivery(b *testing.B) {
	enc, err := NewEncoder(FormatJSON, "")
	if err != nil {
		b.Fatal(err)
	}
	body, err := enc.Encode(nil, Record{Event: &Event{
		ID: "5f0c2a8e-3b4d-4e6f-9a1b-2c3d4e5f6a7b", UID: 7338720473829523456, Time: 1700000000000, Type: "LOGIN",
		RealmID: "8c1b8e83-6c1e-4a25-8d55-2f1f2a7e0f6e", ClientID: "account-console",
		UserID: "0b2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", SessionID: "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
		IPAddress: "10.0.0.7", Details: map[string]string{"auth_method": "openid-connect", "username": "alice",
			"redirect_uri": "https://sso.example.com/realms/demo/account/", "code_id": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"},
	}})
	if err != nil {
		b.Fatal(err)
	}
	var stored atomic.Int64
	h, err := receiver.NewHandler(receiver.Config[Record]{
		Decode: func(p []byte) (Record, error) {
			r, _, err := DecodePayload(p, "")
			return r, err
		},
		Handle:   func(context.Context, Record) error { stored.Add(1); return nil },
		Username: "keycloak-0", Password: "bridge-token",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, conc := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s, err := httpsender.New(httpsender.Options{URL: srv.URL, MaxConns: conc,
				Username: "keycloak-0", Password: "bridge-token", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.CloseIdleConnections()
			var acked atomic.Int64
			d, err := newDelivery(deliveryOptions{Sink: httpSink{s}, Capacity: 1024, Overflow: buffer.Block, Concurrency: conc,
				DeadLetterPath: filepath.Join(b.TempDir(), "dead.jsonl"),
				Ack: func(_ envelope, o outcome) {
					if o == delivered {
						acked.Add(1)
					}
				}})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			b.ResetTimer()
			cpu0 := processCPU(b)
			go func() { done <- d.run(context.Background()) }()
			env := envelope{Kind: KindEvent, UID: 7338720473829523456, Type: "LOGIN", Time: 1700000000000, Body: body}
			for range b.N {
				if err := d.put(context.Background(), env); err != nil {
					b.Fatal(err)
				}
			}
			d.close()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			if acked.Load() != int64(b.N) {
				b.Fatalf("%d of %d delivered", acked.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
			b.SetBytes(int64(len(body)))
		})
	}
}

// processCPU returns the CPU time (user and system) the test process has
// used: client and receiver share the process, so per event it is the
// cost of both ends, which the load of other processes does not inflate as
// it does the wall-clock rate.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
