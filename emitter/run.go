package emitter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/apisource"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/pgsource"
)

// RunOptions are what Run needs beside the Config.
type RunOptions struct {
	// Logger receives every log line; default slog.Default().
	Logger *slog.Logger
	// Registry receives the metrics and is served on /metrics; default a
	// new, empty registry.
	Registry *prometheus.Registry
	// Progress, when set, receives a progress line (rewritten in place with
	// carriage returns) while a Once run drains: give it a terminal.
	Progress io.Writer
}

// Run reads Keycloak's events as cfg says and delivers them, route by
// route, until ctx is done; with cfg.Once it returns once every event
// present at the start was delivered by every route (or dead-lettered or
// dropped and counted). When ctx is done it stops reading, delivers what is
// buffered for at most cfg.ShutdownTimeout, saves the checkpoints and
// returns nil: events not delivered by then are read again at the next
// start, with the same uid.
func Run(ctx context.Context, cfg Config, opts RunOptions) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	e, err := newEmitter(cfg, opts)
	if err != nil {
		return err
	}
	defer func() {
		for _, r := range e.routes {
			closeSink(r.sink)
		}
	}()
	if cfg.ListenAddr != "" {
		ln, err := listenOps(cfg.ListenAddr)
		if err != nil {
			return err
		}
		defer serveOps(ln, opts.Registry, e.ready.notReady, e.ready.readyText).Close()
	}
	src, closeSource, err := openSource(ctx, cfg, e.log)
	if err != nil {
		if ctx.Err() != nil {
			e.log.Info("stopped before the source was reachable")
			return nil
		}
		return err
	}
	defer closeSource()
	if cfg.Cluster != "" {
		return e.runCluster(ctx, src)
	}
	e.metrics.Leader.Set(1) // the only emitter emits
	return e.run(ctx, src, func(r *route) checkpoint.Store { return checkpoint.NewFile(cfg.CheckpointOf(r.cfg.Name)) })
}

// emitter is one running emitter: its routes, and the uids they share;
// everything but the source, which is opened (and waited for) after the
// ops server answers.
type emitter struct {
	cfg     Config
	opts    RunOptions
	log     *slog.Logger
	metrics *metrics // of the first route (the default route of a flags-only run); the leader gauge
	uids    *UIDGenerator
	routes  []*route
	ready   readiness
	role    atomic.Pointer[role] // cluster mode: leader or standby; nil otherwise
}

// route is one route of a running emitter: its own tailer (each route reads
// the source at its own position), ledger, pipeline and delivery.
type route struct {
	cfg     Route
	log     *slog.Logger // With("route", name)
	metrics *metrics
	enc     Encoder
	sink    sink                           // the target, shared by the pipelines of every leadership term
	keep    func(Record) bool              // the sink's own filter (the mail sink's types); nil keeps all
	p       *pipeline                      // of the current run (leadership term)
	cur     atomic.Pointer[delivery]       // p.delivery, for /readyz
	src     atomic.Pointer[observedSource] // set once open; read by /readyz

	bufferBytes int64 // the bound of the delivery buffer in bytes (--bufferBytes, every route's)
}

// newEmitter builds the delivery side of every route of cfg: uids,
// encoders, sinks, buffers and dead-letter files, and the metrics on
// opts.Registry.
func newEmitter(cfg Config, opts RunOptions) (*emitter, error) {
	e := &emitter{cfg: cfg, opts: opts, log: opts.Logger}
	set := newMetricSet(opts.Registry)
	var err error
	if e.uids, err = NewUIDGenerator(cfg.KeycloakID, cfg.DatacenterID); err != nil {
		return nil, err
	}
	for _, rc := range cfg.routeList() {
		r := &route{cfg: rc, log: e.log.With("route", rc.Name), metrics: set.forRoute(rc.Name), bufferBytes: cfg.BufferBytes}
		if r.enc, r.keep, err = routeEncoder(rc); err != nil {
			return nil, fmt.Errorf("route %s: %w", rc.Name, err)
		}
		if r.sink, err = newRouteSink(rc, r.log); err != nil {
			return nil, err
		}
		if r.p, err = r.newPipeline(r.sink); err != nil {
			return nil, fmt.Errorf("route %s: %w", rc.Name, err)
		}
		if e.metrics == nil {
			e.metrics = r.metrics
		}
		e.routes = append(e.routes, r)
		e.ready.routes = append(e.ready.routes, routeReady{name: rc.Name, source: r.src.Load, delivery: r.cur.Load})
	}
	e.ready.role = e.role.Load
	return e, nil
}

// newRouteSink returns the sink of r.
func newRouteSink(r Route, log *slog.Logger) (sink, error) {
	switch s := r.Sink; {
	case s.HTTP != nil:
		sender, err := newHTTPSender(r, log)
		if err != nil {
			return nil, err
		}
		return httpSink{sender}, nil
	case s.Mail != nil:
		return newMailSink(*s.Mail, r.RetryWaitMin, r.RetryWaitMax, log)
	case s.Kafka != nil:
		return newKafkaSink(*s.Kafka, log)
	case s.NATS != nil:
		return newNATSSink(*s.NATS, log)
	}
	return nil, &FieldError{Field: "sink", Err: fmt.Errorf("route %s has no sink", r.Name)}
}

// routeEncoder returns the encoder of r and, for a sink that filters on
// its own (the mail sink's types), its filter.
func routeEncoder(r Route) (Encoder, func(Record) bool, error) {
	if m := r.Sink.Mail; m != nil {
		return newMailEncoder(), m.keeps, nil
	}
	enc, err := NewEncoder(r.Format, r.Numbering)
	return enc, nil, err
}

// newPipeline builds a pipeline and its delivery to s (one per leadership
// term in cluster mode: a delivery is closed when its term ends).
func (r *route) newPipeline(s sink) (*pipeline, error) {
	rc := r.cfg
	p := &pipeline{filters: rc.Filters, keep: r.keep, enc: r.enc, metrics: r.metrics, progress: &progress{}}
	batchSize, linger := rc.Sink.batchOptions()
	answers := answers{}
	if h := rc.Sink.HTTP; h != nil {
		answers = newAnswers(h.DeadLetterStatuses, h.HoldStatuses)
	}
	var err error
	p.delivery, err = newDelivery(deliveryOptions{
		Sink:           s,
		Capacity:       rc.BufferCapacity,
		MaxBytes:       r.bufferBytes,
		Overflow:       rc.Overflow,
		Concurrency:    rc.Concurrency,
		BatchSize:      batchSize,
		Linger:         linger,
		DeadLetterPath: rc.DeadLetterPath,
		Ack:            p.ack,
		Metrics:        r.metrics,
		Logger:         r.log,
		// The target's answers and the dead-letter file's rotation.
		DeadLetterMaxBytes: rc.DeadLetterMaxBytes,
		Answers:            answers,
		RetryWaitMin:       rc.RetryWaitMin,
		RetryWaitMax:       rc.RetryWaitMax,
	})
	if err != nil {
		return nil, err
	}
	r.cur.Store(p.delivery)
	return p, nil
}

// sourceOf returns the source adapter of a route: the filters it can, it
// applies when reading. The adapters of all routes share one connection
// pool (or API client).
type sourceOf func(Filters) source

// run runs every route, each on its own store, until ctx is done (with
// Once: until every route drained the source and delivered). The first
// route that fails stops the others (they shut down as on ctx's end).
func (e *emitter) run(ctx context.Context, src sourceOf, storeOf func(*route) checkpoint.Store) error {
	e.log.Info("kc-event-emitter started", "config", e.cfg)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errs := make([]error, len(e.routes))
	var wg sync.WaitGroup
	for i, r := range e.routes {
		wg.Go(func() {
			if err := r.run(ctx, e, src(r.cfg.Filters), storeOf(r), i == 0); err != nil {
				errs[i] = fmt.Errorf("route %s: %w", r.cfg.Name, err)
				cancel(errs[i])
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// run opens the route's ledger on store and tails src until ctx is done
// (with Once: until src is drained and delivered). With show, the progress
// of a Once run goes to the terminal.
func (r *route) run(ctx context.Context, e *emitter, src source, store checkpoint.Store, show bool) error {
	cfg, p := e.cfg, r.p
	if d, ok := src.(*dbSource); ok {
		d.unreachable = r.metrics.Unreachable
	}
	observed, read := observe(src, r.metrics.SourceReads)
	r.src.Store(observed)
	p.users = newEnricher(observed, defaultUsernameCache)
	var err error
	p.ledger, err = checkpoint.Open(ctx, checkpoint.Options{
		Store:        store,
		NextUID:      e.uids.Next,
		Overlap:      cfg.Overlap,
		SaveInterval: saveInterval,
		Horizon:      cfg.AuditHorizon,
		PastHorizon:  pastHorizon,
	})
	if err != nil {
		return err
	}
	// Uids issued before a restart bound the new ones, even if the clock
	// stepped back meanwhile.
	e.uids.Resume(p.ledger.MaxUID())
	start, _ := parseFrom(cfg.From, time.Now()) // validated
	t, err := newTailer(tailOptions{
		Source: read, Ledger: p.ledger, Emit: p.emit, Prefetch: p.prefetch, Logger: r.log,
		Realms: r.cfg.Realms, Kinds: r.cfg.Kinds, Start: start,
		PageSize: cfg.PageSize, PollInterval: cfg.PollInterval,
		RescanInterval: rescanInterval, RealmInterval: realmInterval, MaxBackoff: maxBackoff,
		Now: time.Now, Sleep: sleep, Overlap: cfg.Overlap, MaxHold: cfg.AuditHorizon,
		Late: func(k Kind, behind time.Duration) {
			r.metrics.Late.WithLabelValues(string(k)).Inc()
			r.metrics.LateBy.Observe(behind.Seconds())
		},
		Missed: func(k Kind, n int) { r.metrics.Missed.WithLabelValues(string(k)).Add(float64(n)) },
	})
	if err != nil {
		return err
	}
	if len(e.routes) > 1 {
		r.log.Info("route started", "settings", r.cfg)
	}
	if cfg.Once && show && e.opts.Progress != nil {
		pctx, stop := context.WithCancel(ctx)
		shown := make(chan struct{})
		go func() { p.progress.show(pctx, e.opts.Progress, 250*time.Millisecond); close(shown) }()
		defer func() { stop(); <-shown }()
	}
	return runLoop(ctx, cfg, r.log, t, p, fmt.Sprint(store))
}

// openSource connects to the source. A source that is not there yet
// (Keycloak starting, its tables not created) is retried with backoff until
// ctx is done, except with --once.
func openSource(ctx context.Context, cfg Config, log *slog.Logger) (sourceOf, func(), error) {
	wait := time.Second
	for {
		src, closeSource, err := newSource(ctx, cfg, log)
		if err == nil {
			return src, closeSource, nil
		}
		if cfg.Once || ctx.Err() != nil {
			return nil, nil, err
		}
		if se := (*apisource.StatusError)(nil); errors.As(err, &se) && (se.StatusCode == 401 || se.StatusCode == 403) {
			// Credentials or roles: the operator must act; a role granted later is picked up.
			log.Error("Keycloak refuses the emitter's account; retrying", "source", cfg.Source, "retry_in", wait, "error", err)
		} else {
			log.Info("the source is not reachable yet; retrying", "source", cfg.Source, "retry_in", wait, "error", err)
		}
		if !sleep(ctx, wait) {
			return nil, nil, ctx.Err()
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func newSource(ctx context.Context, cfg Config, log *slog.Logger) (sourceOf, func(), error) {
	if cfg.Source == SourceAPI {
		client, err := apisource.New(apisource.Config{
			BaseURL: cfg.API.URL, AuthRealm: cfg.API.AuthRealm, ClientID: cfg.API.ClientID,
			ClientSecret: cfg.API.ClientSecret, Username: cfg.API.Username, Password: cfg.API.Password,
			Realms: realmsOfAll(cfg.routeList()), Timeout: cfg.API.Timeout, Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		if _, err := newAPISource(client, Filters{}, log).realms(ctx); err != nil {
			return nil, nil, fmt.Errorf("admin API at %s: %w", cfg.API.URL, err)
		}
		return func(f Filters) source { return newAPISource(client, f, log) }, func() {}, nil
	}
	db, err := pgsource.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("database %s: %w", redact.ConnString(cfg.DatabaseURL), redact.Error(err, cfg.DatabaseURL))
	}
	for _, w := range db.Warnings() {
		log.Warn("database", "warning", w)
	}
	return func(f Filters) source { return newDBSource(db, f, log).withBudgets(cfg.PageBytes, cfg.MaxEventBytes) }, func() { db.Close() }, nil
}

// realmsOfAll returns the realms some route takes: nil (every realm) when
// a route takes every realm.
func realmsOfAll(routes []Route) []string {
	var all []string
	for _, r := range routes {
		if len(r.Realms) == 0 {
			return nil
		}
		for _, name := range r.Realms {
			if !slices.Contains(all, name) {
				all = append(all, name)
			}
		}
	}
	return all
}

// runLoop tails and delivers until ctx is done (or, with Once, the source
// is drained and delivered), then shuts down within cfg.ShutdownTimeout.
func runLoop(ctx context.Context, cfg Config, log *slog.Logger, t *tailer, p *pipeline, state string) error {
	deliverCtx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDelivery()
	delivered := make(chan error, 1)
	go func() { delivered <- p.delivery.run(deliverCtx) }()
	go watch(deliverCtx, t, p)

	tailErr := t.run(ctx, cfg.Once)
	if errors.Is(tailErr, context.Canceled) && ctx.Err() != nil {
		tailErr = nil
	}
	p.delivery.close()
	var runErr error
	done := false
	if deposed(ctx) {
		// Another emitter leads now: what is buffered is its to send, with
		// the same uids. Sending on could only duplicate.
		log.Warn("deposed: delivery stops at once; the new leader sends the undelivered events again", "events", p.delivery.len())
		stopDelivery()
		runErr = <-delivered
		done = true
	}
	if cfg.Once && ctx.Err() == nil {
		select { // deliver everything, however long the target takes
		case runErr = <-delivered:
			done = true
		case <-ctx.Done():
		}
	}
	if !done {
		log.Info("stopping: delivering what is buffered", "events", p.delivery.len(), "within", cfg.ShutdownTimeout)
		timer := time.NewTimer(cfg.ShutdownTimeout)
		select {
		case runErr = <-delivered:
		case <-timer.C:
			log.Error("shutdown deadline passed; undelivered events will be read again at the next start",
				"events", p.delivery.len(), "deadline", cfg.ShutdownTimeout)
			stopDelivery()
			runErr = <-delivered
		}
		timer.Stop()
	}
	if errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	saveCtx, cancelSave := context.WithoutCancel(ctx), func() {}
	if deposed(ctx) { // the state database may be out of reach: do not wait for it
		saveCtx, cancelSave = context.WithTimeout(saveCtx, depositionSave)
	}
	saveErr := p.ledger.Close(saveCtx)
	cancelSave()
	if saveErr == nil {
		p.metrics.CheckpointSaved(time.Now())
	}
	st := t.Stats()
	log.Info("stopped", "emitted", st.Emitted, "replayed", st.Replayed, "expired", st.Expired,
		"source_errors", st.SourceErrors, "checkpoint", state)
	return errors.Join(tailErr, runErr, saveErr)
}

// watch copies the tailer's and the ledger's counters to the metrics every
// second.
func watch(ctx context.Context, t *tailer, p *pipeline) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var saves, expired uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n := p.ledger.Saves(); n != saves {
			saves = n
			p.metrics.CheckpointSaved(time.Now())
		}
		if st := t.Stats(); st.Expired > expired {
			p.metrics.Expired.Add(float64(st.Expired - expired))
			expired = st.Expired
		}
	}
}
