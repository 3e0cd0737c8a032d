package emitter

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

// cursor is a position in a stream of events ordered by (time, id). A cursor
// with an empty ID stands before every event of its time.
type cursor = checkpoint.Cursor

// realm names a Keycloak realm by its internal id and its name.
type realm struct {
	ID   string
	Name string
}

// streamKey returns the key of the stream of kind in the realm with id
// realmID: its name in the ledger.
func streamKey(kind Kind, realmID string) string { return string(kind) + "/" + realmID }

// source reads stored events in pages. It keeps no position: the Tailer
// passes the cursor on every call. The Tailer retries its errors.
type source interface {
	// realms returns every realm of the source.
	realms(ctx context.Context) ([]realm, error)
	// page returns up to limit events of kind in the realm with (time, id)
	// after the cursor and, when until is not 0, time <= until, ordered by
	// (time, id). A page shorter than limit means there are no more now,
	// unless its last record says more (pageFull).
	page(ctx context.Context, r realm, kind Kind, after cursor, until int64, limit int) ([]Record, error)
	// oldestTime returns the time of the oldest stored event of kind in
	// the realm, and false when there is none.
	oldestTime(ctx context.Context, r realm, kind Kind) (int64, bool, error)
}

// pageFull tells whether more records may follow page, a page of at most
// limit records: it is full, or the source cut it short (a byte budget)
// and said so on its last record.
func pageFull(page []Record, limit int) bool {
	return len(page) >= limit || len(page) > 0 && page[len(page)-1].more
}

// A counter is a source that can count cheaply what page would return
// after a cursor up to until, with no limit. The Tailer then re-reads a
// stream's overlap window only when the source holds rows there that the
// ledger lacks (late commits), instead of at every rescan. count returns
// errors.ErrUnsupported when the source cannot count.
type counter interface {
	count(ctx context.Context, r realm, kind Kind, after cursor, until int64) (int, error)
}

// userRef names a user to look up: its id and the id of its realm.
type userRef struct{ realmID, userID string }

// A userDirectory finds usernames by user id, for enrichment. It returns
// the names it found; users that do not exist (or that the source may not
// see) are left out.
type userDirectory interface {
	usernames(ctx context.Context, users []userRef) (map[string]string, error)
}

// observedSource remembers whether the last read of the source succeeded,
// for /readyz, and counts reads.
type observedSource struct {
	source
	reads *prometheus.CounterVec
	mu    sync.Mutex
	ok    bool
	since time.Time
	err   error
}

func (o *observedSource) note(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	o.reads.WithLabelValues(result).Inc()
	o.mu.Lock()
	defer o.mu.Unlock()
	if (err == nil) != o.ok || o.since.IsZero() {
		o.since = time.Now()
	}
	o.ok, o.err = err == nil, err
}

// last returns whether the last read succeeded, since when it has been so,
// and the error of a failing one.
func (o *observedSource) last() (bool, time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ok, o.since, o.err
}

func (o *observedSource) realms(ctx context.Context) ([]realm, error) {
	r, err := o.source.realms(ctx)
	o.note(err)
	return r, err
}

func (o *observedSource) count(ctx context.Context, r realm, kind Kind, after cursor, until int64) (int, error) {
	c, ok := o.source.(counter)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	n, err := c.count(ctx, r, kind, after, until)
	o.note(err)
	return n, err
}

func (o *observedSource) page(ctx context.Context, r realm, kind Kind, after cursor, until int64, limit int) ([]Record, error) {
	recs, err := o.source.page(ctx, r, kind, after, until, limit)
	o.note(err)
	return recs, err
}

// observedBatcher is an observedSource of a batcher.
type observedBatcher struct {
	*observedSource
	b batcher
}

func (o observedBatcher) readBatch(ctx context.Context, reqs []readRequest, limit int) (batchRead, error) {
	r, err := o.b.readBatch(ctx, reqs, limit)
	o.note(err)
	return r, err
}

// observe wraps src in an observedSource counting its reads on reads, and
// returns it and the source to read through (a batcher when src is one).
func observe(src source, reads *prometheus.CounterVec) (*observedSource, source) {
	o := &observedSource{source: src, reads: reads}
	if b, ok := src.(batcher); ok {
		return o, observedBatcher{observedSource: o, b: b}
	}
	return o, o
}

func (o *observedSource) usernames(ctx context.Context, users []userRef) (map[string]string, error) {
	d, ok := o.source.(userDirectory)
	if !ok {
		return nil, nil
	}
	return d.usernames(ctx, users)
}

// A batcher is a source that reads the pages and counts of many streams in
// one round trip, and tells which transactions were still open then.
type batcher interface {
	readBatch(ctx context.Context, reqs []readRequest, limit int) (batchRead, error)
}

// readRequest is one part of a batch: a page of up to limit records of the
// stream after the cursor (until: time <= until when not 0), or, with
// count, the number of its records in that range.
type readRequest struct {
	realm realm
	kind  Kind
	after cursor
	until int64
	count bool
}

// batchRead is what a batch read, request by request (pages[i] or
// counts[i]), and the snapshot it was read in.
type batchRead struct {
	pages    [][]Record
	counts   []int
	snapshot txSnapshot
	// heavy says that the pages' stored details and representations
	// weigh much (huge rows): the next poll is read once these are handed
	// on, not meanwhile, so that the rows of one poll at a time are in
	// memory.
	heavy bool
}

// txSnapshot tells which transactions had not ended at a read: those with
// ids in xip, and every id >= xmax. Only transactions that wrote have ids.
type txSnapshot struct {
	xmin, xmax uint64
	xip        []uint64
}
