package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
)

// memBatchSink is an in-memory batchSink: it records every batch it was
// handed (as uids) and answers each envelope with answer(uid, attempt),
// attempt counting from 1 per uid.
type memBatchSink struct {
	mu       sync.Mutex
	batches  [][]int64
	attempts map[int64]int
	answer   func(uid int64, attempt int) error
}

func (s *memBatchSink) Send(ctx context.Context, env envelope) error {
	return errors.New("memBatchSink: Send called; the delivery must use SendBatch")
}

func (s *memBatchSink) SendBatch(ctx context.Context, envs []envelope) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attempts == nil {
		s.attempts = map[int64]int{}
	}
	uids := make([]int64, len(envs))
	errs := make([]error, len(envs))
	for i, env := range envs {
		uids[i] = env.UID
		s.attempts[env.UID]++
		if s.answer != nil {
			errs[i] = s.answer(env.UID, s.attempts[env.UID])
		}
	}
	s.batches = append(s.batches, uids)
	return errs
}

func (s *memBatchSink) got() [][]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

// permanentError is what a sink package returns for a refusal for good.
type permanentError struct{ msg string }

func (e permanentError) Error() string   { return e.msg }
func (e permanentError) Permanent() bool { return true }

// statusError is a sink error carrying an HTTP-like answer.
type statusError int

func (e statusError) Error() string   { return fmt.Sprintf("status %d", int(e)) }
func (e statusError) StatusCode() int { return int(e) }

func newBatchFixture(t *testing.T, s *memBatchSink, edit func(*deliveryOptions)) *deliveryFixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	f := &deliveryFixture{acks: &ackLog{}, reg: reg, metrics: newMetrics(reg), logs: nil,
		dlPath: filepath.Join(t.TempDir(), "dead.jsonl")}
	def := DefaultConfig()
	do := deliveryOptions{Sink: s, Capacity: 64, Overflow: buffer.Block, DeadLetterPath: f.dlPath, Ack: f.acks.ack,
		Metrics: f.metrics, Logger: slog.New(slog.DiscardHandler),
		Answers: newAnswers(def.DeadLetterStatuses, def.HoldStatuses), RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
	if edit != nil {
		edit(&do)
	}
	var err error
	if f.d, err = newDelivery(do); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBatchDeliveryHandsOverWaitingEnvelopesInOrderUpToTheBatchSize(t *testing.T) {
	s := &memBatchSink{}
	f := newBatchFixture(t, s, func(o *deliveryOptions) { o.BatchSize = 4 })
	for i := range 10 {
		f.put(t, testEnvelope(i))
	}
	f.d.close()
	if err := f.run(t, context.Background())(); err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}
	if got := s.got(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches %v, want %v", got, want)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, uidRange(0, 9)) {
		t.Errorf("delivered acks %v, want 0..9 in order", got)
	}
	if n := f.d.len(); n != 0 {
		t.Errorf("len after the drain = %d, want 0", n)
	}
}

func TestBatchDeliveryRetriesOnlyTheFailedEnvelopesInTheirOrder(t *testing.T) {
	s := &memBatchSink{answer: func(uid int64, attempt int) error {
		if (uid == 1 || uid == 3) && attempt <= 2 {
			return errors.New("broker not reachable")
		}
		return nil
	}}
	f := newBatchFixture(t, s, nil)
	for i := range 5 {
		f.put(t, testEnvelope(i))
	}
	f.d.close()
	if err := f.run(t, context.Background())(); err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{0, 1, 2, 3, 4}, {1, 3}, {1, 3}}
	if got := s.got(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches %v, want %v", got, want)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0, 2, 4, 1, 3}) {
		t.Errorf("delivered acks %v, want [0 2 4 1 3]", got)
	}
	if got := f.acks.len(); got != 5 {
		t.Errorf("%d acks, want 5 (each envelope once)", got)
	}
}

func TestBatchDeliveryDeadLettersAPermanentRefusalWithItsMessageAndMovesOn(t *testing.T) {
	s := &memBatchSink{answer: func(uid int64, _ int) error {
		if uid == 2 {
			return permanentError{"kafka: MESSAGE_TOO_LARGE: the record of 300000 bytes exceeds the broker's limit"}
		}
		return nil
	}}
	f := newBatchFixture(t, s, nil)
	for i := range 4 {
		f.put(t, testEnvelope(i))
	}
	f.d.close()
	if err := f.run(t, context.Background())(); err != nil {
		t.Fatal(err)
	}
	if got := s.got(); len(got) != 1 {
		t.Errorf("batches %v, want one: a refused envelope is not sent again", got)
	}
	if got := f.acks.with(deadLettered); !slices.Equal(got, []int64{2}) {
		t.Errorf("dead-lettered acks %v, want [2]", got)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0, 1, 3}) {
		t.Errorf("delivered acks %v, want [0 1 3]", got)
	}
	recs := readDeadLetters(t, f.dlPath)
	if len(recs) != 1 || recs[0].UID != 2 || recs[0].Status != 0 || recs[0].Reason != s.answer(2, 1).Error() {
		t.Errorf("dead letters %+v, want uid 2, status 0, the sink's message as the reason", recs)
	}
}

func TestBatchDeliveryHoldsWhileTheTargetRefusesEveryEventAndGoesOnAfter(t *testing.T) {
	s := &memBatchSink{answer: func(uid int64, attempt int) error {
		if attempt <= 3 {
			return statusError(401)
		}
		return nil
	}}
	f := newBatchFixture(t, s, nil)
	f.put(t, testEnvelope(0), testEnvelope(1))
	var heldSeen bool
	f.d.opts.Ack = func(env envelope, o outcome) {
		heldSeen = heldSeen || f.d.hold.tries > 0 || !f.d.hold.releasedAt.IsZero()
		f.acks.ack(env, o)
	}
	f.d.close()
	if err := f.run(t, context.Background())(); err != nil {
		t.Fatal(err)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0, 1}) {
		t.Errorf("delivered acks %v, want [0 1]", got)
	}
	if got := s.got(); len(got) != 4 {
		t.Errorf("batches %v, want 4 attempts of [0 1]", got)
	}
	if !heldSeen {
		t.Error("the route was never held on a hold answer")
	}
	if f.d.hold.held.Load() {
		t.Error("the route is still held after the target took the events")
	}
}

func TestBatchDeliveryLingersForMoreEnvelopesUpToTheBatchSize(t *testing.T) {
	s := &memBatchSink{}
	f := newBatchFixture(t, s, func(o *deliveryOptions) { o.BatchSize = 3; o.Linger = 5 * time.Second })
	wait := f.run(t, context.Background())
	f.put(t, testEnvelope(0))
	time.Sleep(20 * time.Millisecond)
	f.put(t, testEnvelope(1), testEnvelope(2), testEnvelope(3))
	waitUntil(t, "the first batch", func() bool { return len(s.got()) == 1 })
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{0, 1, 2}, {3}}
	if got := s.got(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches %v, want %v: the first waits for a full batch, the last goes at close", got, want)
	}
}

func TestBatchDeliveryLeavesUnacknowledgedWhatIsPendingWhenItsContextEnds(t *testing.T) {
	s := &memBatchSink{answer: func(uid int64, _ int) error {
		if uid == 1 {
			return errors.New("broker not reachable")
		}
		return nil
	}}
	f := newBatchFixture(t, s, func(o *deliveryOptions) { o.RetryWaitMin, o.RetryWaitMax = time.Hour, time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	wait := f.run(t, ctx)
	f.put(t, testEnvelope(0), testEnvelope(1))
	// uid 1 may go in a batch of its own, after uid 0's.
	waitUntil(t, "uid 0 acknowledged and targetFailing while uid 1 waits for a retry", func() bool {
		return f.acks.len() == 1 && f.d.targetFailing()
	})
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("run returned %v, want context.Canceled", err)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0}) || f.acks.len() != 1 {
		t.Errorf("acks %v, want only uid 0 (uid 1 is read again at the next start)", got)
	}
}

// TestALeaderHandsABatchSinkWholeBatches pins that cluster mode's guard
// around a sink keeps a batch sink (Kafka, NATS, mail) a batch sink, so a
// leader sends whole envelopes in batches as a single emitter does, and
// keeps an HTTP sink one envelope at a time.
func TestALeaderHandsABatchSinkWholeBatches(t *testing.T) {
	if _, ok := newLeaderSink(&memBatchSink{}, nil, nil).(batchSink); !ok {
		t.Error("the leader's guard around a batch sink is not a batch sink: the delivery would send one envelope at a time")
	}
	if _, ok := newLeaderSink(&memPipeSink{}, nil, nil).(pipelinedSink); !ok {
		t.Error("the leader's guard around a pipelined sink (Kafka, NATS) is not one: the delivery would wait for each batch's answer")
	}
	if _, ok := newLeaderSink(&memBatchSink{}, nil, nil).(pipelinedSink); ok {
		t.Error("the leader's guard around a batch sink that waits (mail) is a pipelined sink: it would send a batch before the last was answered")
	}
	if _, ok := newLeaderSink(httpSink{}, nil, nil).(batchSink); ok {
		t.Error("the leader's guard around an HTTP sink is a batch sink")
	}
}

// memPipeSink is a memBatchSink that takes batches before the last was
// answered: StartBatch records the batch and its answers at once. With
// gated, a batch's answers are known (Wait returns, Failed tells) only
// once the test released it; waiting counts the waits entered.
type memPipeSink struct {
	memBatchSink
	gated   bool
	mu      sync.Mutex
	gates   []chan struct{}
	waiting atomic.Int64
}

// release lets the answers to the i-th batch handed over (from 0) out.
func (s *memPipeSink) release(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.gates[i])
}

type memSent struct {
	s    *memPipeSink
	gate chan struct{}
	errs []error
}

func (m memSent) Wait() []error {
	m.s.waiting.Add(1)
	<-m.gate
	return m.errs
}

func (m memSent) Failed() bool {
	select {
	case <-m.gate:
		return answered(m.errs).Failed()
	default:
		return false
	}
}

func (s *memPipeSink) StartBatch(ctx context.Context, envs []envelope) sentBatch {
	errs := s.memBatchSink.SendBatch(ctx, envs)
	gate := make(chan struct{})
	if !s.gated {
		close(gate)
	}
	s.mu.Lock()
	s.gates = append(s.gates, gate)
	s.mu.Unlock()
	return memSent{s: s, gate: gate, errs: errs}
}

var _ pipelinedSink = (*memPipeSink)(nil)

// startPipelined runs a delivery of ten envelopes (batches of two, the
// buffer closed) to a gated memPipeSink answering with answer, and waits
// until it waits for the first batch's answer; wait ends the run.
func startPipelined(t *testing.T, answer func(uid int64, attempt int) error) (s *memPipeSink, f *deliveryFixture, wait func() error) {
	t.Helper()
	s = &memPipeSink{gated: true}
	s.answer = answer
	f = newBatchFixture(t, &s.memBatchSink, func(o *deliveryOptions) { o.Sink, o.BatchSize = s, 2 })
	for i := range 10 {
		f.put(t, testEnvelope(i))
	}
	f.d.close()
	wait = f.run(t, context.Background())
	waitUntil(t, "the wait for the first batch's answer", func() bool { return s.waiting.Load() == 1 })
	return s, f, wait
}

func TestPipelinedDeliveryHandsOverFourBatchesBeforeTheFirstIsAnsweredAndAcksInOrder(t *testing.T) {
	// Once the delivery waits for the first answer it hands nothing over.
	s, f, wait := startPipelined(t, nil)
	want := [][]int64{{0, 1}, {2, 3}, {4, 5}, {6, 7}}
	if got := s.got(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches out before the first answer %v, want %v", got, want)
	}
	if n := f.d.len(); n != 10 {
		t.Errorf("len %d while four batches are out, want 10: they count until answered", n)
	}
	for i := range 4 {
		s.release(i)
	}
	waitUntil(t, "the fifth batch", func() bool { return len(s.got()) == 5 })
	s.release(4)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, uidRange(0, 9)) {
		t.Errorf("delivered acks %v, want 0..9 in order", got)
	}
	if n := f.d.len(); n != 0 {
		t.Errorf("len after the drain = %d, want 0", n)
	}
}

func TestPipelinedDeliverySendsTheFailuresOfEveryBatchOutAgainBeforeAnythingNewer(t *testing.T) {
	s, f, wait := startPipelined(t, func(uid int64, attempt int) error {
		if (uid == 1 || uid == 4) && attempt == 1 {
			return errors.New("broker not reachable")
		}
		return nil
	})
	for i := range 4 { // the four batches out fail together
		s.release(i)
	}
	waitUntil(t, "the fifth batch", func() bool { return len(s.got()) == 6 })
	s.release(4)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {1, 4}, {8, 9}}
	if got := s.got(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches %v, want %v", got, want)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0, 2, 3, 5, 6, 7, 1, 4, 8, 9}) {
		t.Errorf("delivered acks %v, want [0 2 3 5 6 7 1 4 8 9]", got)
	}
	if got := f.acks.len(); got != 10 {
		t.Errorf("%d acks, want 10 (each envelope once)", got)
	}
}

func TestPipelinedDeliveryHandsNothingOverWhileABatchOutHasFailed(t *testing.T) {
	s, f, wait := startPipelined(t, func(uid int64, attempt int) error {
		if uid == 2 && attempt == 1 {
			return errors.New("broker not reachable")
		}
		return nil
	})
	// The second batch fails while the first is still unanswered; once
	// the first is, the failure is sent again before the fifth batch.
	s.release(1)
	s.release(0)
	waitUntil(t, "the wait for the third batch's answer", func() bool { return s.waiting.Load() == 3 })
	s.release(2)
	s.release(3)
	// The batch sent again is answered at once (SendBatch), then the
	// fifth goes out.
	waitUntil(t, "the fifth batch", func() bool { return len(s.got()) == 6 })
	s.release(4)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {2}, {8, 9}}
	if got := s.got(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches %v, want %v", got, want)
	}
	if got := f.acks.with(delivered); !slices.Equal(got, []int64{0, 1, 3, 4, 5, 6, 7, 2, 8, 9}) {
		t.Errorf("delivered acks %v, want [0 1 3 4 5 6 7 2 8 9]", got)
	}
}
