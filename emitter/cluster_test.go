package emitter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

// TestReadinessOfAStandbyIsReadyUnlessItCannotReachTheState: a standby
// answers 200 "standby" (its pod must stay in its Service), and 503 with
// the reason while it cannot reach the state database; outside cluster
// mode the body stays "ready".
func TestReadinessOfAStandbyIsReadyUnlessItCannotReachTheState(t *testing.T) {
	var current *role
	r := readiness{routes: []routeReady{{name: defaultRoute, source: func() *observedSource { return nil }}}, role: func() *role { return current }}
	current = &role{}
	if problem := r.notReady(time.Now()); problem != "" || r.readyText() != "standby" {
		t.Errorf("standby: notReady %q, text %q; want ready and standby", problem, r.readyText())
	}
	current = &role{problem: "standby: the state database does not answer: dial tcp: refused"}
	if problem := r.notReady(time.Now()); !strings.Contains(problem, "does not answer") {
		t.Errorf("standby cut off: notReady %q, want the reason", problem)
	}
	current = nil // outside cluster mode: the source decides
	if problem := r.notReady(time.Now()); problem != "source not opened yet" || r.readyText() != "ready" {
		t.Errorf("no role: notReady %q, text %q", problem, r.readyText())
	}
}

// TestFencedStoreDeposesTheTermOnARefusedWrite: a write refused for an
// older epoch cancels the term with a cause that deposed recognises; other
// errors do not.
func TestFencedStoreDeposesTheTermOnARefusedWrite(t *testing.T) {
	for _, tt := range []struct {
		err     error
		deposed bool
	}{
		{errors.New("connection refused"), false},
		{errors.Join(errors.New("epoch 3, the cluster's is 4"), checkpoint.ErrFenced), true},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		f := &fencedStore{depose: cancel}
		if got := f.fence(tt.err); got != tt.err {
			t.Errorf("fence(%v) = %v, want the error itself", tt.err, got)
		}
		if deposed(ctx) != tt.deposed {
			t.Errorf("after %v: deposed = %v, want %v", tt.err, deposed(ctx), tt.deposed)
		}
		cancel(nil)
	}
}
