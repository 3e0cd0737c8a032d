package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestStatusFieldReadsKilobytes(t *testing.T) {
	status := "Name:\tkc-event-emitter\nVmPeak:\t 1862728 kB\nVmHWM:\t   20188 kB\nVmRSS:\t   19000 kB\nThreads:\t9\n"
	for _, tc := range []struct {
		field string
		want  int64
		ok    bool
	}{
		{"VmHWM", 20188 * 1024, true},
		{"VmRSS", 19000 * 1024, true},
		{"Threads", 0, false}, // no unit
		{"VmSwap", 0, false},  // absent
	} {
		got, err := statusField(strings.NewReader(status), tc.field)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("statusField(%s) = %d, %v; want %d, ok %v", tc.field, got, err, tc.want, tc.ok)
		}
	}
}

func TestStatusFieldOfThisProcess(t *testing.T) {
	n, err := procStatus(os.Getpid(), "VmHWM")
	if err != nil || n < 1<<20 {
		t.Errorf("VmHWM of the test process: %d, %v; want a few MiB", n, err)
	}
}

func TestStatCPUSkipsACommandNameWithSpacesAndParentheses(t *testing.T) {
	// Fields 14 and 15 (utime, stime) are 250 and 50 ticks.
	stat := "4242 (kc (event) emitter) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0 123 456 789"
	got, err := statCPU(stat)
	if err != nil || got != 3*time.Second {
		t.Errorf("statCPU = %s, %v; want 3s", got, err)
	}
	if _, err := statCPU("4242 (truncated) S 1"); err == nil {
		t.Error("statCPU of a short line: no error")
	}
}

func TestParseMetricsSumsEveryLabelSet(t *testing.T) {
	page := `# HELP kc_event_emitter_source_reads_total Reads of the source.
# TYPE kc_event_emitter_source_reads_total counter
kc_event_emitter_source_reads_total{result="error"} 2
kc_event_emitter_source_reads_total{result="ok"} 1.5e+03
kc_event_emitter_source_reads_total_other 9
kc_event_emitter_buffer_depth 12
kc_event_emitter_events_dropped_total{kind="Event",note="a } in a label"} 3 1700000000000
`
	got, err := parseMetrics(strings.NewReader(page), "kc_event_emitter_source_reads_total",
		"kc_event_emitter_buffer_depth", "kc_event_emitter_events_dropped_total", "absent")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"kc_event_emitter_source_reads_total": 1502, "kc_event_emitter_buffer_depth": 12,
		"kc_event_emitter_events_dropped_total": 3}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestParseWrkCountsOnlySuccessfulRequests(t *testing.T) {
	out := `Running 5s test @ http://127.0.0.1:40000/event/receiver
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   220.12us  100.01us   3.10ms   90.00%
  90000 requests in 5.00s, 7.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 1000
Requests/sec:  18000.00
Transfer/sec:      1.40MB
`
	r, err := parseWrk([]byte(out), 4)
	if err != nil {
		t.Fatal(err)
	}
	if r.requests != 89000 || r.errors != 1003 || r.elapsed != 5*time.Second || r.conns != 4 {
		t.Errorf("got %+v; want 89000 requests, 1003 errors, 5s, 4 connections", r)
	}
	if got := r.rate(); got != 17800 {
		t.Errorf("rate %.0f, want 17800", got)
	}
	if _, err := parseWrk([]byte("wrk: unable to connect"), 1); err == nil {
		t.Error("no error for output without a request count")
	}
}
