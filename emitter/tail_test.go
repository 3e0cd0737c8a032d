package emitter

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// collector collects what a tailer emits and, when autoAck is set,
// acknowledges it at once, as a delivery that delivered it would.
type collector struct {
	mu      sync.Mutex
	recs    []Record
	ledger  *checkpoint.Ledger
	autoAck bool
}

func (c *collector) emit(_ context.Context, recs []Record, uids []int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range recs {
		r.SetUID(uids[i])
		c.recs = append(c.recs, r)
		if c.autoAck {
			c.ledger.Ack(streamKey(r.Kind(), r.RealmID()), r.ID(), r.Time())
		}
	}
	return len(recs), nil
}

func (c *collector) records() []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// uids maps each emitted id to the uids it was emitted with.
func (c *collector) uids() map[string][]int64 {
	out := map[string][]int64{}
	for _, r := range c.records() {
		out[r.ID()] = append(out[r.ID()], r.UID())
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testUIDs hands out uids that are unique across the tailers of a test.
var testUIDs atomic.Int64

// newTestTailer returns a tailer on src with fast test timings and a ledger
// on store (nil: in memory), emitting into a collector; mods change the
// options before they are used.
func newTestTailer(t testing.TB, src source, store checkpoint.Store, autoAck bool,
	mods ...func(*tailOptions, *checkpoint.Options)) (*tailer, *collector) {
	t.Helper()
	c := &collector{autoAck: autoAck}
	lo := checkpoint.Options{Store: store, NextUID: func() int64 { return testUIDs.Add(1) },
		Overlap: 2 * time.Second, SaveInterval: 10 * time.Millisecond, Horizon: 10 * time.Minute, PastHorizon: time.Hour}
	to := tailOptions{Source: src, Emit: c.emit, Logger: slog.New(slog.DiscardHandler),
		PageSize: 50, PollInterval: 5 * time.Millisecond, RescanInterval: 10 * time.Millisecond,
		RealmInterval: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Now: time.Now, Sleep: sleep,
		Overlap: 2 * time.Second, MaxHold: 10 * time.Minute}
	for _, m := range mods {
		m(&to, &lo)
	}
	l, err := checkpoint.Open(context.Background(), lo)
	if err != nil {
		t.Fatal(err)
	}
	c.ledger, to.Ledger = l, l
	tl, err := newTailer(to)
	if err != nil {
		t.Fatal(err)
	}
	return tl, c
}

// tailRun is a tailer running in the background.
type tailRun struct {
	*tailer
	ledger *checkpoint.Ledger
	sink   *collector
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

// startTailer runs a test tailer (see newTestTailer) until the test ends or
// stop is called; its logs are kept.
func startTailer(t *testing.T, src source, store checkpoint.Store, autoAck bool,
	mods ...func(*tailOptions, *checkpoint.Options)) *tailRun {
	t.Helper()
	logs := &syncBuffer{}
	mods = append(mods, func(o *tailOptions, _ *checkpoint.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tl, c := newTestTailer(t, src, store, autoAck, mods...)
	ctx, cancel := context.WithCancel(context.Background())
	r := &tailRun{tailer: tl, ledger: c.ledger, sink: c, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { r.done <- tl.run(ctx, false) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends the run without saving: what a crash leaves is the last save.
func (r *tailRun) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancellation")
	}
}

// close stops the run and saves the ledger, as a clean shutdown does.
func (r *tailRun) close(t *testing.T) {
	t.Helper()
	r.stop(t)
	if err := r.ledger.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// waitPolls waits until the tailer has completed n more polls of every
// stream (a rescan of each overlap window included when its interval
// passed): what was to happen by then has happened.
func (r *tailRun) waitPolls(t *testing.T, n uint64) {
	t.Helper()
	target := r.Stats().Polls + n
	waitFor(t, fmt.Sprintf("%d more polls", n), func() bool { return r.Stats().Polls >= target })
}

// ack acknowledges rec as delivered.
func (r *tailRun) ack(rec Record) {
	r.ledger.Ack(streamKey(rec.Kind(), rec.RealmID()), rec.ID(), rec.Time())
}

// waitFor polls cond until it holds or 15 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// emittedOnce checks that every id of want was emitted exactly once and
// nothing else was.
func emittedOnce(t *testing.T, c *collector, want []string) {
	t.Helper()
	got := c.uids()
	for _, id := range want {
		if n := len(got[id]); n != 1 {
			t.Errorf("event %s emitted %d times, want once", id, n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("emitted %d distinct events, want %d", len(got), len(want))
	}
}

// The tests below run the tailer against the real PostgreSQL with
// Keycloak's schema; tail_unit_test.go pins the same behaviours with an
// in-memory source and a stepped clock.

func TestTailerEmitsEveryEventOfASameMillisecondBurstOnceInOrder(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	var want []string
	k.exec(`INSERT INTO event_entity (id, realm_id, event_time, type)
		SELECT 'burst-' || lpad(g::text, 4, '0'), 'r', 1700000000000, 'LOGIN' FROM generate_series(1, 700) g`)
	for g := 1; g <= 700; g++ {
		want = append(want, fmt.Sprintf("burst-%04d", g))
	}
	k.exec(`INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type)
		SELECT 'adm-' || lpad(g::text, 4, '0'), 'r', 1700000000000, 'UPDATE', 'USER' FROM generate_series(1, 120) g`)
	for g := 1; g <= 120; g++ {
		want = append(want, fmt.Sprintf("adm-%04d", g))
	}
	r := startTailer(t, k.source(Filters{}, nil), nil, true)
	waitFor(t, "820 events", func() bool { return len(r.sink.records()) >= 820 })
	r.waitPolls(t, 5) // several rescans of the overlap window
	emittedOnce(t, r.sink, want)
	var evOrder []string
	for _, rec := range r.sink.records() {
		if rec.Kind() == KindEvent {
			evOrder = append(evOrder, rec.ID())
		}
	}
	if !slices.Equal(evOrder, want[:700]) {
		t.Error("events were not emitted in (time, id) order")
	}
}

func TestTailerEmitsALateCommitWithAnOlderTimeOnce(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	r := startTailer(t, k.source(Filters{}, nil), nil, true)

	txA, err := k.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback()
	if _, err := txA.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ('A', 'r', 1700000001000, 'LOGIN')`); err != nil {
		t.Fatal(err)
	}
	k.event("B", "r", 1700000001001, "LOGIN") // commits at once
	waitFor(t, "B", func() bool { return len(r.sink.uids()["B"]) > 0 })
	r.waitPolls(t, 2) // the cursor is past A's time now
	if err := txA.Commit(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A", func() bool { return len(r.sink.uids()["A"]) > 0 })
	r.waitPolls(t, 5)
	emittedOnce(t, r.sink, []string{"A", "B"})
}

func TestTailerRestartEmitsOnlyUnacknowledgedEventsWithTheirUIDs(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	for i := range 100 {
		k.event(fmt.Sprintf("e%03d", i), "r", 1700000000000+int64(i/10), "LOGIN") // ten per ms
	}
	cp := filepath.Join(t.TempDir(), "checkpoint.json")
	src := k.source(Filters{}, nil)
	first := startTailer(t, src, checkpoint.NewFile(cp), false)
	waitFor(t, "100 events", func() bool { return len(first.sink.records()) == 100 })
	firstUIDs := first.sink.uids()
	unacked := map[string]bool{}
	for i, rec := range first.sink.records() {
		if i%3 == 0 {
			unacked[rec.ID()] = true
			continue
		}
		first.ack(rec)
	}
	first.stop(t)
	first.close(t)
	k.event("new", "r", 1700000000050, "LOGIN")

	second := startTailer(t, src, checkpoint.NewFile(cp), true)
	waitFor(t, "the unacknowledged events and the new one", func() bool {
		return len(second.sink.records()) >= len(unacked)+1
	})
	second.waitPolls(t, 5)
	got := second.sink.uids()
	for id := range unacked {
		if len(got[id]) != 1 || got[id][0] != firstUIDs[id][0] {
			t.Errorf("unacknowledged %s re-emitted with uids %v, want once with %d", id, got[id], firstUIDs[id][0])
		}
	}
	if len(got["new"]) != 1 {
		t.Errorf("new event emitted %d times, want once", len(got["new"]))
	}
	if len(got) != len(unacked)+1 {
		t.Errorf("second run emitted %d events, want %d: acknowledged ones must not come back", len(got), len(unacked)+1)
	}
	if st := second.Stats(); st.Replayed != uint64(len(unacked)) {
		t.Errorf("Stats().Replayed = %d, want %d", st.Replayed, len(unacked))
	}
}

// TestTailerCrashAfterASaveLosesNothingAndKeepsEveryUID crashes a tailer that
// emitted events after its last save: the replay carries the uids first
// emitted, those saved and those only journaled.
func TestTailerCrashAfterASaveLosesNothingAndKeepsEveryUID(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	k.realm("r2", "beta")
	var all []string
	add := func(prefix string, n int, base int64) {
		for i := range n {
			id := fmt.Sprintf("%s%03d", prefix, i)
			k.event(id, "r", base+int64(i), "LOGIN")
			k.admin(id, "r2", base+int64(i))
			all = append(all, id)
		}
	}
	add("a", 60, 1700000000000)
	cp := filepath.Join(t.TempDir(), "checkpoint.json")
	src := k.source(Filters{}, nil)
	first := startTailer(t, src, checkpoint.NewFile(cp), false, func(_ *tailOptions, l *checkpoint.Options) {
		l.SaveInterval = time.Hour // only explicit saves
	})
	waitFor(t, "120 records", func() bool { return len(first.sink.records()) == 120 })
	for _, rec := range first.sink.records()[:70] {
		first.ack(rec)
	}
	if err := first.ledger.Save(context.Background()); err != nil {
		t.Fatal(err)
	}
	saved, err := checkpoint.Load(cp)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range first.sink.records()[70:] {
		first.ack(rec) // acknowledged but never saved
	}
	add("b", 20, 1700000000100) // read but never saved
	waitFor(t, "160 records", func() bool { return len(first.sink.records()) == 160 })
	first.stop(t) // crash: no Close

	second := startTailer(t, src, checkpoint.NewFile(cp), true)
	// Everything not acknowledged in the saved file must come again.
	var want []string
	key := func(r Record) string { return string(r.Kind()) + "/" + r.ID() }
	firstUID := map[string]int64{}
	var topUID int64
	for _, rec := range first.sink.records() {
		firstUID[key(rec)] = rec.UID()
		topUID = max(topUID, rec.UID())
	}
	if got := second.ledger.MaxUID(); got != topUID {
		t.Errorf("MaxUID after the crash = %d, want the largest uid emitted before it, %d", got, topUID)
	}
	for _, rec := range first.sink.records() {
		e, ok := saved.Streams[streamKey(rec.Kind(), rec.RealmID())].Window[rec.ID()]
		if !ok || !e.Acked {
			want = append(want, key(rec))
		}
	}
	waitFor(t, "the replay", func() bool { return len(second.sink.records()) >= len(want) })
	second.waitPolls(t, 5)
	got := map[string]int{}
	for _, rec := range second.sink.records() {
		got[key(rec)]++
		e, inSave := saved.Streams[streamKey(rec.Kind(), rec.RealmID())].Window[rec.ID()]
		if inSave && rec.UID() != e.UID {
			t.Errorf("%s replayed with uid %d, the checkpoint saved %d", key(rec), rec.UID(), e.UID)
		}
		if u, ok := firstUID[key(rec)]; ok && rec.UID() != u {
			t.Errorf("%s replayed with uid %d, first emitted with %d", key(rec), rec.UID(), u)
		}
	}
	for _, k := range want {
		if got[k] != 1 {
			t.Errorf("%s emitted %d times after the crash, want once", k, got[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("emitted %d after the crash, want %d", len(got), len(want))
	}
}

func TestTailerPicksUpRealmsCreatedWhileRunningAndHonoursTheRealmFilter(t *testing.T) {
	k := newKCDB(t)
	k.realm("r1", "acme")
	k.realm("rx", "excluded")
	k.event("e1", "r1", 1, "LOGIN")
	k.event("x1", "rx", 1, "LOGIN")
	r := startTailer(t, k.source(Filters{}, nil), nil, true, func(o *tailOptions, _ *checkpoint.Options) {
		o.Realms = []string{"acme", "later"}
		o.Start = time.Now().UnixMilli() // the new realm still starts at its beginning
	})
	r.waitPolls(t, 5)
	if n := len(r.sink.records()); n != 0 {
		t.Fatalf("from now: %d old events emitted, want none", n)
	}
	k.realm("r2", "later")
	k.event("e2", "r2", 2, "LOGIN") // older than the start: the realm is new
	k.event("x2", "rx", time.Now().UnixMilli()+1000, "LOGIN")
	waitFor(t, "the new realm's event", func() bool { return len(r.sink.uids()["e2"]) > 0 })
	r.waitPolls(t, 5)
	emittedOnce(t, r.sink, []string{"e2"})
	if rec := r.sink.records()[0]; rec.Event.RealmName != "later" {
		t.Errorf("RealmName = %q, want later", rec.Event.RealmName)
	}
}

func TestTailerFromNowEmitsOnlyNewerEvents(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	now := time.Now().UnixMilli()
	k.event("old", "r", now-60000, "LOGIN")
	r := startTailer(t, k.source(Filters{}, nil), nil, true, func(o *tailOptions, _ *checkpoint.Options) {
		o.Start = time.Now().UnixMilli()
	})
	k.event("new", "r", time.Now().UnixMilli()+5, "LOGIN")
	waitFor(t, "the new event", func() bool { return len(r.sink.records()) > 0 })
	r.waitPolls(t, 5)
	emittedOnce(t, r.sink, []string{"new"})
}

func TestTailerPrunesAcknowledgedEntriesOlderThanTheOverlap(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	for i := range 100 {
		k.event(fmt.Sprintf("e%03d", i), "r", 1700000000000+int64(i)*100, "LOGIN") // 10 s in all
	}
	cp := filepath.Join(t.TempDir(), "checkpoint.json")
	r := startTailer(t, k.source(Filters{}, nil), checkpoint.NewFile(cp), false)
	waitFor(t, "100 events", func() bool { return len(r.sink.records()) == 100 })
	recs := r.sink.records()
	for _, rec := range recs {
		if rec.ID() != "e030" {
			r.ack(rec)
		}
	}
	if err := r.ledger.Save(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := checkpoint.Load(cp)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Streams["Event/r"]
	// e030 (time +3 s) is unacknowledged: it holds the floor below the
	// overlap (cursor +9.9 s - 2 s), and everything from it on is kept.
	if s.Floor != 1700000003000 || len(s.Window) != 70 || s.Window["e030"].Acked {
		t.Fatalf("floor %d, %d entries, e030 %+v; want floor at e030's time and 70 entries", s.Floor, len(s.Window), s.Window["e030"])
	}
	r.ledger.Ack("Event/r", "e030", 1700000003000)
	if err := r.ledger.Save(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ = checkpoint.Load(cp)
	s = st.Streams["Event/r"]
	if s.Floor != 1700000009900-2000 || len(s.Window) != 21 {
		t.Fatalf("floor %d with %d entries, want cursor time - overlap and the 21 entries from there", s.Floor, len(s.Window))
	}
}

func TestTailerReportsACursorBehindExpiredEventsAndGoesOn(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	for i := range 10 {
		k.event(fmt.Sprint("e", i), "r", 1000+int64(i), "LOGIN")
	}
	cp := filepath.Join(t.TempDir(), "checkpoint.json")
	src := k.source(Filters{}, nil)
	eventsOnly := func(o *tailOptions, _ *checkpoint.Options) { o.Kinds = []Kind{KindEvent} }
	first := startTailer(t, src, checkpoint.NewFile(cp), true, eventsOnly)
	waitFor(t, "10 events", func() bool { return len(first.sink.records()) == 10 })
	first.close(t)

	second := startTailer(t, src, checkpoint.NewFile(cp), true, eventsOnly) // nothing expired: no report
	waitFor(t, "the expiry check", func() bool { return second.Stats().ExpiryChecks > 0 })
	second.close(t)
	if st := second.Stats(); st.Expired != 0 || strings.Contains(second.logs.String(), "expired") {
		t.Fatalf("restart without expiry reported %d expiries; logs:\n%s", st.Expired, second.logs.String())
	}

	// While the emitter is down, Keycloak's expiry task deletes everything up
	// to a time after the cursor, including events never read.
	k.event("unread", "r", 2000, "LOGIN")
	k.event("kept", "r", 3000, "LOGIN")
	k.exec(`DELETE FROM event_entity WHERE event_time < 2500`)
	third := startTailer(t, src, checkpoint.NewFile(cp), true, eventsOnly)
	waitFor(t, "the kept event", func() bool { return len(third.sink.records()) > 0 })
	if st := third.Stats(); st.Expired != 1 {
		t.Fatalf("Stats().Expired = %d, want 1", st.Expired)
	}
	if !strings.Contains(third.logs.String(), "level=ERROR") || !strings.Contains(third.logs.String(), "expired") {
		t.Fatalf("no ERROR log about expired events:\n%s", third.logs.String())
	}
	emittedOnce(t, third.sink, []string{"kept"})
}

func TestTailerReportsUnacknowledgedEventsThatVanishedFromTheSource(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	k.event("stays", "r", 10, "LOGIN")
	k.event("deleted", "r", 11, "LOGIN")
	cp := filepath.Join(t.TempDir(), "checkpoint.json")
	src := k.source(Filters{}, nil)
	first := startTailer(t, src, checkpoint.NewFile(cp), false)
	waitFor(t, "2 events", func() bool { return len(first.sink.records()) == 2 })
	first.close(t)
	k.exec(`DELETE FROM event_entity WHERE id = 'deleted'`)

	second := startTailer(t, src, checkpoint.NewFile(cp), true)
	waitFor(t, "the replay", func() bool { return len(second.sink.records()) == 1 })
	waitFor(t, "the missing report", func() bool { return second.Stats().Missing == 1 })
	if !strings.Contains(second.logs.String(), "id=deleted") {
		t.Fatalf("no log names the vanished event:\n%s", second.logs.String())
	}
	second.close(t)
	st, _ := checkpoint.Load(cp)
	if e := st.Streams["Event/r"].Window["deleted"]; !e.Acked {
		t.Fatalf("vanished entry %+v still pending: it would pin the floor forever", e)
	}
}

func TestTailerDrainReadsEverythingThenReturns(t *testing.T) {
	k := newKCDB(t)
	k.realm("r1", "a")
	k.realm("r2", "b")
	var want []string
	for i := range 230 {
		id := fmt.Sprint("e", i)
		k.event(id, fmt.Sprint("r", 1+i%2), int64(i), "LOGIN")
		want = append(want, id)
	}
	tl, c := newTestTailer(t, k.source(Filters{}, nil), nil, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tl.run(ctx, true); err != nil {
		t.Fatal(err)
	}
	emittedOnce(t, c, want)
}

// TestTailerSurvivesADatabaseRestartMidStream uses its own cluster
// (scripts/postgres.sh start pgsrc-restart), which it restarts: never the
// shared one.
func TestTailerSurvivesADatabaseRestartMidStream(t *testing.T) {
	testenv.PostgresURL(t) // skip or fail like every database test
	script := filepath.Join(testenv.ModuleRoot(t), "scripts", "postgres.sh")
	if _, err := os.Stat(script); err != nil {
		msg := fmt.Sprintf("scripts/postgres.sh is needed to restart a cluster: %v", err)
		if os.Getenv("KCEE_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out, err := exec.Command(script, "start", "pgsrc-restart").Output()
	if err != nil {
		t.Fatalf("start cluster pgsrc-restart: %v", err)
	}
	t.Cleanup(func() { // after the test's own connections are closed
		if out, err := exec.Command(script, "stop", "pgsrc-restart").CombinedOutput(); err != nil {
			t.Errorf("stop cluster pgsrc-restart: %v\n%s", err, out)
		}
	})
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		t.Fatal("scripts/postgres.sh start printed no URL")
	}
	k := newKCDBOn(t, testenv.NewDatabaseOn(t, fields[len(fields)-1]))
	k.realm("r", "acme")
	r := startTailer(t, k.source(Filters{}, nil), checkpoint.NewFile(filepath.Join(t.TempDir(), "cp.json")), true)
	var want []string
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprint("e", i)
			// The test's own connections break with the restart too: retry.
			waitFor(t, "an insert to succeed", func() bool {
				_, err := k.db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ($1, 'r', $2, 'LOGIN')
					ON CONFLICT DO NOTHING`, id, 1700000000000+int64(i))
				return err == nil
			})
			want = append(want, id)
		}
	}
	insert(0, 100)
	waitFor(t, "first 100", func() bool { return len(r.sink.records()) >= 100 })
	if out, err := exec.Command(script, "restart", "pgsrc-restart").CombinedOutput(); err != nil {
		t.Fatalf("restart cluster: %v\n%s", err, out)
	}
	insert(100, 200)
	waitFor(t, "all 200 after the restart", func() bool { return len(r.sink.uids()) >= 200 })
	r.waitPolls(t, 5)
	emittedOnce(t, r.sink, want)
	if r.Stats().SourceErrors == 0 {
		t.Log("the tailer did not notice the restart (its connections were replaced transparently)")
	}
}

// BenchmarkTailerDrain measures reading a backlog from the real database
// through the database source (rows converted, details parsed) and the
// ledger, with an Emit that only counts.
func BenchmarkTailerDrain(b *testing.B) {
	k := newKCDB(b)
	k.realm("r", "acme")
	k.exec(`INSERT INTO user_entity (id, username, realm_id) SELECT 'u' || g, 'user' || g, 'r' FROM generate_series(1, 100) g`)
	const rows = 50000
	k.exec(`INSERT INTO event_entity (id, realm_id, event_time, type, client_id, user_id, session_id, ip_address, details_json)
		SELECT md5(g::text), 'r', 1700000000000 + g / 20, 'LOGIN', 'account-console', 'u' || (g % 100), md5(g::text || 's'),
			'10.0.0.' || (g % 250), '{"auth_method":"openid-connect","redirect_uri":"https://app.example/cb","code_id":"' || md5(g::text) || '"}'
		FROM generate_series(1, $1) g`, rows)
	k.exec(`ANALYZE event_entity`)
	src := k.source(Filters{}, nil)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		var n atomic.Int64
		tl, _ := newTestTailer(b, src, nil, false, func(o *tailOptions, _ *checkpoint.Options) {
			o.Kinds, o.PageSize = []Kind{KindEvent}, 1000
			o.Emit = func(_ context.Context, recs []Record, _ []int64) (int, error) {
				n.Add(int64(len(recs)))
				return len(recs), nil
			}
		})
		if err := tl.run(context.Background(), true); err != nil {
			b.Fatal(err)
		}
		if n.Load() != rows {
			b.Fatalf("drained %d rows, want %d", n.Load(), rows)
		}
	}
	b.ReportMetric(float64(rows*b.N)/time.Since(start).Seconds(), "events/s")
}

// TestTailerDeliversARowOfATransactionOpenForAMinuteOnce keeps a
// transaction open for 60 s (KCEE_LATE_SECONDS sets another span) while
// events stream and commit at once; its row, stamped when it began, commits
// far behind the cursor and past the overlap, and is delivered once.
func TestTailerDeliversARowOfATransactionOpenForAMinuteOnce(t *testing.T) {
	t.Parallel()
	span := 60 * time.Second
	if s := os.Getenv("KCEE_LATE_SECONDS"); s != "" {
		n, err := time.ParseDuration(s + "s")
		if err != nil {
			t.Fatalf("KCEE_LATE_SECONDS=%q: %v", s, err)
		}
		span = n
	}
	k := newKCDB(t)
	k.realm("r", "acme")
	r := startTailer(t, k.source(Filters{}, nil), nil, true, func(o *tailOptions, _ *checkpoint.Options) {
		o.Kinds = []Kind{KindEvent}
	})
	tx, err := k.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	began := time.Now().UnixMilli()
	if _, err := tx.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ('late', 'r', $1, 'LOGIN')`, began); err != nil {
		t.Fatal(err)
	}
	var want []string
	for end := time.Now().Add(span); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		id := fmt.Sprintf("steady-%04d", len(want))
		k.event(id, "r", time.Now().UnixMilli(), "LOGIN")
		want = append(want, id)
	}
	waitFor(t, "the steady events", func() bool { return len(r.sink.uids()) >= len(want) })
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late row", func() bool { return len(r.sink.uids()["late"]) > 0 })
	r.waitPolls(t, 5)
	emittedOnce(t, r.sink, append(want, "late"))
	if st := r.Stats(); st.Late != 1 {
		t.Errorf("Late = %d, want 1", st.Late)
	}
}

// TestTailerDeliversARowStampedInThePastOnce inserts, between two reads,
// a row stamped 30 s in the past (a node whose clock is behind): the audit
// of the trail delivers it once.
func TestTailerDeliversARowStampedInThePastOnce(t *testing.T) {
	t.Parallel()
	k := newKCDB(t)
	k.realm("r", "acme")
	r := startTailer(t, k.source(Filters{}, nil), nil, true, func(o *tailOptions, _ *checkpoint.Options) {
		o.Kinds = []Kind{KindEvent}
	})
	var want []string
	for range 60 { // 12 s of events, so the window (2 s) prunes into the trail
		id := fmt.Sprintf("steady-%04d", len(want))
		k.event(id, "r", time.Now().UnixMilli(), "LOGIN")
		want = append(want, id)
		time.Sleep(200 * time.Millisecond)
	}
	waitFor(t, "the steady events", func() bool { return len(r.sink.uids()) >= len(want) })
	r.ledger.Save(context.Background()) // prune now
	k.event("skewed", "r", time.Now().Add(-30*time.Second).UnixMilli()+500, "LOGIN")
	waitFor(t, "the skewed row (audited every 10 s)", func() bool { return len(r.sink.uids()["skewed"]) > 0 })
	r.waitPolls(t, 5)
	emittedOnce(t, r.sink, append(want, "skewed"))
}
