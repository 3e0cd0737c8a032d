package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var ctx = context.Background()

// counter returns a NextUID handing out 1, 2, 3, ...
func counter() func() int64 {
	var n int64
	return func() int64 { n++; return n }
}

func open(t *testing.T, store Store, overlap time.Duration) *Ledger {
	t.Helper()
	l, err := Open(ctx, Options{Store: store, NextUID: counter(), Overlap: overlap})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func items(ids ...string) []Item {
	out := make([]Item, len(ids))
	for i, id := range ids {
		out[i] = Item{ID: id, Time: int64(100 + i)}
	}
	return out
}

func take(t *testing.T, l *Ledger, key string, its []Item, forward bool) []int64 {
	t.Helper()
	uids, _, err := l.Take(ctx, key, its, forward)
	if err != nil {
		t.Fatal(err)
	}
	return uids
}

func TestFileStoreSaveReplacesTheSnapshotEmptiesTheJournalAndLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	f := NewFile(filepath.Join(dir, "cp.json"))
	defer f.Close()
	if snap, journal, err := f.Load(ctx); err != nil || snap != nil || journal != nil {
		t.Fatalf("Load of nothing = %q, %q, %v; want empty", snap, journal, err)
	}
	for i, snap := range []string{"one", "two"} {
		if err := f.Append(ctx, []byte("line\n")); err != nil {
			t.Fatal(err)
		}
		if _, journal, _ := f.Load(ctx); string(journal) != "line\n" {
			t.Fatalf("journal after Append #%d = %q", i, journal)
		}
		if err := f.Save(ctx, []byte(snap)); err != nil {
			t.Fatal(err)
		}
	}
	snap, journal, err := f.Load(ctx)
	if err != nil || string(snap) != "two" || len(journal) != 0 {
		t.Fatalf("Load = %q, %q, %v; want the last snapshot and an empty journal", snap, journal, err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"cp.json", "cp.json.journal"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("directory holds %v, want %v", names, want)
	}
}

func TestFileStoreSaveIntoAMissingDirectoryFails(t *testing.T) {
	f := NewFile(filepath.Join(t.TempDir(), "no", "cp.json"))
	if err := f.Save(ctx, []byte("{}")); err == nil {
		t.Fatal("Save into a missing directory succeeded")
	}
}

func TestOpenRejectsBadStateNamingTheStoreAndTheProblem(t *testing.T) {
	cases := []struct {
		name, snap, journal, want string
	}{
		{"not json", "{", "", "parse snapshot"},
		{"other version", `{"version":99,"streams":{}}`, "", "version 99"},
		{"null stream", `{"version":1,"streams":{"Event/r":null}}`, "", `stream "Event/r" is null`},
		{"bad journal line", "", "{\"s\":\"Event/r\",\"id\":\"a\",\"t\":1,\"uid\":1}\nnot json\n", "journal line 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cp.json")
			os.WriteFile(path, []byte(c.snap), 0o600)
			os.WriteFile(JournalPath(path), []byte(c.journal), 0o600)
			_, err := Open(ctx, Options{Store: NewFile(path), NextUID: counter()})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one containing %q and the path", err, c.want)
			}
		})
	}
}

func TestDecodeJournalIgnoresOnlyATornLastLine(t *testing.T) {
	good := "{\"s\":\"Event/r\",\"id\":\"a\",\"t\":1,\"uid\":7}\n"
	got, err := DecodeJournal([]byte(good + `{"s":"Event/r","id":"b","t`))
	if err != nil || len(got) != 1 || got[0].UID != 7 {
		t.Fatalf("DecodeJournal with a torn last line = %+v, %v; want the one whole entry", got, err)
	}
	if _, err := DecodeJournal([]byte(`{"s":` + "\n" + good)); err == nil {
		t.Fatal("a bad line that is not the last was accepted")
	}
}

// TestLedgerWritesStateThatReadsBackForAnyID pins the hand-written encoders
// of the snapshot and the journal: ids with quotes, control characters,
// non-ASCII and invalid UTF-8 come back as encoding/json reads them.
func TestLedgerWritesStateThatReadsBackForAnyID(t *testing.T) {
	ids := []string{uuidOf(7), "plain-uuid", `q"uote`, `back\slash`, "tab\tnew\nline\x00", "é ü 日本", "bad\xffutf8", ""}
	for _, viaJournal := range []bool{false, true} {
		store := &Memory{}
		l := open(t, store, time.Hour)
		want := map[string]string{}
		for _, id := range ids {
			key := "Event/" + id
			l.Begin(key, 0)
			take(t, l, key, []Item{{ID: id, Time: 5}}, true)
			b, _ := json.Marshal(id)
			var back string
			json.Unmarshal(b, &back) // what encoding/json makes of the id
			want[key] = back
		}
		if !viaJournal {
			if err := l.Save(ctx); err != nil {
				t.Fatal(err)
			}
		}
		again := open(t, store, time.Hour)
		for key, id := range want {
			var k string
			b, _ := json.Marshal(key)
			json.Unmarshal(b, &k)
			if _, _, ok := again.Recovering(k); !ok {
				t.Errorf("journal=%v: stream %q not loaded", viaJournal, k)
				continue
			}
			uids := take(t, again, k, []Item{{ID: id, Time: 5}}, false)
			if uids[0] == 0 {
				t.Errorf("journal=%v: id %q of stream %q not found again", viaJournal, id, k)
			}
		}
	}
}

func TestLedgerCrashReplaysEveryUnacknowledgedEventWithItsUID(t *testing.T) {
	store := &Memory{}
	l := open(t, store, time.Hour)
	l.Begin("Event/r", 0)
	first := take(t, l, "Event/r", items("a", "b", "c"), true)
	l.Ack("Event/r", "a", 100)
	if err := l.Save(ctx); err != nil {
		t.Fatal(err)
	}
	l.Ack("Event/r", "b", 101) // acknowledged, never saved
	more := take(t, l, "Event/r", []Item{{ID: "d", Time: 200}}, true)
	// crash: no Close; a new process opens the same store
	again, err := Open(ctx, Options{Store: store, NextUID: func() int64 { return 1000 }, Overlap: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := again.MaxUID(), more[0]; got != want {
		t.Errorf("MaxUID = %d, want the journaled %d", got, want)
	}
	lo, hi, ok := again.Recovering("Event/r")
	if !ok || lo != 0 || hi != 200 {
		t.Fatalf("Recovering = %d, %d, %v; want 0..200 (the journaled row lies past the saved cursor)", lo, hi, ok)
	}
	replay := take(t, again, "Event/r", append(items("a", "b", "c"), Item{ID: "d", Time: 200}), false)
	if want := []int64{0, first[1], first[2], more[0]}; !reflect.DeepEqual(replay, want) {
		t.Fatalf("replay uids = %v, want %v (a was saved as acknowledged)", replay, want)
	}
	if lost := again.Recovered("Event/r"); len(lost) != 0 {
		t.Fatalf("Recovered reported %v lost, want none", lost)
	}
	if uids := take(t, again, "Event/r", items("a", "b", "c"), false); !reflect.DeepEqual(uids, []int64{0, 0, 0}) {
		t.Fatalf("a second read emitted %v again, want nothing", uids)
	}
}

func TestLedgerRecoveredReportsUnacknowledgedEventsNotFoundAgain(t *testing.T) {
	store := &Memory{}
	l := open(t, store, time.Hour)
	l.Begin("Event/r", 0)
	uids := take(t, l, "Event/r", items("stays", "vanished"), true)
	l.Close(ctx)
	again := open(t, store, time.Hour)
	take(t, again, "Event/r", items("stays"), false)
	lost := again.Recovered("Event/r")
	if want := []Lost{{Stream: "Event/r", ID: "vanished", Time: 101, UID: uids[1]}}; !reflect.DeepEqual(lost, want) {
		t.Fatalf("Recovered = %+v, want %+v", lost, want)
	}
	again.Save(ctx)
	st, _ := store.State()
	if e := st.Streams["Event/r"].Window["vanished"]; !e.Acked {
		t.Fatalf("vanished entry %+v still pending: it would pin the floor forever", e)
	}
}

func TestLedgerPrunesAcknowledgedEntriesBelowTheOverlapAndTheOldestPending(t *testing.T) {
	for name, idOf := range idStyles {
		t.Run(name, func(t *testing.T) {
			store := &Memory{}
			l := open(t, store, 2*time.Second)
			l.Begin("Event/r", 0)
			var its []Item
			for i := range 100 {
				its = append(its, Item{ID: idOf(i), Time: 1700000000000 + int64(i)*100})
			}
			take(t, l, "Event/r", its, true)
			for _, it := range its {
				if it.ID != its[30].ID {
					l.Ack("Event/r", it.ID, it.Time)
				}
			}
			l.Save(ctx)
			st, _ := store.State()
			s := st.Streams["Event/r"]
			if s.Floor != its[30].Time || len(s.Window) != 70 {
				t.Fatalf("floor %d with %d entries; want the pending entry's time and 70 entries", s.Floor, len(s.Window))
			}
			l.Ack("Event/r", its[30].ID, its[30].Time)
			l.Save(ctx)
			st, _ = store.State()
			s = st.Streams["Event/r"]
			if s.Floor != its[99].Time-2000 || len(s.Window) != 21 {
				t.Fatalf("floor %d with %d entries; want cursor time - overlap and the 21 entries from there", s.Floor, len(s.Window))
			}
			if uids := take(t, l, "Event/r", its[:10], false); !reflect.DeepEqual(uids, make([]int64, 10)) {
				t.Fatalf("rows below the floor emitted again: %v", uids)
			}
		})
	}
}

func TestLedgerTakeRecordsNothingWhenTheJournalFails(t *testing.T) {
	store := &Memory{}
	l := open(t, store, time.Hour)
	l.Begin("Event/r", 0)
	store.Fail = func(op string) error {
		if op == "append" {
			return errors.New("disk full")
		}
		return nil
	}
	if _, _, err := l.Take(ctx, "Event/r", items("a"), true); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Take = %v, want the journal's error", err)
	}
	if c := l.Cursor("Event/r"); c != (Cursor{}) {
		t.Fatalf("cursor moved to %+v after a failed Take", c)
	}
	store.Fail = nil
	uids := take(t, l, "Event/r", items("a"), true)
	again := open(t, store, time.Hour)
	if got := take(t, again, "Event/r", items("a"), false); got[0] != uids[0] {
		t.Fatalf("after the retry the journal holds uid %d, want %d", got[0], uids[0])
	}
}

func TestLedgerSaveIfDueWaitsForTheIntervalAndAChange(t *testing.T) {
	now := time.Unix(1000, 0)
	store := &Memory{}
	l, _ := Open(ctx, Options{Store: store, NextUID: counter(), SaveInterval: time.Second, Now: func() time.Time { return now }})
	l.Begin("Event/r", 0)
	steps := []struct {
		advance time.Duration
		change  bool
		saves   uint64
	}{
		{0, false, 1},                     // the new stream is a change, and nothing was saved yet
		{500 * time.Millisecond, true, 1}, // too soon
		{600 * time.Millisecond, false, 2},
		{2 * time.Second, false, 2}, // nothing changed
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if s.change {
			take(t, l, "Event/r", []Item{{ID: string(rune('a' + i)), Time: int64(i)}}, true)
		}
		if err := l.SaveIfDue(ctx); err != nil {
			t.Fatal(err)
		}
		if got := l.Saves(); got != s.saves {
			t.Fatalf("step %d: %d saves, want %d", i, got, s.saves)
		}
	}
}

func TestLedgerUnemitMovesTheCursorBackSoTheNextForwardReadReplays(t *testing.T) {
	l := open(t, nil, time.Hour)
	l.Begin("Event/r", 0)
	its := items("a", "b", "c")
	uids := take(t, l, "Event/r", its, true)
	l.Unemit("Event/r", its[1:])
	if c := l.Cursor("Event/r"); c != (Cursor{Time: its[1].Time}) {
		t.Fatalf("cursor %+v, want just before b", c)
	}
	if got := take(t, l, "Event/r", its[1:], true); !reflect.DeepEqual(got, uids[1:]) {
		t.Fatalf("forward read after Unemit = %v, want b and c again with %v", got, uids[1:])
	}
}

// TestLedgerDoesNotTakeAForwardPageReadAfterACursorMovedBackSince pins
// Page.After: a page read while Unemit moved the cursor back would move it
// past the rows let go, which would never be read again.
func TestLedgerDoesNotTakeAForwardPageReadAfterACursorMovedBackSince(t *testing.T) {
	l := open(t, nil, time.Hour)
	l.Begin("Event/r", 0)
	its := items("a", "b", "c", "d", "e")
	uids := take(t, l, "Event/r", its[:3], true)
	read := l.Cursor("Event/r") // the next page, d and e, is read after c
	l.Unemit("Event/r", its[1:3])
	got, _, err := l.TakeAfter(ctx, "Event/r", its[3:], read)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int64{0, 0}) || l.Cursor("Event/r") != (Cursor{Time: its[1].Time}) {
		t.Fatalf("stale page: uids %v, cursor %+v; want none taken and the cursor just before b", got, l.Cursor("Event/r"))
	}
	again, _, err := l.TakeAfter(ctx, "Event/r", its[1:], l.Cursor("Event/r"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again[:2], uids[1:3]) || again[2] == 0 || again[3] == 0 || l.Cursor("Event/r") != (Cursor{Time: its[4].Time, ID: "e"}) {
		t.Fatalf("read again from the cursor: uids %v (b and c had %v), cursor %+v; want b and c with their uids, then d and e", again, uids[1:3], l.Cursor("Event/r"))
	}
}

func TestLedgerHoldKeepsTheWindowAndTheRescanRangeOpenBehindIt(t *testing.T) {
	for name, idOf := range idStyles {
		t.Run(name, func(t *testing.T) {
			store := &Memory{}
			l := open(t, store, time.Second)
			l.Begin("Event/r", 0)
			var its []Item
			for i := range 60 {
				its = append(its, Item{ID: idOf(i), Time: 100000 + int64(i)*1000}) // one a second
			}
			take(t, l, "Event/r", its, true)
			for _, it := range its {
				l.Ack("Event/r", it.ID, it.Time)
			}
			l.SetHold(120000) // a transaction open since t=120 s may still commit
			if lo, hi := l.RescanRange("Event/r"); lo != 119000 || hi != 159000 {
				t.Fatalf("RescanRange with a hold = %d..%d, want 119000..159000", lo, hi)
			}
			l.Save(ctx)
			st, _ := store.State()
			if s := st.Streams["Event/r"]; s.Floor != 119000 || len(s.Window) != 41 {
				t.Fatalf("floor %d with %d entries, want the hold minus the overlap and the 41 entries from there", s.Floor, len(s.Window))
			}
			l.SetHold(0)
			l.Save(ctx)
			st, _ = store.State()
			if s := st.Streams["Event/r"]; s.Floor != 158000 || len(s.Window) != 2 {
				t.Fatalf("without the hold: floor %d with %d entries, want 158000 and 2", s.Floor, len(s.Window))
			}
		})
	}
}

func TestLedgerTrailMakesARowThatAppearsBelowTheFloorWithinTheHorizonNewAndKnownRowsDone(t *testing.T) {
	for name, idOf := range idStyles {
		t.Run(name, func(t *testing.T) {
			l, err := Open(ctx, Options{NextUID: counter(), Overlap: time.Second, Horizon: time.Minute, PastHorizon: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			l.Begin("Event/r", 0)
			var its []Item
			for i := range 100 { // one a second, from 100 s on
				its = append(its, Item{ID: idOf(i), Time: 100000 + int64(i)*1000})
			}
			take(t, l, "Event/r", its, true)
			for _, it := range its {
				l.Ack("Event/r", it.ID, it.Time)
			}
			l.Save(ctx) // prunes: the floor is at 198 s, the trail covers the minute before
			lo, hi, known, ok := l.Audit("Event/r")
			if !ok || lo != 139000 || hi != 197999 || known != 59 {
				t.Fatalf("Audit = %d..%d with %d known, %v; want 139000..197999 with 59", lo, hi, known, ok)
			}
			skewed := Item{ID: idOf(1000), Time: 150500} // stamped 48 s behind the cursor by a slow clock
			uids := take(t, l, "Event/r", append([]Item{its[50]}, skewed), false)
			if uids[0] != 0 || uids[1] == 0 {
				t.Fatalf("re-read of the trail = %v; want the known row done and the skewed one new", uids)
			}
			if again := take(t, l, "Event/r", []Item{skewed}, false); again[0] != 0 {
				t.Fatal("the skewed row was emitted twice")
			}
			if uids := take(t, l, "Event/r", []Item{{ID: idOf(1001), Time: 120000}}, false); uids[0] != 0 {
				t.Fatal("a row beyond the horizon was emitted: the trail does not reach there")
			}
			past := l.Past("Event/r")
			if want := []Minute{{From: 60000, To: 119999, Known: 20}, {From: 120000, To: 138999, Known: 19}}; !reflect.DeepEqual(past, want) {
				t.Fatalf("Past = %+v, want %+v: the rows that left the trail, per minute", past, want)
			}
			if n := l.Missed("Event/r", 120000, 20); n != 1 {
				t.Fatalf("Missed with one row more than read = %d, want 1", n)
			}
			if n := l.Missed("Event/r", 120000, 20); n != 0 {
				t.Fatalf("the same missed row was reported again: %d", n)
			}
		})
	}
}

func TestLedgerTakePagesJournalsEveryPageInOneAppendAndRecordsNothingWhenItFails(t *testing.T) {
	store := &Memory{}
	l := open(t, store, time.Hour)
	l.Begin("Event/r", 0)
	l.Begin("AdminEvent/r", 0)
	appends := 0
	fail := true
	store.Fail = func(op string) error {
		if op != "append" {
			return nil
		}
		appends++
		if fail {
			return errors.New("disk full")
		}
		return nil
	}
	pages := []Page{
		{Key: "Event/r", Items: items("a", "b"), Forward: true},
		{Key: "AdminEvent/r", Items: items("x"), Forward: true},
	}
	if _, err := l.TakePages(ctx, pages); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("TakePages = %v, want the journal's error", err)
	}
	for _, key := range []string{"Event/r", "AdminEvent/r"} {
		if c := l.Cursor(key); c != (Cursor{}) {
			t.Fatalf("cursor of %s moved to %+v after a failed TakePages", key, c)
		}
	}
	fail, appends = false, 0
	taken, err := l.TakePages(ctx, pages)
	if err != nil {
		t.Fatal(err)
	}
	if appends != 1 {
		t.Fatalf("two pages journaled in %d appends, want 1", appends)
	}
	if len(taken) != 2 || len(taken[0].UIDs) != 2 || len(taken[1].UIDs) != 1 || taken[0].UIDs[0] == 0 || taken[1].UIDs[0] == 0 {
		t.Fatalf("taken %+v, want a uid for each of a, b and x", taken)
	}
	again := open(t, store, time.Hour)
	if got := take(t, again, "AdminEvent/r", items("x"), false); got[0] != taken[1].UIDs[0] {
		t.Fatalf("after a restart the journal gives x uid %d, want %d", got[0], taken[1].UIDs[0])
	}
}

// idStyles are the two kinds of event id the window keeps apart: Keycloak's
// UUIDs, and any other string.
var idStyles = map[string]func(int) string{
	"uuid":  uuidOf,
	"other": func(n int) string { return fmt.Sprintf("e%03d", n) },
}
