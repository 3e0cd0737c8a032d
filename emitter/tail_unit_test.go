package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

// memSource is an in-memory source: rows per stream, the realms, and an
// error to fail the next reads with.
type memSource struct {
	mu        sync.Mutex
	realmList []realm
	rows      map[string][]Record
	failures  int // reads still to fail
	realmCall int
	pages     int // reads through a readSource
}

func newMemSource(realms ...realm) *memSource {
	return &memSource{realmList: realms, rows: map[string][]Record{}}
}

func (m *memSource) add(kind Kind, realmID, id string, ms int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r Record
	if kind == KindAdminEvent {
		r = Record{Admin: &AdminEvent{ID: id, Time: ms, RealmID: realmID, OperationType: "UPDATE", ResourceType: "USER", Details: map[string]string{}}}
	} else {
		r = Record{Event: &Event{ID: id, Time: ms, RealmID: realmID, Type: "LOGIN", Details: map[string]string{}}}
	}
	key := streamKey(kind, realmID)
	m.rows[key] = append(m.rows[key], r)
}

func (m *memSource) remove(kind Kind, realmID string, keep func(Record) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := streamKey(kind, realmID)
	m.rows[key] = slices.DeleteFunc(m.rows[key], func(r Record) bool { return !keep(r) })
}

func (m *memSource) addRealm(r realm) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.realmList = append(m.realmList, r)
}

func (m *memSource) fail() error {
	if m.failures > 0 {
		m.failures--
		return errors.New("connection refused")
	}
	return nil
}

func (m *memSource) realms(context.Context) ([]realm, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.realmCall++
	if err := m.fail(); err != nil {
		return nil, err
	}
	return slices.Clone(m.realmList), nil
}

// selected returns the rows of the stream after the cursor up to until, in
// (time, id) order.
func (m *memSource) selected(r realm, kind Kind, after cursor, until int64) []Record {
	var out []Record
	for _, rec := range m.rows[streamKey(kind, r.ID)] {
		t, id := rec.Time(), rec.ID()
		if (t > after.Time || t == after.Time && id > after.ID) && (until == 0 || t <= until) {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		if a.Time() != b.Time() {
			return int(a.Time() - b.Time())
		}
		return strings.Compare(a.ID(), b.ID())
	})
	return out
}

func (m *memSource) page(_ context.Context, r realm, kind Kind, after cursor, until int64, limit int) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(); err != nil {
		return nil, err
	}
	out := m.selected(r, kind, after, until)
	if len(out) > limit {
		out = out[:limit]
	}
	// Fresh records each read, as a database returns.
	for i, rec := range out {
		if rec.Event != nil {
			e := *rec.Event
			out[i] = Record{Event: &e}
		} else {
			a := *rec.Admin
			out[i] = Record{Admin: &a}
		}
	}
	return out, nil
}

func (m *memSource) count(_ context.Context, r realm, kind Kind, after cursor, until int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.selected(r, kind, after, until)), m.fail()
}

func (m *memSource) oldestTime(_ context.Context, r realm, kind Kind) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows := m.selected(r, kind, cursor{Time: -1}, 0)
	if len(rows) == 0 {
		return 0, false, m.fail()
	}
	return rows[0].Time(), true, m.fail()
}

// batchSource is a memSource that reads in batches, with the snapshot the
// test sets: the path the database source takes.
type batchSource struct {
	*memSource
	snap    txSnapshot
	batches int
	pages   map[string]int // forward pages read, by realm id
}

func (b *batchSource) readBatch(ctx context.Context, reqs []readRequest, limit int) (batchRead, error) {
	b.mu.Lock()
	b.batches++
	if err := b.fail(); err != nil {
		b.mu.Unlock()
		return batchRead{}, err
	}
	snap := b.snap
	b.mu.Unlock()
	out := batchRead{pages: make([][]Record, len(reqs)), counts: make([]int, len(reqs)), snapshot: snap}
	for i, r := range reqs {
		if r.count {
			n, err := b.count(ctx, r.realm, r.kind, r.after, r.until)
			if err != nil {
				return batchRead{}, err
			}
			out.counts[i] = n
			continue
		}
		page, err := b.page(ctx, r.realm, r.kind, r.after, r.until, limit)
		if err != nil {
			return batchRead{}, err
		}
		if r.until == 0 {
			b.mu.Lock()
			if b.pages == nil {
				b.pages = map[string]int{}
			}
			b.pages[r.realm.ID]++
			b.mu.Unlock()
		}
		out.pages[i] = page
	}
	return out, nil
}

// setSnapshot says which transactions are open at the next reads.
func (b *batchSource) setSnapshot(s txSnapshot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.snap = s
}

// sources are the two ways a tailer reads: stream by stream, and in batches.
func sources(realms ...realm) map[string]func() (*memSource, source) {
	return map[string]func() (*memSource, source){
		"per stream": func() (*memSource, source) { m := newMemSource(realms...); return m, m },
		"batched": func() (*memSource, source) {
			m := newMemSource(realms...)
			return m, &batchSource{memSource: m, snap: txSnapshot{xmin: 10, xmax: 10}}
		},
	}
}

// clock is a clock the test steps by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// unitTailer is a tailer on src driven poll by poll on a stepped clock.
type unitTailer struct {
	*tailer
	ledger *checkpoint.Ledger
	sink   *collector
	clock  *clock
	logs   *syncBuffer
}

func newUnitTailer(t *testing.T, src source, store checkpoint.Store, autoAck bool,
	mods ...func(*tailOptions, *checkpoint.Options)) *unitTailer {
	t.Helper()
	c := &clock{now: time.UnixMilli(1700000100000)}
	logs := &syncBuffer{}
	mods = append([]func(*tailOptions, *checkpoint.Options){func(o *tailOptions, l *checkpoint.Options) {
		o.Now, l.Now = c.Now, c.Now
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}}, mods...)
	tl, sink := newTestTailer(t, src, store, autoAck, mods...)
	return &unitTailer{tailer: tl, ledger: sink.ledger, sink: sink, clock: c, logs: logs}
}

// poll runs one poll and fails the test on an error.
func (u *unitTailer) poll(t *testing.T) bool {
	t.Helper()
	busy, err := u.tailer.poll(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	return busy
}

// catchUp polls until no page is full.
func (u *unitTailer) catchUp(t *testing.T) {
	t.Helper()
	for i := 0; u.poll(t); i++ {
		if i > 1000 {
			t.Fatal("still busy after 1,000 polls")
		}
	}
}

var acme = realm{ID: "r", Name: "acme"}

func TestTailerUnitEmitsASameMillisecondBurstOnceInOrderAcrossPages(t *testing.T) {
	for name, newSource := range sources(acme) {
		t.Run(name, func(t *testing.T) { testSameMillisecondBurst(t, newSource) })
	}
}

func testSameMillisecondBurst(t *testing.T, newSource func() (*memSource, source)) {
	mem, src := newSource()
	var want []string
	for i := range 700 {
		id := fmt.Sprintf("burst-%04d", i)
		mem.add(KindEvent, "r", id, 1700000000000)
		want = append(want, id)
	}
	u := newUnitTailer(t, src, nil, true)
	u.catchUp(t)
	for range 3 { // rescans of the overlap window find nothing new
		u.clock.now = u.clock.now.Add(time.Second)
		u.poll(t)
	}
	emittedOnce(t, u.sink, want)
	var got []string
	for _, r := range u.sink.records() {
		got = append(got, r.ID())
	}
	if !slices.Equal(got, want) {
		t.Fatal("the burst was not emitted in (time, id) order")
	}
	if st := u.Stats(); st.Rescans != 0 {
		t.Fatalf("%d rescans re-read a window whose count had not changed", st.Rescans)
	}
}

func TestTailerUnitRescanEmitsALateRowOnceWhenItsIntervalHasPassed(t *testing.T) {
	for name, newSource := range sources(acme) {
		t.Run(name, func(t *testing.T) { testLateRowRescan(t, newSource) })
	}
}

func testLateRowRescan(t *testing.T, newSource func() (*memSource, source)) {
	mem, src := newSource()
	mem.add(KindEvent, "r", "B", 1700000001001)
	u := newUnitTailer(t, src, nil, true, func(o *tailOptions, _ *checkpoint.Options) { o.Kinds = []Kind{KindEvent} })
	u.poll(t)
	mem.add(KindEvent, "r", "A", 1700000001000) // commits late, behind the cursor
	u.clock.now = u.clock.now.Add(5 * time.Millisecond)
	u.poll(t)
	if st := u.Stats(); st.Rescans != 0 || len(u.sink.uids()["A"]) != 0 {
		t.Fatalf("before the rescan interval: %d rescans, A emitted %d times; want neither", st.Rescans, len(u.sink.uids()["A"]))
	}
	u.clock.now = u.clock.now.Add(10 * time.Millisecond)
	u.poll(t)
	if st := u.Stats(); st.Rescans != 1 {
		t.Fatalf("%d rescans after the interval, want 1", st.Rescans)
	}
	u.clock.now = u.clock.now.Add(time.Second)
	u.poll(t)
	emittedOnce(t, u.sink, []string{"A", "B"})
	if st := u.Stats(); st.Rescans != 1 {
		t.Fatalf("%d rescans: a window whose count matches was read again", st.Rescans)
	}
}

func TestTailerUnitCrashBetweenSavesReplaysUnacknowledgedEventsWithTheirUIDs(t *testing.T) {
	for name, newSource := range sources(acme, realm{ID: "r2", Name: "beta"}) {
		t.Run(name, func(t *testing.T) { testCrashBetweenSaves(t, newSource) })
	}
}

func testCrashBetweenSaves(t *testing.T, newSource func() (*memSource, source)) {
	mem, src := newSource()
	add := func(prefix string, n int, base int64) {
		for i := range n {
			id := fmt.Sprintf("%s%03d", prefix, i)
			mem.add(KindEvent, "r", id, base+int64(i))
			mem.add(KindAdminEvent, "r2", id, base+int64(i))
		}
	}
	add("a", 60, 1700000000000)
	store := &checkpoint.Memory{}
	hourly := func(_ *tailOptions, l *checkpoint.Options) { l.SaveInterval = time.Hour }
	first := newUnitTailer(t, src, store, false, hourly)
	first.catchUp(t)
	key := func(r Record) string { return string(r.Kind()) + "/" + r.RealmID() + "/" + r.ID() }
	recs := first.sink.records()
	for _, r := range recs[:70] {
		first.ledger.Ack(streamKey(r.Kind(), r.RealmID()), r.ID(), r.Time())
	}
	if err := first.ledger.Save(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[70:100] {
		first.ledger.Ack(streamKey(r.Kind(), r.RealmID()), r.ID(), r.Time()) // never saved
	}
	add("b", 20, 1700000000100) // only journaled
	for range 3 {
		first.clock.now = first.clock.now.Add(time.Second) // rescans due: counts among the pages
		first.catchUp(t)
	}
	uidOf := map[string]int64{}
	for _, r := range first.sink.records() {
		uidOf[key(r)] = r.UID()
	}
	// crash: no save; a new process on the same store
	second := newUnitTailer(t, src, store, true, hourly)
	second.catchUp(t)
	want := map[string]bool{}
	for _, r := range first.sink.records()[70:] {
		want[key(r)] = true
	}
	got := map[string]int{}
	for _, r := range second.sink.records() {
		got[key(r)]++
		if r.UID() != uidOf[key(r)] {
			t.Errorf("%s replayed with uid %d, first emitted with %d", key(r), r.UID(), uidOf[key(r)])
		}
	}
	for k := range want {
		if got[k] != 1 {
			t.Errorf("%s emitted %d times after the crash, want once", k, got[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d emitted after the crash, want %d", len(got), len(want))
	}
	if st := second.Stats(); st.Replayed != uint64(len(want)) || st.Missing != 0 {
		t.Errorf("stats %+v, want %d replayed and none missing", st, len(want))
	}
}

func TestTailerUnitNewRealmStartsAtItsBeginningAndTheRealmFilterHolds(t *testing.T) {
	src := newMemSource(acme, realm{ID: "x", Name: "excluded"})
	src.add(KindEvent, "r", "old", 1000)
	src.add(KindEvent, "x", "x1", 1000)
	u := newUnitTailer(t, src, nil, true, func(o *tailOptions, _ *checkpoint.Options) {
		o.Realms, o.Kinds = []string{"acme", "later"}, []Kind{KindEvent}
		o.Start = 1700000000000 // "now": older rows of realms present at start are not sent
	})
	u.poll(t)
	if !strings.Contains(u.logs.String(), `realm=later`) {
		t.Errorf("no ERROR names the filtered realm that does not exist:\n%s", u.logs.String())
	}
	src.addRealm(realm{ID: "l", Name: "later"})
	src.add(KindEvent, "l", "e2", 2000)
	src.add(KindEvent, "x", "x2", 1700000000500)
	u.clock.now = u.clock.now.Add(10 * time.Millisecond)
	u.poll(t)
	if calls := src.realmCall; calls != 1 || len(u.sink.records()) != 0 {
		t.Fatalf("before the realm interval: %d listings, %d events; want 1 and none", calls, len(u.sink.records()))
	}
	u.clock.now = u.clock.now.Add(time.Second)
	u.poll(t)
	emittedOnce(t, u.sink, []string{"e2"})
}

func TestTailerUnitReportsACursorBehindExpiredEventsOnceAndGoesOn(t *testing.T) {
	src := newMemSource(acme)
	src.add(KindEvent, "r", "e1", 1000)
	store := &checkpoint.Memory{}
	eventsOnly := func(o *tailOptions, _ *checkpoint.Options) { o.Kinds = []Kind{KindEvent} }
	first := newUnitTailer(t, src, store, true, eventsOnly)
	first.poll(t)
	first.ledger.Close(context.Background())
	src.add(KindEvent, "r", "unread", 2000)
	src.add(KindEvent, "r", "kept", 3000)
	src.remove(KindEvent, "r", func(r Record) bool { return r.Time() > 2500 }) // Keycloak's expiry
	second := newUnitTailer(t, src, store, true, eventsOnly)
	second.poll(t)
	second.poll(t)
	if st := second.Stats(); st.Expired != 1 || st.ExpiryChecks != 1 {
		t.Fatalf("stats %+v, want one check and one expiry", st)
	}
	if !strings.Contains(second.logs.String(), "level=ERROR") || !strings.Contains(second.logs.String(), "expired") {
		t.Fatalf("no ERROR about expired events:\n%s", second.logs.String())
	}
	emittedOnce(t, second.sink, []string{"kept"})
}

func TestTailerUnitReportsUnacknowledgedEventsThatVanishedAsMissing(t *testing.T) {
	src := newMemSource(acme)
	src.add(KindEvent, "r", "stays", 10)
	src.add(KindEvent, "r", "deleted", 11)
	store := &checkpoint.Memory{}
	first := newUnitTailer(t, src, store, false)
	first.poll(t)
	first.ledger.Close(context.Background())
	src.remove(KindEvent, "r", func(r Record) bool { return r.ID() != "deleted" })
	second := newUnitTailer(t, src, store, true)
	second.poll(t)
	emittedOnce(t, second.sink, []string{"stays"})
	if st := second.Stats(); st.Missing != 1 || !strings.Contains(second.logs.String(), "id=deleted") {
		t.Fatalf("Missing = %d; logs:\n%s", st.Missing, second.logs.String())
	}
}

func TestTailerUnitBacksOffOnSourceErrorsDoublingUpToTheCap(t *testing.T) {
	src := newMemSource(acme)
	src.add(KindEvent, "r", "e", 5)
	src.failures = 5
	var waits []time.Duration
	u := newUnitTailer(t, src, nil, true, func(o *tailOptions, _ *checkpoint.Options) {
		o.MaxBackoff = 500 * time.Millisecond
		o.Sleep = func(context.Context, time.Duration) bool { panic("replaced below") }
	})
	u.opts.Sleep = func(_ context.Context, d time.Duration) bool { waits = append(waits, d); return true }
	if err := u.run(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{100, 200, 400, 500, 500}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !reflect.DeepEqual(waits, want) || u.Stats().SourceErrors != 5 {
		t.Fatalf("waits %v, %d errors; want %v and 5", waits, u.Stats().SourceErrors, want)
	}
	emittedOnce(t, u.sink, []string{"e"})
}

func TestTailerUnitEndsWithTheEmitErrorAndEmitsTheRecordAgainLater(t *testing.T) {
	src := newMemSource(acme)
	src.add(KindEvent, "r", "e", 5)
	boom := errors.New("dead-letter file unwritable")
	fail := true
	u := newUnitTailer(t, src, nil, true)
	next := u.opts.Emit
	u.opts.Emit = func(ctx context.Context, recs []Record, uids []int64) (int, error) {
		if fail {
			return 0, boom
		}
		return next(ctx, recs, uids)
	}
	if err := u.run(context.Background(), false); !errors.Is(err, boom) {
		t.Fatalf("run = %v, want the emit error", err)
	}
	fail = false
	u.clock.now = u.clock.now.Add(time.Second)
	u.poll(t)
	emittedOnce(t, u.sink, []string{"e"})
}

func TestTailerUnitRetriesAReadErrorOfThePipelineLikeASourceError(t *testing.T) {
	src := newMemSource(acme)
	src.add(KindEvent, "r", "e", 5)
	u := newUnitTailer(t, src, nil, true)
	next, calls := u.opts.Emit, 0
	u.opts.Emit = func(ctx context.Context, recs []Record, uids []int64) (int, error) {
		if calls++; calls == 1 {
			return 0, readError{errors.New("username lookup failed")}
		}
		return next(ctx, recs, uids)
	}
	u.opts.Sleep = func(context.Context, time.Duration) bool { return true }
	if err := u.run(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if u.Stats().SourceErrors != 1 {
		t.Fatalf("SourceErrors = %d, want 1", u.Stats().SourceErrors)
	}
	emittedOnce(t, u.sink, []string{"e"})
}

func TestNewTailerRejectsMissingParts(t *testing.T) {
	ok := tailOptions{Source: newMemSource(), Ledger: &checkpoint.Ledger{}, Emit: (&collector{}).emit,
		Logger: slog.Default(), Now: time.Now, Sleep: sleep, PageSize: 1, PollInterval: 1, RescanInterval: 1,
		RealmInterval: 1, MaxBackoff: 1, Overlap: 1, MaxHold: 1}
	for name, mod := range map[string]func(*tailOptions){
		"no source":    func(o *tailOptions) { o.Source = nil },
		"no ledger":    func(o *tailOptions) { o.Ledger = nil },
		"no page size": func(o *tailOptions) { o.PageSize = 0 },
	} {
		o := ok
		mod(&o)
		if _, err := newTailer(o); err == nil {
			t.Errorf("%s: newTailer accepted it", name)
		}
	}
	if _, err := newTailer(ok); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
}

// TestTailerUnitDeliversARowOfATransactionOpenForAMinuteOnce streams events
// while a transaction that began before them stays open for 60 s and then
// commits a row stamped when it began: far behind the cursor and past the
// overlap, it is delivered once because the snapshot showed the
// transaction open all along. The batches also stop counting the window
// once the transaction ended and the overlap passed.
func TestTailerUnitDeliversARowOfATransactionOpenForAMinuteOnce(t *testing.T) {
	mem := newMemSource(acme)
	src := &batchSource{memSource: mem, snap: txSnapshot{xmin: 100, xmax: 101}}
	u := newUnitTailer(t, src, checkpoint.Store(&checkpoint.Memory{}), true, func(o *tailOptions, _ *checkpoint.Options) {
		o.Kinds = []Kind{KindEvent}
	})
	start := u.clock.now
	u.poll(t)
	src.setSnapshot(txSnapshot{xmin: 100, xmax: 102, xip: []uint64{100}}) // xid 100 began after the first read
	var want []string
	for i := range 120 { // 60 s at two events a second
		u.clock.now = u.clock.now.Add(500 * time.Millisecond)
		id := fmt.Sprintf("steady-%03d", i)
		mem.add(KindEvent, "r", id, u.clock.now.UnixMilli())
		want = append(want, id)
		u.poll(t)
		u.ledger.SaveIfDue(context.Background())
	}
	mem.add(KindEvent, "r", "late", start.Add(100*time.Millisecond).UnixMilli()) // xid 100 commits
	src.setSnapshot(txSnapshot{xmin: 103, xmax: 103})
	for range 3 {
		u.clock.now = u.clock.now.Add(time.Second)
		u.poll(t)
	}
	emittedOnce(t, u.sink, append(want, "late"))
	if st := u.Stats(); st.Late != 1 {
		t.Fatalf("Late = %d, want 1", st.Late)
	}
	rescans := u.Stats().Rescans
	u.clock.now = u.clock.now.Add(time.Minute)
	for range 5 {
		u.clock.now = u.clock.now.Add(time.Second)
		u.poll(t)
	}
	if st := u.Stats(); st.Rescans != rescans || u.sink.uids()["late"] == nil {
		t.Fatalf("after the window closed: %d rescans (was %d)", st.Rescans, rescans)
	}
}

// TestTailerUnitDeliversTheRowOfALongTransactionWithinASecondOfItsCommit
// polls every 100 ms and saves after each poll, as the loop does: the
// windows stay open a little after the last transaction ended, so the
// poll that first sees its row need not be one that counts, and the save
// after it does not prune the row's range before it is counted.
func TestTailerUnitDeliversTheRowOfALongTransactionWithinASecondOfItsCommit(t *testing.T) {
	mem := newMemSource(acme)
	src := &batchSource{memSource: mem, snap: txSnapshot{xmin: 100, xmax: 101}}
	u := newUnitTailer(t, src, checkpoint.Store(&checkpoint.Memory{}), true, func(o *tailOptions, l *checkpoint.Options) {
		o.Kinds = []Kind{KindEvent}
		o.RescanInterval, l.SaveInterval = 500*time.Millisecond, 100*time.Millisecond // counts less often than polls
	})
	start := u.clock.now
	u.poll(t)
	src.setSnapshot(txSnapshot{xmin: 100, xmax: 102, xip: []uint64{100}})
	step := func(n int) {
		for i := range n {
			u.clock.now = u.clock.now.Add(100 * time.Millisecond)
			if i%5 == 0 {
				mem.add(KindEvent, "r", fmt.Sprintf("steady-%d", u.clock.now.UnixMilli()), u.clock.now.UnixMilli())
			}
			u.poll(t)
			u.ledger.SaveIfDue(context.Background())
		}
	}
	step(600) // a minute
	mem.add(KindEvent, "r", "late", start.Add(100*time.Millisecond).UnixMilli())
	src.setSnapshot(txSnapshot{xmin: 103, xmax: 103})
	step(10) // a second
	if u.sink.uids()["late"] == nil {
		t.Fatal("the row of the transaction was not delivered within a second of its commit")
	}
}

// readSource is a memSource that, like the admin API, can only be read:
// no count, no batch.
type readSource struct{ m *memSource }

func (r readSource) realms(ctx context.Context) ([]realm, error) { return r.m.realms(ctx) }
func (r readSource) page(ctx context.Context, rl realm, kind Kind, after cursor, until int64, limit int) ([]Record, error) {
	r.m.mu.Lock()
	r.m.pages++
	r.m.mu.Unlock()
	return r.m.page(ctx, rl, kind, after, until, limit)
}
func (r readSource) oldestTime(ctx context.Context, rl realm, kind Kind) (int64, bool, error) {
	return r.m.oldestTime(ctx, rl, kind)
}

// TestTailerUnitDeliversARowStampedInThePastWithinTheHorizonAndCountsOneBeyond
// streams events, then a node whose clock is behind writes a row stamped
// 30 s in the past (its transaction begins and commits between two reads:
// no snapshot shows it) and one stamped 15 minutes in the past: the first
// is delivered once by the audit of the trail, the second is counted as
// missed and logged at ERROR with its range.
// Both on the database's batched path and on a source that can only be
// read (the admin API).
func TestTailerUnitDeliversARowStampedInThePastWithinTheHorizonAndCountsOneBeyond(t *testing.T) {
	for name, tc := range map[string]struct {
		src   func(*memSource) source
		after int // seconds of traffic after the skewed rows
	}{
		"batched":                 {func(m *memSource) source { return &batchSource{memSource: m, snap: txSnapshot{xmin: 100, xmax: 100}} }, 90},
		"read only, like the API": {func(m *memSource) source { return readSource{m} }, 11 * 60},
	} {
		t.Run(name, func(t *testing.T) {
			mem := newMemSource(acme)
			u := newUnitTailer(t, tc.src(mem), nil, true, func(o *tailOptions, _ *checkpoint.Options) { o.Kinds = []Kind{KindEvent} })
			var want []string
			step := func(n int) {
				for i := range n {
					u.clock.now = u.clock.now.Add(time.Second)
					id := fmt.Sprintf("steady-%04d", len(want))
					if i%2 == 0 {
						mem.add(KindEvent, "r", id, u.clock.now.UnixMilli())
						want = append(want, id)
					}
					u.poll(t)
					u.ledger.SaveIfDue(context.Background())
				}
			}
			step(20 * 60) // 20 minutes of steady traffic
			now := u.clock.now
			mem.add(KindEvent, "r", "skewed-30s", now.Add(-30*time.Second).UnixMilli()+7)
			mem.add(KindEvent, "r", "skewed-15m", now.Add(-15*time.Minute).UnixMilli()+7)
			step(tc.after)
			emittedOnce(t, u.sink, append(want, "skewed-30s"))
			st := u.Stats()
			if st.Late != 1 || st.Missed != 1 {
				t.Fatalf("Late %d, Missed %d; want 1 and 1", st.Late, st.Missed)
			}
			if logs := u.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "beyond the audit horizon") {
				t.Fatalf("no ERROR about the missed row:\n%s", logs)
			}
		})
	}
}

func TestTailerUnitReadsAQuietStreamOfAReadOnlySourceLessOftenAndItsNextEventWithinTheCap(t *testing.T) {
	mem := newMemSource(acme)
	u := newUnitTailer(t, readSource{mem}, nil, true, func(o *tailOptions, _ *checkpoint.Options) {
		o.Kinds = []Kind{KindEvent}
		o.PollInterval = 200 * time.Millisecond
	})
	mem.add(KindEvent, "r", "first", u.clock.now.UnixMilli())
	u.poll(t)
	start := mem.pages
	const polls = 300 // a minute of polls every 200 ms
	for range polls {
		u.clock.now = u.clock.now.Add(200 * time.Millisecond)
		u.poll(t)
		u.ledger.SaveIfDue(context.Background())
	}
	// Forward reads back off to one per quietMax (5 s), plus the rescans of
	// the overlap while it is open and the audits of the trail.
	if reads := mem.pages - start; reads > 40 {
		t.Fatalf("%d reads in %d polls of an idle stream, want at most 40", reads, polls)
	}
	// Once the stream was last read longer ago than the horizon, its trail
	// is no longer read again either: one forward read per 5 s is left (the
	// audit would add one a minute).
	for range 10 * polls {
		u.clock.now = u.clock.now.Add(200 * time.Millisecond)
		u.poll(t)
		u.ledger.SaveIfDue(context.Background())
	}
	start = mem.pages
	for range polls {
		u.clock.now = u.clock.now.Add(200 * time.Millisecond)
		u.poll(t)
		u.ledger.SaveIfDue(context.Background())
	}
	if reads := mem.pages - start; reads > 12 {
		t.Fatalf("%d reads in a minute of a stream idle for 11 minutes, want at most 12 (one per 5 s)", reads)
	}
	mem.add(KindEvent, "r", "after-the-quiet", u.clock.now.UnixMilli())
	for i := 0; ; i++ {
		u.clock.now = u.clock.now.Add(200 * time.Millisecond)
		u.poll(t)
		u.ledger.SaveIfDue(context.Background())
		if len(u.sink.records()) == 2 {
			if waited := time.Duration(i+1) * 200 * time.Millisecond; waited > quietMax {
				t.Fatalf("the event after a quiet minute was read after %s, want within %s", waited, quietMax)
			}
			break
		}
		if i > 100 {
			t.Fatal("the event after a quiet minute was never read")
		}
	}
	emittedOnce(t, u.sink, []string{"first", "after-the-quiet"})
}

func TestTailerUnitPollsSoonWhileRowsFlowAndBacksOffToThePollIntervalWhenIdle(t *testing.T) {
	for name, mk := range sources(acme) {
		t.Run(name, func(t *testing.T) {
			src, s := mk()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var waits []time.Duration
			u := newUnitTailer(t, s, nil, true, func(o *tailOptions, _ *checkpoint.Options) {
				o.PollInterval = 100 * time.Millisecond
			})
			u.opts.Sleep = func(_ context.Context, d time.Duration) bool {
				waits = append(waits, d)
				u.clock.now = u.clock.now.Add(d)
				if n := len(waits); n <= 2 { // rows arrive during the first two pauses
					src.add(KindEvent, "r", fmt.Sprintf("e%d", n), u.clock.now.UnixMilli())
				}
				if len(waits) == 10 {
					cancel()
				}
				return true
			}
			src.add(KindEvent, "r", "e0", u.clock.now.UnixMilli())
			if err := u.run(ctx, false); err != nil {
				t.Fatal(err)
			}
			ms := time.Millisecond
			want := []time.Duration{5 * ms, 5 * ms, 5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 100 * ms, 100 * ms, 100 * ms}
			if !reflect.DeepEqual(waits, want) {
				t.Fatalf("pauses %v, want %v", waits, want)
			}
			emittedOnce(t, u.sink, []string{"e0", "e1", "e2"})
		})
	}
}

// TestTailerUnitLetsGoOfThePagesAfterAFailedOneAndHandsThemOnAgainInOrder
// pins the stage (tail_stage.go): while a backlog of several streams is
// read, the pipeline fails once in the middle; the pages after it, of that
// poll and of the next one already read, are let go and read again, so
// every event is handed on once, in (time, id) order in its stream.
func TestTailerUnitLetsGoOfThePagesAfterAFailedOneAndHandsThemOnAgainInOrder(t *testing.T) {
	realms := []realm{{ID: "r1", Name: "one"}, {ID: "r2", Name: "two"}, {ID: "r3", Name: "three"}}
	for name, newSource := range sources(realms...) {
		t.Run(name, func(t *testing.T) {
			mem, src := newSource()
			var want []string
			for _, r := range realms {
				for i := range 1200 {
					id := fmt.Sprintf("%s-%04d", r.ID, i)
					mem.add(KindEvent, r.ID, id, 1700000000000+int64(i/3))
					want = append(want, id)
				}
			}
			u := newUnitTailer(t, src, nil, true)
			next, calls := u.opts.Emit, 0
			u.opts.Emit = func(ctx context.Context, recs []Record, uids []int64) (int, error) {
				if calls++; calls == 4 { // the first record taken, then a failure
					n, _ := next(ctx, recs[:1], uids[:1])
					return n, readError{errors.New("username lookup failed")}
				}
				return next(ctx, recs, uids)
			}
			u.opts.Sleep = func(context.Context, time.Duration) bool { return true }
			if err := u.run(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			if u.Stats().SourceErrors != 1 {
				t.Fatalf("SourceErrors = %d, want the one failure", u.Stats().SourceErrors)
			}
			emittedOnce(t, u.sink, want)
			last := map[string]string{}
			for _, r := range u.sink.records() {
				if r.ID() <= last[r.RealmID()] {
					t.Fatalf("%s handed on after %s", r.ID(), last[r.RealmID()])
				}
				last[r.RealmID()] = r.ID()
			}
		})
	}
}

// TestTailerUnitReadsAColdStreamOnceASecondAndItsFirstRowWithinIt pins
// coldAfter: a stream of the database that found nothing for 10 s is read
// once a second, not at every poll (five a second while idle), while a
// stream with traffic is read at every poll; the first row of the cold
// one is handed on within a second, and it is read at every poll again.
func TestTailerUnitReadsAColdStreamOnceASecondAndItsFirstRowWithinIt(t *testing.T) {
	busy, quiet := realm{ID: "b", Name: "busy"}, realm{ID: "q", Name: "quiet"}
	mem := newMemSource(busy, quiet)
	src := &batchSource{memSource: mem, snap: txSnapshot{xmin: 10, xmax: 10}}
	u := newUnitTailer(t, src, nil, true, func(o *tailOptions, _ *checkpoint.Options) { o.Kinds = []Kind{KindEvent} })
	step := func(n int) {
		for range n {
			u.clock.now = u.clock.now.Add(200 * time.Millisecond)
			mem.add(KindEvent, "b", fmt.Sprintf("b-%d", u.clock.now.UnixMilli()), u.clock.now.UnixMilli())
			u.poll(t)
		}
	}
	step(60) // 12 s: the quiet stream turns cold
	src.mu.Lock()
	clear(src.pages)
	src.mu.Unlock()
	step(25) // 5 s
	src.mu.Lock()
	busyReads, quietReads := src.pages["b"], src.pages["q"]
	src.mu.Unlock()
	if busyReads != 25 || quietReads < 4 || quietReads > 6 {
		t.Fatalf("in 25 polls (5 s): the busy stream read %d times, the cold one %d; want 25 and about 5", busyReads, quietReads)
	}
	mem.add(KindEvent, "q", "q-first", u.clock.now.UnixMilli())
	for i := 0; ; i++ {
		if i > 5 {
			t.Fatal("the first row of the cold stream was not handed on within 6 polls (1.2 s)")
		}
		step(1)
		if len(u.sink.uids()["q-first"]) == 1 {
			break
		}
	}
	src.mu.Lock()
	clear(src.pages)
	src.mu.Unlock()
	step(5)
	if n := src.pages["q"]; n != 5 {
		t.Fatalf("after its row the stream was read %d times in 5 polls, want at every poll", n)
	}
}

func TestTailerUnitAsksTheDatabaseNothingWhileEveryStreamIsColdAndNotDue(t *testing.T) {
	quiet := []realm{{ID: "q1", Name: "quiet1"}, {ID: "q2", Name: "quiet2"}}
	mem := newMemSource(quiet...)
	src := &batchSource{memSource: mem, snap: txSnapshot{xmin: 10, xmax: 10}}
	u := newUnitTailer(t, src, nil, true, func(o *tailOptions, _ *checkpoint.Options) { o.Kinds = []Kind{KindEvent} })
	step := func(n int) {
		for range n {
			u.clock.now = u.clock.now.Add(100 * time.Millisecond)
			u.poll(t)
		}
	}
	step(120) // 12 s: both streams cold
	src.mu.Lock()
	src.batches = 0
	src.mu.Unlock()
	step(50) // 5 s of polls every 100 ms
	src.mu.Lock()
	batches := src.batches
	src.mu.Unlock()
	if batches < 4 || batches > 6 {
		t.Fatalf("50 polls of cold streams sent %d batches, want about one a second (5)", batches)
	}
	mem.add(KindEvent, "q2", "q2-first", u.clock.now.UnixMilli())
	for i := 0; len(u.sink.uids()["q2-first"]) == 0; i++ {
		if i > 11 {
			t.Fatal("the first row of a cold stream was not handed on within 12 polls (1.2 s)")
		}
		step(1)
	}
}

func TestTailerUnitReadsTheQuietStreamsOfAReadOnlySourceAtMostFourTimesASecondTogetherWhateverTheRealms(t *testing.T) {
	for _, c := range []struct {
		realms  int
		maxWait time.Duration // for the first event of a quiet realm
	}{
		{5, quietMax},
		{100, 25 * time.Second},
	} {
		t.Run(fmt.Sprintf("%d realms", c.realms), func(t *testing.T) {
			var realms []realm
			for i := range c.realms {
				realms = append(realms, realm{ID: fmt.Sprintf("r%03d", i), Name: fmt.Sprintf("realm-%03d", i)})
			}
			mem := newMemSource(realms...)
			u := newUnitTailer(t, readSource{mem}, nil, true, func(o *tailOptions, _ *checkpoint.Options) {
				o.Kinds = []Kind{KindEvent}
				o.PollInterval = 200 * time.Millisecond
			})
			step := func() {
				u.clock.now = u.clock.now.Add(200 * time.Millisecond)
				u.poll(t)
				u.ledger.SaveIfDue(context.Background())
			}
			for range 11 * 60 * 5 { // 11 minutes: every stream quiet, its trail beyond the horizon
				step()
			}
			start := mem.pages
			for range 60 * 5 {
				step()
			}
			reads := mem.pages - start
			if limit := min(60*quietReads, c.realms*60/int(quietMax/time.Second)) + c.realms; reads > limit {
				t.Fatalf("%d reads in a minute of %d quiet streams, want at most %d", reads, c.realms, limit)
			}
			mem.add(KindEvent, realms[c.realms-1].ID, "wakes", u.clock.now.UnixMilli())
			for i := 0; len(u.sink.records()) == 0; i++ {
				if waited := time.Duration(i) * 200 * time.Millisecond; waited > c.maxWait {
					t.Fatalf("the first event of a quiet realm was not read within %s", c.maxWait)
				}
				step()
			}
		})
	}
}
