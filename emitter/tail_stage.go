package emitter

import (
	"context"
	"fmt"
	"sync/atomic"
)

// The tailer hands pages on through a stage: while the loop runs, Emit
// (the pipeline: filters, usernames, encoding, the buffer) runs in a
// goroutine of its own, one job after the other in order, so that the loop
// reads the next pages of a backlog while the last ones are encoded. A job
// is all the pages of one poll (or one page of a scan), and the loop waits
// for the stage to take it: at most one poll is read while another is
// handed on. Before it pauses, the loop waits until the stage is done
// (flush), so an idle loop sleeps with nothing half handed on.
//
// After a page fails, the stage lets go (Unemit) of the rest of that page
// and of every page after it until the loop collects the error (flush):
// they are read again, in order, with their uids.

// stagePage is one page handed on: the records of s the ledger gave a uid.
type stagePage struct {
	s    *tailStream
	recs []Record
	uids []int64
}

// stageJob is a job of the stage: pages to hand on, or (reply not nil) a
// barrier answered once every job before it is done, with the first error
// since the last barrier.
type stageJob struct {
	pages []stagePage
	reply chan error
}

// emitStage is the stage's goroutine and its queue.
type emitStage struct {
	jobs   chan stageJob
	done   chan struct{}
	failed atomic.Bool // a page failed and the loop has not collected it
}

// startStage starts the stage on ctx; the function it returns stops it
// (the pages not handed on by then are let go).
func (t *tailer) startStage(ctx context.Context) (stop func()) {
	st := &emitStage{jobs: make(chan stageJob), done: make(chan struct{})}
	t.stage = st
	go func() {
		defer close(st.done)
		var err error
		for j := range st.jobs {
			if j.reply != nil {
				j.reply <- err
				err = nil
				st.failed.Store(false)
				continue
			}
			if err == nil && len(j.pages) > 1 && t.opts.Prefetch != nil {
				recs := make([][]Record, len(j.pages))
				for i, p := range j.pages {
					recs[i] = p.recs
				}
				t.opts.Prefetch(ctx, recs)
			}
			for _, p := range j.pages {
				if err != nil {
					t.opts.Ledger.Unemit(p.s.key, itemsOf(p.recs))
					continue
				}
				if err = t.emitPage(ctx, p); err != nil {
					st.failed.Store(true)
				}
			}
		}
	}()
	return func() {
		close(st.jobs)
		<-st.done
		t.stage = nil
	}
}

// submit hands pages on: to the stage when it runs (waiting until it takes
// them), else at once. Its error is a page's (the first since the last
// flush, the stage's included) or the context's; the pages not handed on
// are let go.
func (t *tailer) submit(ctx context.Context, pages []stagePage) error {
	if len(pages) == 0 {
		return nil
	}
	st := t.stage
	if st == nil {
		for i, p := range pages {
			if err := t.emitPage(ctx, p); err != nil {
				t.unemit(pages[i+1:])
				return err
			}
		}
		return nil
	}
	if st.failed.Load() {
		t.unemit(pages)
		return t.flush(ctx)
	}
	select {
	case st.jobs <- stageJob{pages: pages}:
		return nil
	case <-ctx.Done():
		t.unemit(pages)
		return ctx.Err()
	}
}

// flush waits until the stage handed on every page submitted and returns
// the first error since the last flush (nil without a stage).
func (t *tailer) flush(ctx context.Context) error {
	st := t.stage
	if st == nil {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case st.jobs <- stageJob{reply: reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stageFailed tells whether a page failed in the stage since the last flush.
func (t *tailer) stageFailed() bool { return t.stage != nil && t.stage.failed.Load() }

func (t *tailer) unemit(pages []stagePage) {
	for _, p := range pages {
		t.opts.Ledger.Unemit(p.s.key, itemsOf(p.recs))
	}
}

// emitPage hands p to Emit; the records Emit did not take are let go. An
// error other than the context's or a read's ends the loop (emitError).
func (t *tailer) emitPage(ctx context.Context, p stagePage) error {
	n, err := t.opts.Emit(ctx, p.recs, p.uids)
	t.stats.emitted.Add(uint64(n))
	if err == nil {
		return nil
	}
	t.opts.Ledger.Unemit(p.s.key, itemsOf(p.recs[n:]))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if isReadError(err) {
		return err
	}
	return emitError{fmt.Errorf("emit %s %s of realm %q: %w", p.s.kind, p.recs[n].ID(), p.s.realm.Name, err)}
}
