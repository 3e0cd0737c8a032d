package main

import (
	"testing"
	"time"
)

func TestPercentileIsTheNearestRank(t *testing.T) {
	ten := latencies{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	for _, tc := range []struct {
		name string
		l    latencies
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", latencies{7}, 99, 7},
		{"median of ten", ten, 50, 5},
		{"p95 of ten", ten, 95, 10},
		{"p90 of ten", ten, 90, 9},
		{"p10 of ten", ten, 10, 1},
		{"max", ten, 100, 10},
		{"p99 of 200 is the 198th", seq(200), 99, 198},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := append(latencies(nil), tc.l...)
			if got := l.percentile(tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %d, want %d", tc.p, got, tc.want)
			}
		})
	}
}

func seq(n int) latencies {
	l := make(latencies, n)
	for i := range l {
		l[i] = time.Duration(n - i)
	}
	return l
}

func TestFiguresMeasureFromCommitToArrival(t *testing.T) {
	const ms = int64(time.Millisecond)
	commits := []int64{1000 * ms, 1000 * ms, 1100 * ms, 0}
	a := newArrivals(len(commits))
	a.arrive(0, 1010*ms)
	a.arrive(1, 1200*ms)
	a.arrive(2, 1100*ms-5) // visible a little before COMMIT returned: 0
	a.arrive(2, 1200*ms)   // again: a duplicate, the first arrival counts
	a.arrive(9, 1200*ms)   // out of range
	f := figures(commits, a)
	if f.delivered != 3 || f.duplicates != 1 || f.unknown != 1 {
		t.Errorf("delivered %d, duplicates %d, unknown %d; want 3, 1, 1", f.delivered, f.duplicates, f.unknown)
	}
	if f.span != 200*time.Millisecond {
		t.Errorf("span %s, want 200ms (first commit to last arrival)", f.span)
	}
	if f.p50 != 10*time.Millisecond || f.pMax != 200*time.Millisecond {
		t.Errorf("p50 %s, max %s; want 10ms, 200ms (latencies 0, 10ms, 200ms)", f.p50, f.pMax)
	}
	if got := f.rate(); got != 15 {
		t.Errorf("rate %.1f/s, want 15 (3 events in 200ms)", got)
	}
}

func TestArrivalsSignalDoneWhenTheLastDistinctEventArrives(t *testing.T) {
	a := newArrivals(2)
	a.arrive(0, 1)
	a.arrive(0, 2)
	select {
	case <-a.done:
		t.Fatal("done after one distinct event of two")
	default:
	}
	a.arrive(1, 3)
	select {
	case <-a.done:
	default:
		t.Fatal("not done after both events")
	}
}

func TestFiguresSettledP99LeavesOutTheEventsOfTheFirstSecond(t *testing.T) {
	const s = int64(time.Second)
	commits := []int64{10 * s, 10*s + s/2, 11 * s, 12 * s}
	a := newArrivals(len(commits))
	for i, lat := range []time.Duration{300 * time.Millisecond, 250 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond} {
		a.arrive(i, commits[i]+int64(lat))
	}
	f := figures(commits, a)
	if f.p99 != 300*time.Millisecond || f.p99Settled != 30*time.Millisecond {
		t.Fatalf("p99 %s, settled %s; want 300ms and 30ms", f.p99, f.p99Settled)
	}
}
