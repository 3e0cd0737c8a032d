package emitter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/apisource"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
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

// Run reads Keycloak's events as cfg says and delivers them until ctx is
// done; with cfg.Once it returns once every event present at the start was
// delivered (or dead-lettered or dropped and counted). When ctx is done it
// stops reading, delivers what is buffered for at most cfg.ShutdownTimeout,
// saves the checkpoint and returns nil: events not delivered by then are
// read again at the next start, with the same uid.
func Run(ctx context.Context, cfg Config, opts RunOptions) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p, err := newPipeline(cfg, log, reg)
	if err != nil {
		return err
	}
	defer p.close()

	if cfg.ListenAddr != "" {
		srv, err := p.serveOps(cfg.ListenAddr, reg)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	if err := p.openSource(ctx, cfg); err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before the source was reachable")
			return nil
		}
		return err
	}
	log.Info("kc-event-emitter started", "config", cfg)
	if cfg.Once && opts.Progress != nil {
		pctx, stop := context.WithCancel(ctx)
		shown := make(chan struct{})
		go func() { p.progress.show(pctx, opts.Progress, 250*time.Millisecond); close(shown) }()
		defer func() { stop(); <-shown }()
	}
	return p.run(ctx, cfg)
}

// pipeline is one running emitter: source -> uid -> encoder -> delivery.
type pipeline struct {
	cfg      Config
	log      *slog.Logger
	metrics  *Metrics
	uids     *UIDGenerator
	enc      Encoder
	sender   *httpsender.Sender
	delivery *Delivery
	tailer   *Tailer
	pager    atomic.Pointer[observedPager] // set once the source is open; read by /readyz
	closers  []func() error

	encBuf []byte // reused by emit, which only the tailer's goroutine calls

	progress progress
}

func newPipeline(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*pipeline, error) {
	p := &pipeline{cfg: cfg, log: log, metrics: NewMetrics(reg)}
	var err error
	if p.uids, err = NewUIDGenerator(cfg.KeycloakID, cfg.DatacenterID); err != nil {
		return nil, err
	}
	if p.enc, err = NewEncoder(cfg.Format, cfg.Numbering); err != nil {
		return nil, err
	}
	p.sender, err = httpsender.New(httpsender.Options{
		URL:            cfg.TargetURI,
		ConnectTimeout: cfg.ConnectTimeout,
		RequestTimeout: cfg.ConnectionRequestTimeout,
		SocketTimeout:  cfg.SocketTimeout,
		MaxConns:       cfg.Concurrency,
		Username:       cfg.Username,
		Password:       cfg.Password,
		CAFile:         cfg.CAFile,
		ClientCertFile: cfg.ClientCertFile,
		ClientKeyFile:  cfg.ClientKeyFile,
		SigningSecrets: cfg.SigningSecrets,
		RetryWaitMin:   cfg.RetryWaitMin,
		RetryWaitMax:   cfg.RetryWaitMax,
		Logger:         log,
	})
	if err != nil {
		return nil, &FieldError{Field: "targetUri", Value: redactURL(cfg.TargetURI), Err: err}
	}
	overflow, err := buffer.ParsePolicy(cfg.Overflow)
	if err != nil {
		return nil, &FieldError{Field: "overflow", Value: cfg.Overflow, Err: err}
	}
	p.delivery, err = NewDelivery(DeliveryOptions{
		Sender:         p.sender,
		Capacity:       cfg.BufferCapacity,
		Overflow:       overflow,
		Concurrency:    cfg.Concurrency,
		DeadLetterPath: cfg.DeadLetterPath,
		Ack:            p.ack,
		Metrics:        p.metrics,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// openSource connects to the source and loads the checkpoint. A source that
// is not there yet (Keycloak starting, its tables not created) is retried
// with backoff until ctx is done, except with --once.
func (p *pipeline) openSource(ctx context.Context, cfg Config) error {
	var pager Pager
	wait := time.Second
	for {
		var err error
		pager, err = p.newPager(ctx, cfg)
		if err == nil {
			break
		}
		if cfg.Once || ctx.Err() != nil {
			return err
		}
		if se := (*apisource.StatusError)(nil); errors.As(err, &se) && (se.StatusCode == 401 || se.StatusCode == 403) {
			// Credentials or roles: the operator must act; a role granted later is picked up.
			p.log.Error("Keycloak refuses the emitter's account; retrying", "source", cfg.Source, "in", wait, "error", err)
		} else {
			p.log.Info("the source is not reachable yet; retrying", "source", cfg.Source, "in", wait, "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
	observed := &observedPager{Pager: pager, reads: p.metrics.SourceReads}
	p.pager.Store(observed)
	var err error
	p.tailer, err = NewTailer(TailerOptions{
		Pager:          observed,
		CheckpointPath: cfg.CheckpointPath,
		NextUID:        p.uids.Next,
		Emit:           p.emit,
		Logger:         p.log,
		Realms:         cfg.Realms,
		Kinds:          cfg.Kinds,
		From:           cfg.From,
		PageSize:       cfg.PageSize,
		PollInterval:   cfg.PollInterval,
		Overlap:        cfg.Overlap,
	})
	if err != nil {
		return err
	}
	// Uids issued before a restart bound the new ones, even if the clock
	// stepped back meanwhile.
	p.uids.Resume(p.tailer.MaxUID())
	return nil
}

func (p *pipeline) newPager(ctx context.Context, cfg Config) (Pager, error) {
	switch cfg.Source {
	case "api":
		client, err := apisource.New(apisource.Config{
			BaseURL: cfg.API.URL, AuthRealm: cfg.API.AuthRealm, ClientID: cfg.API.ClientID,
			ClientSecret: cfg.API.ClientSecret, Username: cfg.API.Username, Password: cfg.API.Password,
			Realms: cfg.Realms, Timeout: cfg.API.Timeout, Logger: p.log,
		})
		if err != nil {
			return nil, err
		}
		pager, err := NewAPIPager(client, APIPagerOptions{Filters: cfg.Filters, Logger: p.log})
		if err != nil {
			return nil, err
		}
		if _, err := pager.Realms(ctx); err != nil {
			return nil, fmt.Errorf("admin API at %s: %w", cfg.API.URL, err)
		}
		return pager, nil
	default:
		src, err := pgsource.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", redactURL(cfg.DatabaseURL), err)
		}
		for _, w := range src.Warnings() {
			p.log.Warn("database", "warning", w)
		}
		pager, err := NewDBPager(src, DBPagerOptions{Filters: cfg.Filters, Logger: p.log})
		if err != nil {
			src.Close()
			return nil, err
		}
		p.closers = append(p.closers, src.Close)
		return pager, nil
	}
}

// emit encodes a record read by the tailer and hands it to delivery.
func (p *pipeline) emit(ctx context.Context, r Record) error {
	kind := string(r.Kind())
	p.metrics.Read.WithLabelValues(kind).Inc()
	p.progress.onRead(r.Time())
	p.metrics.SourceLag.Set(time.Since(time.UnixMilli(r.Time())).Seconds())
	if _, ok := detailsOf(r)[MalformedDetailsKey]; ok {
		p.metrics.Malformed.WithLabelValues(kind).Inc()
	}
	body, err := p.enc.Encode(p.encBuf[:0], r)
	if err == nil {
		p.encBuf = body
		body = append([]byte(nil), body...)
	}
	env := Envelope{Kind: r.Kind(), UID: r.UID(), ID: r.ID(), RealmID: r.RealmID(), Type: r.TypeName(), Time: r.Time(), Body: body}
	if err != nil {
		// Not expected: every field has a wire form. Set aside, never lost.
		return p.delivery.DeadLetter(env, fmt.Errorf("encode %s %s uid %d: %w", env.Kind, env.ID, env.UID, err))
	}
	if err := p.paceDropOldest(ctx); err != nil {
		return err
	}
	return p.delivery.Put(ctx, env)
}

// paceDropOldest keeps drop-oldest for what it is for, an unreachable
// target: while the target takes events, a full buffer makes the reader
// wait (the database keeps what is not read yet) instead of dropping
// events only because reading a backlog is faster than sending it.
func (p *pipeline) paceDropOldest(ctx context.Context) error {
	if p.cfg.Overflow != "drop-oldest" {
		return nil
	}
	for wait := time.Millisecond; p.delivery.Len() >= p.cfg.BufferCapacity && !p.targetFailing(); wait = min(2*wait, 50*time.Millisecond) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return nil
}

// targetFailing tells whether the last attempt to reach the target failed
// for a reason other than a rejection of one event.
func (p *pipeline) targetFailing() bool {
	err := p.sender.LastError()
	var perr *httpsender.PermanentError
	return err != nil && !errors.As(err, &perr)
}

func detailsOf(r Record) map[string]string {
	if r.Event != nil {
		return r.Event.Details
	}
	if r.Admin != nil {
		return r.Admin.Details
	}
	return nil
}

// ack moves the checkpoint past an envelope that is done.
func (p *pipeline) ack(env Envelope, _ Outcome) {
	p.progress.done.Add(1)
	if t := p.tailer; t != nil {
		t.Ack(env.Kind, env.RealmID, env.ID)
	}
}

// run tails and delivers until ctx is done (or, with Once, the source is
// drained and delivered), then shuts down within cfg.ShutdownTimeout.
func (p *pipeline) run(ctx context.Context, cfg Config) error {
	deliverCtx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDelivery()
	delivered := make(chan error, 1)
	go func() { delivered <- p.delivery.Run(deliverCtx) }()
	go p.watch(deliverCtx)

	var tailErr error
	if cfg.Once {
		tailErr = p.tailer.Drain(ctx)
	} else {
		tailErr = p.tailer.Run(ctx)
	}
	if errors.Is(tailErr, context.Canceled) && ctx.Err() != nil {
		tailErr = nil
	}
	p.delivery.Close()
	var runErr error
	done := false
	if cfg.Once && ctx.Err() == nil {
		select { // deliver everything, however long the target takes
		case runErr = <-delivered:
			done = true
		case <-ctx.Done():
		}
	}
	if !done {
		p.log.Info("stopping: delivering what is buffered", "events", p.delivery.Len(), "within", cfg.ShutdownTimeout)
		t := time.NewTimer(cfg.ShutdownTimeout)
		select {
		case runErr = <-delivered:
		case <-t.C:
			p.log.Error("shutdown deadline passed; undelivered events will be read again at the next start",
				"events", p.delivery.Len(), "deadline", cfg.ShutdownTimeout)
			stopDelivery()
			runErr = <-delivered
		}
		t.Stop()
	}
	if errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	saveErr := p.tailer.Close()
	if saveErr == nil {
		p.metrics.CheckpointSaved(time.Now())
	}
	st := p.tailer.Stats()
	p.log.Info("stopped", "emitted", st.Emitted, "replayed", st.Replayed, "expired", st.Expired,
		"sourceErrors", st.SourceErrors, "checkpoint", cfg.CheckpointPath)
	return errors.Join(tailErr, runErr, saveErr)
}

// watch copies the tailer's counters to the metrics every second.
func (p *pipeline) watch(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var saves, expired uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st := p.tailer.Stats()
		if st.Saves != saves {
			saves = st.Saves
			p.metrics.CheckpointSaved(time.Now())
		}
		if st.Expired > expired {
			p.metrics.Expired.Add(float64(st.Expired - expired))
			expired = st.Expired
		}
	}
}

func (p *pipeline) close() {
	for _, c := range p.closers {
		c()
	}
}

// readyAfter is how long a failing target may take no event, with events
// waiting, before /readyz answers 503.
const readyAfter = 30 * time.Second

// serveOps serves /healthz, /readyz and /metrics on addr.
func (p *pipeline) serveOps(addr string, reg *prometheus.Registry) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &FieldError{Field: "listen", Value: addr, Err: err}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if problem := p.notReady(time.Now()); problem != "" {
			http.Error(w, problem, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}

// notReady says why the emitter is not ready, or "" when it is: the source
// answered its last read, and the target took an event recently or nothing
// waits for it.
func (p *pipeline) notReady(now time.Time) string {
	pager := p.pager.Load()
	if pager == nil {
		return "source not opened yet"
	}
	if ok, at, err := pager.last(); !ok {
		if at.IsZero() {
			return "source not read yet"
		}
		return "source failing since " + at.Format(time.RFC3339) + ": " + err.Error()
	}
	if p.delivery.Len() > 0 && p.targetFailing() && now.Sub(p.delivery.LastSuccess()) > readyAfter {
		return "target took no event for " + strconv.Itoa(int(readyAfter.Seconds())) + "s while " +
			strconv.Itoa(p.delivery.Len()) + " wait"
	}
	return ""
}

// observedPager remembers whether the last read of the source succeeded.
type observedPager struct {
	Pager
	mu    sync.Mutex
	ok    bool
	since time.Time
	err   error
	reads *prometheus.CounterVec
}

func (o *observedPager) note(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	o.reads.WithLabelValues(result).Inc()
	o.mu.Lock()
	defer o.mu.Unlock()
	if (err == nil) != o.ok || o.since.IsZero() {
		o.since = time.Now()
	}
	o.ok, o.err = err == nil, err
}

func (o *observedPager) last() (bool, time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ok, o.since, o.err
}

func (o *observedPager) Realms(ctx context.Context) ([]Realm, error) {
	r, err := o.Pager.Realms(ctx)
	o.note(err)
	return r, err
}

// Count counts with the source's Pager when it is a Counter.
func (o *observedPager) Count(ctx context.Context, realm Realm, kind Kind, after Cursor, until int64) (int, error) {
	c, ok := o.Pager.(Counter)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	n, err := c.Count(ctx, realm, kind, after, until)
	o.note(err)
	return n, err
}

func (o *observedPager) Page(ctx context.Context, realm Realm, kind Kind, after Cursor, until int64, limit int) ([]Record, error) {
	r, err := o.Pager.Page(ctx, realm, kind, after, until, limit)
	o.note(err)
	return r, err
}
