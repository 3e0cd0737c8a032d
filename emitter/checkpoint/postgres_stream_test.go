package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// generated writes n pseudo-random bytes to w in writes of chunk bytes
// from one reused buffer (the whole never exists in memory), into h too,
// and calls sample after each write.
func generated(w io.Writer, h hash.Hash, n, chunk int, sample func()) error {
	r := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, chunk)
	for n > 0 {
		b := buf[:min(n, chunk)]
		r.Read(b)
		h.Write(b)
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= len(b)
		if sample != nil {
			sample()
		}
	}
	return nil
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// parts returns how many parts the cluster's snapshot has and the size
// of the largest.
func parts(t *testing.T, db *sql.DB, cluster string) (n, largest int) {
	t.Helper()
	err := db.QueryRow(`SELECT count(*), coalesce(max(length(part)), 0) FROM kc_event_emitter.snapshot_part WHERE cluster = $1`,
		cluster).Scan(&n, &largest)
	if err != nil {
		t.Fatal(err)
	}
	return n, largest
}

func openDB(t *testing.T, dbURL string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestPostgresSaveStreamKeepsTheLiveHeapFlatAndLoadsBackByteIdentical:
// 8 MiB written in the Ledger's chunks are sent as they come: the live
// heap never grows by more than 2 MiB during the save, no part exceeds
// partSize, and Load returns the same bytes.
func TestPostgresSaveStreamKeepsTheLiveHeapFlatAndLoadsBackByteIdentical(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	term := lead(t, openPostgres(t, dbURL, "c"))
	if err := term.Save(ctx, []byte("warm")); err != nil { // the pool's connection and statements exist before the base is taken
		t.Fatal(err)
	}
	const size = 8 << 20
	h := sha256.New()
	base := liveHeap()
	var peak uint64
	writes := 0
	err := term.SaveStream(ctx, func(w io.Writer) error {
		return generated(w, h, size, snapshotChunk+100, func() {
			if writes++; writes%8 == 0 {
				peak = max(peak, liveHeap())
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(peak) - int64(base)
	t.Logf("live heap grew by %d KiB at most while %d MiB were saved", grew>>10, size>>20)
	if grew > 2<<20 {
		t.Errorf("the live heap grew by %d KiB while %d MiB were saved: the store keeps what it was given", grew>>10, size>>20)
	}
	n, largest := parts(t, openDB(t, dbURL), "c")
	if largest > partSize || n < size/partSize {
		t.Errorf("%d parts, the largest %d bytes; want at least %d parts of at most %d", n, largest, size/partSize, partSize)
	}
	snap, journal, err := term.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap) != size || sha256.Sum256(snap) != [32]byte(h.Sum(nil)) {
		t.Fatalf("loaded %d bytes, not the %d saved", len(snap), size)
	}
	if len(journal) != 0 {
		t.Fatalf("journal after the save: %d bytes", len(journal))
	}
}

// TestPostgresSaveSplitsOneBigWriteIntoParts: a snapshot handed over
// whole (Save, Import) is stored in parts of at most partSize too.
func TestPostgresSaveSplitsOneBigWriteIntoParts(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	term := lead(t, openPostgres(t, dbURL, "c"))
	snap := bytes.Repeat([]byte("0123456789abcdef"), (3*partSize+5)/16+1)
	if err := term.Save(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if n, largest := parts(t, openDB(t, dbURL), "c"); n != 4 || largest != partSize {
		t.Errorf("%d bytes saved in %d parts, the largest %d; want 4 parts of at most %d", len(snap), n, largest, partSize)
	}
	if got, _, err := term.Load(ctx); err != nil || !bytes.Equal(got, snap) {
		t.Fatalf("Load = %d bytes, %v; want the %d saved", len(got), err, len(snap))
	}
}

// teeSaver passes the Ledger's saves on to a Term and records what the
// Ledger wrote: its hash and its largest write.
type teeSaver struct {
	*Term
	h        hash.Hash
	n        int
	maxWrite int
}

func (s *teeSaver) SaveStream(ctx context.Context, write func(io.Writer) error) error {
	s.h, s.n, s.maxWrite = sha256.New(), 0, 0
	return s.Term.SaveStream(ctx, func(w io.Writer) error {
		return write(writerFunc(func(b []byte) (int, error) {
			s.h.Write(b)
			s.n += len(b)
			s.maxWrite = max(s.maxWrite, len(b))
			return w.Write(b)
		}))
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestLedgerOnPostgresStreamsABusyWindowAndTheNextLeaderLoadsIt: a window
// of 100,000 events (several MiB of snapshot) is saved through the Term in
// chunks of about snapshotChunk, stored byte-identical, and the next
// leader's ledger replays its events with their uids.
func TestLedgerOnPostgresStreamsABusyWindowAndTheNextLeaderLoadsIt(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	store := &teeSaver{Term: lead(t, openPostgres(t, dbURL, "c"))}
	l, err := Open(ctx, Options{Store: store, NextUID: counter()})
	if err != nil {
		t.Fatal(err)
	}
	l.Begin("Event/r", 0)
	its := make([]Item, 100_000)
	for i := range its {
		its[i] = Item{ID: uuidOf(i), Time: int64(1000 + i)}
	}
	uids := take(t, l, "Event/r", its, true)
	if err := l.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if store.n < 5<<20 || store.maxWrite > snapshotChunk+1024 {
		t.Fatalf("the ledger wrote %d bytes, at most %d at a time; want several MiB in chunks of about %d", store.n, store.maxWrite, snapshotChunk)
	}
	snap, journal, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap) != store.n || sha256.Sum256(snap) != [32]byte(store.h.Sum(nil)) || len(journal) != 0 {
		t.Fatalf("loaded %d bytes of snapshot (journal %d), not the %d the ledger wrote", len(snap), len(journal), store.n)
	}
	if n, largest := parts(t, openDB(t, dbURL), "c"); n < store.n/partSize || largest > partSize {
		t.Errorf("%d parts, the largest %d bytes", n, largest)
	}
	next, err := Open(ctx, Options{Store: lead(t, openPostgres(t, dbURL, "c")), NextUID: func() int64 { return 1 }})
	if err != nil {
		t.Fatal(err)
	}
	probe := []Item{its[0], its[len(its)/2], its[len(its)-1]}
	got := take(t, next, "Event/r", probe, false)
	if want := []int64{uids[0], uids[len(its)/2], uids[len(its)-1]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the next leader replays uids %v, want %v", got, want)
	}
}

// TestPostgresSaveStreamThatFailsMidwayLeavesTheOldSnapshotAndJournal: a
// write callback failing after 1 MiB rolls everything back, and the next
// save works.
func TestPostgresSaveStreamThatFailsMidwayLeavesTheOldSnapshotAndJournal(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	term := lead(t, openPostgres(t, dbURL, "c"))
	old := bytes.Repeat([]byte("old"), partSize) // 3 parts
	if err := term.Save(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := term.Append(ctx, []byte("j\n")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("encoder broke")
	err := term.SaveStream(ctx, func(w io.Writer) error {
		if err := generated(w, sha256.New(), 1<<20, snapshotChunk, nil); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("SaveStream = %v, want the callback's error", err)
	}
	snap, journal, err := term.Load(ctx)
	if err != nil || !bytes.Equal(snap, old) || string(journal) != "j\n" {
		t.Fatalf("after the failed save: %d bytes of snapshot, journal %q, %v; want the old ones", len(snap), journal, err)
	}
	if n, _ := parts(t, openDB(t, dbURL), "c"); n != 3 {
		t.Fatalf("%d parts after the failed save, want the old 3", n)
	}
	if err := term.Save(ctx, []byte("new")); err != nil {
		t.Fatalf("a save after the failed one: %v", err)
	}
	if snap, journal, _ := term.Load(ctx); string(snap) != "new" || len(journal) != 0 {
		t.Fatalf("after the next save: %q, %q", snap, journal)
	}
}

// TestPostgresSaveStreamOfAFencedTermIsRefusedBeforeWritingAndChangesNothing:
// once another Lead raised the epoch, SaveStream returns ErrFenced naming
// both epochs without calling write, and the state stays as it was.
func TestPostgresSaveStreamOfAFencedTermIsRefusedBeforeWritingAndChangesNothing(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	old := lead(t, openPostgres(t, dbURL, "c"))
	if err := old.Save(ctx, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	if err := old.Append(ctx, []byte("j\n")); err != nil {
		t.Fatal(err)
	}
	newer := lead(t, openPostgres(t, dbURL, "c"))
	called := false
	err := old.SaveStream(ctx, func(w io.Writer) error {
		called = true
		_, err := w.Write([]byte("s2"))
		return err
	})
	if !errors.Is(err, ErrFenced) || called {
		t.Fatalf("SaveStream of the old epoch = %v (write called: %v), want ErrFenced before writing", err, called)
	}
	if want := fmt.Sprintf("epoch %d, the cluster's is %d", old.Epoch(), newer.Epoch()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if snap, journal, err := newer.Load(ctx); err != nil || string(snap) != "s1" || string(journal) != "j\n" {
		t.Fatalf("the new leader loads %q, %q, %v; want what the old one had", snap, journal, err)
	}
}

// TestPostgresWritesWaitForASaveInProgress: an Append of the same term or
// a Lead of another, issued while a save is being written, waits on the
// state row until the save commits: the appended line is kept after the
// save (not deleted with the journal), and the new leader loads the saved
// snapshot and fences the old one.
func TestPostgresWritesWaitForASaveInProgress(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query string // what the waiting statement starts with
		op    func(p *Postgres, term *Term) (*Term, error)
		check func(t *testing.T, old, newer *Term)
	}{
		{
			name:  "Append",
			query: "WITH f AS",
			op:    func(_ *Postgres, term *Term) (*Term, error) { return nil, term.Append(ctx, []byte("late\n")) },
			check: func(t *testing.T, old, _ *Term) {
				if snap, journal, err := old.Load(ctx); err != nil || string(snap) != "saved" || string(journal) != "late\n" {
					t.Fatalf("after the save: %q, %q, %v; want the saved snapshot and the appended line", snap, journal, err)
				}
			},
		},
		{
			name:  "Lead",
			query: "INSERT INTO",
			op:    func(p *Postgres, _ *Term) (*Term, error) { return p.Lead(ctx, "other") },
			check: func(t *testing.T, old, newer *Term) {
				if snap, _, err := newer.Load(ctx); err != nil || string(snap) != "saved" {
					t.Fatalf("the new leader loads %q, %v; want the save it waited for", snap, err)
				}
				if err := old.Append(ctx, []byte("x\n")); !errors.Is(err, ErrFenced) {
					t.Fatalf("the old leader's append after the Lead = %v, want ErrFenced", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbURL := testenv.NewDatabase(t)
			p := openPostgres(t, dbURL, "c")
			term := lead(t, p)
			if err := term.Append(ctx, []byte("before\n")); err != nil {
				t.Fatal(err)
			}
			release, writing := make(chan struct{}), make(chan struct{})
			saved := make(chan error, 1)
			go func() {
				saved <- term.SaveStream(ctx, func(w io.Writer) error {
					close(writing)
					<-release
					_, err := w.Write([]byte("saved"))
					return err
				})
			}()
			<-writing
			type result struct {
				term *Term
				err  error
			}
			done := make(chan result, 1)
			other := openPostgres(t, dbURL, "c") // a pool of its own: the save holds one of term's
			go func() {
				newer, err := tc.op(other, term)
				done <- result{newer, err}
			}()
			waitForLockWait(t, openDB(t, dbURL), tc.query)
			close(release)
			if err := <-saved; err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatalf("%s after the save: %v", tc.name, r.err)
			}
			tc.check(t, term, r.term)
		})
	}
}

// waitForLockWait returns once a statement starting with prefix waits
// for a lock in the database, and fails the test after 10 s.
func waitForLockWait(t *testing.T, db *sql.DB, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND ltrim(query) LIKE $1 || '%'`, prefix).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statement %q waits for the save's lock after 10 s", prefix)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPostgresLoadsTheSnapshotColumnOfAnOlderRelease: a store written by
// a release before snapshot_part (its two tables, the snapshot in
// state.snapshot) loads after the upgrade, and Has sees it; once saved in
// parts, state.snapshot holds a marker an older release refuses to decode;
// a snapshot such a release writes into the column later is what loads.
func TestPostgresLoadsTheSnapshotColumnOfAnOlderRelease(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	db := openDB(t, dbURL)
	for _, stmt := range []string{ // the schema and the writes of the previous release
		`CREATE SCHEMA kc_event_emitter`,
		`CREATE TABLE kc_event_emitter.state (cluster text PRIMARY KEY, epoch bigint NOT NULL DEFAULT 0, snapshot bytea,
			leader text, led_at timestamptz, saved_at timestamptz)`,
		`CREATE TABLE kc_event_emitter.journal (cluster text NOT NULL REFERENCES kc_event_emitter.state ON DELETE CASCADE,
			seq bigint GENERATED ALWAYS AS IDENTITY, lines bytea NOT NULL, PRIMARY KEY (cluster, seq))`,
		`INSERT INTO kc_event_emitter.state (cluster, epoch, snapshot, leader, led_at, saved_at)
			VALUES ('c', 3, '{"version":1,"maxUid":7}', 'old', now(), now())`,
		`INSERT INTO kc_event_emitter.journal (cluster, lines) VALUES ('c', convert_to('{"s":"Event/r","id":"a","t":1,"uid":8}' || E'\n', 'UTF8'))`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	p := openPostgres(t, dbURL, "c")
	if has, err := p.Has(ctx); err != nil || !has {
		t.Fatalf("Has of the old layout = %v, %v", has, err)
	}
	term := lead(t, p)
	l, err := Open(ctx, Options{Store: term, NextUID: func() int64 { return 1 }})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.MaxUID(); got != 8 {
		t.Fatalf("MaxUID from the old column and journal = %d, want 8", got)
	}
	if err := term.Save(ctx, []byte(`{"version":1,"maxUid":9}`)); err != nil {
		t.Fatal(err)
	}
	var column []byte
	if err := db.QueryRow(`SELECT snapshot FROM kc_event_emitter.state WHERE cluster = 'c'`).Scan(&column); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeState(column); err == nil || !strings.Contains(err.Error(), "version -1") {
		t.Fatalf("an older release decoding state.snapshot after a save in parts: %v; want a refused version", err)
	}
	// An older release's save: the column only, the parts left behind.
	if _, err := db.Exec(`UPDATE kc_event_emitter.state SET snapshot = '{"version":1,"maxUid":10}' WHERE cluster = 'c'`); err != nil {
		t.Fatal(err)
	}
	if snap, _, err := term.Load(ctx); err != nil || string(snap) != `{"version":1,"maxUid":10}` {
		t.Fatalf("after an older release saved into the column: %q, %v; want its snapshot, not the stale parts", snap, err)
	}
}

// TestPostgresHasAndImportWorkOnTheParts: Has is false without a saved
// state and true after a save in parts; Import stores its snapshot in
// parts (an empty one too), with its journal, and Load returns them.
func TestPostgresHasAndImportWorkOnTheParts(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	db := openDB(t, dbURL)
	p := openPostgres(t, dbURL, "c")
	has := func() bool {
		t.Helper()
		h, err := p.Has(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if has() {
		t.Fatal("Has of a new store = true")
	}
	term := lead(t, p)
	if has() {
		t.Fatal("Has after Lead only = true")
	}
	if err := term.Save(ctx, []byte("s")); err != nil {
		t.Fatal(err)
	}
	if !has() {
		t.Fatal("Has after a save in parts = false")
	}
	for _, tc := range []struct {
		name      string
		snap      []byte
		journal   string
		wantParts int
	}{
		{"big", bytes.Repeat([]byte("x"), 2*partSize+1), "j\n", 3},
		{"empty", nil, "j1\nj2\n", 1},
	} {
		if err := p.Import(ctx, tc.snap, []byte(tc.journal), true); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n, _ := parts(t, db, "c"); n != tc.wantParts {
			t.Errorf("%s: %d parts, want %d", tc.name, n, tc.wantParts)
		}
		snap, journal, err := lead(t, p).Load(ctx)
		if err != nil || !bytes.Equal(snap, tc.snap) || snap == nil || string(journal) != tc.journal {
			t.Fatalf("%s: Load after Import = %d bytes (nil: %v), %q, %v", tc.name, len(snap), snap == nil, journal, err)
		}
		if !has() {
			t.Fatalf("%s: Has after Import = false", tc.name)
		}
	}
	if err := p.Import(ctx, []byte("again"), nil, false); err == nil || !strings.Contains(err.Error(), "already has a state") {
		t.Fatalf("Import without force over parts = %v, want a refusal", err)
	}
}

// wholeSaver hides SaveStream: the Ledger then builds the whole snapshot
// and hands it to Save, as it did before the cluster store streamed.
type wholeSaver struct{ Store }

// BenchmarkLedgerSaveOnPostgres saves a window of 100,000 events (about
// 6 MiB of snapshot) through a Term, streamed and, for comparison, built
// whole, and reports the peak of the live heap during a save above the
// heap before the ledger was opened (peak-live-MiB: the window itself, the
// buffers of the save; sampled after a collection every MiB written, or
// when the whole snapshot is handed over) besides B/op. ns/op includes
// those collections: it is not the time of a save.
func BenchmarkLedgerSaveOnPostgres(b *testing.B) {
	for _, mode := range []string{"stream", "whole"} {
		b.Run(mode, func(b *testing.B) {
			dbURL := testenv.NewDatabase(b)
			p, err := OpenPostgres(ctx, dbURL, "kc_event_emitter", "c")
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			term, err := p.Lead(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			var peak uint64
			sampler := &samplingSaver{Term: term, peak: &peak}
			var store Store = sampler
			if mode == "whole" {
				store = &wholeSaver{Store: sampler}
			}
			base := liveHeap()
			l, err := Open(ctx, Options{Store: store, NextUID: counter()})
			if err != nil {
				b.Fatal(err)
			}
			l.Begin("Event/r", 0)
			const n = 100_000
			if err := fillWindow(l, n); err != nil {
				b.Fatal(err)
			}
			if err := l.Save(ctx); err != nil {
				b.Fatal(err)
			}
			var grew, size float64
			i := n
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				if _, _, err := l.Take(ctx, "Event/r", []Item{{ID: uuidOf(i), Time: int64(1000 + i)}}, true); err != nil {
					b.Fatal(err)
				}
				i++
				peak = 0
				b.StartTimer()
				if err := l.Save(ctx); err != nil {
					b.Fatal(err)
				}
				grew = max(grew, float64(int64(peak)-int64(base))/(1<<20))
				size = float64(sampler.n) / (1 << 20)
			}
			b.ReportMetric(grew, "peak-live-MiB")
			b.ReportMetric(size, "snapshot-MiB")
		})
	}
}

// fillWindow takes n events with UUID ids into the stream Event/r, in
// pages of 1,000 as a reader would.
func fillWindow(l *Ledger, n int) error {
	its := make([]Item, 1000)
	for i := 0; i < n; i += len(its) {
		for j := range its {
			its[j] = Item{ID: uuidOf(i + j), Time: int64(1000 + i + j)}
		}
		if _, _, err := l.Take(ctx, "Event/r", its, true); err != nil {
			return err
		}
	}
	return nil
}

// samplingSaver is a Term that samples the live heap while a snapshot is
// saved: every MiB written to SaveStream, or when Save is handed one.
type samplingSaver struct {
	*Term
	peak *uint64
	n    int
}

func (s *samplingSaver) Save(ctx context.Context, snap []byte) error {
	*s.peak = max(*s.peak, liveHeap())
	s.n = len(snap)
	return s.Term.Save(ctx, snap)
}

func (s *samplingSaver) SaveStream(ctx context.Context, write func(io.Writer) error) error {
	s.n = 0
	return s.Term.SaveStream(ctx, func(w io.Writer) error {
		return write(writerFunc(func(b []byte) (int, error) {
			if s.n/(1<<20) != (s.n+len(b))/(1<<20) {
				*s.peak = max(*s.peak, liveHeap())
			}
			s.n += len(b)
			return w.Write(b)
		}))
	})
}
