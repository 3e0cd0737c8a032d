package emitter

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
)

// hold is the held state of a route: the target answered that it takes no
// event at all (a status of the hold side of the answer table, or a TLS
// failure). While held, the route keeps its position: the event being sent
// is tried again with backoff until the target takes it, the ones behind it
// wait, and the overflow policy decides what happens to a full buffer. It
// logs at ERROR once per change: held, held for another answer, released.
type hold struct {
	log      *slog.Logger
	overflow buffer.Policy
	gauge    prometheus.Gauge // nil: no metrics

	held atomic.Bool
	mu   sync.Mutex
	// Guarded by mu, set while held:
	since  time.Time
	answer string // "401 Unauthorized", "TLS"
	hint   string
	tries  int // attempts refused since
	// Guarded by mu: when the last hold ended.
	releasedAt time.Time
}

// refused records that the target refused env with r, a holdAnswer, to the
// attempt sent at sentAt; the route is held from now on if it was not
// already. An answer to an attempt sent before the last release is stale
// (with concurrent sends, the target was fixed meanwhile) and changes
// nothing.
func (h *hold) refused(r refusal, env envelope, sentAt, now time.Time, wait time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.held.Load() && sentAt.Before(h.releasedAt) {
		return
	}
	h.tries++
	answer := r.answer()
	if h.held.Load() && answer == h.answer {
		return
	}
	attrs := []any{"answer", answer, "hint", r.hint(), "uid", env.UID, "kind", env.Kind, "error", r.err,
		"retry_in", wait, "overflow", overflowMeaning(h.overflow)}
	if r.status != 0 {
		attrs = append([]any{"status", r.status}, attrs...)
	}
	if h.held.Load() {
		h.log.Error("the target now refuses every event with another answer: the route still holds its position",
			append(attrs, "held_for", now.Sub(h.since).Round(time.Millisecond), "was", h.answer)...)
	} else {
		h.since = now
		h.log.Error("the target refuses every event: the route holds its position and tries again", attrs...)
	}
	h.answer, h.hint = answer, r.hint()
	h.held.Store(true)
	if h.gauge != nil {
		h.gauge.Set(1)
	}
}

// released records that the target answered about an event (took it or
// refused that one): the route goes on if it was held.
func (h *hold) released(now time.Time) {
	if !h.held.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.held.Load() {
		return
	}
	h.log.Error("the target takes events again: the route goes on", "was", h.answer,
		"held_for", now.Sub(h.since).Round(time.Millisecond), "refused_attempts", h.tries)
	h.held.Store(false)
	h.since, h.answer, h.hint, h.tries, h.releasedAt = time.Time{}, "", "", 0, now
	if h.gauge != nil {
		h.gauge.Set(0)
	}
}

// state returns since when the route is held and the answer with its
// hint; ok is false when it is not held.
func (h *hold) state() (since time.Time, answer, hint string, ok bool) {
	if !h.held.Load() {
		return time.Time{}, "", "", false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.since, h.answer, h.hint, h.held.Load()
}

// overflowMeaning says what a held route does with a full buffer.
func overflowMeaning(p buffer.Policy) string {
	if p == buffer.Block {
		return "block: reading pauses when the buffer is full, nothing is lost"
	}
	return "drop-oldest: when the buffer is full the oldest events are dropped, logged and counted"
}

// holdWait is the wait before attempt n+1 (n from 0) of a held event: lo·2ⁿ
// capped at hi, drawn from its upper half, or the wait the target asked
// for (Retry-After), capped at hi too.
func holdWait(lo, hi time.Duration, n int, asked time.Duration) time.Duration {
	if asked > 0 {
		return min(asked, hi)
	}
	return httpsender.Backoff(lo, hi, n)
}
