package apisource

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

func event(id string, ms int64, user string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":%q,"time":%d,"type":"LOGIN_ERROR","realmId":"r1","clientId":"demo-app","userId":%q,"ipAddress":"127.0.0.1","error":"invalid_user_credentials","details":{"username":"alice","auth_method":"openid-connect"}}`, id, ms, user))
}

// drain pages through everything after the zero cursor with limit and
// returns the (time, id) pairs in the order received. A page shorter than
// limit must be the last one (the Pager's contract).
func drain(t *testing.T, p *Pager, limit int) []Cursor {
	t.Helper()
	var got []Cursor
	var after Cursor
	short := false
	for range 1000 {
		items, err := p.Page(context.Background(), "demo", KindEvents, after, 0, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			return got
		}
		if short {
			t.Fatalf("a page of %d after a short page: the short page said there was no more", len(items))
		}
		short = len(items) < limit
		if len(items) > limit {
			t.Fatalf("Page returned %d items, limit %d", len(items), limit)
		}
		for _, it := range items {
			c := Cursor{it.Time, it.ID}
			if !after.before(it) {
				t.Fatalf("item %v is not after cursor %v", c, after)
			}
			after = c
			got = append(got, c)
		}
	}
	t.Fatal("paging did not end")
	return nil
}

func TestPageReturnsEveryEventOnceInTimeIDOrder(t *testing.T) {
	// 7 events in one millisecond straddle every page boundary at limit 2.
	var evs []json.RawMessage
	var want []Cursor
	add := func(id string, ms int64) {
		evs = append(evs, event(id, ms, "u-"+id))
		want = append(want, Cursor{ms, id})
	}
	add("a0", 1000)
	for _, id := range []string{"m6", "m2", "m4", "m1", "m5", "m3", "m0"} {
		add(id, 2000)
	}
	add("z1", 2001)
	add("z0", 3000)
	add("y0", 3000)
	slices.SortFunc(want, func(a, b Cursor) int {
		if a.Time != b.Time {
			return int(a.Time - b.Time)
		}
		return cmpString(a.ID, b.ID)
	})
	for _, legacy := range []bool{false, true} {
		for _, limit := range []int{1, 2, 3, 100} {
			t.Run(fmt.Sprintf("legacy=%v/limit=%d", legacy, limit), func(t *testing.T) {
				srv := newEventsServer(t, legacy, evs)
				p := &Pager{Client: testClient(t, srv.URL), Sync: !legacy}
				got := drain(t, p, limit)
				if legacy {
					// Ids are synthetic: compare times and count.
					if len(got) != len(want) {
						t.Fatalf("got %d events, want %d: %v", len(got), len(want), got)
					}
					for i := range got {
						if got[i].Time != want[i].Time {
							t.Fatalf("event %d at %d, want %d", i, got[i].Time, want[i].Time)
						}
					}
					return
				}
				if !slices.Equal(got, want) {
					t.Fatalf("got  %v\nwant %v", got, want)
				}
			})
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestPageSeesEventsArrivingBetweenCallsIncludingTheCursorsMillisecond(t *testing.T) {
	srv := newEventsServer(t, false, []json.RawMessage{event("b", 5000, "u"), event("d", 6000, "u")})
	p := &Pager{Client: testClient(t, srv.URL), Sync: true}
	ctx := context.Background()
	items, err := p.Page(ctx, "demo", KindEvents, Cursor{}, 0, 1)
	if err != nil || len(items) != 1 || items[0].ID != "b" {
		t.Fatalf("first page: %v %v", items, err)
	}
	// A late commit in the cursor's millisecond with a larger id, and one with a smaller id.
	srv.add(event("c", 5000, "u"), event("a", 5000, "u"))
	items, err = p.Page(ctx, "demo", KindEvents, Cursor{5000, "b"}, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	if !slices.Equal(ids, []string{"c", "d"}) {
		t.Fatalf("got %v, want [c d] (a is before the cursor: the tailer's overlap window catches it)", ids)
	}
}

func TestPagePassesTypeFiltersToTheAPI(t *testing.T) {
	srv := newEventsServer(t, false, nil)
	p := &Pager{Client: testClient(t, srv.URL), Sync: true, Filter: Query{Types: []string{"LOGIN", "LOGOUT"}, OperationTypes: []string{"CREATE"}, ResourceTypes: []string{"USER"}}}
	ctx := context.Background()
	if _, err := p.Page(ctx, "demo", KindEvents, Cursor{Time: 42}, 0, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Page(ctx, "demo", KindAdminEvents, Cursor{Time: 42}, 0, 5); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dateFrom=42&direction=asc&max=5&type=LOGIN&type=LOGOUT",
		"dateFrom=42&direction=asc&max=5&operationTypes=CREATE&resourceTypes=USER",
	}
	if !slices.Equal(srv.requests, want) {
		t.Fatalf("requests\n%q\nwant\n%q", srv.requests, want)
	}
}

func TestPageOnLegacyServerAsksFromTheDayBeforeTheCursor(t *testing.T) {
	srv := newEventsServer(t, true, nil)
	p := &Pager{Client: testClient(t, srv.URL)}
	// 2026-03-10T00:30:00Z
	if _, err := p.Page(context.Background(), "demo", KindEvents, Cursor{Time: 1773102600000}, 0, 5); err != nil {
		t.Fatal(err)
	}
	if want := []string{"dateFrom=2026-03-09&max=1000"}; !slices.Equal(srv.requests, want) {
		t.Fatalf("requests %q, want %q", srv.requests, want)
	}
}

func TestPageFailsLoudlyWhenOneMillisecondExceedsMaxWindow(t *testing.T) {
	var evs []json.RawMessage
	for i := range 9 {
		evs = append(evs, event(fmt.Sprint("e", i), 7000, "u"))
	}
	srv := newEventsServer(t, false, evs)
	p := &Pager{Client: testClient(t, srv.URL), Sync: true, MaxWindow: 8}
	if _, err := p.Page(context.Background(), "demo", KindEvents, Cursor{}, 0, 2); err == nil {
		t.Fatal("no error for 9 events in one millisecond with MaxWindow 8")
	}
}

func TestSynthesizeIDsIsStableAndTellsIdenticalEventsApart(t *testing.T) {
	a := json.RawMessage(`{"time":1,"type":"LOGIN","details":{"b":"2","a":"1"}}`)
	aReordered := json.RawMessage(`{"details":{"a":"1","b":"2"},"type":"LOGIN","time":1}`)
	b := json.RawMessage(`{"time":1,"type":"LOGOUT"}`)
	items := []Item{{Raw: a}, {Raw: b}, {Raw: aReordered}}
	if err := SynthesizeIDs(items); err != nil {
		t.Fatal(err)
	}
	again := []Item{{Raw: aReordered}, {Raw: b}, {Raw: a}}
	SynthesizeIDs(again)
	ids := map[string]bool{}
	for i, it := range items {
		if !it.Synthetic || ids[it.ID] {
			t.Fatalf("item %d: id %q synthetic=%v (duplicate or not synthetic)", i, it.ID, it.Synthetic)
		}
		ids[it.ID] = true
	}
	for _, it := range again {
		if !ids[it.ID] {
			t.Fatalf("id %q of the same events in another order is new: ids are not stable", it.ID)
		}
	}
	kept := []Item{{Raw: json.RawMessage(`{"id":"real","time":1}`), ID: "real"}}
	SynthesizeIDs(kept)
	if kept[0].ID != "real" || kept[0].Synthetic {
		t.Fatalf("a real id was replaced: %+v", kept[0])
	}
}

func TestPageStopsAtUntilAndOldestFindsTheFirstEvent(t *testing.T) {
	evs := []json.RawMessage{event("a", 100, "u"), event("b", 200, "u"), event("c", 200, "u"), event("d", 300, "u")}
	for _, legacy := range []bool{false, true} {
		srv := newEventsServer(t, legacy, evs)
		p := &Pager{Client: testClient(t, srv.URL), Sync: !legacy}
		items, err := p.Page(context.Background(), "demo", KindEvents, Cursor{Time: 100, ID: "zzz"}, 200, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 2 || items[0].Time != 200 || items[1].Time != 200 {
			t.Fatalf("legacy=%v: got %+v, want the two events at 200", legacy, items)
		}
		oldest, ok, err := p.Oldest(context.Background(), "demo", KindEvents)
		if err != nil || ok != !legacy || (ok && oldest != 100) {
			t.Fatalf("legacy=%v: Oldest = %d, %v, %v; want 100 on the sync API, unknown on legacy", legacy, oldest, ok, err)
		}
	}
}
