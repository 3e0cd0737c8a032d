package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/pgsource"
)

// Timings of cluster mode.
const (
	lockRetry      = time.Second            // a standby tries the lock this often
	lockPing       = 300 * time.Millisecond // the leader confirms its lock this often
	lockLease      = time.Second            // a leader that could not confirm its lock for this long stops
	lockIdle       = 3 * time.Second        // the server ends a silent lock session after this (idle_session_timeout)
	depositionSave = 2 * time.Second        // longest wait for the last save of a deposed leader
	depositionStop = 10 * time.Second       // longest wait for a deposed leader's reads to end
)

// role is what an emitter of a cluster does now, for /readyz.
type role struct {
	lease   *pgsource.Lease // the leader's; nil for a standby
	problem string          // a standby's reason not to be ready; "" when it can take over
}

// isLeader tells whether the role is the leader's and its lease holds (a
// leader resumed after a freeze is not, even before it noticed).
func (r *role) isLeader() bool { return r.lease != nil && r.lease.Valid() }

// errDeposed is the cause of a leadership term's end when another emitter
// may lead: the lock could not be confirmed, or a newer epoch wrote.
type errDeposed struct{ err error }

func (e errDeposed) Error() string { return "deposed: " + e.err.Error() }
func (e errDeposed) Unwrap() error { return e.err }

// deposed tells whether ctx, a leadership term's, ended because the
// emitter lost the lead.
func deposed(ctx context.Context) bool {
	_, ok := errors.AsType[errDeposed](context.Cause(ctx))
	return ok
}

// runCluster is Run in cluster mode: stand by, hot, until this emitter holds
// the cluster's lock, lead (emit) while it holds it, and stand by again
// when it loses it, until ctx is done.
func (e *emitter) runCluster(ctx context.Context, src sourceOf) error {
	cfg := e.cfg
	host, _ := os.Hostname()
	e.role.Store(&role{problem: "state database not reached yet"})
	e.metrics.Leader.Set(0)
	store, err := e.openState(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer store.Close()
	locker, err := pgsource.NewLocker(pgsource.LockOptions{
		URL: cfg.StateURL(), Key: "kc-event-emitter:" + cfg.StateSchema + ":" + cfg.Cluster,
		AppName: "kc-event-emitter " + cfg.Cluster + " " + host,
		Ping:    lockPing, Lease: lockLease, IdleSessionTimeout: lockIdle,
		Log: func(msg string, args ...any) { e.log.Warn(msg, args...) },
	})
	if err != nil {
		return err
	}
	defer locker.Close()
	log := e.log.With("cluster", cfg.Cluster)
	for {
		lease, err := e.standBy(ctx, locker, store, log)
		if lease == nil {
			return err
		}
		err = e.lead(ctx, src, store, lease, host, log)
		lease.Release()
		e.metrics.Leader.Set(0)
		for _, r := range e.routes {
			r.metrics.BufferDepth.Set(0)
		}
		if err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// openState opens the cluster's state store, retrying while the database is
// not reachable, until ctx is done.
func (e *emitter) openState(ctx context.Context) (*checkpoint.Postgres, error) {
	cfg := e.cfg
	wait := time.Second
	for {
		store, err := checkpoint.OpenPostgres(ctx, cfg.StateURL(), cfg.StateSchema, cfg.Cluster)
		if err == nil {
			return store, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e.role.Store(&role{problem: "state database not reachable: " + err.Error()})
		if _, answered := errors.AsType[interface {
			error
			SQLState() string
		}](err); answered {
			// The server refused (a missing grant, a missing schema): the
			// operator must act; a grant made later is picked up.
			e.log.Error("the state database refuses the emitter; retrying", "stateDbUrl", redact.ConnString(cfg.StateURL()), "retry_in", wait, "error", redact.Error(err, cfg.StateURL()))
		} else {
			e.log.Info("the state database is not reachable yet; retrying", "stateDbUrl", redact.ConnString(cfg.StateURL()), "retry_in", wait, "error", redact.Error(err, cfg.StateURL()))
		}
		if !sleep(ctx, wait) {
			return nil, ctx.Err()
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// standBy tries the lock every lockRetry until it gets it (and returns its
// lease) or ctx is done (nil, nil).
func (e *emitter) standBy(ctx context.Context, locker *pgsource.Locker, store *checkpoint.Postgres, log *slog.Logger) (*pgsource.Lease, error) {
	said := ""
	for {
		tctx, cancel := context.WithTimeout(ctx, lockIdle)
		lease, err := locker.TryLock(tctx)
		cancel()
		if lease != nil {
			return lease, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if err != nil {
			e.role.Store(&role{problem: "standby: the state database does not answer: " + err.Error()})
			if said != "error" {
				log.Warn("standby: trying the cluster's lock failed; retrying", "error", err, "retry_in", lockRetry)
				said = "error"
			}
		} else {
			e.role.Store(&role{})
			if said != "standby" {
				leader, epoch, _ := store.Leader(ctx)
				log.Info("standby: another emitter of the cluster leads", "leader", leader, "epoch", epoch)
				said = "standby"
			}
		}
		if !sleep(ctx, lockRetry) {
			return nil, nil
		}
	}
}

// lead is one leadership term: raise the epoch of the cluster and of every
// route's state (the default route's is the cluster's; another route's is
// keyed <cluster>:<route>), open the ledgers on the shared state and emit
// until ctx is done (nil) or the lead is lost (nil after the deposed leader
// stopped; an error when it could not stop its reads within
// depositionStop, to be restarted).
func (e *emitter) lead(ctx context.Context, src sourceOf, store *checkpoint.Postgres, lease *pgsource.Lease, host string, log *slog.Logger) error {
	termCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-lease.Lost():
			cancel(errDeposed{lease.Err()})
		case <-termCtx.Done():
		}
	}()
	term, err := store.Lead(termCtx, host)
	if err != nil {
		log.Warn("could not take the lead; standing by again", "error", err)
		return nil
	}
	terms := map[*route]*checkpoint.Term{}
	for _, r := range e.routes {
		key := e.cfg.StateKey(r.cfg.Name)
		t := term
		if key != e.cfg.Cluster {
			if t, err = store.WithCluster(key).Lead(termCtx, host); err != nil {
				log.Warn("could not take the lead of a route's state; standing by again", "route", r.cfg.Name, "error", err)
				return nil
			}
		}
		terms[r] = t
		if r.p, err = r.newPipeline(newLeaderSink(r.sink, lease, cancel)); err != nil {
			return err
		}
	}
	leading := &role{lease: lease}
	e.role.Store(leading)
	e.metrics.Leader.Set(1)
	go func() {
		<-termCtx.Done()
		// A deposed leader says so at once, while its term winds down (and
		// never over the role of a later term).
		if deposed(termCtx) && e.role.CompareAndSwap(leading, &role{}) {
			e.metrics.Leader.Set(0)
		}
	}()
	log.Info("leading: this emitter emits now", "epoch", term.Epoch())
	done := make(chan error, 1)
	go func() {
		done <- e.run(termCtx, src, func(r *route) checkpoint.Store { return &fencedStore{Term: terms[r], depose: cancel} })
	}()
	var runErr error
	select {
	case runErr = <-done:
	case <-termCtx.Done():
		if !deposed(termCtx) {
			runErr = <-done // a clean stop: the graceful shutdown of runLoop
			break
		}
		select {
		case runErr = <-done:
		case <-time.After(depositionStop):
			return fmt.Errorf("cluster %q: deposed, but the reads of the event source did not end within %s (a cut network?); exiting so that the process is restarted",
				e.cfg.Cluster, depositionStop)
		}
	}
	if deposed(termCtx) {
		log.Warn("lost the lead; standing by again", "epoch", term.Epoch(), "reason", context.Cause(termCtx), "error", runErr)
		return nil
	}
	return runErr
}

// leaderSink sends only while the lease holds: before each send it checks
// the lease on the monotonic clock, so a leader resumed after a freeze
// sends nothing new even before it noticed the loss; a send refused so
// ends the term and waits for the delivery to stop.
type leaderSink struct {
	sink
	lease  *pgsource.Lease
	depose context.CancelCauseFunc
}

// newLeaderSink returns s guarded by lease: a batchSink when s is one, so
// that a leader hands a batch sink whole batches as a single emitter does.
func newLeaderSink(s sink, lease *pgsource.Lease, depose context.CancelCauseFunc) sink {
	l := &leaderSink{sink: s, lease: lease, depose: depose}
	if p, ok := s.(pipelinedSink); ok {
		return &leaderPipelinedSink{leaderBatchSink: &leaderBatchSink{leaderSink: l, batch: p}, pipe: p}
	}
	if b, ok := s.(batchSink); ok {
		return &leaderBatchSink{leaderSink: l, batch: b}
	}
	return l
}

func (s *leaderSink) Send(ctx context.Context, env envelope) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.sink.Send(ctx, env)
}

// check ends the term and waits for the delivery to stop when the lease
// is not valid; it returns ctx's error then, nil while the lease holds.
func (s *leaderSink) check(ctx context.Context) error {
	if s.lease.Valid() {
		return nil
	}
	err := s.lease.Err()
	if err == nil {
		err = errors.New("the lock was not confirmed within its lease")
	}
	s.depose(errDeposed{err})
	<-ctx.Done() // the deposed term stops the delivery at once
	return ctx.Err()
}

// leaderBatchSink is a leaderSink over a batchSink.
type leaderBatchSink struct {
	*leaderSink
	batch batchSink
}

func (s *leaderBatchSink) SendBatch(ctx context.Context, envs []envelope) []error {
	if err := s.check(ctx); err != nil {
		return allErr(err, len(envs))
	}
	return s.batch.SendBatch(ctx, envs)
}

// leaderPipelinedSink is a leaderSink over a pipelinedSink.
type leaderPipelinedSink struct {
	*leaderBatchSink
	pipe pipelinedSink
}

func (s *leaderPipelinedSink) StartBatch(ctx context.Context, envs []envelope) sentBatch {
	if err := s.check(ctx); err != nil {
		return answered(allErr(err, len(envs)))
	}
	return s.pipe.StartBatch(ctx, envs)
}

// allErr returns n answers of err.
func allErr(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// Failing passes on whether the target is failing.
func (s *leaderSink) Failing() bool {
	f, ok := s.sink.(failing)
	return ok && f.Failing()
}

// fencedStore ends the term when the state refuses a write of its epoch.
type fencedStore struct {
	*checkpoint.Term
	depose context.CancelCauseFunc
}

func (f *fencedStore) Append(ctx context.Context, lines []byte) error {
	return f.fence(f.Term.Append(ctx, lines))
}

func (f *fencedStore) Save(ctx context.Context, snap []byte) error {
	return f.fence(f.Term.Save(ctx, snap))
}

func (f *fencedStore) fence(err error) error {
	if errors.Is(err, checkpoint.ErrFenced) {
		f.depose(errDeposed{err})
	}
	return err
}
