package checkpoint

import (
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"
)

func TestParseUUIDTakesOnlyTheCanonicalFormThatFormatsBackTheSame(t *testing.T) {
	for _, tc := range []struct {
		id   string
		uuid bool
	}{
		{"0b8f7d0e-3c1a-4f5e-9d2b-7a6c5e4f3d21", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", true},
		{"0B8F7D0E-3C1A-4F5E-9D2B-7A6C5E4F3D21", false}, // upper case would not format back
		{"0b8f7d0e3c1a4f5e9d2b7a6c5e4f3d21", false},
		{"0b8f7d0e-3c1a-4f5e-9d2b-7a6c5e4f3d2", false},
		{"0b8f7d0e-3c1a-4f5e-9d2b-7a6c5e4f3d2g", false},
		{"0b8f7d0e-3c1a-4f5e-9d2b+7a6c5e4f3d21", false},
		{"e030", false},
		{"", false},
	} {
		u, ok := parseUUID(tc.id)
		if ok != tc.uuid {
			t.Errorf("parseUUID(%q) ok = %v, want %v", tc.id, ok, tc.uuid)
			continue
		}
		if ok && u.String() != tc.id {
			t.Errorf("parseUUID(%q) formats back as %q", tc.id, u.String())
		}
	}
}

// uuidOf returns a canonical UUID for n.
// found is find's entry and whether the window holds it.
func found(e *entry, at place) (*entry, bool) { return e, at.found }

func uuidOf(n int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n*7919)
}

func TestWindowFindsCountsUpdatesAndPrunesUUIDAndOtherIDsAlike(t *testing.T) {
	for name, id := range map[string]func(int) string{
		"uuid":  uuidOf,
		"other": func(n int) string { return fmt.Sprintf("event-%d", n) },
	} {
		t.Run(name, func(t *testing.T) {
			var w window
			for _, n := range []int{0, 1, 2, 3, 5, 4} { // 4 arrives late
				w.set(id(n), entry{time: int64(100 + n/2), uid: int64(n + 1)})
			}
			if w.len() != 6 {
				t.Fatalf("len %d, want 6", w.len())
			}
			for n := range 6 {
				e, ok := found(w.find(id(n), int64(100+n/2)))
				if !ok || e.uid != int64(n+1) {
					t.Fatalf("find(%s) = %+v, %v; want uid %d", id(n), e, ok, n+1)
				}
			}
			if _, ok := found(w.find(id(9), 104)); ok {
				t.Fatal("found an id never set")
			}
			if got := w.count(101, 102); got != 4 {
				t.Fatalf("count(101, 102) = %d, want 4", got)
			}
			for n := range 4 {
				if !w.update(id(n), int64(100+n/2), func(e *entry) { e.acked = true }) {
					t.Fatalf("update(%s) found nothing", id(n))
				}
			}
			if got := w.oldestPending(1 << 40); got != 102 {
				t.Fatalf("oldest pending %d, want 102", got)
			}
			var gone []trailKey
			w.prune(102, func(k trailKey) { gone = append(gone, k) })
			if w.len() != 2 || len(gone) != 4 {
				t.Fatalf("after prune: %d entries, %d gone; want 2 and 4", w.len(), len(gone))
			}
			if !slices.ContainsFunc(gone, func(k trailKey) bool { return k.hash == idHash(id(0)) }) {
				t.Fatalf("the trail keys %v do not carry idHash of %s", gone, id(0))
			}
			w.remove(id(4), 102)
			if _, ok := found(w.find(id(4), 102)); ok || w.len() != 1 {
				t.Fatalf("remove left %s (len %d)", id(4), w.len())
			}
		})
	}
}

func TestLedgerSnapshotOfUUIDAndOtherIDsLoadsBackTheSameAndOldStateFilesLoad(t *testing.T) {
	// A snapshot as the ledger wrote it before its windows were compact:
	// ids as JSON keys, in no order.
	old := `{"version":1,"maxUid":9,"streams":{"Event/r":{"cursor":{"time":300,"id":"` + uuidOf(3) + `"},"floor":100,"window":{` +
		`"` + uuidOf(3) + `":{"t":300,"uid":3},"legacy-id":{"t":200,"uid":2,"acked":true},"` + uuidOf(1) + `":{"t":100,"uid":1,"acked":true}}}}}`
	store := &Memory{}
	if err := store.Save(ctx, []byte(old)); err != nil {
		t.Fatal(err)
	}
	l := open(t, store, time.Hour)
	if lo, hi, ok := l.Recovering("Event/r"); !ok || lo != 100 || hi != 300 {
		t.Fatalf("Recovering = %d, %d, %v; want 100, 300, true", lo, hi, ok)
	}
	uids := take(t, l, "Event/r", []Item{{ID: uuidOf(1), Time: 100}, {ID: "legacy-id", Time: 200}, {ID: uuidOf(3), Time: 300}}, false)
	if !reflect.DeepEqual(uids, []int64{0, 0, 3}) {
		t.Fatalf("uids after loading the old file %v, want [0 0 3] (only the unacknowledged one replays)", uids)
	}
	if err := l.Save(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.State()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Entry{uuidOf(3): {Time: 300, UID: 3}, "legacy-id": {Time: 200, UID: 2, Acked: true}, uuidOf(1): {Time: 100, UID: 1, Acked: true}}
	if got := st.Streams["Event/r"].Window; !reflect.DeepEqual(got, want) {
		t.Fatalf("saved window %v, want %v", got, want)
	}
}

func TestWindowKeepsEntriesAppendedOutOfOrderSorted(t *testing.T) {
	var w window
	for _, n := range []int{5, 1, 9, 3, 7, 2, 8} {
		w.set(uuidOf(n), entry{time: int64(n % 3), uid: int64(n)})
	}
	if !slices.IsSortedFunc(w.es, func(a, b entry) int { return cmpEntry(a, b.time, b.id) }) {
		t.Fatalf("entries not sorted by (time, id): %v", w.es)
	}
}

// BenchmarkWindowBytesPerEvent reports the heap a window of 100,000
// events with UUID ids takes per event (docs/benchmarks.md states it).
func BenchmarkWindowBytesPerEvent(b *testing.B) {
	const n = 100_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuidOf(i)
	}
	var per float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var w window
		for i, id := range ids {
			w.set(id, entry{time: int64(i / 10), uid: int64(i + 1)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(w)
	}
	b.ReportMetric(per, "bytes/event")
}

func TestLedgerOnAFileStreamsASnapshotLargerThanItsBufferAndLoadsItBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	store := NewFile(path)
	l := open(t, store, time.Hour)
	l.Begin("Event/r", 0)
	var its []Item
	for i := range 5000 { // about 75 bytes each: several chunks
		its = append(its, Item{ID: uuidOf(i), Time: int64(1000 + i/3)})
	}
	its = append(its, Item{ID: "not-a-uuid", Time: 3000})
	uids := take(t, l, "Event/r", its, true)
	for _, it := range its[:100] {
		l.Ack("Event/r", it.ID, it.Time)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	w := st.Streams["Event/r"].Window
	if len(w) != len(its) {
		t.Fatalf("the file holds %d entries, want %d", len(w), len(its))
	}
	for i, it := range its {
		if e := w[it.ID]; e.UID != uids[i] || e.Time != it.Time || e.Acked != (i < 100) {
			t.Fatalf("entry of %s = %+v, want uid %d, time %d, acked %v", it.ID, e, uids[i], it.Time, i < 100)
		}
	}
	again := open(t, NewFile(path), time.Hour)
	if got := take(t, again, "Event/r", its, false); !reflect.DeepEqual(got[100:], uids[100:]) || !slices.Equal(got[:100], make([]int64, 100)) {
		t.Fatal("after loading the streamed file the replay differs from the uids issued")
	}
}

// TestWindowFindsEachEntryInAnyOrderOfLookups pins search's guess (the
// entry after the last one found): lookups in order, backwards, by
// strides, after entries were pruned in front of the guess and inserted
// behind it, each find the entry of their own id and time and no other.
func TestWindowFindsEachEntryInAnyOrderOfLookups(t *testing.T) {
	var w window
	for n := range 200 {
		if n%10 != 5 { // the fives arrive late
			w.set(uuidOf(n), entry{time: int64(n / 3), uid: int64(n + 1)})
		}
	}
	check := func(name string, order []int) {
		t.Helper()
		for _, n := range order {
			e, ok := found(w.find(uuidOf(n), int64(n/3)))
			if want := n%10 != 5 || w.len() == 200; ok != want || (ok && e.uid != int64(n+1)) {
				t.Fatalf("%s: find(%d) = %+v, %v; want uid %d, %v", name, n, e, ok, n+1, want)
			}
			if _, ok := found(w.find(uuidOf(n), int64(n/3)+1000)); ok {
				t.Fatalf("%s: find(%d) at another time found an entry", name, n)
			}
		}
	}
	var forward, backward, strides []int
	for n := range 200 {
		forward, backward, strides = append(forward, n), append(backward, 199-n), append(strides, (n*37)%200)
	}
	check("forward", forward)
	check("backward", backward)
	check("strides", strides)
	for n := 5; n < 200; n += 10 {
		w.set(uuidOf(n), entry{time: int64(n / 3), uid: int64(n + 1)})
	}
	check("after late entries", forward)
	for _, n := range forward { // acknowledged in order; pruned only then
		if !w.update(uuidOf(n), int64(n/3), func(e *entry) { e.acked = true }) {
			t.Fatalf("update(%d) found no entry", n)
		}
	}
	w.prune(30, func(trailKey) {})
	for _, n := range forward {
		_, ok := found(w.find(uuidOf(n), int64(n/3)))
		if ok != (n/3 >= 30) {
			t.Fatalf("after pruning below 30: find(%d) = %v", n, ok)
		}
	}
}

// BenchmarkWindowAcknowledgeInOrder acknowledges a stream's window of
// 50,000 entries in the order they were read, as the delivery does.
func BenchmarkWindowAcknowledgeInOrder(b *testing.B) {
	const n = 50_000
	var w window
	ids := make([]string, n)
	for i := range n {
		ids[i] = uuidOf(i)
		w.set(ids[i], entry{time: int64(i / 4), uid: int64(i + 1)})
	}
	i := 0
	for b.Loop() {
		w.update(ids[i], int64(i/4), func(e *entry) { e.acked = true })
		if i++; i == n {
			i = 0
		}
	}
}

// BenchmarkLedgerTakesAndAcknowledgesPages gives uids to pages of 500 new
// events of one stream, read forward, acknowledges each event and saves
// (pruning the window), as a drain does: its time per event is the
// ledger's share of a drain's CPU.
func BenchmarkLedgerTakesAndAcknowledgesPages(b *testing.B) {
	const pageRows = 500
	l, err := Open(ctx, Options{NextUID: counter()})
	if err != nil {
		b.Fatal(err)
	}
	l.Begin("Event/r", 0)
	pages := []Page{{Key: "Event/r", Forward: true, Items: make([]Item, pageRows)}}
	ids := make([]string, 4*pageRows+1) // not a multiple of pageRows: each page's ids differ
	for i := range ids {
		ids[i] = uuidOf(i)
	}
	n := 0
	for b.Loop() {
		for i := range pages[0].Items {
			pages[0].Items[i] = Item{ID: ids[n%len(ids)], Time: int64(n / 4)}
			n++
		}
		taken, err := l.TakePages(ctx, pages)
		if err != nil || taken[0].UIDs[pageRows-1] == 0 {
			b.Fatalf("TakePages = %v, %v: want a uid for every item", taken, err)
		}
		for _, it := range pages[0].Items {
			l.Ack("Event/r", it.ID, it.Time)
		}
		if err := l.Save(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}
