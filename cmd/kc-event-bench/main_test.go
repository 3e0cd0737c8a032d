package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cases", "e2e,nope"}, `unknown case "nope"`},
		{[]string{"--formats", "XML"}, `"XML" is not JSON or FLATBUFFER`},
		{[]string{"--overflows", "drop-newest"}, `"drop-newest" is not block or drop-oldest`},
		{[]string{"--sizes", "10,x"}, `--sizes: "x"`},
		{[]string{"--concurrency", "0"}, `--concurrency: "0"`},
		{[]string{"--n", "0"}, "--n 0: want 1 or more"},
		{[]string{"--rate", "-1"}, "--rate -1"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestParseFlagsSortsAndDedupsSizes(t *testing.T) {
	c, err := parseFlags([]string{"--sizes", "100000,10000,100000", "--concurrency", "1,4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.sizes, []int{10000, 100000}) || !slices.Equal(c.concurrency, []int{1, 4}) {
		t.Errorf("sizes %v, concurrency %v", c.sizes, c.concurrency)
	}
	if !slices.Equal(c.cases, []string{"e2e", "limit", "backlog", "growth", "idle", "late", "skew", "realms"}) {
		t.Errorf("default cases %v, want every case but peer", c.cases)
	}
}

// TestHarnessDeliversEveryEventOnce runs the harness end to end on a small
// scale against the real PostgreSQL: the built emitter delivers every
// inserted event exactly once, live and from a backlog, in both formats.
func TestHarnessDeliversEveryEventOnce(t *testing.T) {
	cluster := os.Getenv("KCEE_TEST_PG_URL")
	if cluster == "" {
		if os.Getenv("KCEE_REQUIRE_SERVERS") == "1" {
			t.Fatal("KCEE_TEST_PG_URL is not set")
		}
		t.Skip("KCEE_TEST_PG_URL is not set: run `eval $(scripts/postgres.sh env)` first")
	}
	if testing.Short() {
		t.Skip("builds and runs the emitter")
	}
	cfg, err := parseFlags([]string{"--pg", cluster, "--cases", "e2e,backlog", "--n", "600", "--rate", "200",
		"--rateSeconds", "2", "--backlog", "700", "--overflows", "block", "--realms", "3", "--users", "5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var progress strings.Builder
	b, err := newBench(ctx, cfg, &progress, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	rep, err := b.runAll(ctx)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	if len(rep.live) != 4 || len(rep.backlog) != 2 {
		t.Fatalf("%d live runs and %d drains, want 4 and 2", len(rep.live), len(rep.backlog))
	}
	for _, l := range rep.live {
		if l.fig.delivered != int64(l.fig.n) || l.fig.duplicates != 0 || l.fig.unknown != 0 {
			t.Errorf("live %s %s: %d of %d delivered, %d duplicates, %d unknown", l.setting, rateName(l.rate),
				l.fig.delivered, l.fig.n, l.fig.duplicates, l.fig.unknown)
		}
		if l.proc.peakRSS == 0 || l.proc.cpu == 0 || l.fig.p99 == 0 {
			t.Errorf("live %s: peak RSS %d, CPU %s, p99 %s; want all measured", l.setting, l.proc.peakRSS, l.proc.cpu, l.fig.p99)
		}
	}
	for _, d := range rep.backlog {
		if d.delivered != 700 || d.dup != 0 {
			t.Errorf("drain %s: %d of 700 delivered, %d duplicates", d.setting, d.delivered, d.dup)
		}
	}
	md := rep.markdown()
	for _, want := range []string{"#### End to end", "#### Backlog", "| JSON | block | 1 | 200/s | 400 |", "#### Goals"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
