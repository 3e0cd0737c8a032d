package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// The backlog case: --backlog events are already in the table; the emitter
// drains them with --once, for every setting.

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

func (d drainResult) rate() float64 { return perSecond(d.delivered, d.elapsed) }

// backlogCase drains --backlog events once for every setting.
func (b *bench) backlogCase(ctx context.Context) error {
	db, rate, err := b.backlogDB(ctx, b.cfg.backlog)
	if err != nil {
		return err
	}
	defer db.drop()
	rs, err := collect(ctx, b.settings(), func(s setting) (drainResult, error) {
		r, err := b.drain(ctx, db, b.cfg.backlog, s)
		r.insertRate = rate
		return r, err
	})
	b.rep.backlog = append(b.rep.backlog, rs...)
	return err
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
	return perSecond(int64(n), time.Since(start)), nil
}

// drain runs the emitter with --once over the backlog in db.
func (b *bench) drain(ctx context.Context, db *benchDB, n int, s setting) (drainResult, error) {
	res := drainResult{setting: s, n: n}
	run, err := b.emitterRun(db.url, s, "beginning")
	if err != nil {
		return res, err
	}
	run.once = true
	if b.terminal {
		run.stderr = os.Stderr // the emitter shows its own progress on a terminal
	}
	a := b.recv.expect(n)
	defer b.recv.run.Store(nil)
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
			if m, e := b.host.memory(p.pid()); e == nil {
				peak = max(peak, m.peak)
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
	res.load = b.host.loadAverage()
	b.keepBody(s.format)
	b.done("%s: %s, %.0f events/s, RSS %s, load %.1f", label, res.elapsed.Round(time.Millisecond), res.rate(), mib(res.proc.peakRSS), res.load)
	if res.delivered != int64(n) {
		return res, fmt.Errorf("%s: %d of %d events arrived", label, res.delivered, n)
	}
	return res, nil
}
