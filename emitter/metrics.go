package emitter

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
)

// defaultRoute is the name of the route of a run without a configuration
// file (flags only).
const defaultRoute = "default"

// metrics are the Prometheus series of one route of an emitter: every
// series but leader carries a route label, and counters a kind label
// (Event or AdminEvent) too. newMetrics registers the series and returns
// the view of the default route; forRoute returns another route's view of
// the same series.
type metrics struct {
	Dropped      *prometheus.CounterVec
	DeadLettered *prometheus.CounterVec
	Malformed    *prometheus.CounterVec
	Unreadable   *prometheus.CounterVec
	Unreachable  *prometheus.GaugeVec
	Late         *prometheus.CounterVec
	Missed       *prometheus.CounterVec
	LateBy       prometheus.Histogram
	Expired      prometheus.Counter
	BufferDepth  prometheus.Gauge
	Latency      prometheus.Histogram
	SourceLag    prometheus.Gauge
	SourceReads  *prometheus.CounterVec
	TargetHeld   prometheus.Gauge
	Leader       prometheus.Gauge

	// read, filtered and delivered count every event: their series for
	// this route, one per kind, are looked up once.
	read, filtered, delivered kindCounters

	route string
	all   *metricSet
}

// metricSet holds the series of every route.
type metricSet struct {
	read, filtered, delivered, dropped, deadLettered, malformed, late, missed *prometheus.CounterVec
	unreadable                                                                *prometheus.CounterVec
	unreachable                                                               *prometheus.GaugeVec
	lateBy, latency                                                           *prometheus.HistogramVec
	expired, sourceReads                                                      *prometheus.CounterVec
	bufferDepth, sourceLag, targetHeld                                        *prometheus.GaugeVec
	leader                                                                    prometheus.Gauge
	files                                                                     *routeFiles
}

// newMetrics creates the emitter's series, registers them on reg and
// returns the view of the default route.
func newMetrics(reg prometheus.Registerer) *metrics { return newMetricSet(reg).forRoute(defaultRoute) }

// newMetricSet creates the emitter's series and registers them on reg; a
// route's series appear with its view (forRoute).
func newMetricSet(reg prometheus.Registerer) *metricSet {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kc_event_emitter", Name: name, Help: help,
		}, []string{"route", "kind"})
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "kc_event_emitter", Name: name, Help: help}, []string{"route"})
	}
	s := &metricSet{
		read:         counter("events_read_total", "Events read from the source."),
		filtered:     counter("events_filtered_total", "Events read that the route's filters left out (acknowledged, not sent)."),
		delivered:    counter("events_delivered_total", "Events the target acknowledged with a 2xx status."),
		dropped:      counter("events_dropped_total", "Events dropped because the buffer was full (drop-oldest)."),
		deadLettered: counter("events_dead_lettered_total", "Events the target rejected, written to the dead-letter file."),
		malformed:    counter("events_malformed_total", "Events whose stored details were not valid JSON (forwarded raw)."),
		late:         counter("events_late_total", "Events found behind their stream's cursor (a late commit or a skewed clock) and delivered."),
		missed:       counter("events_missed_total", "Events that appeared beyond the audit horizon (not delivered; logged at ERROR with their range)."),
		unreadable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kc_event_emitter", Name: "rows_unreadable_total",
			Help: "Stored events not read, dead-lettered with the reason: encoding (the database could not return the text: SQLSTATE 22021 or 22P05) or too_large (above --maxEventBytes).",
		}, []string{"route", "kind", "reason"}),
		unreachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kc_event_emitter", Name: "rows_unreachable",
			Help: "Stored events no read reaches, by reason: no_realm (a realm id without a realm row), null_time, null_realm; counted every 5 minutes, logged at ERROR.",
		}, []string{"route", "kind", "reason"}),
		lateBy: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kc_event_emitter", Name: "event_lateness_seconds",
			Help:    "How far behind the newest event read a late event's time was when it was found.",
			Buckets: []float64{.01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600},
		}, []string{"route"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kc_event_emitter", Name: "source_expired_total",
			Help: "Times the oldest stored event was newer than the cursor: events expired before they were read.",
		}, []string{"route"}),
		bufferDepth: gauge("buffer_depth", "Encoded events waiting for delivery."),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kc_event_emitter", Name: "delivery_latency_seconds",
			Help:    "Time from the event's time in Keycloak to its acknowledgement by the target.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route"}),
		sourceReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kc_event_emitter", Name: "source_reads_total",
			Help: "Reads of the source (a page of events or the realm list; one query or API call each), by route and result.",
		}, []string{"route", "result"}),
		sourceLag: gauge("source_lag_seconds", "Age of the newest event read from the source when it was read."),
		targetHeld: gauge("target_held",
			"1 while the target refuses every event (a --holdStatuses answer or a TLS failure) and the route holds its position."),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kc_event_emitter", Name: "leader",
			Help: "1 while this emitter emits (the leader of its cluster, or the only emitter without --cluster), 0 while it stands by.",
		}),
		files: &routeFiles{
			age: prometheus.NewDesc("kc_event_emitter_checkpoint_age_seconds", "Seconds since the route's checkpoint was last saved.",
				[]string{"route"}, nil),
			deadLetter: prometheus.NewDesc("kc_event_emitter_dead_letter_bytes",
				"Size of the route's dead-letter file and its rotated parts: what waits for a replay (-1 when it cannot be read).",
				[]string{"route"}, nil),
			routes: map[string]*routeFile{},
		},
	}
	reg.MustRegister(s.read, s.filtered, s.late, s.missed, s.lateBy, s.delivered, s.dropped, s.deadLettered, s.malformed, s.unreadable, s.unreachable, s.expired,
		s.bufferDepth, s.latency, s.sourceLag, s.sourceReads, s.targetHeld, s.leader, s.files)
	return s
}

// forRoute returns the view of route name of m's series.
func (m *metrics) forRoute(name string) *metrics { return m.all.forRoute(name) }

func (s *metricSet) forRoute(name string) *metrics {
	l := prometheus.Labels{"route": name}
	return &metrics{
		Dropped: s.dropped.MustCurryWith(l), DeadLettered: s.deadLettered.MustCurryWith(l), Malformed: s.malformed.MustCurryWith(l),
		Late: s.late.MustCurryWith(l), Missed: s.missed.MustCurryWith(l),
		Unreadable: s.unreadable.MustCurryWith(l), Unreachable: s.unreachable.MustCurryWith(l),
		LateBy:      s.lateBy.WithLabelValues(name).(prometheus.Histogram),
		Expired:     s.expired.WithLabelValues(name),
		BufferDepth: s.bufferDepth.WithLabelValues(name),
		Latency:     s.latency.WithLabelValues(name).(prometheus.Histogram),
		SourceLag:   s.sourceLag.WithLabelValues(name),
		SourceReads: s.sourceReads.MustCurryWith(l),
		TargetHeld:  s.targetHeld.WithLabelValues(name),
		Leader:      s.leader,
		read:        newKindCounters(s.read, name),
		filtered:    newKindCounters(s.filtered, name),
		delivered:   newKindCounters(s.delivered, name),
		route:       name,
		all:         s,
	}
}

// routeFiles reports, at each scrape, each route's checkpoint age and the
// size of its dead-letter file (a replay shrinks it while the emitter runs).
type routeFiles struct {
	age, deadLetter *prometheus.Desc
	mu              sync.Mutex
	routes          map[string]*routeFile
}

type routeFile struct {
	savedAt    time.Time // zero: never
	deadLetter string    // "": none yet
}

func (f *routeFiles) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.age
	ch <- f.deadLetter
}

func (f *routeFiles) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, r := range f.routes {
		age := 0.0
		if !r.savedAt.IsZero() {
			age = time.Since(r.savedAt).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(f.age, prometheus.GaugeValue, age, name)
		size := 0.0
		if r.deadLetter != "" {
			if n, err := deadletter.Size(r.deadLetter); err != nil {
				size = -1
			} else {
				size = float64(n)
			}
		}
		ch <- prometheus.MustNewConstMetric(f.deadLetter, prometheus.GaugeValue, size, name)
	}
}

func (f *routeFiles) update(route string, set func(*routeFile)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.routes[route]
	if r == nil {
		r = &routeFile{}
		f.routes[route] = r
	}
	set(r)
}

// watchDeadLetters makes dead_letter_bytes of m's route report the
// dead-letter file at path.
func (m *metrics) watchDeadLetters(path string) {
	m.all.files.update(m.route, func(r *routeFile) { r.deadLetter = path })
}

// CheckpointSaved records a save of m's route's checkpoint at t.
func (m *metrics) CheckpointSaved(t time.Time) {
	m.all.files.update(m.route, func(r *routeFile) { r.savedAt = t })
}

// kindCounters holds a counter's series of one route, one per kind.
type kindCounters struct{ event, admin prometheus.Counter }

// newKindCounters looks up the series of v for route and each kind.
func newKindCounters(v *prometheus.CounterVec, route string) kindCounters {
	return kindCounters{v.WithLabelValues(route, string(KindEvent)), v.WithLabelValues(route, string(KindAdminEvent))}
}

// of returns the series of kind k.
func (c kindCounters) of(k Kind) prometheus.Counter {
	if k == KindAdminEvent {
		return c.admin
	}
	return c.event
}
