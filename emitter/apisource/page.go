package apisource

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// Kind selects user events or admin events.
type Kind int

// The two kinds of events the API lists.
const (
	KindEvents Kind = iota
	KindAdminEvents
)

// String returns "events" or "admin-events", the kind's path segment.
func (k Kind) String() string {
	if k == KindAdminEvents {
		return "admin-events"
	}
	return "events"
}

// Cursor is a position in one realm's events of one kind: the time and id
// of the last event taken. The zero Cursor is before every event.
type Cursor struct {
	Time int64
	ID   string
}

// before reports whether c comes before it in (time, id) order.
func (c Cursor) before(it Item) bool {
	return it.Time > c.Time || it.Time == c.Time && it.ID > c.ID
}

// Pager reads the events after a cursor in ascending (time, id) order,
// without gaps or repeats, on both generations of the events API.
type Pager struct {
	Client *Client
	// Sync tells that the server has the sync API (Keycloak >= 26.2, see
	// Client.SupportsSync).
	Sync bool
	// Filter holds the type filters passed to the API (Types for user
	// events; OperationTypes and ResourceTypes for admin events); its other
	// fields are ignored.
	Filter Query
	// MaxWindow bounds how many events one request may return while a
	// Page gathers every event of one millisecond (Sync) or every event
	// newer than the cursor (older servers); 100,000 when zero.
	MaxWindow int
}

func (p *Pager) fetch(ctx context.Context, realm string, kind Kind, q Query) ([]Item, error) {
	if kind == KindAdminEvents {
		q.OperationTypes, q.ResourceTypes = p.Filter.OperationTypes, p.Filter.ResourceTypes
		return p.Client.AdminEvents(ctx, realm, q)
	}
	q.Types = p.Filter.Types
	return p.Client.Events(ctx, realm, q)
}

func (p *Pager) maxWindow() int {
	if p.MaxWindow > 0 {
		return p.MaxWindow
	}
	return 100_000
}

// Page returns up to limit events of kind in realm with (time, id) after
// the cursor and, when until is not 0, time <= until, ascending by
// (time, id).
//
// With Sync it asks for dateFrom=after.Time, direction=asc, first=0,
// max=limit. Keycloak orders by time alone, so the events of one
// millisecond may come in any order and a full page may end in the middle
// of a millisecond: the events of the page's last millisecond are then
// fetched whole (dateFrom=dateTo=that ms) and sorted by id; when events
// at or before the cursor leave the page short of limit, it reads on from
// the next millisecond, so a page shorter than limit always means there is
// no more now. Offset paging is never used across requests, so events that
// arrive meanwhile cannot shift a page.
//
// Without Sync (servers before 26.2: newest first, day precision, no id)
// it reads, in one request, every event from now back to before the
// cursor (growing max until the oldest event returned is older than the
// cursor; paging with first would shift as new events arrive), gives each
// a synthetic id (SynthesizeIDs), and reverses.
func (p *Pager) Page(ctx context.Context, realm string, kind Kind, after Cursor, until int64, limit int) ([]Item, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("page of %s of realm %q: limit %d, want > 0", kind, realm, limit)
	}
	var out []Item
	var err error
	if p.Sync {
		out, err = p.pageAsc(ctx, realm, kind, after, until, limit)
	} else {
		out, err = p.pageLegacy(ctx, realm, kind, after)
		if until != 0 {
			out = slices.DeleteFunc(out, func(it Item) bool { return it.Time > until })
		}
	}
	if err != nil {
		return nil, fmt.Errorf("page of %s of realm %q after (%d, %q): %w", kind, realm, after.Time, after.ID, err)
	}
	slices.SortStableFunc(out, func(a, b Item) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.ID, b.ID))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (p *Pager) pageAsc(ctx context.Context, realm string, kind Kind, after Cursor, until int64, limit int) ([]Item, error) {
	from := after.Time
	to := ""
	if until != 0 {
		if until < from {
			return nil, nil
		}
		to = Millis(until)
	}
	var out []Item
	for {
		page, err := p.fetch(ctx, realm, kind, Query{DateFrom: Millis(from), DateTo: to, Direction: "asc", Max: limit})
		if err != nil {
			return nil, err
		}
		for i, it := range page {
			if it.ID == "" {
				return nil, fmt.Errorf("event %d (time %d) has no id: the server lacks the sync API of Keycloak 26.2", i, it.Time)
			}
		}
		if len(page) < limit {
			return append(out, keepAfter(page, after)...), nil
		}
		// A full page holds every event from `from` up to its last
		// millisecond, of which it may hold only some: fetch that one whole.
		last := page[len(page)-1].Time
		for _, it := range page {
			if it.Time < last && after.before(it) {
				out = append(out, it)
			}
		}
		whole, err := p.millisecond(ctx, realm, kind, last, 2*limit)
		if err != nil {
			return nil, err
		}
		out = append(out, keepAfter(whole, after)...)
		// Events at or before the cursor took room in the page: a page
		// shorter than limit would tell the caller there is no more, so
		// read on after the last millisecond.
		if len(out) >= limit {
			return out, nil
		}
		from = last + 1
		if until != 0 && from > until {
			return out, nil
		}
	}
}

// Oldest returns the time of the oldest stored event of kind in realm,
// and false when there is none. Servers before 26.2 list newest first
// only, so there it reports false without asking.
func (p *Pager) Oldest(ctx context.Context, realm string, kind Kind) (int64, bool, error) {
	if !p.Sync {
		return 0, false, nil
	}
	items, err := p.fetch(ctx, realm, kind, Query{Direction: "asc", Max: 1})
	if err != nil {
		return 0, false, fmt.Errorf("oldest of %s of realm %q: %w", kind, realm, err)
	}
	if len(items) == 0 {
		return 0, false, nil
	}
	return items[0].Time, true, nil
}

// millisecond returns every event of one millisecond, growing max until
// a response is not full.
func (p *Pager) millisecond(ctx context.Context, realm string, kind Kind, ms int64, max int) ([]Item, error) {
	for {
		items, err := p.fetch(ctx, realm, kind, Query{DateFrom: Millis(ms), DateTo: Millis(ms), Direction: "asc", Max: max})
		if err != nil {
			return nil, err
		}
		if len(items) < max {
			return items, nil
		}
		if max >= p.maxWindow() {
			return nil, fmt.Errorf("more than %d events in millisecond %d", max, ms)
		}
		max = min(2*max, p.maxWindow())
	}
}

// dayMillis is one day; older servers parse dateFrom in their own time
// zone, so the tailer asks from the day before the cursor's (UTC) day.
const dayMillis = 24 * 60 * 60 * 1000

func (p *Pager) pageLegacy(ctx context.Context, realm string, kind Kind, after Cursor) ([]Item, error) {
	q := Query{Max: 1000}
	if after != (Cursor{}) {
		q.DateFrom = Day(max(after.Time-dayMillis, 0), nil)
	}
	for {
		items, err := p.fetch(ctx, realm, kind, q)
		if err != nil {
			return nil, err
		}
		// Newest first: once the oldest returned event is older than the
		// cursor, every event at or after it is in this one response.
		if len(items) < q.Max || items[len(items)-1].Time < after.Time {
			if err := SynthesizeIDs(items); err != nil {
				return nil, err
			}
			return keepAfter(items, after), nil
		}
		if q.Max >= p.maxWindow() {
			return nil, fmt.Errorf("more than %d events newer than the cursor; a server before Keycloak 26.2 cannot page them without gaps", q.Max)
		}
		q.Max = min(2*q.Max, p.maxWindow())
	}
}

func keepAfter(items []Item, after Cursor) []Item {
	var out []Item
	for _, it := range items {
		if after.before(it) {
			out = append(out, it)
		}
	}
	return out
}

// SynthesizeIDs gives every item without an id (servers before Keycloak
// 26.2) a dedupe key: "syn-" and the SHA-256 (first 16 bytes, hex) of the
// event's JSON with its keys sorted, then "-" and the occurrence number
// among the items with the same content (identical events in one
// millisecond are possible, e.g. two failed logins). The key is stable as
// long as every event of the millisecond is in items. It is NOT Keycloak's
// event id, and receivers see it as the event's id.
func SynthesizeIDs(items []Item) error {
	seen := map[string]int{}
	for i := range items {
		if items[i].ID != "" {
			continue
		}
		var v any
		if err := json.Unmarshal(items[i].Raw, &v); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		canon, err := json.Marshal(v) // map keys come out sorted
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		sum := sha256.Sum256(canon)
		h := hex.EncodeToString(sum[:16])
		n := seen[h]
		seen[h] = n + 1
		items[i].ID = "syn-" + h + "-" + strconv.Itoa(n)
		items[i].Synthetic = true
	}
	return nil
}
