package emitter

import (
	"context"
	"slices"
	"time"
)

// A poll of a batcher that found a full page is followed at once by the
// next; when nothing but its pages and the counts of its windows will be
// due by then (nextPoll), that next read is started while the last one's
// rows are given their uids, journaled and handed on (readAhead), so that
// reading the table and taking its rows overlap in a backlog. The next poll
// takes it only if it asks for exactly those requests (the cursors moved as
// expected, no realm, audit or other stream came due); otherwise it is let
// go and read again. A read taken early is what a poll at its start would
// have read: its snapshot and its start time are what the holds are
// computed from. A heavy poll (huge rows: batchRead.heavy) is not read
// ahead.
type readAhead struct {
	reqs []readRequest
	at   time.Time // when it started
	done chan struct{}
	res  batchRead
	err  error
}

// nextPoll returns the requests of the poll after one at now that asked
// for reqs (pageOf: the request of each of streams' pages, -1 for those not
// read) and read res, when that poll is to follow at once: a page read was
// full, every other page read was full or empty, the read was not heavy,
// and by the time the next poll starts (about as long after the read as
// the read took) neither the listing of realms nor an audit is due. It
// asks for what pollBatch would then: the pages due, from the rows after
// those read, and the counts of the windows due again. Otherwise it
// returns false.
func (t *tailer) nextPoll(streams []*tailStream, pageOf []int, reqs []readRequest, res batchRead, now time.Time, drain bool) ([]readRequest, bool) {
	read := t.opts.Now()
	at := read.Add(read.Sub(now))
	if res.heavy || at.Sub(t.listedAt) >= t.opts.RealmInterval {
		return nil, false
	}
	full := false
	next := make([]readRequest, 0, len(reqs))
	for i, s := range streams {
		if s.auditDue(at) || s.pastDue(at) {
			return nil, false
		}
		if s.readsPage(at, drain) {
			r := readRequest{realm: s.realm, kind: s.kind, after: t.opts.Ledger.Cursor(s.key)}
			if j := pageOf[i]; j >= 0 {
				r = reqs[j]
				switch page := res.pages[j]; {
				case len(page) == 0:
				case !s.full:
					return nil, false
				default:
					full = true
					last := page[len(page)-1]
					r.after = cursor{Time: last.Time(), ID: last.ID()}
				}
			}
			next = append(next, r)
		}
		if t.rescanDue(s, at, drain) {
			if lo, hi := t.opts.Ledger.RescanRange(s.key); lo <= hi && hi > 0 {
				next = append(next, readRequest{realm: s.realm, kind: s.kind, after: cursor{Time: lo}, until: hi, count: true})
			}
		}
	}
	return next, full
}

// startReadAhead starts reading reqs, the next poll's.
func (t *tailer) startReadAhead(ctx context.Context, b batcher, reqs []readRequest) {
	a := &readAhead{reqs: reqs, at: t.opts.Now(), done: make(chan struct{})}
	t.ahead = a
	t.stats.readAheads.Add(1)
	go func() {
		defer close(a.done)
		a.res, a.err = b.readBatch(ctx, a.reqs, t.opts.PageSize)
	}()
}

// waitReadAhead waits until the read ahead, if any, has ended: a poll's
// own reads (the realms, the oldest times) come after it.
func (t *tailer) waitReadAhead() {
	if t.ahead != nil {
		<-t.ahead.done
	}
}

// dropReadAhead waits for the read ahead, if any, and lets it go.
func (t *tailer) dropReadAhead() {
	t.waitReadAhead()
	t.ahead = nil
}

// readBatch reads reqs, or takes the read ahead when it asked for exactly
// them, and returns what was read and when the read started.
func (t *tailer) readBatch(ctx context.Context, b batcher, reqs []readRequest, now time.Time) (batchRead, time.Time, error) {
	if a := t.ahead; a != nil {
		t.dropReadAhead()
		if a.err == nil && slices.Equal(a.reqs, reqs) {
			t.stats.readAheadsTaken.Add(1)
			return a.res, a.at, nil
		}
	}
	res, err := b.readBatch(ctx, reqs, t.opts.PageSize)
	return res, now, err
}
