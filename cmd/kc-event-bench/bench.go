package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/procfs"
)

// The cases live in files of their names (e2e.go, limit.go, backlog.go,
// growth.go, idle.go, peer.go); this file holds what they share: the run
// of the selected cases, the emitter settings, the status lines.

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
	host     host
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
	if b.host, err = newHost(procfs.DefaultMountPoint); err != nil {
		return nil, err
	}
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
	b.rep = newReport(ctx, b.host, cfg, b.cluster, b.root, b.bin)
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
		"late": b.lateCase, "skew": b.skewCase, "realms": b.realmsCase, "peer": b.peer, "kafka": b.kafkaCase,
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
	b.rep.finish(b.host.loadAverage())
	return b.rep, errors.Join(errs...)
}

// collect runs one for every item in turn and returns the results of the
// runs that succeeded and the errors of the others joined; after an error
// it stops when ctx is done.
func collect[T, R any](ctx context.Context, items []T, one func(T) (R, error)) ([]R, error) {
	var out []R
	var errs []error
	for _, it := range items {
		r, err := one(it)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// runDir returns a fresh directory for one emitter run.
func (b *bench) runDir() (string, error) {
	return os.MkdirTemp(b.tmp, "run-")
}

// emitterRun returns how to run the emitter with setting s on the database
// at dbURL, delivering to the receiver, reading from "beginning" or "now".
func (b *bench) emitterRun(dbURL string, s setting, from string) (emitterRun, error) {
	dir, err := b.runDir()
	if err != nil {
		return emitterRun{}, err
	}
	return emitterRun{bin: b.bin, dbURL: dbURL, target: b.recv.url(), password: benchPassword, format: s.format,
		overflow: s.overflow, buffer: b.cfg.buffer, concurrency: s.concurrency, from: from, dir: dir}, nil
}

// tailing is an emitter tailing a database of its own.
type tailing struct {
	db *benchDB
	p  *emitterProc
}

// startTailing creates a database holding the realms and users of w and
// starts the emitter with setting s tailing it from "beginning" or "now";
// it returns once the emitter has read the database.
func (b *bench) startTailing(ctx context.Context, w world, s setting, from string) (*tailing, error) {
	db, err := createDB(ctx, b.root, b.cluster, w)
	if err != nil {
		return nil, err
	}
	run, err := b.emitterRun(db.url, s, from)
	if err != nil {
		db.drop()
		return nil, err
	}
	p, err := run.start()
	if err != nil {
		db.drop()
		return nil, err
	}
	t := &tailing{db: db, p: p}
	if err := waitReady(ctx, p); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// close stops the emitter and drops the database.
func (t *tailing) close() {
	t.p.stop(30 * time.Second)
	t.db.drop()
}

// keepBody keeps a body the emitter sent in the current run, the first
// of its format, for the load generators of the limit case.
func (b *bench) keepBody(format string) {
	if body, err := b.recv.sampleBody(); err == nil && b.bodies[format] == nil {
		b.bodies[format] = body
	}
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

// perSecond returns n per second of d, or 0 when d is not positive.
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
