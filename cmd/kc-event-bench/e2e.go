package main

import (
	"context"
	"fmt"
	"time"
)

// The e2e case: the emitter tails an empty event table live while events
// are inserted, for every setting, at full speed and then at a fixed rate.

// liveResult is one e2e run.
type liveResult struct {
	setting
	realms     int // of the realms case; 0 otherwise
	run        int // of the realms case: which of --busyRuns, from 1
	rate       int // 0: as fast as possible
	insertRate float64
	fig        liveFigures
	proc       procFigures
	dropped    float64
	load       float64
}

// e2e is the live case for every setting: full speed, then fixed rate.
func (b *bench) e2e(ctx context.Context) error {
	type run struct {
		setting
		rate int
	}
	var runs []run
	for _, s := range b.settings() {
		for _, rate := range b.rates() {
			runs = append(runs, run{s, rate})
		}
	}
	rs, err := collect(ctx, runs, func(r run) (liveResult, error) {
		n := b.cfg.n
		if r.rate > 0 {
			n = r.rate * b.cfg.rateSeconds
		}
		res, err := b.live(ctx, r.setting, n, r.rate)
		if err != nil {
			return res, fmt.Errorf("%s %s: %w", r.setting, rateName(r.rate), err)
		}
		return res, nil
	})
	b.rep.live = append(b.rep.live, rs...)
	return err
}

func (b *bench) rates() []int {
	if b.cfg.rate > 0 {
		return []int{0, b.cfg.rate}
	}
	return []int{0}
}

// live runs the emitter tailing an empty event table while n events are
// inserted at rate events/s (0: as fast as possible), and measures.
func (b *bench) live(ctx context.Context, s setting, n, rate int) (liveResult, error) {
	return b.liveIn(ctx, newWorld(b.cfg.realms, b.cfg.users), s, n, rate)
}

// liveIn is live over the realms of w.
func (b *bench) liveIn(ctx context.Context, w world, s setting, n, rate int) (liveResult, error) {
	res := liveResult{setting: s, rate: rate}
	t, err := b.startTailing(ctx, w, s, "beginning")
	if err != nil {
		return res, err
	}
	defer t.close()
	db, p := t.db, t.p
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
	res.insertRate = perSecond(int64(n), insertSpan)
	m, _ := b.host.memory(p.pid())
	res.proc.peakRSS = m.peak
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
	res.load = b.host.loadAverage()
	b.keepBody(s.format)
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
				m, _ := b.host.memory(p.pid())
				b.progress("%s: %d/%d delivered, emitter RSS %s", label, got, a.want, mib(m.rss))
				lastShown = time.Now()
			}
		}
	}
}
