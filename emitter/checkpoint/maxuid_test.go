package checkpoint

import (
	"testing"
	"time"
)

// TestLedgerKeepsTheUIDHighWaterMarkAfterItsEntriesArePruned: once every
// event is acknowledged and pruned from the windows, the snapshot still
// carries the largest uid issued, and a ledger opened on it reports it, so
// that the next leader (whatever its keycloakId) issues uids above it.
func TestLedgerKeepsTheUIDHighWaterMarkAfterItsEntriesArePruned(t *testing.T) {
	store := &Memory{}
	l := open(t, store, 0)
	l.Begin("Event/r", 0)
	its := items("a", "b", "c")
	uids := take(t, l, "Event/r", its, true)
	for _, it := range its {
		l.Ack("Event/r", it.ID, it.Time)
	}
	take(t, l, "Event/r", []Item{{ID: "d", Time: 10_000}}, true) // moves the cursor: a, b, c fall below the floor
	l.Ack("Event/r", "d", 10_000)
	take(t, l, "Event/r", []Item{{ID: "e", Time: 20_000}}, true)
	l.Ack("Event/r", "e", 20_000)
	if err := l.Save(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.State()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Streams["Event/r"].Window); n != 1 {
		t.Fatalf("window after pruning holds %d entries, want 1 (the one at the cursor)", n)
	}
	if st.MaxUID != 5 {
		t.Fatalf("snapshot maxUid = %d, want 5 (uids were %v then 4, 5)", st.MaxUID, uids)
	}
	again := open(t, store, 0)
	if got := again.MaxUID(); got != 5 {
		t.Fatalf("MaxUID after reopening = %d, want 5", got)
	}
}

// TestLedgerMaxUIDCountsUIDsIssuedSinceOpen: MaxUID is the high-water mark
// of the uids loaded and of those issued since.
func TestLedgerMaxUIDCountsUIDsIssuedSinceOpen(t *testing.T) {
	l := open(t, &Memory{}, time.Second)
	l.Begin("Event/r", 0)
	if got := l.MaxUID(); got != 0 {
		t.Fatalf("MaxUID of a new ledger = %d, want 0", got)
	}
	take(t, l, "Event/r", items("a", "b"), true)
	if got := l.MaxUID(); got != 2 {
		t.Fatalf("MaxUID after issuing 1 and 2 = %d, want 2", got)
	}
}

// TestSnapshotWithoutMaxUIDStillLoads: snapshots written before the field
// existed load, their high-water mark taken from the uids they hold.
func TestSnapshotWithoutMaxUIDStillLoads(t *testing.T) {
	store := &Memory{}
	if err := store.Save(ctx, []byte(`{"version":1,"streams":{"Event/r":{"cursor":{"time":5,"id":"x"},"floor":0,`+
		`"window":{"x":{"t":5,"uid":42}}}}}`)); err != nil {
		t.Fatal(err)
	}
	l := open(t, store, 0)
	if got := l.MaxUID(); got != 42 {
		t.Fatalf("MaxUID = %d, want 42", got)
	}
}
