package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Row is one received event as a store keeps it. Both stores take or
// refuse the same rows: one whose Kind, ID, Type or RealmID holds invalid
// UTF-8 or a NUL character, or whose Payload is not valid JSON in valid
// UTF-8 that PostgreSQL's jsonb accepts (no \u0000, no unpaired surrogate
// escape, numbers within its numeric range) nested at most 9999 levels, is
// refused by Put with an error wrapping ErrRejected.
type Row struct {
	// UID is the emitter's snowflake uid: the key a store keeps once.
	UID int64
	// Kind is "Event" or "AdminEvent".
	Kind string
	// ID is Keycloak's own event id.
	ID string
	// Time is the event's time in milliseconds since the Unix epoch.
	Time int64
	// Type is the event type, or "<operation>:<resource>" for an admin event.
	Type    string
	RealmID string
	// Payload is the event as a JSON object.
	Payload []byte
}

// StoreOptions tune the stores. The zero value is the safe default.
type StoreOptions struct {
	// NoSync acknowledges rows once the store has them but before they are
	// on disk: the JSON-lines store skips its fsync, the PostgreSQL store
	// commits with synchronous_commit=off. A crash of the machine (or of
	// PostgreSQL) can then lose the last acknowledged rows. For benchmarks
	// and demos, where the receiver's disk must not be the bottleneck.
	NoSync bool
	// Logger receives the stores' warnings; nil means slog.Default().
	Logger *slog.Logger
}

// ErrClosed is returned by Put on a store that was closed.
var ErrClosed = errors.New("store closed")

// writeFunc writes rows durably and reports, for each, whether it was new
// (false: its uid was already stored). It is called by one goroutine at a
// time. An error of type rowErrors holds one error (or nil) per row.
type writeFunc func(ctx context.Context, rows []Row) (fresh []bool, err error)

// batcher gathers the rows that concurrent Put calls hand it into batches
// (group commit): while one batch is being written, the next one fills, so
// that many deliveries share one transaction or one fsync.
type batcher struct {
	write    writeFunc
	maxBatch int
	reqs     chan *putReq

	closeOnce sync.Once
	mu        sync.RWMutex // held for reading while sending on reqs
	closed    bool
	done      chan struct{}
}

// rowErrors is the error of a batch in which some rows failed: one entry
// per row, nil for those written.
type rowErrors []error

func (e rowErrors) Error() string {
	n := 0
	for _, err := range e {
		if err != nil {
			n++
		}
	}
	return fmt.Sprintf("%d of %d rows failed", n, len(e))
}

type putReq struct {
	row   Row
	fresh bool
	err   error
	done  chan struct{}
}

func newBatcher(write writeFunc, maxBatch int) *batcher {
	b := &batcher{write: write, maxBatch: maxBatch, reqs: make(chan *putReq, maxBatch), done: make(chan struct{})}
	go b.loop()
	return b
}

// put hands row to the writer and waits until it was written. It returns
// whether the row was new. A canceled ctx stops the wait, not the write. A
// row that breaks checkRow is refused with ErrRejected, whatever the store.
func (b *batcher) put(ctx context.Context, row Row) (bool, error) {
	if err := checkRow(row); err != nil {
		return false, err
	}
	req := &putReq{row: row, done: make(chan struct{})}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return false, ErrClosed
	}
	select {
	case b.reqs <- req:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return false, ctx.Err()
	}
	select {
	case <-req.done:
		return req.fresh, req.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (b *batcher) loop() {
	defer close(b.done)
	batch := make([]*putReq, 0, b.maxBatch)
	rows := make([]Row, 0, b.maxBatch)
	for first := range b.reqs {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < b.maxBatch {
			select {
			case req, ok := <-b.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, req)
			default:
				break fill
			}
		}
		rows = rows[:0]
		for _, req := range batch {
			rows = append(rows, req.row)
		}
		// The write is not tied to any one request's context: a client that
		// went away must not abort the others' transaction.
		fresh, err := b.write(context.Background(), rows)
		if len(fresh) != len(rows) && err == nil {
			err = fmt.Errorf("store wrote %d rows but reported %d", len(rows), len(fresh))
		}
		rowErrs, perRow := err.(rowErrors)
		for i, req := range batch {
			switch {
			case perRow && len(rowErrs) == len(batch):
				req.err = rowErrs[i]
				req.fresh = req.err == nil && fresh[i]
			case err != nil:
				req.err = err
			default:
				req.fresh = fresh[i]
			}
			close(req.done)
		}
	}
}

// close stops accepting rows, writes those already handed over and waits
// for the last batch.
func (b *batcher) close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		close(b.reqs)
		b.mu.Unlock()
	})
	<-b.done
}
