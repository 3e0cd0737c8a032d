package main

import (
	"slices"
	"time"
)

// latencies are the commit-to-arrival times of the events of one run.
type latencies []time.Duration

// percentile returns the p-th percentile (0 < p <= 100) by the nearest-rank
// method: the smallest value with at least p% of the values at or below it.
// It sorts l.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	rank := int(p/100*float64(len(l)) + 0.999999999)
	rank = min(max(rank, 1), len(l))
	return l[rank-1]
}

// liveFigures are the measures of a run that the receiver observed.
type liveFigures struct {
	n          int
	delivered  int64
	duplicates int64
	unknown    int64
	span       time.Duration // first commit to last arrival
	p50, p95   time.Duration
	p99, pMax  time.Duration
	// p99Settled is p99 of the events committed a second or more after
	// the first: without the wait of the first events for the poll of an
	// emitter that was idle (--pollInterval).
	p99Settled  time.Duration
	firstCommit int64
	lastArrival int64
}

// rate returns the events delivered per second over the span.
func (f liveFigures) rate() float64 { return perSecond(f.delivered, f.span) }

// figures computes the latencies from the commit times (UnixNano per
// sequence number, 0 = not inserted) and the arrivals. An arrival a few
// microseconds before the recorded commit (the row is visible before
// COMMIT returns to the inserter) counts as 0.
func figures(commits []int64, a *arrivals) liveFigures {
	f := liveFigures{n: len(commits), delivered: a.delivered.Load(), duplicates: a.duplicates.Load(), unknown: a.unknown.Load()}
	lat := make(latencies, 0, len(commits))
	for i, c := range commits {
		if c == 0 {
			continue
		}
		if f.firstCommit == 0 || c < f.firstCommit {
			f.firstCommit = c
		}
		at := a.at[i].Load()
		if at == 0 {
			continue
		}
		f.lastArrival = max(f.lastArrival, at)
		lat = append(lat, time.Duration(max(0, at-c)))
	}
	if f.firstCommit != 0 && f.lastArrival != 0 {
		f.span = time.Duration(f.lastArrival - f.firstCommit)
	}
	f.p50, f.p95, f.p99, f.pMax = lat.percentile(50), lat.percentile(95), lat.percentile(99), lat.percentile(100)
	settled := make(latencies, 0, len(commits))
	for i, c := range commits {
		if at := a.at[i].Load(); c != 0 && at != 0 && c-f.firstCommit >= int64(time.Second) {
			settled = append(settled, time.Duration(max(0, at-c)))
		}
	}
	if len(settled) > 0 {
		f.p99Settled = settled.percentile(99)
	}
	return f
}
