package main

import (
	"strings"
	"testing"
	"time"
)

func TestNumGroupsThousands(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {999, "999"}, {1000, "1,000"}, {20000.4, "20,000"}, {1234567, "1,234,567"}, {-4500, "-4,500"},
	} {
		if got := num(tc.v); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// goalRows returns the rows of the report's goals table.
func goalRows(md string) []string {
	_, goals, ok := strings.Cut(md, "#### Goals")
	if !ok {
		return nil
	}
	var rows []string
	for _, line := range strings.Split(goals, "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| goal") {
			rows = append(rows, line)
		}
	}
	return rows
}

func TestGoalsSayWhatIsMetAndWhatIsNot(t *testing.T) {
	fast := liveResult{setting: setting{"JSON", "block", 4}, fig: liveFigures{n: 1000, delivered: 1000, span: 40 * time.Millisecond},
		proc: procFigures{peakRSS: 30 << 20}}
	paced := liveResult{setting: setting{"FLATBUFFER", "drop-oldest", 1}, rate: 1000,
		fig: liveFigures{n: 1000, delivered: 1000, span: time.Second, p99: 620 * time.Millisecond}, proc: procFigures{peakRSS: 70 << 20}}
	r := &report{cfg: config{concurrency: []int{1}}, live: []liveResult{fast, paced},
		limit: []limitResult{{setting: setting{"JSON", "block", 4}, gen: loadResult{tool: "wrk", conns: 4, requests: 40000, elapsed: time.Second}}}}
	rows := goalRows(r.markdown())
	want := []string{
		"| ≥ 20,000 events/s delivered | 25,000 (live tail, JSON block c=4) | yes |",
		"| ≥ 50% of wrk's requests/s (JSON, 4 conn.) | 62% | yes |",
		"| p99 < 500 ms at 1,000 events/s | 620 ms (worst setting) | no |",
		"| peak RSS < 64 MB at any backlog | 70.0 MiB (largest of every run) | no |",
		"| p99 < 150 ms at 1,000 events/s (issue 15) | 620 ms (worst setting; after the first second: 0 ms) | no |",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("goals:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
}

func TestExactGoalIsMetOnlyWhenEveryRowIsDeliveredOrCountedMissedAsItShouldBe(t *testing.T) {
	delivered := oddRow{what: "30s", want: true, arrivedFrom: time.Second}
	missed := oddRow{what: "15m", want: false}
	for _, tc := range []struct {
		name string
		r    exactResult
		met  bool
	}{
		{"all as wanted", exactResult{steady: 10, delivered: 10, odd: []oddRow{delivered, missed}, missed: 1}, true},
		{"a steady event lost", exactResult{steady: 10, delivered: 9, odd: []oddRow{delivered}}, false},
		{"a duplicate", exactResult{steady: 10, delivered: 10, dup: 1, odd: []oddRow{delivered}}, false},
		{"the row to deliver never arrived", exactResult{steady: 10, delivered: 10, odd: []oddRow{{want: true}}}, false},
		{"the row beyond the horizon not counted", exactResult{steady: 10, delivered: 10, odd: []oddRow{missed}}, false},
		{"the row beyond the horizon delivered", exactResult{steady: 10, delivered: 10, odd: []oddRow{{want: false, arrivedFrom: 1}}, missed: 1}, false},
	} {
		if got := tc.r.met(); got != tc.met {
			t.Errorf("%s: met = %v, want %v", tc.name, got, tc.met)
		}
	}
}

func TestMedianRateOfTheBusyRunsTakesTheMiddleRunOfEachRealmCount(t *testing.T) {
	run := func(realms int, perSecond int64) liveResult {
		return liveResult{realms: realms, fig: liveFigures{delivered: perSecond, span: time.Second}}
	}
	busy := []liveResult{run(1, 3000), run(1000, 2000), run(1, 4000), run(1000, 2900), run(1, 3100), run(1000, 9000)}
	for _, c := range []struct {
		realms int
		want   float64
	}{{1, 3100}, {1000, 2900}, {10, 0}} {
		if got := medianRate(busy, c.realms); got != c.want {
			t.Errorf("median of %d realms: %.0f, want %.0f", c.realms, got, c.want)
		}
	}
	if got := medianRate(busy[:4], 1); got != 3500 {
		t.Errorf("median of two runs: %.0f, want their mean 3500", got)
	}
}

func TestKafkaTableGivesTheCPUOfPostgreSQLAndTheBrokerPerEventsDrainedOrNothingWhenUnknown(t *testing.T) {
	r := &report{kafka: []kafkaResult{
		{what: "backlog", n: 300000, delivered: 300000, elapsed: 3 * time.Second, pgCPU: 1200 * time.Millisecond, brokerCPU: 600 * time.Millisecond},
		{what: "backlog", n: 300000, delivered: 300000, elapsed: 3 * time.Second, pgCPU: -1, brokerCPU: -1},
	}}
	var b strings.Builder
	r.kafkaTable(&b)
	rows := strings.Split(b.String(), "\n")[4:6]
	if !strings.Contains(rows[0], "| 0.40, 0.20 |") {
		t.Errorf("a drain of 300,000 events while PostgreSQL used 1.2 s and the broker 0.6 s: %q, want 0.40, 0.20", rows[0])
	}
	if !strings.Contains(rows[1], "| 0.00 |  | ") {
		t.Errorf("a drain whose other processes could not be read: %q, want an empty cell", rows[1])
	}
}
