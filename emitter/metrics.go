package emitter

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
)

// metrics are the Prometheus series of one emitter. Counters carry a kind
// label (Event or AdminEvent).
type metrics struct {
	Read         *prometheus.CounterVec
	Filtered     *prometheus.CounterVec
	Delivered    *prometheus.CounterVec
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
	savedAt      atomic.Int64 // UnixNano of the last checkpoint save; 0 = never
	deadLetters  atomic.Pointer[string]
}

// newMetrics creates the emitter's series and registers them on reg.
func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kc_event_emitter", Name: name, Help: help,
		}, []string{"kind"})
	}
	m := &metrics{
		Read:         counter("events_read_total", "Events read from the source."),
		Filtered:     counter("events_filtered_total", "Events read that the filters left out (acknowledged, not sent)."),
		Delivered:    counter("events_delivered_total", "Events the target acknowledged with a 2xx status."),
		Dropped:      counter("events_dropped_total", "Events dropped because the buffer was full (drop-oldest)."),
		DeadLettered: counter("events_dead_lettered_total", "Events the target rejected, written to the dead-letter file."),
		Malformed:    counter("events_malformed_total", "Events whose stored details were not valid JSON (forwarded raw)."),
		Late:         counter("events_late_total", "Events found behind their stream's cursor (a late commit or a skewed clock) and delivered."),
		Missed:       counter("events_missed_total", "Events that appeared beyond the audit horizon (not delivered; logged at ERROR with their range)."),
		Unreadable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kc_event_emitter", Name: "rows_unreadable_total",
			Help: "Stored events not read, dead-lettered with the reason: encoding (the database could not return the text: SQLSTATE 22021 or 22P05) or too_large (above --maxEventBytes).",
		}, []string{"kind", "reason"}),
		Unreachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kc_event_emitter", Name: "rows_unreachable",
			Help: "Stored events no read reaches, by reason: no_realm (a realm id without a realm row), null_time, null_realm; counted every 5 minutes, logged at ERROR.",
		}, []string{"kind", "reason"}),
		LateBy: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kc_event_emitter", Name: "event_lateness_seconds",
			Help:    "How far behind the newest event read a late event's time was when it was found.",
			Buckets: []float64{.01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600},
		}),
		Expired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kc_event_emitter", Name: "source_expired_total",
			Help: "Times the oldest stored event was newer than the cursor: events expired before they were read.",
		}),
		BufferDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kc_event_emitter", Name: "buffer_depth", Help: "Encoded events waiting for delivery.",
		}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kc_event_emitter", Name: "delivery_latency_seconds",
			Help:    "Time from the event's time in Keycloak to its acknowledgement by the target.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		SourceReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kc_event_emitter", Name: "source_reads_total",
			Help: "Reads of the source (a page of events or the realm list; one query or API call each), by result.",
		}, []string{"result"}),
		SourceLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kc_event_emitter", Name: "source_lag_seconds",
			Help: "Age of the newest event read from the source when it was read.",
		}),
		TargetHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kc_event_emitter", Name: "target_held",
			Help: "1 while the target refuses every event (a --holdStatuses answer or a TLS failure) and the route holds its position.",
		}),
	}
	deadLetterBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "kc_event_emitter", Name: "dead_letter_bytes",
		Help: "Size of the dead-letter file and its rotated parts: what waits for a replay (-1 when it cannot be read).",
	}, func() float64 {
		path := m.deadLetters.Load()
		if path == nil {
			return 0
		}
		n, err := deadletter.Size(*path)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	m.Leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kc_event_emitter", Name: "leader",
		Help: "1 while this emitter emits (the leader of its cluster, or the only emitter without --cluster), 0 while it stands by.",
	})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "kc_event_emitter", Name: "checkpoint_age_seconds",
		Help: "Seconds since the checkpoint was last saved.",
	}, func() float64 {
		saved := m.savedAt.Load()
		if saved == 0 {
			return 0
		}
		return time.Since(time.Unix(0, saved)).Seconds()
	})
	reg.MustRegister(m.Read, m.Filtered, m.Late, m.Missed, m.LateBy, m.Delivered, m.Dropped, m.DeadLettered, m.Malformed, m.Unreadable, m.Unreachable, m.Expired,
		m.BufferDepth, m.Latency, m.SourceLag, m.SourceReads, m.TargetHeld, m.Leader, age, deadLetterBytes)
	return m
}

// watchDeadLetters makes dead_letter_bytes report the dead-letter file at
// path (read at each scrape: a replay shrinks it while the emitter runs).
func (m *metrics) watchDeadLetters(path string) { m.deadLetters.Store(&path) }

// CheckpointSaved records a checkpoint save at t.
func (m *metrics) CheckpointSaved(t time.Time) { m.savedAt.Store(t.UnixNano()) }
