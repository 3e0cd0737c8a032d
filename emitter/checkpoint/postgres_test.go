package checkpoint

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

func openPostgres(t *testing.T, dbURL, cluster string) *Postgres {
	t.Helper()
	p, err := OpenPostgres(ctx, dbURL, "kc_event_emitter", cluster)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func lead(t *testing.T, p *Postgres) *Term {
	t.Helper()
	term, err := p.Lead(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	return term
}

func TestPostgresTermRoundTripsSnapshotAndJournal(t *testing.T) {
	p := openPostgres(t, testenv.NewDatabase(t), "c1")
	term := lead(t, p)
	if snap, journal, err := term.Load(ctx); err != nil || snap != nil || journal != nil {
		t.Fatalf("Load of a new cluster = %q, %q, %v; want empty", snap, journal, err)
	}
	for _, l := range []string{"a\n", "b\n"} {
		if err := term.Append(ctx, []byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	if _, journal, _ := term.Load(ctx); string(journal) != "a\nb\n" {
		t.Fatalf("journal = %q, want the lines in order", journal)
	}
	if err := term.Save(ctx, []byte("snap")); err != nil {
		t.Fatal(err)
	}
	if err := term.Save(ctx, []byte("snap2")); err != nil { // a save with an empty journal
		t.Fatal(err)
	}
	snap, journal, err := term.Load(ctx)
	if err != nil || string(snap) != "snap2" || len(journal) != 0 {
		t.Fatalf("Load after Save = %q, %q, %v; want the snapshot and no journal", snap, journal, err)
	}
	other := openPostgres(t, testenv.NewDatabase(t), "c2")
	if s, j, _ := lead(t, other).Load(ctx); s != nil || j != nil {
		t.Fatalf("another cluster sees %q, %q", s, j)
	}
}

// TestPostgresWritesOfAnOlderEpochAreRefused: once a new leader raised the
// epoch, the old one can neither append nor save, and the new one loads
// what the old one wrote before.
func TestPostgresWritesOfAnOlderEpochAreRefused(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	old := lead(t, openPostgres(t, dbURL, "c"))
	if err := old.Append(ctx, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	newer := lead(t, openPostgres(t, dbURL, "c"))
	if newer.Epoch() != old.Epoch()+1 {
		t.Fatalf("epochs %d then %d, want consecutive", old.Epoch(), newer.Epoch())
	}
	for name, write := range map[string]func() error{
		"Append": func() error { return old.Append(ctx, []byte("y\n")) },
		"Save":   func() error { return old.Save(ctx, []byte("old")) },
	} {
		err := write()
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("%s of the old epoch = %v, want ErrFenced", name, err)
		}
		if want := fmt.Sprintf("epoch %d, the cluster's is %d", old.Epoch(), newer.Epoch()); !strings.Contains(err.Error(), want) {
			t.Errorf("%s error %q does not say %q", name, err, want)
		}
	}
	snap, journal, err := newer.Load(ctx)
	if err != nil || snap != nil || string(journal) != "x\n" {
		t.Fatalf("new leader loads %q, %q, %v; want only the old leader's accepted line", snap, journal, err)
	}
	if err := newer.Save(ctx, []byte("new")); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresAppendRacingANewEpochIsEitherSeenOrRefused: while a leader
// appends as fast as it can, another raises the epoch and loads: every
// append that returned nil is in what the new leader loaded (none slips in
// after its read), and every later one is refused.
func TestPostgresAppendRacingANewEpochIsEitherSeenOrRefused(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	for round := range 5 {
		cluster := fmt.Sprint("race-", round)
		old := lead(t, openPostgres(t, dbURL, cluster))
		var mu sync.Mutex
		var accepted []string
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				line := fmt.Sprintf("%d\n", i)
				err := old.Append(ctx, []byte(line))
				if errors.Is(err, ErrFenced) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				accepted = append(accepted, line)
				mu.Unlock()
			}
		})
		for {
			mu.Lock()
			n := len(accepted)
			mu.Unlock()
			if n >= 20 {
				break
			}
		}
		newer := lead(t, openPostgres(t, dbURL, cluster))
		_, journal, err := newer.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait() // the old leader is refused by now
		close(stop)
		if want := strings.Join(accepted, ""); string(journal) != want {
			t.Fatalf("round %d: the new leader loaded %d bytes, the old one had %d accepted: an append slipped past the epoch",
				round, len(journal), len(want))
		}
	}
}

// TestPostgresSaveIsAllOrNothing: saves cut short by a cancelled context
// at every point leave either the old snapshot with its journal or the new
// snapshot without it.
func TestPostgresSaveIsAllOrNothing(t *testing.T) {
	p := openPostgres(t, testenv.NewDatabase(t), "c")
	term := lead(t, p)
	if err := term.Save(ctx, []byte("s0")); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("z"), 256<<10)
	cut := 0
	for i := 1; i <= 20; i++ {
		if err := term.Append(ctx, fmt.Appendf(nil, "j%d\n", i)); err != nil {
			t.Fatal(err)
		}
		before, _, _ := term.Load(ctx)
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(time.Duration(i*i) * 50 * time.Microsecond) // the cancel lands at varying points of the save
			cancel()
		}()
		snap := append(fmt.Appendf(nil, "s%d", i), big...)
		saveErr := term.Save(cctx, snap)
		cancel()
		got, journal, err := term.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case bytes.Equal(got, snap) && len(journal) == 0:
		case saveErr != nil && bytes.Equal(got, before) && len(journal) > 0:
			cut++
		default:
			t.Fatalf("save %d (error %v) left snapshot %.10q and journal %q", i, saveErr, got, journal)
		}
	}
	if cut == 0 || cut == 20 {
		t.Logf("%d of 20 saves were cut short: the cancel points did not vary", cut)
	}
}

// TestPostgresALeaderFrozenInASaveDoesNotHoldOffTheNextLeader: a leader
// frozen in the middle of a save (SIGSTOP, a long pause) holds the state row
// in an open transaction, which the next leader's Lead waits for. The server
// ends that session once it was idle in the transaction for
// idleInTransaction, so Lead returns, and the frozen save, resumed, fails
// and leaves nothing behind.
func TestPostgresALeaderFrozenInASaveDoesNotHoldOffTheNextLeader(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	old := lead(t, openPostgres(t, dbURL, "c"))
	frozen, resume := make(chan struct{}), make(chan struct{})
	saved := make(chan error, 1)
	go func() {
		saved <- old.SaveStream(ctx, func(w io.Writer) error {
			if _, err := w.Write(bytes.Repeat([]byte("a"), 3*snapshotChunk)); err != nil { // parts already sent
				return err
			}
			close(frozen)
			<-resume
			_, err := w.Write([]byte("the rest"))
			return err
		})
	}()
	<-frozen
	lctx, cancel := context.WithTimeout(ctx, 4*idleInTransaction)
	defer cancel()
	start := time.Now()
	newer, err := openPostgres(t, dbURL, "c").Lead(lctx, "next")
	close(resume)
	if err != nil {
		t.Fatalf("Lead of the next leader while the old one is frozen in a save: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
	}
	if err := <-saved; err == nil {
		t.Fatal("the frozen save committed after the next leader took the lead")
	}
	if snap, journal, err := newer.Load(ctx); err != nil || snap != nil || journal != nil {
		t.Fatalf("the next leader loads %.20q, %q, %v; want no state", snap, journal, err)
	}
}

// TestLedgerOnPostgresReplaysWithTheSameUIDsAfterTheLeaderDies: a leader
// journals uids and dies without saving; the next leader's ledger emits
// the same events with the same uids and issues new uids above them.
func TestLedgerOnPostgresReplaysWithTheSameUIDsAfterTheLeaderDies(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	first := lead(t, openPostgres(t, dbURL, "c"))
	l, err := Open(ctx, Options{Store: first, NextUID: counter()})
	if err != nil {
		t.Fatal(err)
	}
	l.Begin("Event/r", 0)
	uids := take(t, l, "Event/r", items("a", "b", "c"), true)
	l.Ack("Event/r", "a", 100)
	if err := l.Save(ctx); err != nil {
		t.Fatal(err)
	}
	uids2 := take(t, l, "Event/r", []Item{{ID: "d", Time: 200}}, true)
	// The leader dies here: nothing else is written.
	second := lead(t, openPostgres(t, dbURL, "c"))
	l2, err := Open(ctx, Options{Store: second, NextUID: func() int64 { return 1 }})
	if err != nil {
		t.Fatal(err)
	}
	if got := l2.MaxUID(); got != uids2[0] {
		t.Fatalf("MaxUID = %d, want %d", got, uids2[0])
	}
	got := take(t, l2, "Event/r", append(items("a", "b", "c"), Item{ID: "d", Time: 200}), false)
	want := []int64{0, uids[1], uids[2], uids2[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replayed uids %v, want %v", got, want)
	}
	// The old leader, resumed, is fenced off.
	if _, _, err := l.Take(ctx, "Event/r", []Item{{ID: "e", Time: 300}}, true); !errors.Is(err, ErrFenced) {
		t.Fatalf("old leader's Take = %v, want ErrFenced", err)
	}
	if err := l.Save(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("old leader's Save = %v, want ErrFenced", err)
	}
}

func TestPostgresImportRefusesToReplaceAStateUnlessForced(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	p := openPostgres(t, dbURL, "c")
	if err := p.Import(ctx, []byte(`{"version":1}`), []byte("j\n"), false); err != nil {
		t.Fatal(err)
	}
	term := lead(t, p)
	snap, journal, err := term.Load(ctx)
	if err != nil || string(snap) != `{"version":1}` || string(journal) != "j\n" {
		t.Fatalf("after import: %q, %q, %v", snap, journal, err)
	}
	err = p.Import(ctx, []byte(`{"version":1,"streams":{}}`), nil, false)
	if err == nil || !strings.Contains(err.Error(), "already has a state") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second import without force = %v, want a refusal naming --force", err)
	}
	if err := p.Import(ctx, []byte("forced"), nil, true); err != nil {
		t.Fatal(err)
	}
	if err := term.Save(ctx, []byte("leader")); !errors.Is(err, ErrFenced) {
		t.Fatalf("a leader running across a forced import: Save = %v, want ErrFenced", err)
	}
	if s, j, _ := lead(t, p).Load(ctx); string(s) != "forced" || len(j) != 0 {
		t.Fatalf("after a forced import: %q, %q", s, j)
	}
}

// TestPostgresNeedsOnlyUsageAndCreateOnItsSchema: a role with no right on
// the database but USAGE and CREATE on a schema created for it creates its
// tables and works; without the schema it fails naming the grant to make.
func TestPostgresNeedsOnlyUsageAndCreateOnItsSchema(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	admin, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	b := make([]byte, 4)
	rand.Read(b)
	role := "kcee_state_" + hex.EncodeToString(b)
	for _, stmt := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD 'pw'`,
		`REVOKE ALL ON DATABASE ` + dbName(t, dbURL) + ` FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE ` + dbName(t, dbURL) + ` TO ` + role,
		`CREATE SCHEMA kc_event_emitter`,
		`GRANT USAGE, CREATE ON SCHEMA kc_event_emitter TO ` + role,
	} {
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		admin.Exec(`DROP SCHEMA kc_event_emitter CASCADE`)
		admin.Exec(`DROP OWNED BY ` + role)
		admin.Exec(`DROP ROLE ` + role)
	})
	u, _ := url.Parse(dbURL)
	u.User = url.UserPassword(role, "pw")
	p, err := OpenPostgres(ctx, u.String(), "kc_event_emitter", "c")
	if err != nil {
		t.Fatalf("with USAGE and CREATE on the schema: %v", err)
	}
	defer p.Close()
	term := lead(t, p)
	if err := term.Append(ctx, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if err := term.Save(ctx, []byte("s")); err != nil {
		t.Fatal(err)
	}
	_, err = OpenPostgres(ctx, u.String(), "other_schema", "c")
	if err == nil || !strings.Contains(err.Error(), "GRANT USAGE, CREATE ON SCHEMA other_schema") {
		t.Fatalf("without the schema: %v, want an error naming the grant", err)
	}
}

func dbName(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func TestCheckSchemaNameAcceptsOnlyPlainIdentifiers(t *testing.T) {
	for name, ok := range map[string]bool{"kc_event_emitter": true, "a1": true, "": false, "A": false, "x;drop": false, "1a": false} {
		if err := CheckSchemaName(name); (err == nil) != ok {
			t.Errorf("CheckSchemaName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}
