// Command kc-event-bench is the load harness of kc-event-emitter: against a
// real PostgreSQL holding Keycloak's event tables it inserts events, runs
// the built emitter to an in-process receiver and measures events/s, the
// latency from commit to receiver, the emitter's peak memory and CPU; it
// compares the rate with a plain load generator against the same receiver,
// drains a backlog, and measures the cost of an idle emitter. It writes a
// markdown report (see docs/benchmarks.md).
//
//	go run ./cmd/kc-event-bench [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	pgURL        string
	cases        []string
	n            int
	rate         int
	rateSeconds  int
	formats      []string
	overflows    []string
	backlog      int
	backlogSpan  time.Duration
	sizes        []int
	idle         time.Duration
	idleRealms   []int
	limitSeconds time.Duration
	realms       int
	users        int
	buffer       int
	concurrency  []int
	emitterBin   string
	out          string
	stall        time.Duration
	peerDuration time.Duration
	peerClients  int
	kafka        string
	lateHold     time.Duration
	exactRate    int
	busyRealms   []int
	busyRuns     int
	args         []string
}

// allCases are the parts of a run, in the order they run; the default is
// every case but peer, which needs the Keycloak of scripts/peer.sh.
var allCases = []string{"e2e", "limit", "backlog", "growth", "idle", "late", "skew", "realms", "peer", "kafka"}

// defaultCases leave out peer and kafka, which need servers of their own.
var defaultCases = allCases[:len(allCases)-2]

const usageText = `Usage: go run ./cmd/kc-event-bench [flags]

Measures kc-event-emitter against a real PostgreSQL with Keycloak's schema
(--pg, else KCEE_TEST_PG_URL, else the cluster "bench" that
scripts/postgres.sh starts) and an in-process receiver, and prints a
markdown report. Cases (--cases):

  e2e      for each format and overflow policy: N events inserted as fast as
           possible (--n), then --rate events/s for --rateSeconds; the
           emitter tails them live. Events/s, latency commit -> receiver,
           peak RSS, CPU per 100k events.
  limit    a plain load generator (wrk, and a Go client) POSTing the same
           body to the same receiver; our events/s as a ratio of it.
  backlog  --backlog events already in the table; time for --once to drain.
  growth   JSON, block: e2e at full speed and the drain for each of --sizes.
  idle     no events: reads/s, transactions/s and CPU with --idleRealms.
  late     steady traffic (--exactRate events/s) while a transaction holding
           one row stays open --lateHold: the row arrives once.
  skew     20 min of history, then steady traffic and rows stamped 30 s and
           15 min in the past: the first arrives once, the second (beyond
           the 10 min audit horizon) is counted missed.
  realms   the full-speed live tail (--n events) over each of --busyRealms
           realms (the same 5,000 users in each), --busyRuns times in turn:
           the median events/s with many realms against few.
  peer     (not by default; run it as scripts/peer.sh measure) the Keycloak of
           scripts/peer.sh: direct-grant logins/s with events only stored,
           with Phase Two's webhook listener, with our emitter tailing the
           database; events each forwarder loses with the receiver down 60 s.
  kafka    (not by default) the target kafka:// on the broker of --kafka: --backlog
           events drained with --once, then --rate events/s for --rateSeconds;
           latency commit -> broker (the topic's LogAppendTime).

Flags:
`

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{args: args}
	fs := flag.NewFlagSet("kc-event-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	var cases, formats, overflows, sizes, idleRealms, busyRealms string
	fs.StringVar(&c.pgURL, "pg", "", "`URL` of the PostgreSQL cluster (a database is created on it and dropped)")
	fs.StringVar(&cases, "cases", strings.Join(defaultCases, ","), "comma-separated `cases` to run")
	fs.IntVar(&c.n, "n", 20000, "events of the full-speed e2e runs")
	fs.IntVar(&c.rate, "rate", 1000, "events/s of the fixed-rate e2e runs; 0 skips them")
	fs.IntVar(&c.rateSeconds, "rateSeconds", 10, "`seconds` of a fixed-rate run")
	fs.StringVar(&formats, "formats", "JSON,FLATBUFFER", "wire `formats`")
	fs.StringVar(&overflows, "overflows", "block,drop-oldest", "overflow `policies`")
	fs.IntVar(&c.backlog, "backlog", 100000, "events of the backlog case")
	fs.DurationVar(&c.backlogSpan, "backlogSpan", time.Hour, "the backlog's events are spread over this `duration` before now (1M in an hour: 278/s)")
	fs.StringVar(&sizes, "sizes", "10000,100000", "comma-separated event `counts` of the growth case")
	fs.DurationVar(&c.idle, "idle", 20*time.Second, "measuring window of the idle case")
	fs.StringVar(&idleRealms, "idleRealms", "1,100", "comma-separated realm `counts` of the idle case")
	fs.DurationVar(&c.limitSeconds, "limitDuration", 5*time.Second, "how long each load generator runs")
	fs.IntVar(&c.realms, "realms", 10, "realms the events are spread over")
	fs.IntVar(&c.users, "users", 50, "users per realm")
	fs.IntVar(&c.buffer, "bufferCapacity", 10000, "the emitter's --bufferCapacity")
	var concurrency string
	fs.StringVar(&concurrency, "concurrency", "1", "comma-separated `values` of the emitter's --concurrency (requests in flight), and the load generators' connections")
	fs.StringVar(&c.emitterBin, "emitter", "", "kc-event-emitter `binary` to measure; empty builds ./cmd/kc-event-emitter")
	fs.StringVar(&c.out, "out", "", "also write the report to this `file`")
	fs.DurationVar(&c.stall, "stall", 2*time.Minute, "give up on a run when nothing arrives for this long")
	fs.DurationVar(&c.peerDuration, "peerDuration", 30*time.Second, "how long each set-up of the peer case logs in")
	fs.IntVar(&c.peerClients, "peerClients", 4, "concurrent direct-grant clients of the peer case")
	fs.StringVar(&c.kafka, "kafka", os.Getenv("KCEE_TEST_KAFKA_BROKERS"), "Kafka `brokers` (host:port,...) of the kafka case (default KCEE_TEST_KAFKA_BROKERS)")
	fs.DurationVar(&c.lateHold, "lateHold", time.Minute, "how long the late case holds its transaction open")
	fs.IntVar(&c.exactRate, "exactRate", 200, "events/s of the steady traffic of the late and skew cases")
	fs.StringVar(&busyRealms, "busyRealms", "1,1000", "comma-separated realm `counts` of the realms case")
	fs.IntVar(&c.busyRuns, "busyRuns", 3, "`runs` of each realm count in the realms case, in turn (its goal compares the medians)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	c.cases = split(cases)
	for _, name := range c.cases {
		if !contains(allCases, name) {
			return c, fmt.Errorf("--cases: unknown case %q, want some of %s", name, strings.Join(allCases, ","))
		}
	}
	c.formats = split(formats)
	for _, f := range c.formats {
		if f != "JSON" && f != "FLATBUFFER" {
			return c, fmt.Errorf("--formats: %q is not JSON or FLATBUFFER", f)
		}
	}
	c.overflows = split(overflows)
	for _, o := range c.overflows {
		if o != "block" && o != "drop-oldest" {
			return c, fmt.Errorf("--overflows: %q is not block or drop-oldest", o)
		}
	}
	if c.sizes, err = ints("sizes", sizes); err != nil {
		return c, err
	}
	slices.Sort(c.sizes)
	c.sizes = slices.Compact(c.sizes) // make bench passes 10000,100000,$(BENCH_N)
	if c.idleRealms, err = ints("idleRealms", idleRealms); err != nil {
		return c, err
	}
	if c.busyRealms, err = ints("busyRealms", busyRealms); err != nil {
		return c, err
	}
	slices.Sort(c.busyRealms)
	if c.concurrency, err = ints("concurrency", concurrency); err != nil {
		return c, err
	}
	for name, v := range map[string]int{"n": c.n, "backlog": c.backlog, "realms": c.realms, "users": c.users,
		"bufferCapacity": c.buffer, "rateSeconds": c.rateSeconds, "peerClients": c.peerClients, "exactRate": c.exactRate,
		"busyRuns": c.busyRuns} {
		if v < 1 {
			return c, fmt.Errorf("--%s %d: want 1 or more", name, v)
		}
	}
	if c.backlogSpan < time.Millisecond {
		return c, fmt.Errorf("--backlogSpan %s: want 1ms or more", c.backlogSpan)
	}
	if c.lateHold < time.Second {
		return c, fmt.Errorf("--lateHold %s: want 1s or more", c.lateHold)
	}
	if c.rate < 0 {
		return c, fmt.Errorf("--rate %d: want 0 or more", c.rate)
	}
	return c, nil
}

func split(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func ints(name, s string) ([]int, error) {
	var out []int
	for _, p := range split(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--%s: %q is not a whole number of 1 or more", name, p)
		}
		out = append(out, n)
	}
	return out, nil
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kc-event-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := newBench(ctx, cfg, stderr, log)
	if err != nil {
		fmt.Fprintln(stderr, "kc-event-bench:", err)
		return 1
	}
	defer b.close()
	rep, err := b.runAll(ctx)
	text := rep.markdown()
	fmt.Fprint(stdout, text)
	if cfg.out != "" {
		if werr := os.WriteFile(cfg.out, []byte(text), 0o644); werr != nil {
			fmt.Fprintln(stderr, "kc-event-bench:", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "kc-event-bench:", err)
		return 1
	}
	return 0
}
