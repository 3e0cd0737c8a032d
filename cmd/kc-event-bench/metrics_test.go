package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

func TestParseMetricsSumsEveryLabelSet(t *testing.T) {
	page := `# HELP kc_event_emitter_source_reads_total Reads of the source.
# TYPE kc_event_emitter_source_reads_total counter
kc_event_emitter_source_reads_total{result="error"} 2
kc_event_emitter_source_reads_total{result="ok"} 1.5e+03
kc_event_emitter_source_reads_total_other 9
kc_event_emitter_buffer_depth 12
kc_event_emitter_events_dropped_total{kind="Event",note="a } in a label"} 3 1700000000000
`
	got, err := parseMetrics(strings.NewReader(page), expfmt.NewFormat(expfmt.TypeTextPlain), "kc_event_emitter_source_reads_total",
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

func TestParseMetricsRefusesWhatItCannotSum(t *testing.T) {
	for _, tc := range []struct {
		name, page, want string
	}{
		{"a malformed line", "kc_event_emitter_buffer_depth twelve\n", "twelve"},
		{"a histogram", "# TYPE kc_event_emitter_delivery_seconds histogram\nkc_event_emitter_delivery_seconds_bucket{le=\"+Inf\"} 1\n" +
			"kc_event_emitter_delivery_seconds_sum 0.5\nkc_event_emitter_delivery_seconds_count 1\n",
			"kc_event_emitter_delivery_seconds is a HISTOGRAM"},
	} {
		_, err := parseMetrics(strings.NewReader(tc.page), expfmt.NewFormat(expfmt.TypeTextPlain),
			"kc_event_emitter_buffer_depth", "kc_event_emitter_delivery_seconds")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

// TestScrapeReadsWhatPromhttpServes scrapes a registry served as the
// emitter serves its own (promhttp.HandlerFor).
func TestScrapeReadsWhatPromhttpServes(t *testing.T) {
	reg := prometheus.NewRegistry()
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kc_event_emitter_source_reads_total"}, []string{"result"})
	depth := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kc_event_emitter_buffer_depth"})
	reg.MustRegister(reads, depth)
	reads.WithLabelValues("ok").Add(40)
	reads.WithLabelValues("error").Add(2)
	depth.Set(7)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	got, err := scrape(t.Context(), srv.URL+"/metrics", "kc_event_emitter_source_reads_total", "kc_event_emitter_buffer_depth")
	if err != nil {
		t.Fatal(err)
	}
	if got["kc_event_emitter_source_reads_total"] != 42 || got["kc_event_emitter_buffer_depth"] != 7 || len(got) != 2 {
		t.Errorf("scraped %v, want 42 reads and a depth of 7", got)
	}
	if _, err := scrape(t.Context(), srv.URL+"/nothing", "kc_event_emitter_buffer_depth"); err == nil ||
		!strings.Contains(err.Error(), "404") {
		t.Errorf("scrape of a missing page: error %v, want one with 404", err)
	}
}
