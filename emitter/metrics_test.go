package emitter

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRouteCountersOfBothKindsAreExposedFromTheStart pins the counters a
// route resolves once: read, filtered and delivered have a series of each
// kind for each route before any event (so rate() over them has no gap),
// and an event counts in its own kind's series only.
func TestRouteCountersOfBothKindsAreExposedFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	set := newMetricSet(reg)
	a, _ := set.forRoute("a"), set.forRoute("b")
	for _, name := range []string{"read", "filtered", "delivered"} {
		n, err := testutil.GatherAndCount(reg, "kc_event_emitter_events_"+name+"_total")
		if err != nil || n != 4 {
			t.Errorf("events_%s_total: %d series (%v), want 4: two routes, two kinds", name, n, err)
		}
	}
	a.delivered.of(KindAdminEvent).Inc()
	if ev, ad := testutil.ToFloat64(set.delivered.WithLabelValues("a", string(KindEvent))), testutil.ToFloat64(set.delivered.WithLabelValues("a", string(KindAdminEvent))); ev != 0 || ad != 1 {
		t.Errorf("after one admin event delivered: Event %v, AdminEvent %v; want 0 and 1", ev, ad)
	}
}
