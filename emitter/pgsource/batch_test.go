package pgsource

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseSnapshotAndRunning(t *testing.T) {
	s, err := ParseSnapshot("100:110:102,105")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Snapshot{Xmin: 100, Xmax: 110, Xip: []uint64{102, 105}}); !reflect.DeepEqual(s, want) {
		t.Fatalf("ParseSnapshot = %+v, want %+v", s, want)
	}
	for xid, want := range map[uint64]bool{99: false, 100: false, 102: true, 104: false, 105: true, 110: true, 200: true} {
		if got := s.Running(xid); got != want {
			t.Errorf("Running(%d) = %v, want %v", xid, got, want)
		}
	}
	for _, bad := range []string{"", "1:2", "a:2:", "1:b:", "1:2:x"} {
		if _, err := ParseSnapshot(bad); err == nil {
			t.Errorf("ParseSnapshot(%q) accepted it", bad)
		}
	}
}

// TestReadBatchReturnsWhatThePerRealmQueriesReturn reads many realms' pages
// and counts of both tables in one batch and compares each part with the
// query of one realm, filters and bounds included. (That a batch is one
// transaction is measured by the load harness's idle case.)
func TestReadBatchReturnsWhatThePerRealmQueriesReturn(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	const realms = 40
	// Up to 22 rows a realm, three at each time, most of them filtered out:
	// a page must end after Limit rows that pass the filters, whatever
	// the rows left out, and a cursor may stand between rows of one time.
	for r := range realms {
		for i := range r % 23 {
			insertEvent(t, db, fmt.Sprintf("e%02d-%02d", r, i), fmt.Sprint("r", r), int64(1000+i/3), []string{"LOGIN_ERROR", "LOGOUT", "LOGIN_ERROR", "LOGIN_ERROR", "LOGIN"}[i%5])
			insertAdmin(t, db, fmt.Sprintf("a%02d-%02d", r, i), fmt.Sprint("r", r), int64(1000+i/3), []string{"DELETE", "DELETE", "CREATE", "DELETE"}[i%4], "USER")
		}
	}
	exec(t, db, `UPDATE event_entity SET details_json = '{"k":"v"}', client_id = 'app', user_id = 'u'`)
	exec(t, db, `UPDATE admin_event_entity SET auth_user_id = 'admin', resource_path = 'users/u', representation = '{}'`)
	s := open(t, url)
	ctx := context.Background()
	b := Batch{Limit: 3, Types: Filter{Exclude: []string{"*_ERROR"}}, Operations: Filter{Include: []string{"CREATE"}}}
	for r := range realms {
		rg := Range{RealmID: fmt.Sprint("r", r), AfterTime: 1001, AfterID: fmt.Sprintf("e%02d-04", r)}
		b.EventPages = append(b.EventPages, rg)
		rg.AfterID = fmt.Sprintf("a%02d-04", r)
		b.AdminPages = append(b.AdminPages, rg)
		b.EventCounts = append(b.EventCounts, Range{RealmID: rg.RealmID, AfterTime: 1001, UntilTime: 1004})
		b.AdminCounts = append(b.AdminCounts, Range{RealmID: rg.RealmID})
	}
	res, err := s.ReadBatch(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Snapshot.Xmax == 0 {
		t.Errorf("no snapshot: %+v", res.Snapshot)
	}
	for r := range realms {
		realm := fmt.Sprint("r", r)
		evs, err := s.Events(ctx, Query{RealmID: realm, AfterTime: 1001, AfterID: fmt.Sprintf("e%02d-04", r), Limit: 3, Types: b.Types})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(res.EventPages[r], evs) && !(len(evs) == 0 && len(res.EventPages[r]) == 0) {
			t.Errorf("realm %s events:\n%+v\nwant\n%+v", realm, res.EventPages[r], evs)
		}
		ads, err := s.AdminEvents(ctx, Query{RealmID: realm, AfterTime: 1001, AfterID: fmt.Sprintf("a%02d-04", r), Limit: 3, Operations: b.Operations})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(res.AdminPages[r], ads) && !(len(ads) == 0 && len(res.AdminPages[r]) == 0) {
			t.Errorf("realm %s admin events:\n%+v\nwant\n%+v", realm, res.AdminPages[r], ads)
		}
		n, _ := s.Count(ctx, EventTable, Query{RealmID: realm, AfterTime: 1001, UntilTime: 1004, Types: b.Types})
		m, _ := s.Count(ctx, AdminEventTable, Query{RealmID: realm, Operations: b.Operations})
		if res.EventCounts[r] != n || res.AdminCounts[r] != m {
			t.Errorf("realm %s counts %d, %d; want %d, %d", realm, res.EventCounts[r], res.AdminCounts[r], n, m)
		}
	}
}

func TestReadBatchOfNothingStillReturnsTheSnapshot(t *testing.T) {
	url, _ := newDB(t, schemaVersion)
	res, err := open(t, url).ReadBatch(context.Background(), Batch{})
	if err != nil || res.Snapshot.Xmax == 0 {
		t.Fatalf("ReadBatch(empty) = %+v, %v", res, err)
	}
}

func TestReadBatchSeesAnOpenTransactionInItsSnapshot(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var xid uint64
	if err := tx.QueryRow(`INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ('late', 'r', 5, 'LOGIN') RETURNING pg_current_xact_id()::text::bigint`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	s := open(t, url)
	res, err := s.ReadBatch(context.Background(), Batch{Limit: 10, EventPages: []Range{{RealmID: "r"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.EventPages[0]) != 0 || !res.Snapshot.Running(xid) {
		t.Fatalf("open transaction %d: page %v, snapshot %+v; want nothing read and the xid running", xid, res.EventPages[0], res.Snapshot)
	}
	tx.Commit()
	res, _ = s.ReadBatch(context.Background(), Batch{Limit: 10, EventPages: []Range{{RealmID: "r"}}})
	if len(res.EventPages[0]) != 1 || res.Snapshot.Running(xid) {
		t.Fatalf("after the commit: page %v, snapshot %+v", res.EventPages[0], res.Snapshot)
	}
	if _, err := s.ReadBatch(context.Background(), Batch{EventPages: []Range{{RealmID: "r"}}}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("a batch of pages without a limit: %v", err)
	}
}

// TestReadBatchReadsOnlyEachIndexRangeAndStopsAfterEachPage is the
// batch's version of TestPageQueriesReadOnlyTheIndexRangeAndStopAfterThePage:
// every LATERAL scan must use the (realm_id, time) index and stop after its
// page, or a backlog drains in quadratic time; under a byte cap that keeps
// fewer rows than the limit, after the rows the cap can keep and one more.
func TestReadBatchReadsOnlyEachIndexRangeAndStopsAfterEachPage(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	for _, table := range []string{"event_entity", "admin_event_entity"} {
		tc := "event_time"
		if table == "admin_event_entity" {
			tc = "admin_event_time"
		}
		exec(t, db, fmt.Sprintf(`INSERT INTO %s (id, realm_id, %s) SELECT gen_random_uuid()::text, 'realm-' || (g %% 4), 1700000000000 + g / 4
			FROM generate_series(1, 100000) g`, table, tc))
		exec(t, db, "ANALYZE "+table)
	}
	s := open(t, url)
	for _, c := range []struct {
		maxBytes int64
		maxRows  float64 // read per page (Actual Rows is per loop: one loop per realm)
	}{
		{0, 5 * 500},
		{1 << 20, 5 * 500}, // a cap above what 500 rows weigh
		{100 * RowBytes, 2 * 101},
	} {
		t.Run(fmt.Sprint("maxBytes=", c.maxBytes), func(t *testing.T) {
			b := Batch{Limit: 500} // the default --pageSize
			for r := range 4 {
				rg := Range{RealmID: fmt.Sprint("realm-", r), AfterTime: 1700000000000, AfterID: "x", MaxBytes: c.maxBytes}
				b.EventPages, b.AdminPages = append(b.EventPages, rg), append(b.AdminPages, rg)
			}
			checkBatchPlan(t, s, db, b, c.maxRows)
		})
	}
}

// checkBatchPlan fails t unless b's statement scans each table twice per
// page (where the page ends, the page), on the (realm_id, time) index,
// reading at most maxRows rows each time.
func checkBatchPlan(t *testing.T, s *Source, db *sql.DB, b Batch, maxRows float64) {
	stmt, args, err := s.batchSQL(b)
	if err != nil {
		t.Fatal(err)
	}
	var plan string
	if err := db.QueryRow("EXPLAIN (ANALYZE, FORMAT JSON) "+stmt, args...).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var nodes []struct{ Plan planNode }
	if err := json.Unmarshal([]byte(plan), &nodes); err != nil {
		t.Fatal(err)
	}
	var scans []planNode
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.RelationName == "event_entity" || n.RelationName == "admin_event_entity" {
			scans = append(scans, n)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(nodes[0].Plan)
	// Per table and page: the scan that finds where the page ends, and
	// the page's own; with byte caps too, the rows a cap keeps are those
	// the page's scan read, not read again (by ctid, say).
	if len(scans) != 4 {
		t.Fatalf("%d scans of the event tables, want 4; plan:\n%s", len(scans), plan)
	}
	for _, sc := range scans {
		cond := sc.IndexCond
		if sc.NodeType == "Bitmap Heap Scan" && len(sc.Plans) > 0 {
			cond = sc.leaf().IndexCond
		}
		if !strings.Contains(cond, "realm_id") {
			t.Errorf("scan of %s does not use the (realm_id, time) index: %+v; plan:\n%s", sc.RelationName, sc, plan)
		}
		if sc.ActualRows > maxRows {
			t.Errorf("scan of %s read %v rows per page, want at most %v: it does not stop after the page; plan:\n%s", sc.RelationName, sc.ActualRows, maxRows, plan)
		}
	}
}

// TestReadBatchCutsEachPageAtItsByteCapKeepingItsFirstRow pins the byte
// caps: a page keeps the rows whose weight up to them stays within its
// range's MaxBytes, and its first row whatever it weighs (progress); a
// page cut before its limit says so; another page's cap does not touch it.
func TestReadBatchCutsEachPageAtItsByteCapKeepingItsFirstRow(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	for i := range 5 {
		insertAdmin(t, db, fmt.Sprint("big-", i), "r1", int64(1000+i), "UPDATE", "REALM")
		insertAdmin(t, db, fmt.Sprint("huge-", i), "r2", int64(1000+i), "UPDATE", "REALM")
		insertEvent(t, db, fmt.Sprint("ev-", i), "r1", int64(1000+i), "LOGIN")
	}
	insertEvent(t, db, "lone", "r2", 1000, "LOGIN")
	rep := 4 * RowBytes // an admin row weighs five event rows
	exec(t, db, fmt.Sprintf(`UPDATE admin_event_entity SET representation = repeat('x', %d) WHERE realm_id = 'r1'`, rep))
	exec(t, db, fmt.Sprintf(`UPDATE admin_event_entity SET representation = repeat('y', %d) WHERE realm_id = 'r2'`, rep))
	s := open(t, url)
	rows := func(caps ...int64) []Range {
		out := make([]Range, len(caps))
		for i, c := range caps {
			out[i] = Range{RealmID: fmt.Sprint("r", i+1), MaxBytes: c}
		}
		return out
	}
	admin := int64(RowBytes + rep) // a row of an admin page
	for _, c := range []struct {
		name                 string
		adminCaps, eventCaps []int64
		adminLen, eventLen   []int
		adminCut, eventCut   []bool
	}{
		{"no caps", []int64{0, 0}, []int64{0, 0}, []int{5, 5}, []int{5, 1}, []bool{false, false}, []bool{false, false}},
		{"caps above everything", []int64{1 << 30, 1 << 30}, []int64{1 << 30, 1 << 30}, []int{5, 5}, []int{5, 1}, []bool{false, false}, []bool{false, false}},
		{"caps of two and three admin rows", []int64{2 * admin, 3*admin + admin/2}, []int64{0, 0}, []int{2, 3}, []int{5, 1}, []bool{true, true}, []bool{false, false}},
		{"cap of two event rows, another page uncapped", []int64{0, 0}, []int64{2 * RowBytes, 0}, []int{5, 5}, []int{2, 1}, []bool{false, false}, []bool{true, false}},
		{"caps of one byte", []int64{1, 1}, []int64{1, 1}, []int{1, 1}, []int{1, 1}, []bool{true, true}, []bool{true, false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := s.ReadBatch(context.Background(), Batch{Limit: 10,
				AdminPages: rows(c.adminCaps...), EventPages: rows(c.eventCaps...), EventCounts: rows(1)})
			if err != nil {
				t.Fatal(err)
			}
			for i, page := range res.AdminPages {
				if len(page) != c.adminLen[i] || res.AdminCut[i] != c.adminCut[i] {
					t.Errorf("admin page %d: %d rows, cut %v; want %d, cut %v", i, len(page), res.AdminCut[i], c.adminLen[i], c.adminCut[i])
				}
				for j, r := range page { // in order, whole
					if want := fmt.Sprint([]string{"big-", "huge-"}[i], j); r.ID != want || len(r.Representation.String) < 1000 {
						t.Errorf("admin page %d row %d: %s with %d bytes, want %s whole", i, j, r.ID, len(r.Representation.String), want)
					}
				}
			}
			for i, page := range res.EventPages {
				if len(page) != c.eventLen[i] || res.EventCut[i] != c.eventCut[i] {
					t.Errorf("event page %d: %d rows, cut %v; want %d, cut %v", i, len(page), res.EventCut[i], c.eventLen[i], c.eventCut[i])
				}
			}
			if res.EventCounts[0] != 5 {
				t.Errorf("count %d, want 5: caps cut pages, not counts", res.EventCounts[0])
			}
		})
	}
}

// A row heavier than MaxRowBytes comes with its weight and without its
// large columns: the database never sends them.
func TestReadBatchReturnsARowAboveMaxRowBytesWithoutItsLargeColumns(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	insertAdmin(t, db, "small", "r", 1000, "UPDATE", "REALM")
	insertAdmin(t, db, "large", "r", 1001, "UPDATE", "REALM")
	exec(t, db, `UPDATE admin_event_entity SET representation = repeat('x', 5000), details_json = '{"k":"v"}' WHERE id = 'large'`)
	exec(t, db, `UPDATE admin_event_entity SET representation = 'tiny' WHERE id = 'small'`)
	s := open(t, url)
	for _, maxBytes := range []int64{0, 1 << 20} {
		res, err := s.ReadBatch(context.Background(), Batch{Limit: 10, MaxRowBytes: 4000, AdminPages: []Range{{RealmID: "r", MaxBytes: maxBytes}}})
		if err != nil {
			t.Fatal(err)
		}
		page := res.AdminPages[0]
		if len(page) != 2 || page[0].Oversize != 0 || page[0].Representation.String != "tiny" {
			t.Fatalf("budget %d: page %+v, want small whole first", maxBytes, page)
		}
		if l := page[1]; l.ID != "large" || l.Oversize != RowBytes+5000+9 || l.Representation.Valid || l.Details.Valid || l.OperationType.String != "UPDATE" {
			t.Errorf("budget %d: large row %+v, want its weight %d and no representation or details", maxBytes, l, RowBytes+5000+9)
		}
	}
}

// TestInPlaceOrderPutsRowsInTheirPlacesAndTellsACut pins readBatchRows'
// ordering of a page, whose statement does not sort: rows that come out
// of their places are put back in them, and the cut is the last row's.
func TestInPlaceOrderPutsRowsInTheirPlacesAndTellsACut(t *testing.T) {
	for _, c := range []struct {
		name   string
		page   []string
		places []place
		want   []string
		cut    bool
	}{
		{"empty", nil, nil, nil, false},
		{"in order", []string{"a", "b", "c"}, []place{{1, true}, {2, true}, {3, false}}, []string{"a", "b", "c"}, false},
		{"in order, cut", []string{"a", "b"}, []place{{1, true}, {2, true}}, []string{"a", "b"}, true},
		{"out of order", []string{"c", "a", "b"}, []place{{3, true}, {1, true}, {2, true}}, []string{"a", "b", "c"}, true},
		{"out of order, last not cut", []string{"b", "c", "a"}, []place{{2, true}, {3, false}, {1, true}}, []string{"a", "b", "c"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			page := slices.Clone(c.page)
			if cut := inPlaceOrder(page, slices.Clone(c.places)); cut != c.cut || !slices.Equal(page, c.want) {
				t.Errorf("inPlaceOrder(%v, %v) = %v, cut %v; want %v, cut %v", c.page, c.places, page, cut, c.want, c.cut)
			}
		})
	}
}
