package emitter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

// pipeline is what happens to the records the tailer hands on, in order:
// each is stamped with the uid the ledger gave it, the filters are applied
// (a record filtered out is acknowledged at once), usernames are added, and
// the record is encoded and put into the delivery buffer.
type pipeline struct {
	filters  Filters
	keep     func(Record) bool // the sink's own filter (mail types); nil keeps every record the filters keep
	users    *enricher
	enc      Encoder
	delivery *delivery
	ledger   *checkpoint.Ledger
	metrics  *metrics
	progress *progress

	encBuf []byte // reused: only the tailer's goroutine calls emit
}

// emit runs the pipeline over recs, whose uids are uids, and returns how
// many records it finished (put into the buffer, dead-lettered or filtered
// out): on an error the others are to be emitted again. A failed username
// lookup is a readError, retried like a failed read of the source.
func (p *pipeline) emit(ctx context.Context, recs []Record, uids []int64) (int, error) {
	keep := make([]bool, len(recs))
	kept := make([]Record, 0, len(recs))
	for i, r := range recs {
		r.SetUID(uids[i])
		if keep[i] = p.wants(r); keep[i] {
			kept = append(kept, r)
		}
	}
	if err := p.users.enrich(ctx, kept); err != nil {
		return 0, readError{fmt.Errorf("look up usernames: %w", err)}
	}
	p.metrics.SourceLag.Set(time.Since(time.UnixMilli(recs[len(recs)-1].Time())).Seconds())
	for i, r := range recs {
		p.metrics.read.of(r.Kind()).Inc()
		p.progress.onRead(r.Time())
		if !keep[i] {
			p.metrics.filtered.of(r.Kind()).Inc()
			p.progress.done.Add(1)
			p.ledger.Ack(streamKey(r.Kind(), r.RealmID()), r.ID(), r.Time())
			continue
		}
		if err := p.send(ctx, r); err != nil {
			return i, err
		}
	}
	return len(recs), nil
}

// prefetch looks up, in one call, the usernames the records of pages that
// the filters keep will need, so that emit finds them cached: a poll of
// many realms hands on many small pages, a lookup each otherwise. A
// failure is left to emit, which looks up again what is missing.
func (p *pipeline) prefetch(ctx context.Context, pages [][]Record) {
	_ = p.users.lookup(ctx, p.wants, pages...)
}

// wants tells whether the filters keep r. An unreadable row has only its
// keys: no filter can judge it.
func (p *pipeline) wants(r Record) bool {
	return r.unreadable != nil || (p.filters.keep(r) && (p.keep == nil || p.keep(r)))
}

// send encodes r and puts it into the delivery buffer.
func (p *pipeline) send(ctx context.Context, r Record) error {
	kind := string(r.Kind())
	if r.unreadable != nil {
		// Set aside with the database's error, never sent: the target
		// would get an event without its fields.
		p.metrics.Unreadable.WithLabelValues(kind, unreadableReason(r.unreadable)).Inc()
		env := envelope{Kind: r.Kind(), UID: r.UID(), ID: r.ID(), RealmID: r.RealmID(), Type: r.TypeName(), Time: r.Time()}
		return p.delivery.deadLetter(env, 0, r.unreadable)
	}
	if _, ok := detailsOf(r)[malformedDetailsKey]; ok {
		p.metrics.Malformed.WithLabelValues(kind).Inc()
	}
	body, err := p.enc.Encode(p.encBuf[:0], r)
	if err == nil {
		p.encBuf = body
		body = append([]byte(nil), body...)
	}
	env := envelope{Kind: r.Kind(), UID: r.UID(), ID: r.ID(), RealmID: r.RealmID(), Type: r.TypeName(), Time: r.Time(), Body: body,
		Key: r.Key(), RealmName: r.RealmName()}
	if err != nil {
		// Not expected: every field has a wire form. Set aside, never lost.
		return p.delivery.deadLetter(env, 0, fmt.Errorf("encode %s %s uid %d: %w", env.Kind, env.ID, env.UID, err))
	}
	return p.delivery.put(ctx, env)
}

// ack moves the ledger past an envelope that is done.
func (p *pipeline) ack(env envelope, _ outcome) {
	p.progress.done.Add(1)
	p.ledger.Ack(streamKey(env.Kind, env.RealmID), env.ID, env.Time)
}

func detailsOf(r Record) map[string]string {
	if r.Event != nil {
		return r.Event.Details
	}
	if r.Admin != nil {
		return r.Admin.Details
	}
	return nil
}

// readError is an error of the source met while handling a page (a
// username lookup): the tailer retries it like a failed read.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// isReadError tells whether err is a readError.
func isReadError(err error) bool {
	_, ok := errors.AsType[readError](err)
	return ok
}
