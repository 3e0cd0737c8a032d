package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

// tailOptions configure a tailer; every field is required except Realms and
// Kinds (empty: all).
type tailOptions struct {
	Source source
	Ledger *checkpoint.Ledger
	// Emit hands the records of a page that are to be sent on, in order,
	// each with the uid the ledger gave it, and returns how many it took.
	// It may block (back-pressure); an error other than the context's ends
	// the loop, and the records not taken are emitted again later.
	Emit func(ctx context.Context, recs []Record, uids []int64) (int, error)
	// Prefetch, when set, is given the pages of a poll before they are
	// handed on one by one: what Emit will need of each (usernames) is
	// then fetched once for all of them.
	Prefetch func(ctx context.Context, pages [][]Record)
	Logger   *slog.Logger
	// Realms are the names of the realms to tail; empty tails every realm,
	// also those created while running.
	Realms []string
	// Kinds are the kinds of event to tail; empty tails both.
	Kinds []Kind
	// Start is where a stream present at the first listing and unknown to
	// the ledger starts (ms). Realms that appear later start at the
	// beginning, so that their first events are not missed.
	Start          int64
	PageSize       int
	PollInterval   time.Duration // pause after a poll that found every stream caught up
	RescanInterval time.Duration // least time between two re-reads of a stream's overlap window
	RealmInterval  time.Duration // how often realms are listed again and lagging streams checked for expiry
	MaxBackoff     time.Duration // cap of the wait between retries after a source error
	Now            func() time.Time
	// Sleep waits for d or the end of ctx; the tests step a clock with it.
	Sleep func(ctx context.Context, d time.Duration) bool
	// Overlap is how long after a row was read rows stamped before it may
	// still appear (the time between Keycloak stamping an event and its
	// insert reaching the database): a stream's overlap window is re-read
	// for that long after its cursor moved.
	Overlap time.Duration
	// MaxHold caps how far back an open transaction holds the windows
	// (the audit horizon).
	MaxHold time.Duration
	// Late, when set, is told of each row found behind its stream's
	// cursor, and how far behind.
	Late func(kind Kind, behind time.Duration)
	// Missed, when set, is told of rows that appeared beyond the audit
	// horizon, which are not delivered.
	Missed func(kind Kind, n int)
}

// How often a batcher's streams are audited: the trail behind the window
// (rows stamped in the past by a slow clock), and the minutes before it
// (rows that appeared too late to be delivered).
const (
	auditInterval = 10 * time.Second
	pastInterval  = time.Minute
)

// The pause between polls adapts to the traffic: busyPause after a poll
// that found new rows (but no full page: then the next page is read at
// once), doubling after each poll that found none, up to PollInterval. So
// while events flow they are read within a few milliseconds of their
// commit, and an idle emitter polls every PollInterval.
const busyPause = 5 * time.Millisecond

// nextPause returns the pause after a poll that found found records, when
// the pause before it was last.
func nextPause(last time.Duration, found int, poll time.Duration) time.Duration {
	if found > 0 {
		return min(busyPause, poll)
	}
	return min(max(2*last, busyPause), poll)
}

// tailStats are counters of a tailer since it was created.
type tailStats struct {
	Emitted      uint64 // records handed to Emit, replays included
	Replayed     uint64 // unacknowledged events of the saved state emitted again with their uid
	Expired      uint64 // times a stream's cursor was found older than the oldest stored event
	Missing      uint64 // unacknowledged events of the saved state no longer in the source
	SourceErrors uint64 // failed reads of the source (each retried)
	Rescans      uint64 // re-reads of an overlap window that found rows the ledger lacked
	ExpiryChecks uint64 // reads of a stream's oldest stored time
	Polls        uint64 // polls that read every active stream without an error
	Late         uint64 // rows found behind their stream's cursor (late commits or skewed clocks)
	Missed       uint64 // rows that appeared beyond the audit horizon: not delivered
	// ReadAheads counts the batch reads started before their poll, and
	// ReadAheadsTaken those the poll took (the others were let go).
	ReadAheads, ReadAheadsTaken uint64
}

// tailer is the read loop: it lists realms, reads a page of every stream
// (one per realm and kind) in (time, id) order, re-reads what may still
// change behind the cursor, asks the ledger which rows are new and hands
// those on, and backs off on source errors. The ledger keeps every
// position; the tailer keeps only what the loop needs to pace itself. Its
// methods are called from one goroutine; its stage (tail_stage.go) calls
// Emit from another.
type tailer struct {
	opts    tailOptions
	log     *slog.Logger
	streams map[string]*tailStream
	// activeList is the streams to poll in key order (see active); nil
	// until built after a listing.
	activeList []*tailStream
	listed     bool // realms were listed at least once
	listedAt   time.Time
	missing    map[string]bool // --realms names not found, already logged
	snap       txSnapshot      // of the last batch read
	holds      holdTracker
	// lastHold is the last hold of open transactions; after they ended it
	// is kept until heldUntil (zero while they are open).
	lastHold  int64
	heldUntil time.Time
	found     int        // records handed on by the last poll
	stage     *emitStage // while run runs (see submit)
	ahead     *readAhead // a batch read started before its poll (tail_ahead.go)
	// Buffers of pollBatch, reused from poll to poll.
	reqBuf    []readRequest
	pageOfBuf []int
	keyBuf    []string
	afterBuf  []cursor
	stats     struct {
		emitted, replayed, expired, missing, errors, rescans, expiryChecks, polls, late, missed atomic.Uint64
		readAheads, readAheadsTaken                                                             atomic.Uint64
	}
}

// tailStream is what the loop knows of one stream.
type tailStream struct {
	key        string
	realm      realm
	kind       Kind
	active     bool // selected by the options and present in the source
	recovered  bool // the ledger said it was not recovering
	full       bool // the last forward page was full
	checkedAt  time.Time
	alarmed    cursor // cursor value for which expiry was last reported
	lastRescan time.Time
	movedAt    time.Time // when a forward read last moved the cursor
	movedXmax  uint64    // the snapshot's xmax at that read
	lastAudit  time.Time
	lastPast   time.Time
	// When the stream is read next: of a source read stream by stream,
	// after reads that found nothing (quiet, the wait: see quietMax); of a
	// batcher, once it is cold (see coldAfter).
	quiet    time.Duration
	nextRead time.Time
	hotUntil time.Time // of a batcher: cold from then, unless a read finds rows
}

func newTailer(o tailOptions) (*tailer, error) {
	if o.Source == nil || o.Ledger == nil || o.Emit == nil || o.Logger == nil || o.Now == nil || o.Sleep == nil {
		return nil, errors.New("tailer: Source, Ledger, Emit, Logger, Now and Sleep are required")
	}
	if o.PageSize <= 0 || o.PollInterval <= 0 || o.RescanInterval <= 0 || o.RealmInterval <= 0 || o.MaxBackoff <= 0 ||
		o.Overlap <= 0 || o.MaxHold <= 0 {
		return nil, fmt.Errorf("tailer: page size %d and intervals %s, %s, %s, %s, %s, %s must be > 0",
			o.PageSize, o.PollInterval, o.RescanInterval, o.RealmInterval, o.MaxBackoff, o.Overlap, o.MaxHold)
	}
	if len(o.Kinds) == 0 {
		o.Kinds = []Kind{KindEvent, KindAdminEvent}
	}
	return &tailer{opts: o, log: o.Logger, streams: map[string]*tailStream{}, missing: map[string]bool{}}, nil
}

// run tails every selected stream until ctx is done, then returns nil; with
// drain it returns once every stream is caught up (its overlap window read
// again included). Source errors are logged at INFO and retried with a
// capped backoff; only an error of Emit that is not the context's ends it
// early.
func (t *tailer) run(ctx context.Context, drain bool) error {
	defer t.startStage(ctx)()
	defer t.dropReadAhead()
	backoff := time.Duration(0)
	pause := t.opts.PollInterval
	for {
		if ctx.Err() != nil {
			if drain {
				return ctx.Err()
			}
			return nil
		}
		busy, err := t.poll(ctx, drain)
		if !busy || err != nil {
			// Before a pause, and before a retry, every page read is handed on.
			if ferr := t.flush(ctx); err == nil {
				err = ferr
			}
		}
		t.save(ctx)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			if ee, ok := errors.AsType[emitError](err); ok {
				return ee.err
			}
			t.stats.errors.Add(1)
			backoff = min(max(2*backoff, 100*time.Millisecond), t.opts.MaxBackoff)
			t.log.Info("reading the event source failed; retrying", "error", err, "retry_in", backoff)
			t.opts.Sleep(ctx, backoff)
			continue
		}
		backoff = 0
		if busy {
			continue
		}
		if drain {
			return nil
		}
		pause = nextPause(pause, t.found, t.opts.PollInterval)
		t.opts.Sleep(ctx, pause)
	}
}

// save saves the ledger when due; a failure is logged and retried later.
func (t *tailer) save(ctx context.Context) {
	if err := t.opts.Ledger.SaveIfDue(ctx); err != nil && ctx.Err() == nil {
		t.log.Error("saving the checkpoint failed; retrying", "error", err)
	}
}

// emitError marks an error of Emit, which ends the loop rather than being
// retried.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// poll reads one page of every active stream and tells whether any page was
// full (more is waiting). In drain mode every stream is rescanned.
func (t *tailer) poll(ctx context.Context, drain bool) (bool, error) {
	t.waitReadAhead()
	if t.stageFailed() {
		return false, t.flush(ctx)
	}
	now := t.opts.Now()
	due := !t.listed || now.Sub(t.listedAt) >= t.opts.RealmInterval
	if due {
		if err := t.listRealms(ctx, now); err != nil {
			return false, err
		}
	}
	t.found = 0
	if b, ok := t.opts.Source.(batcher); ok {
		return t.pollBatch(ctx, b, drain, now, due)
	}
	busy := false
	streams := t.active()
	quietCap := quietWait(len(streams), t.opts.PollInterval)
	for _, s := range streams {
		if err := t.recoverOnce(ctx, s); err != nil {
			return false, err
		}
		if err := t.audit(ctx, s, now); err != nil {
			return false, err
		}
		if !drain && now.Before(s.nextRead) {
			continue // quiet: read less often
		}
		if err := t.checkExpiry(ctx, s, now, due); err != nil {
			return false, err
		}
		before := t.opts.Ledger.Cursor(s.key)
		full, err := t.forward(ctx, s)
		if err != nil {
			return false, err
		}
		if t.opts.Ledger.Cursor(s.key) != before {
			s.movedAt, s.quiet, s.nextRead = now, 0, time.Time{}
		} else {
			s.quiet = min(max(2*s.quiet, t.opts.PollInterval), quietCap)
			s.nextRead = now.Add(s.quiet)
		}
		busy = busy || full
		open := now.Sub(s.movedAt) < t.opts.Overlap+t.opts.RescanInterval
		if !full && (drain || open && now.Sub(s.lastRescan) >= t.opts.RescanInterval) {
			if err := t.rescan(ctx, s, now); err != nil {
				return false, err
			}
		}
	}
	t.stats.polls.Add(1)
	return busy, nil
}

// A stream of a source read stream by stream (the admin API: a request
// per realm and kind) waits longer between reads once its reads found
// nothing: the wait doubles from PollInterval after each empty read, up
// to quietWait, and a read that finds rows resets it. The cap is quietMax,
// or more with many streams, so that the quiet streams together cost at
// most quietReads requests a second whatever the number of realms: with
// ten realms or fewer an idle realm costs a request per kind every 5 s;
// with 1,000 the first event of a realm long idle waits up to 500 s.
const (
	quietMax   = 5 * time.Second
	quietReads = 4 // a second, of all quiet streams together
)

// quietWait is the longest wait between two reads of a quiet stream, of
// streams streams polled every poll.
func quietWait(streams int, poll time.Duration) time.Duration {
	return max(quietMax, poll, time.Duration(streams)*time.Second/quietReads)
}

// A stream of a batcher that found no row for coldAfter (since it was
// first listed, or its last row) is cold: its page is read every coldRead
// instead of at every poll, until it finds a row.
// With many realms, most of them idle, a poll then reads only those with
// traffic; the first event of a realm idle for a while is read within
// coldRead, every later one within the poll's pause (5 ms while rows
// flow). The windows behind a cold stream's cursor are counted as
// before.
const (
	coldAfter = 10 * time.Second
	coldRead  = time.Second
)

// For a source that cannot count (the admin API), the trail is audited
// by reading it whole, and the minutes beyond it by one read of their
// range: less often than counts.
const (
	readAuditInterval = time.Minute
	readPastInterval  = 10 * time.Minute
)

// audit is the trail's audit for a source read stream by stream: when the
// source holds more rows in the trail than the ledger knows (or cannot
// count), the trail is read again, which emits the rows it lacks (late,
// counted as such); the minutes beyond the horizon are counted and rows
// that appeared there reported missed.
func (t *tailer) audit(ctx context.Context, s *tailStream, now time.Time) error {
	c, counts := t.opts.Source.(counter)
	every, pastEvery := auditInterval, pastInterval
	if !counts {
		every, pastEvery = readAuditInterval, readPastInterval
	}
	// A stream read last longer ago than the horizon has nothing the trail
	// could catch: a row stamped there now would be beyond the horizon.
	stale := now.UnixMilli()-t.opts.Ledger.Cursor(s.key).Time > t.opts.MaxHold.Milliseconds()
	if now.Sub(s.lastAudit) >= every && !(stale && !counts) {
		s.lastAudit = now
		if lo, hi, known, ok := t.opts.Ledger.Audit(s.key); ok {
			n := -1
			if counts {
				var err error
				if n, err = c.count(ctx, s.realm, s.kind, cursor{Time: lo}, hi); err != nil && !errors.Is(err, errors.ErrUnsupported) {
					return err
				}
			}
			if n < 0 || n > known {
				if err := t.scan(ctx, s, lo, hi); err != nil {
					return err
				}
			}
		}
	}
	if now.Sub(s.lastPast) < pastEvery {
		return nil
	}
	s.lastPast = now
	minutes := t.opts.Ledger.Past(s.key)
	if len(minutes) == 0 {
		return nil
	}
	var perMinute []int
	if counts {
		for _, m := range minutes {
			n, err := c.count(ctx, s.realm, s.kind, cursor{Time: m.From}, m.To)
			if err != nil {
				return err
			}
			perMinute = append(perMinute, n)
		}
	} else {
		var err error
		if perMinute, err = t.readPerMinute(ctx, s, minutes); err != nil {
			return err
		}
	}
	for i, m := range minutes {
		t.reportMissed(s, m.From, m.To, perMinute[i])
	}
	return nil
}

// readPerMinute counts the source's rows in each of minutes (oldest
// first) by reading their whole range once, page by page.
func (t *tailer) readPerMinute(ctx context.Context, s *tailStream, minutes []checkpoint.Minute) ([]int, error) {
	out := make([]int, len(minutes))
	after, hi := cursor{Time: minutes[0].From}, minutes[len(minutes)-1].To
	for {
		page, err := t.opts.Source.page(ctx, s.realm, s.kind, after, hi, t.opts.PageSize)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			if i, found := slices.BinarySearchFunc(minutes, r.Time(), func(m checkpoint.Minute, t int64) int {
				switch {
				case m.To < t:
					return -1
				case m.From > t:
					return 1
				}
				return 0
			}); found {
				out[i]++
			}
		}
		if len(page) < t.opts.PageSize {
			return out, nil
		}
		last := page[len(page)-1]
		after = cursor{Time: last.Time(), ID: last.ID()}
	}
}

// reportMissed tells the ledger that the source holds n rows in the minute
// [lo, hi] beyond the horizon, and reports those it never read.
func (t *tailer) reportMissed(s *tailStream, lo, hi int64, n int) {
	missed := t.opts.Ledger.Missed(s.key, lo, n)
	if missed <= 0 {
		return
	}
	t.stats.missed.Add(uint64(missed))
	if t.opts.Missed != nil {
		t.opts.Missed(s.kind, missed)
	}
	t.log.Error("events appeared beyond the audit horizon and were not delivered (a Keycloak node's clock far behind, or a transaction open longer than the horizon)",
		"kind", s.kind, "realm", s.realm.Name, "events", missed,
		"from", time.UnixMilli(lo).UTC().Format(time.RFC3339), "to", time.UnixMilli(hi).UTC().Format(time.RFC3339Nano))
}

// pollBatch is poll for a batcher: the forward page of every stream and
// the counts of the overlap windows still open are read in one round trip.
// A window is open while a transaction that existed when its cursor last
// moved may still commit, and for Overlap after that move; the windows of
// every stream reach back to the oldest such transaction (the ledger's
// hold).
func (t *tailer) pollBatch(ctx context.Context, b batcher, drain bool, now time.Time, due bool) (bool, error) {
	streams := t.active()
	for _, s := range streams {
		if err := t.recoverOnce(ctx, s); err != nil {
			return false, err
		}
		if err := t.checkExpiry(ctx, s, now, due); err != nil {
			return false, err
		}
	}
	// The buffers of the last poll are reused: with many realms a poll
	// is mostly this loop, ten times a second while idle.
	reqs := t.reqBuf[:0]
	defer func() { t.reqBuf = reqs[:0] }()
	type countOf struct {
		s      *tailStream
		lo, hi int64
		req    int
		known  int // audit: what the trail knows; -1 for a rescan
		past   bool
	}
	var counts []countOf
	count := func(c countOf) {
		c.req = len(reqs)
		counts = append(counts, c)
		reqs = append(reqs, readRequest{realm: c.s.realm, kind: c.s.kind, after: cursor{Time: c.lo}, until: c.hi, count: true})
	}
	// The cursors are taken only of the streams read this time: once
	// most streams are cold, a poll touches little more than this loop.
	pageOf := slices.Grow(t.pageOfBuf[:0], len(streams))[:len(streams)] // the request of each stream's page
	t.pageOfBuf = pageOf
	keys := t.keyBuf[:0] // of the streams read, in order
	for i, s := range streams {
		pageOf[i] = -1
		if s.readsPage(now, drain) {
			pageOf[i] = len(reqs)
			reqs = append(reqs, readRequest{realm: s.realm, kind: s.kind})
			keys = append(keys, s.key)
		}
		if t.rescanDue(s, now, drain) {
			lo, hi := t.opts.Ledger.RescanRange(s.key)
			if lo <= hi && hi > 0 {
				s.lastRescan = now
				count(countOf{s: s, lo: lo, hi: hi, known: -1})
			}
		}
		if s.auditDue(now) {
			s.lastAudit = now
			if lo, hi, known, ok := t.opts.Ledger.Audit(s.key); ok {
				count(countOf{s: s, lo: lo, hi: hi, known: known})
			}
		}
		if s.pastDue(now) {
			s.lastPast = now
			for _, m := range t.opts.Ledger.Past(s.key) {
				count(countOf{s: s, lo: m.From, hi: m.To, known: m.Known, past: true})
			}
		}
	}
	if len(reqs) == 0 {
		// Every stream is cold and not due, no window open: nothing to
		// ask the database. An idle emitter reads once per coldRead.
		return false, nil
	}
	t.keyBuf = keys
	after := t.opts.Ledger.Cursors(keys, t.afterBuf[:0])
	t.afterBuf = after
	for i, j := 0, 0; i < len(streams); i++ {
		if pageOf[i] >= 0 {
			reqs[pageOf[i]].after = after[j]
			j++
		}
	}
	res, readAt, err := t.readBatch(ctx, b, reqs, now)
	if err != nil {
		return false, err
	}
	t.snap = res.snapshot
	hold := t.holds.observe(readAt, res.snapshot)
	if hold != 0 {
		hold = max(hold, now.Add(-t.opts.MaxHold).UnixMilli())
		t.lastHold, t.heldUntil = hold, time.Time{}
	} else if t.lastHold != 0 {
		// The transactions ended: their rows may be visible to this read
		// only, and its counts may not cover them. The hold stays, and
		// every window open, until each was counted once more.
		if t.heldUntil.IsZero() {
			t.heldUntil = now.Add(2 * t.opts.RescanInterval)
		}
		if now.Before(t.heldUntil) {
			hold = t.lastHold
		} else {
			t.lastHold, t.heldUntil = 0, time.Time{}
		}
	}
	t.opts.Ledger.SetHold(hold)
	// Every stream's forward page is taken at once: one journal append
	// for the whole poll, then the records are handed on stream by stream.
	busy := false
	var pages []checkpoint.Page
	var pageStreams []*tailStream
	var pageRecs [][]Record
	for i, s := range streams {
		if pageOf[i] < 0 {
			continue // cold: not read this time
		}
		page := res.pages[pageOf[i]]
		s.full = pageFull(page, t.opts.PageSize)
		busy = busy || s.full
		if len(page) == 0 {
			s.nextRead = now.Add(coldRead)
			continue
		}
		pages = append(pages, checkpoint.Page{Key: s.key, Items: itemsOf(page), Forward: true, After: &reqs[pageOf[i]].after})
		pageStreams, pageRecs = append(pageStreams, s), append(pageRecs, page)
		s.movedAt, s.movedXmax = now, res.snapshot.xmax // a forward page moves the cursor
		s.hotUntil = now.Add(coldAfter)
	}
	if next, ok := t.nextPoll(streams, pageOf, reqs, res, now, drain); ok {
		t.startReadAhead(ctx, b, next)
	}
	if len(pages) > 0 {
		taken, err := t.opts.Ledger.TakePages(ctx, pages)
		if err != nil {
			return false, err
		}
		out := make([]stagePage, len(pageStreams))
		for i, s := range pageStreams {
			out[i] = t.handOn(s, pageRecs[i], taken[i], true)
		}
		if err := t.handOnAll(ctx, out); err != nil {
			return false, err
		}
		if res.heavy {
			// Huge rows: the next poll is read once these are encoded
			// and buffered, so that one poll's rows are in memory.
			if err := t.flush(ctx); err != nil {
				return false, err
			}
		}
	}
	for _, c := range counts {
		n := res.counts[c.req]
		switch {
		case c.past:
			t.reportMissed(c.s, c.lo, c.hi, n)
		case c.known >= 0: // audit of the trail
			if n > c.known {
				if err := t.scan(ctx, c.s, c.lo, c.hi); err != nil {
					return false, err
				}
			}
		case !c.s.full && n != t.opts.Ledger.Count(c.s.key, c.lo, c.hi):
			t.stats.rescans.Add(1)
			if err := t.scan(ctx, c.s, c.lo, c.hi); err != nil {
				return false, err
			}
		}
	}
	t.stats.polls.Add(1)
	return busy, nil
}

// readsPage tells whether a poll at now reads the forward page of s.
func (s *tailStream) readsPage(now time.Time, drain bool) bool {
	return drain || now.Before(s.hotUntil) || !now.Before(s.nextRead)
}

// rescanDue tells whether a poll at now counts the overlap window of s
// again (when it holds rows): while a transaction open at its last move
// may still commit, for Overlap after that move, and while a hold lasts.
func (t *tailer) rescanDue(s *tailStream, now time.Time, drain bool) bool {
	return !s.full && (drain || now.Sub(s.lastRescan) >= t.opts.RescanInterval &&
		(t.snap.xmin < s.movedXmax || now.Sub(s.movedAt) < t.opts.Overlap+t.opts.RescanInterval || !t.heldUntil.IsZero()))
}

// auditDue and pastDue tell whether a poll at now audits the trail of s,
// and counts the minutes before it.
func (s *tailStream) auditDue(now time.Time) bool { return now.Sub(s.lastAudit) >= auditInterval }
func (s *tailStream) pastDue(now time.Time) bool  { return now.Sub(s.lastPast) >= pastInterval }

// holdTracker finds, from the snapshots of successive reads, since when
// the oldest transaction still open may have been writing: it began after
// the newest read whose snapshot's xmax was not above it.
type holdTracker struct {
	reads []readMark // oldest first; only those still needed
}

type readMark struct {
	at   int64 // ms
	xmax uint64
}

// observe records a read at now with snapshot s and returns the hold: the
// time (ms) from which rows of transactions open at s may bear times, or 0
// when none was open.
func (h *holdTracker) observe(now time.Time, s txSnapshot) int64 {
	h.reads = append(h.reads, readMark{at: now.UnixMilli(), xmax: s.xmax})
	if len(s.xip) == 0 && s.xmin >= s.xmax {
		h.reads = h.reads[len(h.reads)-1:]
		return 0
	}
	for i := len(h.reads) - 1; i >= 0; i-- {
		if h.reads[i].xmax <= s.xmin {
			h.reads = h.reads[i:]
			return h.reads[0].at
		}
	}
	return h.reads[0].at // open since before the first read known
}

// active returns the streams to poll, in key order; the list changes only
// when realms are listed.
func (t *tailer) active() []*tailStream {
	if t.activeList != nil {
		return t.activeList
	}
	out := []*tailStream{}
	for _, s := range t.streams {
		if s.active {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *tailStream) int { return strings.Compare(a.key, b.key) })
	t.activeList = out
	return out
}

// listRealms lists the source's realms and activates a stream per selected
// realm and kind. Streams new to the ledger start at Start when found at
// the first listing, at the beginning when found later.
func (t *tailer) listRealms(ctx context.Context, now time.Time) error {
	realms, err := t.opts.Source.realms(ctx)
	if err != nil {
		return fmt.Errorf("list realms: %w", err)
	}
	for _, s := range t.streams {
		s.active = false // until listed again: a deleted realm is no longer polled
	}
	t.activeList = nil
	found := map[string]bool{}
	for _, r := range realms {
		found[r.Name] = true
		if len(t.opts.Realms) > 0 && !slices.Contains(t.opts.Realms, r.Name) {
			continue
		}
		for _, k := range t.opts.Kinds {
			key := streamKey(k, r.ID)
			s, ok := t.streams[key]
			if !ok {
				s = &tailStream{key: key, lastRescan: now, hotUntil: now.Add(coldAfter)}
				t.streams[key] = s
				start := int64(0)
				if !t.listed {
					start = t.opts.Start
				}
				if t.opts.Ledger.Begin(key, start) {
					t.log.Info("tailing a new stream", "kind", k, "realm", r.Name, "realm_id", r.ID,
						"from", time.UnixMilli(start).UTC().Format(time.RFC3339Nano))
				}
			}
			s.realm, s.kind, s.active = r, k, true
		}
	}
	for _, name := range t.opts.Realms {
		if !found[name] && !t.missing[name] {
			t.missing[name] = true
			t.log.Error("realm named in the realm filter does not exist (yet)", "realm", name)
		}
	}
	t.listed, t.listedAt = true, now
	return nil
}

// forward reads the page after the cursor and tells whether it was full.
func (t *tailer) forward(ctx context.Context, s *tailStream) (bool, error) {
	after := t.opts.Ledger.Cursor(s.key)
	page, err := t.opts.Source.page(ctx, s.realm, s.kind, after, 0, t.opts.PageSize)
	if err != nil {
		return false, err
	}
	if err := t.take(ctx, s, page, &after); err != nil {
		return false, err
	}
	s.full = pageFull(page, t.opts.PageSize)
	return s.full, nil
}

// rescan re-reads the overlap window behind the cursor for late commits,
// when the source holds rows there that the ledger lacks (or cannot count).
func (t *tailer) rescan(ctx context.Context, s *tailStream, now time.Time) error {
	lo, hi := t.opts.Ledger.RescanRange(s.key)
	complete, err := t.windowComplete(ctx, s, lo, hi)
	if err != nil {
		return err
	}
	if !complete {
		t.stats.rescans.Add(1)
		if err := t.scan(ctx, s, lo, hi); err != nil {
			return err
		}
	}
	s.lastRescan = now
	return nil
}

// windowComplete tells whether the source holds exactly as many rows with
// time in [lo, hi] as the ledger: then no late commit appeared there. That
// fails only if a row also vanished from the source there (Keycloak
// deletes expired events, which reaches the overlap window only of a
// cursor that lags by the whole expiration). It is false when the source
// cannot count.
func (t *tailer) windowComplete(ctx context.Context, s *tailStream, lo, hi int64) (bool, error) {
	c, ok := t.opts.Source.(counter)
	if !ok || lo > hi {
		return lo > hi, nil
	}
	n, err := c.count(ctx, s.realm, s.kind, cursor{Time: lo}, hi)
	if errors.Is(err, errors.ErrUnsupported) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return n == t.opts.Ledger.Count(s.key, lo, hi), nil
}

// recoverOnce recovers s when the ledger loaded it from the saved state
// and it was not read again since (once asked, the answer stays no).
func (t *tailer) recoverOnce(ctx context.Context, s *tailStream) error {
	if s.recovered {
		return nil
	}
	lo, hi, ok := t.opts.Ledger.Recovering(s.key)
	if !ok {
		s.recovered = true
		return nil
	}
	return t.recover(ctx, s, lo, hi)
}

// recover runs once per stream loaded from the saved state: it re-reads
// [lo, hi], which emits again every unacknowledged event with its uid, then
// reports those it did not find.
func (t *tailer) recover(ctx context.Context, s *tailStream, lo, hi int64) error {
	if err := t.scan(ctx, s, lo, hi); err != nil {
		return err
	}
	for _, l := range t.opts.Ledger.Recovered(s.key) {
		t.stats.missing.Add(1)
		t.log.Error("an unacknowledged event of the checkpoint is no longer in the source (deleted, expired or filtered out): it is lost",
			"kind", s.kind, "realm", s.realm.Name, "id", l.ID, "uid", l.UID, "time", l.Time)
	}
	return nil
}

// scan reads every row with time in [lo, hi], page by page.
func (t *tailer) scan(ctx context.Context, s *tailStream, lo, hi int64) error {
	if hi <= 0 || lo > hi {
		return nil
	}
	after := cursor{Time: lo}
	for {
		page, err := t.opts.Source.page(ctx, s.realm, s.kind, after, hi, t.opts.PageSize)
		if err != nil {
			return err
		}
		if err := t.take(ctx, s, page, nil); err != nil {
			return err
		}
		if !pageFull(page, t.opts.PageSize) {
			return nil
		}
		last := page[len(page)-1]
		after = cursor{Time: last.Time(), ID: last.ID()}
	}
}

// take asks the ledger which records of a page are to be emitted and
// hands those on. A forward page (read after the cursor after) moves the
// cursor too.
func (t *tailer) take(ctx context.Context, s *tailStream, page []Record, after *cursor) error {
	if len(page) == 0 {
		return nil
	}
	forward := after != nil
	var uids []int64
	var replay []bool
	var err error
	if forward {
		uids, replay, err = t.opts.Ledger.TakeAfter(ctx, s.key, itemsOf(page), *after)
	} else {
		uids, replay, err = t.opts.Ledger.Take(ctx, s.key, itemsOf(page), false)
	}
	if err != nil {
		return err
	}
	return t.handOnAll(ctx, []stagePage{t.handOn(s, page, checkpoint.Taken{UIDs: uids, Replay: replay}, forward)})
}

// itemsOf returns the ledger's items of a page.
func itemsOf(page []Record) []checkpoint.Item {
	items := make([]checkpoint.Item, len(page))
	for i, r := range page {
		items[i] = checkpoint.Item{ID: r.ID(), Time: r.Time()}
	}
	return items
}

// handOn returns the records of a page that the ledger gave a uid, to be
// submitted, and counts the replayed and the late ones.
func (t *tailer) handOn(s *tailStream, page []Record, taken checkpoint.Taken, forward bool) stagePage {
	uids, replay := taken.UIDs, taken.Replay
	cur := t.opts.Ledger.Cursor(s.key)
	out, outUIDs := page[:0:0], uids[:0:0]
	for i, r := range page {
		if uids[i] == 0 {
			continue
		}
		out, outUIDs = append(out, r), append(outUIDs, uids[i])
		if replay[i] {
			t.stats.replayed.Add(1)
		} else if !forward && r.Time() < cur.Time {
			t.stats.late.Add(1)
			if t.opts.Late != nil {
				t.opts.Late(s.kind, time.Duration(cur.Time-r.Time())*time.Millisecond)
			}
		}
	}
	t.found += len(out)
	return stagePage{s: s, recs: out, uids: outUIDs}
}

// handOnAll submits the pages' records that the ledger gave a uid.
func (t *tailer) handOnAll(ctx context.Context, pages []stagePage) error {
	out := pages[:0]
	for _, p := range pages {
		if len(p.recs) > 0 {
			out = append(out, p)
		}
	}
	return t.submit(ctx, out)
}

// checkExpiry reports a stream whose cursor is older than the oldest stored
// event: the events between them were deleted (expired) before being read.
// It checks each stream once after start, then every RealmInterval while
// the stream lags (its last page was full), when loss is possible.
func (t *tailer) checkExpiry(ctx context.Context, s *tailStream, now time.Time, due bool) error {
	if !s.checkedAt.IsZero() && !(due && s.full && now.Sub(s.checkedAt) >= t.opts.RealmInterval) {
		return nil
	}
	cur := t.opts.Ledger.Cursor(s.key)
	if cur.ID == "" {
		// Not set by reading a row: nothing behind it can have expired
		// unread. Checked again only once the stream lags.
		s.checkedAt = now
		return nil
	}
	oldest, ok, err := t.opts.Source.oldestTime(ctx, s.realm, s.kind)
	if err != nil {
		return err
	}
	s.checkedAt = now
	t.stats.expiryChecks.Add(1)
	if ok && oldest > cur.Time && s.alarmed != cur {
		s.alarmed = cur
		t.stats.expired.Add(1)
		t.log.Error("events may have expired before being read: the oldest stored event is newer than the cursor",
			"kind", s.kind, "realm", s.realm.Name,
			"cursor", time.UnixMilli(cur.Time).UTC().Format(time.RFC3339Nano),
			"oldest", time.UnixMilli(oldest).UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// Stats returns the tailer's counters; safe from any goroutine.
func (t *tailer) Stats() tailStats {
	return tailStats{
		Emitted:         t.stats.emitted.Load(),
		Replayed:        t.stats.replayed.Load(),
		Expired:         t.stats.expired.Load(),
		Missing:         t.stats.missing.Load(),
		SourceErrors:    t.stats.errors.Load(),
		Rescans:         t.stats.rescans.Load(),
		ExpiryChecks:    t.stats.expiryChecks.Load(),
		Polls:           t.stats.polls.Load(),
		Late:            t.stats.late.Load(),
		Missed:          t.stats.missed.Load(),
		ReadAheads:      t.stats.readAheads.Load(),
		ReadAheadsTaken: t.stats.readAheadsTaken.Load(),
	}
}

// sleep waits for d or until ctx is done, and reports whether ctx is still
// alive.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
