package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// benchPassword is the Basic auth password the emitter sends and the
// receiver checks, as in production.
const benchPassword = "kc-event-bench-secret"

// bench runs the cases and collects the report.
type bench struct {
	cfg      config
	root     string
	cluster  string
	tmp      string
	bin      string
	recv     *benchReceiver
	stderr   io.Writer
	terminal bool
	log      *slog.Logger
	bodies   map[string][]byte // a LOGIN body per format, for the load generators
	rep      *report
}

func newBench(ctx context.Context, cfg config, stderr io.Writer, log *slog.Logger) (*bench, error) {
	b := &bench{cfg: cfg, stderr: stderr, log: log, bodies: map[string][]byte{}}
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.terminal = true
		}
	}
	var err error
	if b.root, err = moduleRoot(); err != nil {
		return nil, err
	}
	if b.cluster, err = clusterURL(ctx, b.root, cfg.pgURL); err != nil {
		return nil, err
	}
	if b.tmp, err = os.MkdirTemp("", "kc-event-bench-"); err != nil {
		return nil, err
	}
	b.bin = cfg.emitterBin
	if b.bin == "" {
		b.progress("building ./cmd/kc-event-emitter")
		if b.bin, err = buildEmitter(ctx, b.root, b.tmp); err != nil {
			b.close()
			return nil, err
		}
	}
	if b.recv, err = startReceiver(benchPassword, log); err != nil {
		b.close()
		return nil, err
	}
	b.rep = newReport(ctx, cfg, b.cluster, b.root, b.bin)
	return b, nil
}

func (b *bench) close() {
	if b.recv != nil {
		b.recv.close()
	}
	if b.tmp != "" {
		os.RemoveAll(b.tmp)
	}
}

// progress prints a status line: rewritten in place on a terminal, one
// line per call otherwise.
func (b *bench) progress(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if b.terminal {
		fmt.Fprintf(b.stderr, "\r\033[K%s", msg)
		return
	}
	fmt.Fprintln(b.stderr, msg)
}

// done ends a status line on a terminal.
func (b *bench) done(format string, args ...any) {
	if b.terminal {
		fmt.Fprint(b.stderr, "\r\033[K")
	}
	fmt.Fprintf(b.stderr, format+"\n", args...)
}

// runAll runs the selected cases; the report holds what finished.
func (b *bench) runAll(ctx context.Context) (*report, error) {
	steps := map[string]func(context.Context) error{
		"e2e": b.e2e, "limit": b.limit, "backlog": b.backlogCase, "growth": b.growth, "idle": b.idleCase,
		"peer": b.peer,
	}
	var errs []error
	for _, name := range allCases {
		if !contains(b.cfg.cases, name) {
			continue
		}
		if err := steps[name](ctx); err != nil {
			errs = append(errs, fmt.Errorf("case %s: %w", name, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	b.rep.finish()
	return b.rep, errors.Join(errs...)
}

// runDir returns a fresh directory for one emitter run.
func (b *bench) runDir() (string, error) {
	return os.MkdirTemp(b.tmp, "run-")
}

// setting is one emitter configuration.
type setting struct {
	format, overflow string
	concurrency      int
}

func (s setting) String() string {
	return fmt.Sprintf("%s %s c=%d", s.format, s.overflow, s.concurrency)
}

// key names the format and concurrency, what the load generator compares.
func (s setting) key() string { return fmt.Sprintf("%s/%d", s.format, s.concurrency) }

func (b *bench) settings() []setting {
	var s []setting
	for _, c := range b.cfg.concurrency {
		for _, f := range b.cfg.formats {
			for _, o := range b.cfg.overflows {
				s = append(s, setting{f, o, c})
			}
		}
	}
	return s
}

// liveResult is one e2e run.
type liveResult struct {
	setting
	rate       int // 0: as fast as possible
	insertRate float64
	fig        liveFigures
	proc       procFigures
	dropped    float64
	load       float64
}

// procFigures are the emitter's own costs in one run.
type procFigures struct {
	peakRSS int64
	cpu     time.Duration
	wall    time.Duration
}

// cpuPer100k returns the CPU seconds per 100,000 events.
func (p procFigures) cpuPer100k(events int64) float64 {
	if events == 0 {
		return 0
	}
	return p.cpu.Seconds() * 100000 / float64(events)
}

// live runs the emitter tailing an empty event table while n events are
// inserted at rate events/s (0: as fast as possible), and measures.
func (b *bench) live(ctx context.Context, s setting, n, rate int) (liveResult, error) {
	res := liveResult{setting: s, rate: rate}
	w := newWorld(b.cfg.realms, b.cfg.users)
	db, err := createDB(ctx, b.root, b.cluster, w)
	if err != nil {
		return res, err
	}
	defer db.drop()
	dir, err := b.runDir()
	if err != nil {
		return res, err
	}
	p, err := emitterRun{bin: b.bin, dbURL: db.url, target: b.recv.url(), password: benchPassword, format: s.format,
		overflow: s.overflow, buffer: b.cfg.buffer, concurrency: s.concurrency, from: "beginning", dir: dir}.start()
	if err != nil {
		return res, err
	}
	defer p.stop(30 * time.Second)
	if err := waitReady(ctx, p); err != nil {
		return res, err
	}
	a := b.recv.expect(n)
	defer b.recv.run.Store(nil)
	commits := make([]int64, n)
	gen := newGenerator(w, uint64(n)*31+uint64(rate))
	label := fmt.Sprintf("e2e %s %s", s, rateName(rate))

	inserted := make(chan struct{})
	var insertSpan time.Duration
	var insertErr error
	go func() {
		start := time.Now()
		insertErr = insertPaced(ctx, db, gen, commits, rate)
		insertSpan = time.Since(start)
		close(inserted)
	}()
	if err := b.watch(ctx, label, p, a, inserted, &insertErr); err != nil {
		return res, err
	}
	<-inserted
	if insertErr != nil {
		return res, insertErr
	}
	res.insertRate = float64(n) / insertSpan.Seconds()
	res.proc.peakRSS, _ = procStatus(p.cmd.Process.Pid, "VmHWM")
	if m, err := scrape(ctx, p.metrics, "kc_event_emitter_events_dropped_total"); err == nil {
		res.dropped = m["kc_event_emitter_events_dropped_total"]
	}
	if err := p.stop(30 * time.Second); err != nil {
		return res, err
	}
	u := p.usage()
	res.proc.cpu = u.cpu
	res.proc.peakRSS = max(res.proc.peakRSS, u.maxRSS)
	res.fig = figures(commits, a)
	res.load = loadAverage()
	if body, err := b.recv.sampleBody(); err == nil && b.bodies[s.format] == nil {
		b.bodies[s.format] = body
	}
	b.done("%s: %.0f events/s, p99 %s, RSS %s, load %.1f", label, res.fig.rate(), ms(res.fig.p99), mib(res.proc.peakRSS), res.load)
	return res, nil
}

// insertPaced inserts len(commits) events, in one transaction per 10 ms
// tick at rate events/s (a same-millisecond burst of rate/100 events), or
// as fast as possible in transactions of 500 when rate is 0, and records
// when each committed.
func insertPaced(ctx context.Context, db *benchDB, gen *generator, commits []int64, rate int) error {
	const burstMax, fastBatch = 2000, 500
	n := len(commits)
	rows := make([]row, 0, burstMax)
	start := time.Now()
	var tick *time.Ticker
	if rate > 0 {
		tick = time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	}
	for sent := 0; sent < n; {
		k := min(fastBatch, n-sent)
		if rate > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
			due := int(time.Since(start).Seconds() * float64(rate))
			k = min(due-sent, burstMax, n-sent)
			if k <= 0 {
				continue
			}
		}
		ms := time.Now().UnixMilli()
		rows = rows[:0]
		for i := range k {
			rows = append(rows, gen.next(sent+i, ms))
		}
		at, err := db.insert(ctx, rows)
		if err != nil {
			return err
		}
		for i := range k {
			commits[sent+i] = at.UnixNano()
		}
		sent += k
	}
	return nil
}

// insertBacklog inserts n events as fast as possible, their times spread
// evenly over span before now, and returns the rate.
func insertBacklog(ctx context.Context, db *benchDB, gen *generator, n int, span time.Duration, progress func(done int)) (float64, error) {
	const batch = 5000
	start := time.Now()
	first := start.Add(-span).UnixMilli()
	rows := make([]row, 0, batch)
	for sent := 0; sent < n; {
		k := min(batch, n-sent)
		rows = rows[:0]
		for i := range k {
			seq := sent + i
			rows = append(rows, gen.next(seq, first+int64(seq)*span.Milliseconds()/int64(n)))
		}
		if _, err := db.insert(ctx, rows); err != nil {
			return 0, err
		}
		sent += k
		progress(sent)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// waitReady waits until the emitter answers /metrics and has read its
// source once.
func waitReady(ctx context.Context, p *emitterProc) error {
	deadline := time.Now().Add(time.Minute)
	for {
		if p.exited() {
			if err := p.exitErr(); err != nil {
				return err
			}
			return fmt.Errorf("kc-event-emitter exited before it was ready; log %s:\n%s", p.log, tailFile(p.log, 20))
		}
		m, err := scrape(ctx, p.metrics, "kc_event_emitter_source_reads_total")
		if err == nil && m["kc_event_emitter_source_reads_total"] > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kc-event-emitter not ready after a minute (%v); log %s:\n%s", err, p.log, tailFile(p.log, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watch shows progress until every event arrived; it fails when the
// emitter exits, the inserter fails (insertErr is set once inserted is
// closed), or nothing arrives for cfg.stall.
func (b *bench) watch(ctx context.Context, label string, p *emitterProc, a *arrivals, inserted <-chan struct{}, insertErr *error) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastChange, lastShown := int64(-1), time.Now(), time.Now()
	for {
		select {
		case <-a.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-inserted:
			if *insertErr != nil {
				return fmt.Errorf("inserting: %w", *insertErr)
			}
			inserted = nil // done: keep waiting for the arrivals
		case <-p.done:
			if a.delivered.Load() == a.want {
				return nil
			}
			return fmt.Errorf("kc-event-emitter exited with %d of %d events delivered: %v; log %s:\n%s",
				a.delivered.Load(), a.want, p.err, p.log, tailFile(p.log, 20))
		case <-tick.C:
			got := a.delivered.Load()
			if got != last {
				last, lastChange = got, time.Now()
			} else if time.Since(lastChange) > b.cfg.stall {
				return fmt.Errorf("%s: nothing arrived for %s (%d of %d delivered); emitter log %s:\n%s",
					label, b.cfg.stall, got, a.want, p.log, tailFile(p.log, 20))
			}
			if b.terminal || time.Since(lastShown) >= 10*time.Second {
				rss, _ := procStatus(p.cmd.Process.Pid, "VmRSS")
				b.progress("%s: %d/%d delivered, emitter RSS %s", label, got, a.want, mib(rss))
				lastShown = time.Now()
			}
		}
	}
}

func rateName(rate int) string {
	if rate == 0 {
		return "full speed"
	}
	return fmt.Sprintf("%d/s", rate)
}

// loadAverage returns the one-minute load average, or -1.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	if _, err := fmt.Sscan(string(data), &l); err != nil {
		return -1
	}
	return l
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// e2e is the live case for every setting: full speed, then fixed rate.
func (b *bench) e2e(ctx context.Context) error {
	var errs []error
	for _, s := range b.settings() {
		for _, rate := range b.rates() {
			n := b.cfg.n
			if rate > 0 {
				n = rate * b.cfg.rateSeconds
			}
			r, err := b.live(ctx, s, n, rate)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", s, rateName(rate), err))
				if ctx.Err() != nil {
					return errors.Join(errs...)
				}
				continue
			}
			b.rep.live = append(b.rep.live, r)
		}
	}
	return errors.Join(errs...)
}

func (b *bench) rates() []int {
	if b.cfg.rate > 0 {
		return []int{0, b.cfg.rate}
	}
	return []int{0}
}

// drainResult is one --once drain of a backlog.
type drainResult struct {
	setting
	n          int
	insertRate float64
	elapsed    time.Duration // emitter start to exit
	delivered  int64
	dup        int64
	proc       procFigures
	load       float64
}

func (d drainResult) rate() float64 {
	if d.elapsed <= 0 {
		return 0
	}
	return float64(d.delivered) / d.elapsed.Seconds()
}

// backlogDB creates a database with n events already in it.
func (b *bench) backlogDB(ctx context.Context, n int) (*benchDB, float64, error) {
	w := newWorld(b.cfg.realms, b.cfg.users)
	db, err := createDB(ctx, b.root, b.cluster, w)
	if err != nil {
		return nil, 0, err
	}
	rate, err := insertBacklog(ctx, db, newGenerator(w, uint64(n)), n, b.cfg.backlogSpan, func(done int) {
		if b.terminal || done == n || done%100000 == 0 {
			b.progress("backlog: %d/%d events inserted", done, n)
		}
	})
	if err != nil {
		db.drop()
		return nil, 0, err
	}
	// As autovacuum would soon after a bulk insert: the visibility map
	// makes the index-only parts of the tail's scans cheap.
	for _, table := range []string{"event_entity", "admin_event_entity"} {
		if _, err := db.db.ExecContext(ctx, "VACUUM ANALYZE "+table); err != nil {
			b.log.Warn("vacuum", "table", table, "error", err)
		}
	}
	return db, rate, nil
}

// drain runs the emitter with --once over the backlog in db.
func (b *bench) drain(ctx context.Context, db *benchDB, n int, s setting) (drainResult, error) {
	res := drainResult{setting: s, n: n}
	dir, err := b.runDir()
	if err != nil {
		return res, err
	}
	a := b.recv.expect(n)
	defer b.recv.run.Store(nil)
	run := emitterRun{bin: b.bin, dbURL: db.url, target: b.recv.url(), password: benchPassword, format: s.format,
		overflow: s.overflow, buffer: b.cfg.buffer, concurrency: s.concurrency, from: "beginning", once: true, dir: dir}
	if b.terminal {
		run.stderr = os.Stderr // the emitter shows its own progress on a terminal
	}
	label := fmt.Sprintf("backlog %d %s", n, s)
	start := time.Now()
	p, err := run.start()
	if err != nil {
		return res, err
	}
	var peak int64
	lastShown := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	waitErr := make(chan error, 1)
	go func() { waitErr <- p.wait(ctx) }()
	for loop := true; loop; {
		select {
		case err = <-waitErr:
			loop = false
		case <-tick.C:
			if rss, e := procStatus(p.cmd.Process.Pid, "VmHWM"); e == nil {
				peak = max(peak, rss)
			}
			if !b.terminal && time.Since(lastShown) >= 10*time.Second {
				b.progress("%s: %d/%d delivered", label, a.delivered.Load(), n)
				lastShown = time.Now()
			}
		}
	}
	res.elapsed = time.Since(start)
	if err != nil {
		return res, err
	}
	u := p.usage()
	res.proc = procFigures{peakRSS: max(peak, u.maxRSS), cpu: u.cpu, wall: res.elapsed}
	res.delivered, res.dup = a.delivered.Load(), a.duplicates.Load()
	res.load = loadAverage()
	if body, err := b.recv.sampleBody(); err == nil && b.bodies[s.format] == nil {
		b.bodies[s.format] = body
	}
	b.done("%s: %s, %.0f events/s, RSS %s, load %.1f", label, res.elapsed.Round(time.Millisecond), res.rate(), mib(res.proc.peakRSS), res.load)
	if res.delivered != int64(n) {
		return res, fmt.Errorf("%s: %d of %d events arrived", label, res.delivered, n)
	}
	return res, nil
}

// backlogCase drains --backlog events once for every setting.
func (b *bench) backlogCase(ctx context.Context) error {
	db, rate, err := b.backlogDB(ctx, b.cfg.backlog)
	if err != nil {
		return err
	}
	defer db.drop()
	var errs []error
	for _, s := range b.settings() {
		r, err := b.drain(ctx, db, b.cfg.backlog, s)
		r.insertRate = rate
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		b.rep.backlog = append(b.rep.backlog, r)
	}
	return errors.Join(errs...)
}

// growth runs JSON with block at full speed and drains, for each size.
func (b *bench) growth(ctx context.Context) error {
	s := setting{"JSON", "block", b.cfg.concurrency[0]}
	var errs []error
	for _, n := range b.cfg.sizes {
		r, err := b.live(ctx, s, n, 0)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		} else {
			b.rep.growthLive = append(b.rep.growthLive, r)
		}
		db, rate, err := b.backlogDB(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d, err := b.drain(ctx, db, n, s)
		db.drop()
		d.insertRate = rate
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.rep.growthDrain = append(b.rep.growthDrain, d)
	}
	return errors.Join(errs...)
}

// limitResult is one load generator's rate, for the format and
// concurrency of setting.
type limitResult struct {
	setting
	body int
	gen  loadResult
	load float64
}

// limit runs the load generators with a body the emitter sent, per format
// and concurrency, with as many connections as the emitter had requests in
// flight.
func (b *bench) limit(ctx context.Context) error {
	var errs []error
	for _, c := range b.cfg.concurrency {
		for _, f := range b.cfg.formats {
			s := setting{f, "block", c}
			body := b.bodies[f]
			if body == nil || b.rep.best(s.key()) == 0 {
				// No run delivered this yet: a short one for a body and a rate.
				r, err := b.live(ctx, s, 2000, 0)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				b.rep.live = append(b.rep.live, r)
				if body = b.bodies[f]; body == nil {
					errs = append(errs, fmt.Errorf("%s: no LOGIN body arrived", f))
					continue
				}
			}
			dir, err := b.runDir()
			if err != nil {
				return err
			}
			for _, gen := range []func() (loadResult, error){
				func() (loadResult, error) {
					return wrkLoad(ctx, b.recv.url(), benchPassword, body, c, b.cfg.limitSeconds, dir)
				},
				func() (loadResult, error) {
					return goLoad(ctx, b.recv.url(), benchPassword, body, c, b.cfg.limitSeconds)
				},
			} {
				b.progress("limit %s: load generator running for %s", s.key(), b.cfg.limitSeconds)
				r, err := gen()
				if err != nil {
					errs = append(errs, err)
					continue
				}
				lr := limitResult{setting: s, body: len(body), gen: r, load: loadAverage()}
				b.rep.limit = append(b.rep.limit, lr)
				b.done("limit %s %s: %.0f requests/s, load %.1f", s.key(), r.tool, r.rate(), lr.load)
			}
		}
	}
	return errors.Join(errs...)
}

// idleResult is the cost of an emitter with nothing to do.
type idleResult struct {
	realms     int
	window     time.Duration
	reads      float64 // source reads per second
	commits    float64 // transactions per second in the database
	cpu        time.Duration
	rss        int64
	load       float64
	pollPeriod time.Duration
}

// idleCase measures an emitter tailing empty tables, per realm count.
func (b *bench) idleCase(ctx context.Context) error {
	var errs []error
	for _, realms := range b.cfg.idleRealms {
		r, err := b.idleOne(ctx, realms)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		b.rep.idle = append(b.rep.idle, r)
	}
	return errors.Join(errs...)
}

func (b *bench) idleOne(ctx context.Context, realms int) (idleResult, error) {
	res := idleResult{realms: realms, window: b.cfg.idle}
	w := newWorld(realms-1, 1) // master plus realms-1: realms in all
	db, err := createDB(ctx, b.root, b.cluster, w)
	if err != nil {
		return res, err
	}
	defer db.drop()
	dir, err := b.runDir()
	if err != nil {
		return res, err
	}
	p, err := emitterRun{bin: b.bin, dbURL: db.url, target: b.recv.url(), password: benchPassword, format: "JSON",
		overflow: "drop-oldest", buffer: b.cfg.buffer, concurrency: 1, from: "now", dir: dir}.start()
	if err != nil {
		return res, err
	}
	defer p.stop(30 * time.Second)
	if err := waitReady(ctx, p); err != nil {
		return res, err
	}
	b.progress("idle %d realms: settling for 5s, then measuring for %s", realms, b.cfg.idle)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(5 * time.Second):
	}
	type snap struct {
		reads, commits float64
		cpu            time.Duration
		at             time.Time
	}
	take := func() (snap, error) {
		m, err := scrape(ctx, p.metrics, "kc_event_emitter_source_reads_total")
		if err != nil {
			return snap{}, err
		}
		c, err := db.commits(ctx)
		if err != nil {
			return snap{}, err
		}
		cpu, err := procCPU(p.cmd.Process.Pid)
		return snap{reads: m["kc_event_emitter_source_reads_total"], commits: float64(c), cpu: cpu, at: time.Now()}, err
	}
	s0, err := take()
	if err != nil {
		return res, err
	}
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(b.cfg.idle):
	}
	s1, err := take()
	if err != nil {
		return res, err
	}
	secs := s1.at.Sub(s0.at).Seconds()
	res.reads = (s1.reads - s0.reads) / secs
	res.commits = (s1.commits - s0.commits) / secs
	res.cpu = time.Duration(float64(s1.cpu-s0.cpu) / secs)
	res.rss, _ = procStatus(p.cmd.Process.Pid, "VmRSS")
	res.load = loadAverage()
	b.done("idle %d realms: %.1f reads/s, %.1f transactions/s, CPU %s per s, load %.1f", realms, res.reads, res.commits, res.cpu, res.load)
	return res, nil
}
