package emitter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

// backlog adds n events of realm r, one a millisecond, and returns their ids.
func backlog(mem *memSource, r realm, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", r.ID, i)
		mem.add(KindEvent, r.ID, ids[i], 1700000000000+int64(i))
	}
	return ids
}

func TestTailerUnitReadsTheNextPollOfABacklogWhileTheLastIsTakenAndTakesIt(t *testing.T) {
	other := realm{ID: "o", Name: "other"}
	mem, src := sources(acme, other)["batched"]()
	want := append(backlog(mem, acme, 420), backlog(mem, other, 380)...)
	u := newUnitTailer(t, src, nil, true)
	u.catchUp(t)
	emittedOnce(t, u.sink, want)
	for _, r := range []realm{acme, other} {
		var got []string
		for _, rec := range u.sink.records() {
			if rec.RealmID() == r.ID {
				got = append(got, rec.ID())
			}
		}
		if !slices.IsSorted(got) {
			t.Fatalf("realm %s: its events were not emitted in order", r.ID)
		}
	}
	// Pages of 50: the polls after the first read 8 more pages of acme,
	// and of other until it ran dry; each was read ahead but the first
	// and the one after the last full page.
	st, batches := u.Stats(), src.(*batchSource).batches
	if st.ReadAheadsTaken < 7 || st.ReadAheadsTaken != st.ReadAheads {
		t.Fatalf("%d reads ahead started, %d taken; want at least 7, all taken", st.ReadAheads, st.ReadAheadsTaken)
	}
	if uint64(batches) != st.Polls {
		t.Fatalf("%d batches read in %d polls: a read ahead was read again", batches, st.Polls)
	}
}

// failingStore is a store whose next appends fail.
type failingStore struct {
	checkpoint.Store
	failures int
}

func (f *failingStore) Append(ctx context.Context, lines []byte) error {
	if f.failures > 0 {
		f.failures--
		return errors.New("no space left on device")
	}
	return f.Store.Append(ctx, lines)
}

func TestTailerUnitLetsGoOfAReadAheadWhenTheNextPollAsksForSomethingElse(t *testing.T) {
	for _, c := range []struct {
		name    string
		journal int // appends that fail
		between func(u *unitTailer, mem *memSource)
	}{
		// The journal fails: the page is not taken, the cursor stays, and
		// the next poll reads that page again rather than the next.
		{name: "the cursor stays", journal: 1},
		// A realm appears at the next listing: the poll reads its page too.
		{name: "a realm appears", between: func(u *unitTailer, mem *memSource) {
			mem.addRealm(realm{ID: "n", Name: "new"})
			mem.add(KindEvent, "n", "n-1", 1700000000000)
			u.clock.now = u.clock.now.Add(time.Second)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem, src := sources(acme)["batched"]()
			want := backlog(mem, acme, 200)
			store := &failingStore{Store: &checkpoint.Memory{}, failures: c.journal}
			u := newUnitTailer(t, src, store, true, func(o *tailOptions, _ *checkpoint.Options) {
				o.Kinds, o.RealmInterval = []Kind{KindEvent}, time.Second
			})
			// The first page, and the second read ahead.
			if _, err := u.tailer.poll(context.Background(), false); (err != nil) != (c.journal > 0) {
				t.Fatalf("first poll: %v", err)
			}
			if st := u.Stats(); st.ReadAheads != 1 {
				t.Fatalf("%d reads ahead after a full page, want 1", st.ReadAheads)
			}
			if c.between != nil {
				c.between(u, mem)
				want = append(want, "n-1")
			}
			u.catchUp(t)
			emittedOnce(t, u.sink, want)
			st, batches := u.Stats(), src.(*batchSource).batches
			if st.ReadAheadsTaken >= st.ReadAheads {
				t.Fatalf("%d reads ahead started, %d taken: one the poll did not ask for was taken", st.ReadAheads, st.ReadAheadsTaken)
			}
			if want := int(st.Polls+st.ReadAheads-st.ReadAheadsTaken) + c.journal; batches != want {
				t.Fatalf("%d batches read, want %d (one a poll, the failed one too, and each read ahead let go)", batches, want)
			}
		})
	}
}

func TestTailerUnitHoldsFromTheTimeAReadAheadStartedNotWhenItWasTaken(t *testing.T) {
	mem, src := sources(acme)["batched"]()
	backlog(mem, acme, 200)
	u := newUnitTailer(t, src, nil, true, func(o *tailOptions, _ *checkpoint.Options) { o.Kinds = []Kind{KindEvent} })
	started := u.clock.now
	u.poll(t) // reads ahead at started
	u.clock.now = started.Add(3 * time.Second)
	u.poll(t) // takes it
	if st := u.Stats(); st.ReadAheadsTaken != 1 {
		t.Fatalf("%d reads ahead taken, want 1", st.ReadAheadsTaken)
	}
	reads := u.holds.reads
	if got := reads[len(reads)-1].at; got != started.UnixMilli() {
		t.Fatalf("the read taken ahead was marked at %d, want %d (when it started)", got, started.UnixMilli())
	}
}

// paceSource is a batched source that tells, at each read, whether every
// row it returned before was emitted by then, and says its reads are
// heavy or not.
type paceSource struct {
	*batchSource
	heavy   bool
	emitted func() int
	mu      sync.Mutex
	rows    int // rows returned so far
	early   int // reads made before the rows returned earlier were all emitted
}

func (p *paceSource) readBatch(ctx context.Context, reqs []readRequest, limit int) (batchRead, error) {
	p.mu.Lock()
	if p.emitted() < p.rows {
		p.early++
	}
	p.mu.Unlock()
	res, err := p.batchSource.readBatch(ctx, reqs, limit)
	res.heavy = p.heavy
	p.mu.Lock()
	for _, page := range res.pages {
		p.rows += len(page)
	}
	p.mu.Unlock()
	return res, err
}

func TestTailerReadsTheNextPollOfHugeRowsOnlyOnceTheLastIsHandedOn(t *testing.T) {
	for _, heavy := range []bool{false, true} {
		t.Run(fmt.Sprint("heavy=", heavy), func(t *testing.T) {
			mem, src := sources(acme)["batched"]()
			want := backlog(mem, acme, 400)
			ps := &paceSource{batchSource: src.(*batchSource), heavy: heavy}
			tl, sink := newTestTailer(t, ps, nil, true, func(o *tailOptions, _ *checkpoint.Options) {
				o.Kinds = []Kind{KindEvent}
				emit := o.Emit
				o.Emit = func(ctx context.Context, recs []Record, uids []int64) (int, error) {
					time.Sleep(2 * time.Millisecond) // encoding a huge row takes a while
					return emit(ctx, recs, uids)
				}
			})
			ps.emitted = func() int { return len(sink.records()) }
			if err := tl.run(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			emittedOnce(t, sink, want)
			st := tl.Stats()
			if heavy && (ps.early != 0 || st.ReadAheads != 0) {
				t.Fatalf("%d reads before the rows read earlier were handed on, %d read ahead; want none", ps.early, st.ReadAheads)
			}
			if !heavy && (ps.early == 0 || st.ReadAheads == 0) {
				t.Fatalf("%d reads before the rows read earlier were handed on, %d read ahead; want some of each", ps.early, st.ReadAheads)
			}
		})
	}
}
