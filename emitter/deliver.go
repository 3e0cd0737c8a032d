package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
)

// Sender delivers one encoded event to the target. *httpsender.Sender
// satisfies it.
//
// Send returns nil once the target acknowledged m, a
// *httpsender.PermanentError when the target rejected it for good, and any
// other error only when ctx ended (it retries everything else itself).
// Delivery pauses and tries again after any other error while ctx lasts.
type Sender interface {
	Send(ctx context.Context, m httpsender.Message) error
}

// Outcome is how the handling of an envelope ended.
type Outcome int

// The outcomes reported to DeliveryOptions.Ack.
const (
	// Delivered: the target answered 2xx.
	Delivered Outcome = iota
	// DeadLettered: the target rejected the event for good (or it could
	// not be encoded); it is in the dead-letter file.
	DeadLettered
	// Dropped: the buffer was full in drop-oldest mode and this was the
	// oldest queued event; it was logged and counted.
	Dropped
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case DeadLettered:
		return "dead-lettered"
	case Dropped:
		return "dropped"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// DefaultDeadLetterPath is the dead-letter file of a DeliveryOptions whose
// DeadLetterPath is empty, relative to the working directory.
const DefaultDeadLetterPath = "kc-event-emitter.dead-letter.jsonl"

// retryPause is how long Delivery waits before it tries again after a
// Sender error that is not permanent, or a failed dead-letter write.
const retryPause = time.Second

// DeliveryOptions configures NewDelivery. Sender and Capacity are required.
type DeliveryOptions struct {
	Sender Sender
	// Capacity is how many envelopes may wait in the buffer (those being
	// sent are not counted).
	Capacity int
	// Overflow is what Put does when the buffer is full.
	Overflow buffer.Policy
	// Concurrency is how many sends may overlap; 0 means 1, which keeps
	// strict order: an envelope is sent only once the one before it is
	// done. With more, envelopes start in order but may finish out of it.
	Concurrency int
	// DeadLetterPath is the JSON-lines file where rejected envelopes are
	// kept; empty means DefaultDeadLetterPath. NewDelivery fails when it
	// cannot be opened for appending.
	DeadLetterPath string
	// Ack is called exactly once for every envelope Put accepted, once it
	// is done (delivered, dead-lettered or dropped), so the checkpoint can
	// move past it. It is called from several goroutines (the delivery
	// workers, and a producer whose Put dropped an envelope). An envelope
	// whose delivery is interrupted by the end of Run's context is never
	// acknowledged: it is read again at the next start.
	Ack func(Envelope, Outcome)
	// Metrics, when not nil, counts delivered, dead-lettered and dropped
	// envelopes by kind, observes the latency from event time to
	// acknowledgement of the delivered ones, and sets the buffer depth
	// to Len.
	Metrics *Metrics
	// Logger receives a line per drop, dead letter and failed dead-letter
	// write; nil means slog.Default(). Bodies are never logged.
	Logger *slog.Logger
	// Now returns the current time, for latencies and dead-letter records;
	// nil means time.Now.
	Now func() time.Time
}

// Delivery owns the buffer between the pipeline and the target: Put
// enqueues encoded envelopes, Run sends them in order through the Sender,
// writes the rejected ones to the dead-letter file, and reports every
// envelope's outcome to Ack.
type Delivery struct {
	opts     DeliveryOptions
	ring     *buffer.Ring[Envelope]
	dead     *deadLetters
	log      *slog.Logger
	now      func() time.Time
	inFlight atomic.Int64
	lastOK   atomic.Int64 // UnixNano; 0 = never
}

// NewDelivery returns a Delivery for o, or an error naming what is wrong.
func NewDelivery(o DeliveryOptions) (*Delivery, error) {
	if o.Sender == nil {
		return nil, errors.New("delivery: Sender is required")
	}
	if o.Concurrency < 0 {
		return nil, fmt.Errorf("delivery: Concurrency is %d, want >= 1", o.Concurrency)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.DeadLetterPath == "" {
		o.DeadLetterPath = DefaultDeadLetterPath
	}
	if o.Ack == nil {
		o.Ack = func(Envelope, Outcome) {}
	}
	d := &Delivery{opts: o, log: o.Logger, now: o.Now}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.now == nil {
		d.now = time.Now
	}
	var err error
	if d.ring, err = buffer.New(o.Capacity, o.Overflow, d.dropped); err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	if d.dead, err = openDeadLetters(o.DeadLetterPath); err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	return d, nil
}

// Put enqueues env for delivery. When the buffer is full it waits for room
// (block) or drops the oldest waiting envelope (drop-oldest). It returns
// ctx.Err() if ctx ends while it waits, and buffer.ErrClosed after Close.
func (d *Delivery) Put(ctx context.Context, env Envelope) error {
	err := d.ring.Put(ctx, env)
	d.setDepth()
	return err
}

// dropped handles an envelope that drop-oldest evicted: logged, counted
// and acknowledged so that the checkpoint moves past it.
func (d *Delivery) dropped(env Envelope) {
	d.log.Error("buffer full: event dropped", "uid", env.UID, "kind", env.Kind, "type", env.Type,
		"time", time.UnixMilli(env.Time).UTC(), "realmId", env.RealmID, "id", env.ID)
	if m := d.opts.Metrics; m != nil {
		m.Dropped.WithLabelValues(string(env.Kind)).Inc()
	}
	d.opts.Ack(env, Dropped)
}

// Run delivers envelopes until ctx ends (it then returns ctx.Err(); the
// envelopes being sent or waiting are not acknowledged) or until Close was
// called and every envelope was handled (it then returns nil).
func (d *Delivery) Run(ctx context.Context) error {
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

// deliver sends env until it is delivered or rejected, or ctx ends.
func (d *Delivery) deliver(ctx context.Context, env Envelope) {
	defer func() {
		d.inFlight.Add(-1)
		d.setDepth()
	}()
	m := httpsender.Message{ID: strconv.FormatInt(env.UID, 10), Body: env.Body}
	for {
		err := d.opts.Sender.Send(ctx, m)
		if err == nil {
			now := d.now()
			d.lastOK.Store(now.UnixNano())
			if mt := d.opts.Metrics; mt != nil {
				mt.Delivered.WithLabelValues(string(env.Kind)).Inc()
				mt.Latency.Observe(now.Sub(time.UnixMilli(env.Time)).Seconds())
			}
			d.opts.Ack(env, Delivered)
			return
		}
		if perr, ok := errors.AsType[*httpsender.PermanentError](err); ok {
			d.reject(ctx, env, perr.Status, perr)
			return
		}
		if ctx.Err() != nil {
			return // not acknowledged: read again at the next start
		}
		d.log.Warn("send failed, trying again", "uid", env.UID, "kind", env.Kind, "err", err, "retry_in", retryPause)
		if !pause(ctx, retryPause) {
			return
		}
	}
}

// reject writes env to the dead-letter file, trying again until the write
// succeeds or ctx ends, and then acknowledges it.
func (d *Delivery) reject(ctx context.Context, env Envelope, status int, reason error) {
	for {
		err := d.deadLetter(env, status, reason)
		if err == nil {
			return
		}
		d.log.Error("writing the dead-letter file failed; the event is held until it succeeds",
			"uid", env.UID, "kind", env.Kind, "path", d.dead.path, "err", err, "retry_in", retryPause)
		if !pause(ctx, retryPause) {
			return
		}
	}
}

// DeadLetter writes env to the dead-letter file with reason (an event that
// could not be encoded, say), counts it and acknowledges it as
// DeadLettered. It returns the write's error, and then does not
// acknowledge env.
func (d *Delivery) DeadLetter(env Envelope, reason error) error {
	return d.deadLetter(env, 0, reason)
}

func (d *Delivery) deadLetter(env Envelope, status int, reason error) error {
	if err := d.dead.write(env, status, reason, d.now()); err != nil {
		return err
	}
	d.log.Error("event dead-lettered", "uid", env.UID, "kind", env.Kind, "type", env.Type,
		"time", time.UnixMilli(env.Time).UTC(), "status", status, "reason", reason, "path", d.dead.path)
	if m := d.opts.Metrics; m != nil {
		m.DeadLettered.WithLabelValues(string(env.Kind)).Inc()
	}
	d.opts.Ack(env, DeadLettered)
	return nil
}

// Close stops Put from accepting envelopes; Run delivers those already
// accepted and then returns nil.
func (d *Delivery) Close() { d.ring.Close() }

// Len returns the number of envelopes accepted but not yet handled: waiting
// in the buffer or being sent.
func (d *Delivery) Len() int { return d.ring.Len() + int(d.inFlight.Load()) }

// LastSuccess returns when the target last acknowledged an envelope; the
// zero time if it never did.
func (d *Delivery) LastSuccess() time.Time {
	if ns := d.lastOK.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// setDepth publishes Len as the buffer depth gauge.
func (d *Delivery) setDepth() {
	if m := d.opts.Metrics; m != nil {
		m.BufferDepth.Set(float64(d.Len()))
	}
}

// pause waits for d or the end of ctx, and reports whether ctx is still alive.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
