package main

import (
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// report collects the results and renders them as markdown.
type report struct {
	started, ended time.Time
	command        string
	commit         string
	machine        string
	postgres       string
	loadStart      float64
	loadEnd        float64
	cfg            config

	live        []liveResult
	exact       []exactResult // late and skew
	busy        []liveResult  // realms
	limit       []limitResult
	backlog     []drainResult
	growthLive  []liveResult
	growthDrain []drainResult
	idle        []idleResult
	peer        []peerResult
	outage      []outageResult
	peerSamples []string
	kafka       []kafkaResult
}

func newReport(ctx context.Context, h host, cfg config, cluster, root, bin string) *report {
	r := &report{started: time.Now(), cfg: cfg, loadStart: h.loadAverage(),
		command: strings.TrimSpace("go run ./cmd/kc-event-bench " + strings.Join(cfg.args, " "))}
	r.machine = fmt.Sprintf("%d CPUs (%s), %s RAM, %s/%s, %s", runtime.NumCPU(), h.cpuModel(), h.memTotal(),
		runtime.GOOS, runtime.GOARCH, runtime.Version())
	r.commit = "binary " + bin
	if cfg.emitterBin == "" {
		r.commit = gitCommit(ctx, root)
	}
	if db, err := sql.Open("postgres", cluster); err == nil {
		db.QueryRowContext(ctx, "SHOW server_version").Scan(&r.postgres)
		db.Close()
	}
	return r
}

// finish records the end of the run and the load average then.
func (r *report) finish(load float64) {
	r.ended = time.Now()
	r.loadEnd = load
}

// gitCommit names the commit the emitter was built from, and says when the
// work tree had changes to the code that goes into it.
func gitCommit(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	c := "commit " + strings.TrimSpace(string(out))
	st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--",
		"emitter", "buffer", "fbs", "cmd/kc-event-emitter", "go.mod", "go.sum").Output()
	if err != nil {
		return c
	}
	for line := range strings.Lines(string(st)) {
		if name := strings.TrimSpace(line); strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			return c + " with uncommitted changes to its code"
		}
	}
	return c
}

// Goals of issue 9.
const (
	goalRate     = 20000
	goalRatio    = 0.5
	goalP99      = 500 * time.Millisecond
	goalP99Rate  = 1000
	goalRSSBytes = 64 << 20
)

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("### kc-event-bench, %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	p("- Command: `%s` (%s); emitter built from %s\n", r.command, r.ended.Sub(r.started).Round(time.Second), r.commit)
	p("- Machine: %s; PostgreSQL %s on the same machine\n", r.machine, orUnknown(r.postgres))
	p("- Load average (1 min): %.1f at the start, %.1f at the end\n", r.loadStart, r.loadEnd)
	p("- Emitter: --bufferCapacity %d, --concurrency as the tables say, the binary's defaults otherwise;"+
		" %d realms with %d users each; receiver in this process (emitter/receiver.NewHandler + emitter.DecodePayload, Basic auth)\n\n",
		r.cfg.buffer, r.cfg.realms, r.cfg.users)

	if len(r.live) > 0 {
		p("#### End to end (live tail)\n\n")
		p("| format | overflow | conc. | insert | events | inserted/s | delivered/s | p50 | p95 | p99 | max | lost | dup | peak RSS | CPU s/100k | load |\n")
		p("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range r.live {
			p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s | %.2f | %.1f |\n",
				l.format, l.overflow, l.concurrency, rateName(l.rate), num(float64(l.fig.n)), num(l.insertRate), num(l.fig.rate()),
				ms(l.fig.p50), ms(l.fig.p95), ms(l.fig.p99), ms(l.fig.pMax), int64(l.fig.n)-l.fig.delivered, l.fig.duplicates,
				mib(l.proc.peakRSS), l.proc.cpuPer100k(l.fig.delivered), l.load)
		}
		p("\n")
	}
	if len(r.limit) > 0 {
		p("#### Limit (plain load generator, same receiver, same body)\n\n")
		p("| format | body bytes | generator | connections | requests/s | our best events/s | ours / generator | load |\n")
		p("|---|---:|---|---:|---:|---:|---:|---:|\n")
		for _, l := range r.limit {
			ours := r.best(l.key())
			p("| %s | %d | %s | %d | %s | %s | %s | %.1f |\n", l.format, l.body, l.gen.tool, l.gen.conns,
				num(l.gen.rate()), num(ours), pct(ours, l.gen.rate()), l.load)
		}
		p("\n")
	}
	if len(r.backlog) > 0 {
		p("#### Backlog (`--once` drain of events already in the table)\n\n")
		p("Inserted beforehand at %s events/s; event times spread over %s before the start (%s events per second of Keycloak time).\n\n",
			num(r.backlog[0].insertRate), r.cfg.backlogSpan, num(float64(r.cfg.backlog)/r.cfg.backlogSpan.Seconds()))
		r.drainTable(&b, r.backlog)
	}
	if len(r.growthLive) > 0 || len(r.growthDrain) > 0 {
		p("#### Cost growth (JSON, block, concurrency %d)\n\n", r.cfg.concurrency[0])
		if len(r.growthLive) > 0 {
			p("Live tail at full speed:\n\n")
			p("| events | delivered/s | p50 | p99 | peak RSS | CPU s/100k | load |\n|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, l := range r.growthLive {
				p("| %s | %s | %s | %s | %s | %.2f | %.1f |\n", num(float64(l.fig.n)), num(l.fig.rate()), ms(l.fig.p50), ms(l.fig.p99),
					mib(l.proc.peakRSS), l.proc.cpuPer100k(l.fig.delivered), l.load)
			}
			p("\n")
		}
		if len(r.growthDrain) > 0 {
			p("Drain (`--once`):\n\n")
			r.drainTable(&b, r.growthDrain)
		}
	}
	if len(r.idle) > 0 {
		p("#### Idle cost (no events arrive)\n\n")
		p("| realms | window | source reads/s | transactions/s in the database | CPU | RSS | load |\n|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, i := range r.idle {
			p("| %d | %s | %.1f | %.1f | %.1f ms/s (%.2f%% of a core) | %s | %.1f |\n", i.realms, i.window, i.reads, i.commits,
				float64(i.cpu)/float64(time.Millisecond), 100*i.cpu.Seconds(), mib(i.rss), i.load)
		}
		p("\n")
	}
	if len(r.peer) > 0 {
		p("#### Peer: Keycloak's direct-grant logins (%d clients, %s each, after %s of warm-up)\n\n",
			r.cfg.peerClients, r.cfg.peerDuration, 2*r.cfg.peerDuration)
		p("| set-up | logins/s | failed | events stored | events delivered | load |\n|---|---:|---:|---:|---:|---:|\n")
		for _, x := range r.peer {
			delivered := "–"
			if x.setup != setupStored {
				delivered = num(float64(x.delivered))
			}
			p("| %s | %.1f | %d | %s | %s | %.1f |\n", x.setup, x.rate(), x.failures, num(float64(x.stored)), delivered, x.load)
		}
		p("\n")
	}
	if len(r.outage) > 0 {
		p("#### Peer: receiver down for 60 s (logins at 20/s for 90 s)\n\n")
		p("| forwarder | events stored | delivered | lost | last delivery after the receiver's return |\n|---|---:|---:|---:|---:|\n")
		for _, o := range r.outage {
			p("| %s | %s | %s | %s | %s |\n", o.forwarder, num(float64(o.stored)), num(float64(o.delivered)),
				num(float64(o.stored-o.delivered)), o.catchUp.Round(100*time.Millisecond))
		}
		p("\n")
		for _, s := range r.peerSamples {
			p("Sample body, %s\n\n", "`"+strings.ReplaceAll(s, "`", "'")+"`")
		}
	}
	r.kafkaTable(&b)
	r.exactMarkdown(&b)
	r.goals(&b)
	return b.String()
}

func (r *report) drainTable(b *strings.Builder, rows []drainResult) {
	fmt.Fprintf(b, "| events | format | overflow | conc. | drain time | events/s | dup | peak RSS | CPU s/100k | load |\n")
	fmt.Fprintf(b, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, d := range rows {
		fmt.Fprintf(b, "| %s | %s | %s | %d | %s | %s | %d | %s | %.2f | %.1f |\n", num(float64(d.n)), d.format, d.overflow, d.concurrency,
			d.elapsed.Round(10*time.Millisecond), num(d.rate()), d.dup, mib(d.proc.peakRSS), d.proc.cpuPer100k(d.delivered), d.load)
	}
	fmt.Fprintln(b)
}

// best returns the highest events/s of the full-speed live runs and the
// drains of a format and concurrency (setting.key).
func (r *report) best(key string) float64 {
	var best float64
	for _, l := range append(r.live[:len(r.live):len(r.live)], r.growthLive...) {
		if l.rate == 0 && l.key() == key {
			best = max(best, l.fig.rate())
		}
	}
	for _, d := range append(r.backlog[:len(r.backlog):len(r.backlog)], r.growthDrain...) {
		if d.key() == key {
			best = max(best, d.rate())
		}
	}
	return best
}

// peerMean returns the mean logins/s of a peer set-up's runs, or 0.
func (r *report) peerMean(setup string) float64 {
	var sum float64
	var n int
	for _, x := range r.peer {
		if x.setup == setup {
			sum += x.rate()
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// goals compares the results with the goals of issue 9.
func (r *report) goals(b *strings.Builder) {
	type row struct{ goal, measured, met string }
	var rows []row
	var best float64
	var bestWhere string
	consider := func(rate float64, where string) {
		if rate > best {
			best, bestWhere = rate, where
		}
	}
	for _, l := range append(r.live[:len(r.live):len(r.live)], r.growthLive...) {
		if l.rate == 0 {
			consider(l.fig.rate(), fmt.Sprintf("live tail, %s", l.setting))
		}
	}
	for _, d := range append(r.backlog[:len(r.backlog):len(r.backlog)], r.growthDrain...) {
		consider(d.rate(), fmt.Sprintf("drain of %s, %s", num(float64(d.n)), d.setting))
	}
	if best > 0 {
		rows = append(rows, row{"≥ 20,000 events/s delivered", fmt.Sprintf("%s (%s)", num(best), bestWhere), yes(best >= goalRate)})
	}
	for _, l := range r.limit {
		if ours := r.best(l.key()); ours > 0 && l.gen.rate() > 0 {
			rows = append(rows, row{fmt.Sprintf("≥ 50%% of %s's requests/s (%s, %d conn.)", l.gen.tool, l.format, l.gen.conns),
				pct(ours, l.gen.rate()), yes(ours/l.gen.rate() >= goalRatio)})
		}
	}
	var p99 time.Duration
	seen := false
	for _, l := range r.live {
		if l.rate == goalP99Rate {
			p99, seen = max(p99, l.fig.p99), true
		}
	}
	if seen {
		rows = append(rows, row{"p99 < 500 ms at 1,000 events/s", ms(p99) + " (worst setting)", yes(p99 < goalP99)})
	}
	var rss int64
	for _, l := range append(r.live[:len(r.live):len(r.live)], r.growthLive...) {
		rss = max(rss, l.proc.peakRSS)
	}
	for _, d := range append(r.backlog[:len(r.backlog):len(r.backlog)], r.growthDrain...) {
		rss = max(rss, d.proc.peakRSS)
	}
	if rss > 0 {
		rows = append(rows, row{"peak RSS < 64 MB at any backlog", mib(rss) + " (largest of every run)", yes(rss < goalRSSBytes)})
	}
	if base := r.peerMean(setupStored); base > 0 {
		if side := r.peerMean(setupSidecar); side > 0 {
			rows = append(rows, row{"no effect of the sidecar on Keycloak's logins/s",
				fmt.Sprintf("%s of stored only (means: %.1f vs %.1f logins/s)", pct(side, base), side, base),
				yes(side >= 0.95*base)})
		}
	}
	r.exactGoals(func(goal, measured string, met bool) { rows = append(rows, row{goal, measured, yes(met)}) })
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "#### Goals\n\n| goal | measured | met |\n|---|---|---|\n")
	for _, g := range rows {
		fmt.Fprintf(b, "| %s | %s | %s |\n", g.goal, g.measured, g.met)
	}
	fmt.Fprintln(b)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func orUnknown(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}

// num formats a rate or count with thousands separators, no decimals.
func num(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// pct returns a/b as a percentage.
func pct(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

// rateName names an insert rate in events/s; 0 is full speed.
func rateName(rate int) string {
	if rate == 0 {
		return "full speed"
	}
	return fmt.Sprintf("%d/s", rate)
}

// ms formats d in whole milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// mib formats b bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
