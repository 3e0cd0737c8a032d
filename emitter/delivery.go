package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
)

// sink delivers one encoded event to the target.
type sink interface {
	// Send returns nil once the target acknowledged env's body; an error that
	// carries the target's answer (statusAnswer) or a TLS failure when the
	// target refused it in a way the answer table hands back to the route;
	// any other error only when ctx ended (it retries everything else
	// itself). The delivery pauses and tries again after any other error
	// while ctx lasts.
	Send(ctx context.Context, env envelope) error
}

// batchSink is a sink that takes several envelopes at once, in order.
type batchSink interface {
	sink
	// SendBatch delivers envs in order and returns one error per envelope
	// (nil: the sink accepted it), each with the meaning of Send's error.
	SendBatch(ctx context.Context, envs []envelope) []error
}

// pipelinedSink is a batchSink that takes a batch before the last one was
// answered, keeping their order.
type pipelinedSink interface {
	batchSink
	// StartBatch hands envs over in order, after those of the calls
	// before, and returns at once.
	StartBatch(ctx context.Context, envs []envelope) sentBatch
}

// sentBatch is the answers to a batch handed over: Wait returns what
// SendBatch would; Failed tells, without waiting, whether an envelope
// failed already.
type sentBatch interface {
	Wait() []error
	Failed() bool
}

// answered is a batch's answers known already.
type answered []error

func (a answered) Wait() []error { return a }

func (a answered) Failed() bool {
	return slices.ContainsFunc(a, func(err error) bool { return err != nil })
}

// failing is implemented by a sink that knows whether its last attempt
// failed for a reason other than the refusal of one event.
type failing interface {
	Failing() bool
}

// outcome is how the handling of an envelope ended.
type outcome int

// The outcomes reported to deliveryOptions.Ack.
const (
	// delivered: the target answered 2xx.
	delivered outcome = iota
	// deadLettered: the target rejected the event for good (or it could
	// not be encoded); it is in the dead-letter file.
	deadLettered
	// dropped: the buffer was full in drop-oldest mode and this was the
	// oldest queued event; it was logged and counted.
	dropped
)

// String returns the outcome's name.
func (o outcome) String() string {
	switch o {
	case delivered:
		return "delivered"
	case deadLettered:
		return "dead-lettered"
	case dropped:
		return "dropped"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// retryPause is how long a delivery waits before it tries again after a
// sink error that the answer table does not know, or a failed dead-letter
// write.
const retryPause = time.Second

// deliveryOptions configure newDelivery. Sink, Capacity and DeadLetterPath
// are required.
type deliveryOptions struct {
	Sink sink
	// Capacity is how many envelopes may wait in the buffer (those being
	// sent are not counted).
	Capacity int
	// MaxBytes, when not 0, is how many bytes the waiting envelopes may
	// weigh (envelopeBytes); an envelope heavier than that waits alone.
	MaxBytes int64
	// Overflow is what Put does when the buffer is full.
	Overflow buffer.Policy
	// Concurrency is how many sends may overlap; 0 means 1, which keeps
	// strict order: an envelope is sent only once the one before it is
	// done. With more, envelopes start in order but may finish out of it.
	Concurrency int
	// BatchSize is, when Sink is a batchSink, the most envelopes handed to
	// SendBatch at once; 0 means 500. Batches are sent in order, one at a
	// time, or up to batchesInFlight before the oldest is answered for a
	// pipelinedSink (Concurrency does not apply to them).
	BatchSize int
	// Linger is how long a batch that is not full waits for more
	// envelopes before it is handed over; 0 hands over what is waiting.
	Linger time.Duration
	// DeadLetterPath is the JSON-lines file where rejected envelopes are
	// kept, created with the first one and rotated past DeadLetterMaxBytes
	// (0: 64 MiB). newDelivery fails when it could not be written.
	DeadLetterPath     string
	DeadLetterMaxBytes int64
	// Answers is the table that tells a refused event (dead-lettered) from
	// a refusing target (held); the zero value retries every answer.
	Answers answers
	// RetryWaitMin and RetryWaitMax bound the backoff of a held event;
	// zero: 100ms and 30s.
	RetryWaitMin, RetryWaitMax time.Duration
	// Ack is called exactly once for every envelope Put accepted, once it
	// is done (delivered, dead-lettered or dropped), so the checkpoint can
	// move past it. It is called from several goroutines (the delivery
	// workers, and a producer whose Put dropped an envelope). An envelope
	// whose delivery is interrupted by the end of Run's context is never
	// acknowledged: it is read again at the next start.
	Ack func(envelope, outcome)
	// Metrics, when not nil, counts delivered, dead-lettered and dropped
	// envelopes by kind, observes the latency from event time to
	// acknowledgement of the delivered ones, sets the buffer depth to Len,
	// the held gauge, and reports the dead-letter file's size.
	Metrics *metrics
	// Logger receives a line per drop, dead letter and failed dead-letter
	// write; nil means slog.Default(). Bodies are never logged.
	Logger *slog.Logger
	// Now returns the current time, for latencies, dead-letter records and
	// the held state; nil means time.Now.
	Now func() time.Time
}

// delivery owns the buffer between the pipeline and the target: put
// enqueues encoded envelopes, run sends them in order through the sink,
// writes the rejected ones to the dead-letter file, holds while the target
// refuses every event, and reports every envelope's outcome to Ack.
type delivery struct {
	opts     deliveryOptions
	ring     *buffer.Ring[envelope]
	dead     *deadletter.File
	hold     *hold
	log      *slog.Logger
	now      func() time.Time
	inFlight atomic.Int64
	retrying atomic.Bool  // a batch has envelopes waiting for a retry after a transient error
	lastOK   atomic.Int64 // UnixNano; 0 = never
	answered atomic.Int64 // UnixNano of the last delivery or dead letter, or of the start
}

// newDelivery returns a delivery for o, or an error naming what is wrong.
func newDelivery(o deliveryOptions) (*delivery, error) {
	if o.Sink == nil || o.DeadLetterPath == "" {
		return nil, errors.New("delivery: Sink and DeadLetterPath are required")
	}
	if o.Concurrency < 0 {
		return nil, fmt.Errorf("delivery: Concurrency is %d, want >= 1", o.Concurrency)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.BatchSize < 0 || o.Linger < 0 {
		return nil, fmt.Errorf("delivery: BatchSize %d and Linger %s: want >= 0", o.BatchSize, o.Linger)
	}
	if o.BatchSize == 0 {
		o.BatchSize = defaultBatchSize
	}
	if o.Ack == nil {
		o.Ack = func(envelope, outcome) {}
	}
	d := &delivery{opts: o, log: o.Logger, now: o.Now}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.answered.Store(d.now().UnixNano())
	setDefault(&d.opts.DeadLetterMaxBytes, 64<<20)
	setDefault(&d.opts.RetryWaitMin, 100*time.Millisecond)
	setDefault(&d.opts.RetryWaitMax, 30*time.Second)
	d.hold = &hold{log: d.log, overflow: o.Overflow}
	var err error
	if d.ring, err = buffer.NewSized(o.Capacity, o.MaxBytes, envelopeBytes, o.Overflow, d.dropped); err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	if d.dead, err = deadletter.Open(o.DeadLetterPath, d.opts.DeadLetterMaxBytes); err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	if m := o.Metrics; m != nil {
		d.hold.gauge = m.TargetHeld
		m.watchDeadLetters(o.DeadLetterPath)
	}
	return d, nil
}

// defaultBatchSize is deliveryOptions.BatchSize's default.
const defaultBatchSize = 500

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// put enqueues env for delivery. When the buffer is full it waits for room
// (block) or drops the oldest waiting envelope (drop-oldest). It returns
// ctx.Err() if ctx ends while it waits, and buffer.ErrClosed after close.
//
// drop-oldest is kept for what it is for, an unreachable target: while the
// target takes events, a full buffer makes put wait (the database keeps
// what is not read yet) instead of dropping events only because reading a
// backlog is faster than sending it.
func (d *delivery) put(ctx context.Context, env envelope) error {
	if d.opts.Overflow == buffer.DropOldest {
		for wait := time.Millisecond; d.full(env) && !d.targetFailing(); wait = min(2*wait, 50*time.Millisecond) {
			if !sleep(ctx, wait) {
				return ctx.Err()
			}
		}
	}
	err := d.ring.Put(ctx, env)
	d.setDepth()
	return err
}

// envelopeBytes is what an envelope weighs against the buffer's byte
// budget: its body and about what the rest of it takes.
func envelopeBytes(env envelope) int64 { return int64(len(env.Body)) + 256 }

// full tells whether env would not fit in the buffer now: by count, or by
// bytes (unless nothing waits: then it goes alone).
func (d *delivery) full(env envelope) bool {
	if d.len() >= d.opts.Capacity {
		return true
	}
	queued := d.ring.Bytes()
	return d.opts.MaxBytes > 0 && queued > 0 && queued+envelopeBytes(env) > d.opts.MaxBytes
}

// targetFailing tells whether the route is held or the sink's last attempt
// failed for a reason other than a refusal of one event.
func (d *delivery) targetFailing() bool {
	if d.hold.held.Load() || d.retrying.Load() {
		return true
	}
	f, ok := d.opts.Sink.(failing)
	return ok && f.Failing()
}

// dropped handles an envelope that drop-oldest evicted: logged, counted
// and acknowledged so that the checkpoint moves past it.
func (d *delivery) dropped(env envelope) {
	d.log.Error("buffer full: event dropped", "uid", env.UID, "kind", env.Kind, "type", env.Type,
		"time", time.UnixMilli(env.Time).UTC(), "realm_id", env.RealmID, "id", env.ID)
	if m := d.opts.Metrics; m != nil {
		m.Dropped.WithLabelValues(string(env.Kind)).Inc()
	}
	d.opts.Ack(env, dropped)
}

// run delivers envelopes until ctx ends (it then returns ctx.Err(); the
// envelopes being sent or waiting are not acknowledged) or until close was
// called and every envelope was handled (it then returns nil).
func (d *delivery) run(ctx context.Context) error {
	if bs, ok := d.opts.Sink.(batchSink); ok {
		return d.runBatches(ctx, bs)
	}
	slots := make(chan struct{}, d.opts.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		env, err := d.ring.Take(ctx)
		if err != nil {
			wg.Wait()
			if errors.Is(err, buffer.ErrClosed) {
				return nil
			}
			return err
		}
		d.inFlight.Add(1)
		d.setDepth()
		if d.opts.Concurrency == 1 {
			d.deliver(ctx, env)
			<-slots
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			d.deliver(ctx, env)
		})
	}
}

// batchesInFlight is how many batches a pipelinedSink may hold before the
// oldest was answered: a backlog then drains at the target's pace, not at
// one round trip per batch.
const batchesInFlight = 4

// outBatch is a batch handed to the sink and not answered yet.
type outBatch struct {
	envs []envelope
	at   time.Time
	sent sentBatch
}

// runBatches is run for a batchSink: it takes the envelopes that are
// waiting, up to BatchSize (waiting up to Linger for more when no batch
// is out), and hands them over as one batch; a pipelinedSink takes up to
// batchesInFlight of them before the oldest is answered. Batches are
// answered in the order they were sent, so acknowledgements keep it;
// when a batch fails, the envelopes the later ones did not deliver join
// its own, in order, and are sent again before anything newer. No batch
// is handed over while one out has failed, so that the sink's own failing
// of the later records of a partition (Kafka) covers every batch out.
func (d *delivery) runBatches(ctx context.Context, bs batchSink) error {
	depth := 1
	if _, ok := bs.(pipelinedSink); ok {
		depth = batchesInFlight
	}
	var out []outBatch
	defer func() {
		for _, b := range out { // ctx ended: not acknowledged, read again at the next start
			d.inFlight.Add(-int64(len(b.envs)))
		}
		d.setDepth()
	}()
	for {
		if len(out) == depth || len(out) > 0 && (d.ring.Len() == 0 || anyFailed(out)) {
			head := out[0]
			out = out[1:]
			u := d.settle(ctx, head.envs, head.sent.Wait(), head.at)
			if len(u.pending) > 0 && ctx.Err() == nil {
				for _, b := range out {
					u = u.join(d.settle(ctx, b.envs, b.sent.Wait(), b.at))
				}
				out = out[:0]
				d.retry(ctx, bs, u)
			} else {
				d.inFlight.Add(-int64(len(u.pending)))
			}
			d.setDepth()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		env, err := d.ring.Take(ctx)
		if err != nil {
			if errors.Is(err, buffer.ErrClosed) {
				return nil
			}
			return err
		}
		// Once the buffer is closed and empty, what is out is answered,
		// then Take tells the end.
		batch := d.fill(ctx, append(make([]envelope, 0, d.opts.BatchSize), env), len(out) == 0)
		d.inFlight.Add(int64(len(batch)))
		d.setDepth()
		out = append(out, outBatch{envs: batch, at: d.now(), sent: startBatch(ctx, bs, batch)})
	}
}

// anyFailed tells whether an envelope of a batch out failed already.
func anyFailed(out []outBatch) bool {
	return slices.ContainsFunc(out, func(b outBatch) bool { return b.sent.Failed() })
}

// startBatch hands envs to bs: at once for a pipelinedSink, by SendBatch
// for another.
func startBatch(ctx context.Context, bs batchSink, envs []envelope) sentBatch {
	if p, ok := bs.(pipelinedSink); ok {
		return p.StartBatch(ctx, envs)
	}
	return answered(bs.SendBatch(ctx, envs))
}

// fill appends to batch the envelopes waiting in the buffer, up to
// BatchSize; with linger, it waits up to Linger for more when there are
// not enough. It stops early when the buffer is closed and empty, or ctx
// ends.
func (d *delivery) fill(ctx context.Context, batch []envelope, linger bool) []envelope {
	for len(batch) < d.opts.BatchSize && d.ring.Len() > 0 {
		env, err := d.ring.Take(ctx)
		if err != nil {
			return batch
		}
		batch = append(batch, env)
	}
	if len(batch) == d.opts.BatchSize || d.opts.Linger == 0 || !linger {
		return batch
	}
	lctx, cancel := context.WithTimeout(ctx, d.opts.Linger)
	defer cancel()
	for len(batch) < d.opts.BatchSize {
		env, err := d.ring.Take(lctx)
		if err != nil {
			return batch
		}
		batch = append(batch, env)
	}
	return batch
}

// unsettled is what an answer to a batch left to send again: the
// envelopes in their order, the first hold answer among them (the target
// refuses every event) and the first error.
type unsettled struct {
	pending    []envelope
	hold       *refusal
	holdEnv    envelope
	firstErr   error
	retryAfter time.Duration
	sentAt     time.Time
}

// join appends v's envelopes to u's, keeping u's hold and error first.
func (u unsettled) join(v unsettled) unsettled {
	u.pending = append(u.pending, v.pending...)
	if u.hold == nil && v.hold != nil {
		u.hold, u.holdEnv, u.retryAfter, u.sentAt = v.hold, v.holdEnv, v.retryAfter, v.sentAt
	}
	if u.firstErr == nil {
		u.firstErr = v.firstErr
	}
	return u
}

// settle takes the sink's answers errs to pending, sent at sentAt: it
// acknowledges the envelopes delivered, dead-letters those refused for
// good, and returns the others.
func (d *delivery) settle(ctx context.Context, pending []envelope, errs []error, sentAt time.Time) unsettled {
	if len(errs) != len(pending) {
		// A sink's bug; never acknowledge what it may not have taken.
		err := fmt.Errorf("sink returned %d answers for %d envelopes", len(errs), len(pending))
		errs = make([]error, len(pending))
		for i := range errs {
			errs[i] = err
		}
	}
	u := unsettled{sentAt: sentAt}
	for i, env := range pending {
		err := errs[i]
		if err == nil {
			d.delivered(env)
			continue
		}
		r := d.opts.Answers.classify(err)
		if r.action == deadLetterAnswer {
			d.hold.released(d.now())
			d.reject(ctx, env, r.status, err)
			continue
		}
		u.pending = append(u.pending, env)
		if r.action == holdAnswer && u.hold == nil {
			u.hold, u.holdEnv, u.retryAfter = &r, env, r.retryAfter
		}
		if u.firstErr == nil {
			u.firstErr = err
		}
	}
	d.inFlight.Add(-int64(len(pending) - len(u.pending)))
	return u
}

// retry sends u's envelopes again until each is delivered or
// dead-lettered, or ctx ends. After a transient error, or while the target
// refuses every event (a hold answer), it waits (backoff between
// RetryWaitMin and RetryWaitMax) and sends again only the envelopes that
// were not taken, in their order.
func (d *delivery) retry(ctx context.Context, bs batchSink, u unsettled) {
	defer func() {
		d.inFlight.Add(-int64(len(u.pending)))
		d.retrying.Store(false)
		d.setDepth()
	}()
	for held, failed := 0, 0; len(u.pending) > 0; {
		d.setDepth()
		if ctx.Err() != nil {
			return // what is left is not acknowledged: read again at the next start
		}
		var wait time.Duration
		if u.hold != nil {
			wait = holdWait(d.opts.RetryWaitMin, d.opts.RetryWaitMax, held, u.retryAfter)
			held++
			d.hold.refused(*u.hold, u.holdEnv, u.sentAt, d.now(), wait)
			d.log.Debug("held: the target refused the batch again", "uid", u.holdEnv.UID, "answer", u.hold.answer(),
				"events", len(u.pending), "attempt", held, "retry_in", wait)
		} else {
			// The sink's client retried already: back off as for a hold.
			wait = holdWait(d.opts.RetryWaitMin, d.opts.RetryWaitMax, failed, 0)
			failed++
			d.retrying.Store(true)
			d.log.Warn("send failed, trying again", "uid", u.pending[0].UID, "kind", u.pending[0].Kind,
				"events", len(u.pending), "error", u.firstErr, "retry_in", wait)
		}
		if !sleep(ctx, wait) {
			return
		}
		pending, sentAt := u.pending, d.now()
		u = d.settle(ctx, pending, bs.SendBatch(ctx, pending), sentAt)
	}
}

// delivered records that the target took env and acknowledges it.
func (d *delivery) delivered(env envelope) {
	now := d.now()
	d.hold.released(now)
	d.lastOK.Store(now.UnixNano())
	if mt := d.opts.Metrics; mt != nil {
		mt.delivered.of(env.Kind).Inc()
		mt.Latency.Observe(now.Sub(time.UnixMilli(env.Time)).Seconds())
	}
	d.answered.Store(now.UnixNano())
	d.opts.Ack(env, delivered)
}

// deliver sends env until it is delivered or dead-lettered, or ctx ends.
// While the target refuses every event (a hold answer) it tries env again
// with backoff: the route keeps its position.
func (d *delivery) deliver(ctx context.Context, env envelope) {
	defer func() {
		d.inFlight.Add(-1)
		d.setDepth()
	}()
	for held := 0; ; {
		sentAt := d.now()
		err := d.opts.Sink.Send(ctx, env)
		if err == nil {
			d.delivered(env)
			return
		}
		r := d.opts.Answers.classify(err)
		if r.action == deadLetterAnswer {
			d.hold.released(d.now())
			d.reject(ctx, env, r.status, err)
			return
		}
		if ctx.Err() != nil {
			return // not acknowledged: read again at the next start
		}
		wait := retryPause
		switch r.action {
		case holdAnswer:
			wait = holdWait(d.opts.RetryWaitMin, d.opts.RetryWaitMax, held, r.retryAfter)
			held++
			d.hold.refused(r, env, sentAt, d.now(), wait)
			d.log.Debug("held: the target refused the event again", "uid", env.UID, "answer", r.answer(), "attempt", held, "retry_in", wait)
		default:
			d.log.Warn("send failed, trying again", "uid", env.UID, "kind", env.Kind, "error", err, "retry_in", wait)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// reject writes env to the dead-letter file, trying again until the write
// succeeds or ctx ends, and then acknowledges it.
func (d *delivery) reject(ctx context.Context, env envelope, status int, reason error) {
	for {
		err := d.deadLetter(env, status, reason)
		if err == nil {
			return
		}
		d.log.Error("writing the dead-letter file failed; the event is held until it succeeds",
			"uid", env.UID, "kind", env.Kind, "path", d.dead.Path(), "error", err, "retry_in", retryPause)
		if !sleep(ctx, retryPause) {
			return
		}
	}
}

// deadLetter writes env to the dead-letter file with the target's status
// (0 when it never reached the target) and reason, counts it and
// acknowledges it as deadLettered. It returns the write's error, and then
// does not acknowledge env.
func (d *delivery) deadLetter(env envelope, status int, reason error) error {
	if err := d.dead.Append(deadLetterRecord(env, status, reason, d.now())); err != nil {
		return err
	}
	d.log.Error("event dead-lettered", "uid", env.UID, "kind", env.Kind, "type", env.Type,
		"time", time.UnixMilli(env.Time).UTC(), "status", status, "reason", reason, "path", d.dead.Path())
	if m := d.opts.Metrics; m != nil {
		m.DeadLettered.WithLabelValues(string(env.Kind)).Inc()
	}
	d.answered.Store(d.now().UnixNano())
	d.opts.Ack(env, deadLettered)
	return nil
}

// close stops put from accepting envelopes; run delivers those already
// accepted and then returns nil.
func (d *delivery) close() { d.ring.Close() }

// len returns the number of envelopes accepted but not yet handled: waiting
// in the buffer or being sent.
func (d *delivery) len() int { return d.ring.Len() + int(d.inFlight.Load()) }

// lastAnswer returns when the target last took an envelope (delivered or
// refused for good), or when the delivery began.
func (d *delivery) lastAnswer() time.Time { return time.Unix(0, d.answered.Load()) }

// lastSuccess returns when the target last acknowledged an envelope; the
// zero time if it never did.
func (d *delivery) lastSuccess() time.Time {
	if ns := d.lastOK.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// setDepth publishes len as the buffer depth gauge.
func (d *delivery) setDepth() {
	if m := d.opts.Metrics; m != nil {
		m.BufferDepth.Set(float64(d.len()))
	}
}
