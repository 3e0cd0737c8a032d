package main

import (
	"context"
	"time"
)

// The idle case: what an emitter costs with nothing to do, tailing empty
// tables, per realm count (--idleRealms).

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
	rs, err := collect(ctx, b.cfg.idleRealms, func(realms int) (idleResult, error) { return b.idleOne(ctx, realms) })
	b.rep.idle = append(b.rep.idle, rs...)
	return err
}

// idleSettle is how long the idle case waits before it measures: past the
// first 10 s of an emitter, in which it reads every stream of the
// database at every poll (a stream is cold, read once a second, after
// 10 s without a row), so that the window is the steady state of an idle
// emitter, not its start.
const idleSettle = 12 * time.Second

func (b *bench) idleOne(ctx context.Context, realms int) (idleResult, error) {
	res := idleResult{realms: realms, window: b.cfg.idle}
	w := newWorld(realms-1, 1) // master plus realms-1: realms in all
	t, err := b.startTailing(ctx, w, setting{format: "JSON", overflow: "drop-oldest", concurrency: 1}, "now")
	if err != nil {
		return res, err
	}
	defer t.close()
	db, p := t.db, t.p
	b.progress("idle %d realms: settling for %s, then measuring for %s", realms, idleSettle, b.cfg.idle)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(idleSettle):
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
		cpu, err := b.host.cpu(p.pid())
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
	m, _ := b.host.memory(p.pid())
	res.rss = m.rss
	res.load = b.host.loadAverage()
	b.done("idle %d realms: %.1f reads/s, %.1f transactions/s, CPU %s per s, load %.1f", realms, res.reads, res.commits, res.cpu, res.load)
	return res, nil
}
