package emitter

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/pgsource"
)

// malformedDetailsKey is the detail key under which an event whose stored
// details are not a JSON object carries the stored text as is.
const malformedDetailsKey = "details_raw"

// dbSource is the source of Keycloak's database: it reads pages with
// pgsource (the filters pushed into the query) and turns rows into Records.
// It is safe for concurrent use.
type dbSource struct {
	src     *pgsource.Source
	filters Filters
	log     *slog.Logger
	// pageBytes is the byte budget the pages of one read share (see
	// shares); 0 is none.
	pageBytes int64
	// lastRows is how many rows each stream's page held at its last
	// batched read: what the budget's shares follow.
	sharesMu sync.Mutex
	lastRows map[string]int // by streamKey
	// maxRowBytes is the most a row may weigh to be read; a heavier row is
	// an unreadable record (oversizeError) with only its small columns.
	maxRowBytes int64
	malformed   atomic.Uint64
	// unreachable, when set, publishes the counts of rows no read reaches
	// (by kind and reason); they are counted with the realm list, at most
	// every unreachableInterval.
	unreachable *prometheus.GaugeVec
	checkMu     sync.Mutex
	checkedAt   time.Time
	reported    map[pgsource.Unreachable]bool // logged; Rows part of the key
}

// unreachableInterval is the least time between two counts of the rows no
// read reaches.
const unreachableInterval = 5 * time.Minute

func newDBSource(src *pgsource.Source, filters Filters, log *slog.Logger) *dbSource {
	return &dbSource{src: src, filters: filters, log: log}
}

// withBudgets sets the byte budget of a read's pages and the most a row
// may weigh to be read (0: no bound), and returns p.
func (p *dbSource) withBudgets(pageBytes, maxRowBytes int64) *dbSource {
	p.pageBytes, p.maxRowBytes = pageBytes, maxRowBytes
	return p
}

// oversizeError is why a row heavier than the most a row may weigh is not
// read.
type oversizeError struct{ weight, max int64 }

func (e oversizeError) Error() string {
	return fmt.Sprintf("the stored event weighs %d bytes (details, representation), above --maxEventBytes %d: not read", e.weight, e.max)
}

// unreadableReason is the reason label of an unreadable record's error.
func unreadableReason(err error) string {
	if _, ok := errors.AsType[oversizeError](err); ok {
		return "too_large"
	}
	return "encoding"
}

// oversized marks rec, read without its large columns, as unreadable when
// the row weighs weight bytes (0: it was read whole), and logs it.
func (p *dbSource) oversized(r realm, rec Record, weight int64) Record {
	if weight <= 0 {
		return rec
	}
	rec.unreadable = oversizeError{weight: weight, max: p.maxRowBytes}
	p.log.Error("a stored event is too large to be read: it is dead-lettered with its size and skipped",
		"kind", rec.Kind(), "realm", r.Name, "realm_id", rec.RealmID(), "id", rec.ID(),
		"time", time.UnixMilli(rec.Time()).UTC().Format(time.RFC3339Nano), "bytes", weight, "max", p.maxRowBytes)
	return rec
}

func (p *dbSource) realms(ctx context.Context) ([]realm, error) {
	rs, err := p.src.Realms(ctx)
	if err != nil {
		return nil, err
	}
	p.checkUnreachable(ctx)
	out := make([]realm, len(rs))
	for i, r := range rs {
		out[i] = realm(r)
	}
	return out, nil
}

// checkUnreachable counts the rows no page selects when it is due: rows of
// a realm id with no realm row (Keycloak deletes a realm's events with it:
// these are what a failed or manual deletion left), rows with a NULL time
// (outside every (time, id) order) and rows with a NULL realm id. They are
// not delivered: each count is logged at ERROR when it changes, with the
// realm id, and published by kind and reason. A failed count is logged and
// tried again at the next listing.
func (p *dbSource) checkUnreachable(ctx context.Context) {
	p.checkMu.Lock()
	defer p.checkMu.Unlock()
	if !p.checkedAt.IsZero() && time.Since(p.checkedAt) < unreachableInterval {
		return
	}
	found, err := p.src.Unreachable(ctx)
	if err != nil {
		p.log.Warn("counting the rows no read reaches failed; trying again at the next realm listing", "error", err)
		return
	}
	p.checkedAt = time.Now()
	reported := map[pgsource.Unreachable]bool{}
	sums := map[[2]string]int{}
	for _, u := range found {
		kind := KindEvent
		if u.Table == pgsource.AdminEventTable {
			kind = KindAdminEvent
		}
		sums[[2]string{string(kind), u.Reason}] += u.Rows
		reported[u] = true
		if p.reported[u] {
			continue
		}
		why := map[string]string{
			pgsource.NoRealm:   "their realm id has no realm row (a deleted realm's leftovers?)",
			pgsource.NullTime:  "their time is NULL",
			pgsource.NullRealm: "their realm id is NULL",
		}[u.Reason]
		p.log.Error("stored events are never read: "+why, "kind", kind, "reason", u.Reason, "realm_id", u.RealmID, "rows", u.Rows, "table", u.Table)
	}
	p.reported = reported
	if p.unreachable != nil {
		for _, kind := range []Kind{KindEvent, KindAdminEvent} {
			for _, reason := range []string{pgsource.NoRealm, pgsource.NullTime, pgsource.NullRealm} {
				p.unreachable.WithLabelValues(string(kind), reason).Set(float64(sums[[2]string{string(kind), reason}]))
			}
		}
	}
}

func (p *dbSource) oldestTime(ctx context.Context, r realm, kind Kind) (int64, bool, error) {
	return p.src.OldestTime(ctx, table(kind), r.ID)
}

// table returns the table holding events of kind.
func table(kind Kind) pgsource.Table {
	if kind == KindAdminEvent {
		return pgsource.AdminEventTable
	}
	return pgsource.EventTable
}

// query is the pgsource query of kind in the realm after the cursor, with
// the filters of kind.
func (p *dbSource) query(r realm, kind Kind, after cursor, until int64, limit int) pgsource.Query {
	q := pgsource.Query{RealmID: r.ID, AfterTime: after.Time, AfterID: after.ID, UntilTime: until, Limit: limit}
	if kind == KindAdminEvent {
		q.Operations = pgsource.Filter(p.filters.Operations)
		q.Resources = pgsource.Filter(p.filters.Resources)
	} else {
		q.Types = pgsource.Filter(p.filters.EventTypes)
	}
	return q
}

func (p *dbSource) count(ctx context.Context, r realm, kind Kind, after cursor, until int64) (int, error) {
	return p.src.Count(ctx, table(kind), p.query(r, kind, after, until, 0))
}

func (p *dbSource) page(ctx context.Context, r realm, kind Kind, after cursor, until int64, limit int) ([]Record, error) {
	rg := pgsource.Range{RealmID: r.ID, AfterTime: after.Time, AfterID: after.ID, UntilTime: until}
	recs, err := p.readPage(ctx, r, kind, rg, limit, p.pageBytes, false)
	if pgsource.Unreadable(err) {
		return p.readAround(ctx, r, kind, rg, limit)
	}
	return recs, err
}

// batch returns an empty batch of pages of up to limit rows with the
// filters.
func (p *dbSource) batch(limit int) pgsource.Batch {
	return pgsource.Batch{Limit: limit, MaxRowBytes: p.maxRowBytes, Types: pgsource.Filter(p.filters.EventTypes),
		Operations: pgsource.Filter(p.filters.Operations), Resources: pgsource.Filter(p.filters.Resources)}
}

// readPage reads one page of kind in the range as records (only their keys
// with keysOnly), its last one marked when the budget cut the page.
func (p *dbSource) readPage(ctx context.Context, r realm, kind Kind, rg pgsource.Range, limit int, maxBytes int64, keysOnly bool) ([]Record, error) {
	b := p.batch(limit)
	rg.MaxBytes = maxBytes
	if keysOnly {
		b.KeysOnly, b.MaxRowBytes = true, 0 // the rows themselves tell what is too large
	}
	if kind == KindAdminEvent {
		b.AdminPages = []pgsource.Range{rg}
	} else {
		b.EventPages = []pgsource.Range{rg}
	}
	res, err := p.src.ReadBatch(ctx, b)
	if err != nil {
		return nil, err
	}
	return p.pageRecords(r, kind, res, 0), nil
}

// pageRecords turns page i of kind of res into records, the last one
// marked when the budget cut the page.
func (p *dbSource) pageRecords(r realm, kind Kind, res pgsource.BatchResult, i int) []Record {
	var out []Record
	var cut bool
	if kind == KindAdminEvent {
		out, cut = p.adminRecords(r, res.AdminPages[i]), res.AdminCut[i]
	} else {
		out, cut = p.eventRecords(r, res.EventPages[i]), res.EventCut[i]
	}
	if cut && len(out) > 0 {
		out[len(out)-1].more = true
	}
	return out
}

// storedTextBytes is what the stored details and representations of page i of
// kind in res weigh.
func storedTextBytes(kind Kind, res pgsource.BatchResult, i int) int64 {
	var n int
	if kind == KindAdminEvent {
		for _, row := range res.AdminPages[i] {
			n += len(row.Details.String) + len(row.Representation.String)
		}
	} else {
		for _, row := range res.EventPages[i] {
			n += len(row.Details.String)
		}
	}
	return int64(n)
}

// readAround reads a page that holds a row the database cannot return
// (pgsource.Unreadable): the keys of the page first (which the database
// can return), then the rows by halves, down to the row that fails alone,
// which becomes an unreadable record with the database's error. It costs
// about two statements per halving, only while such a row is in a page.
func (p *dbSource) readAround(ctx context.Context, r realm, kind Kind, rg pgsource.Range, limit int) ([]Record, error) {
	keys, err := p.readPage(ctx, r, kind, rg, limit, p.pageBytes, true)
	if err != nil {
		return nil, fmt.Errorf("read the keys around a row the database cannot return: %w", err)
	}
	out, err := p.readHalves(ctx, r, kind, rg, keys)
	if err != nil {
		return nil, err
	}
	if len(out) > 0 && len(keys) > 0 {
		out[len(out)-1].more = keys[len(keys)-1].more
	}
	return out, nil
}

// readHalves reads the rows whose keys are keys, the first of them after
// rg's cursor: all at once, else by halves, a row that fails alone as an
// unreadable record.
func (p *dbSource) readHalves(ctx context.Context, r realm, kind Kind, rg pgsource.Range, keys []Record) ([]Record, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	// The keys were cut by the budget: these rows fit it.
	recs, err := p.readPage(ctx, r, kind, rg, len(keys), 0, false)
	switch {
	case err == nil:
		return recs, nil
	case !pgsource.Unreadable(err):
		return nil, err
	case len(keys) == 1:
		return []Record{p.unreadableRecord(r, kind, keys[0], err)}, nil
	}
	mid := len(keys) / 2
	left, err := p.readHalves(ctx, r, kind, rg, keys[:mid])
	if err != nil {
		return nil, err
	}
	next := rg
	next.AfterTime, next.AfterID = keys[mid-1].Time(), keys[mid-1].ID()
	right, err := p.readHalves(ctx, r, kind, next, keys[mid:])
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// unreadableRecord marks key, a record holding only a row's keys, as the
// row the database could not return with err, and logs it (the pipeline
// counts and dead-letters it).
func (p *dbSource) unreadableRecord(r realm, kind Kind, key Record, err error) Record {
	p.log.Error("the database cannot return a stored event (its text is not valid in the connection's encoding): it is dead-lettered with the database's error and skipped",
		"kind", kind, "realm", r.Name, "realm_id", r.ID, "id", key.ID(),
		"time", time.UnixMilli(key.Time()).UTC().Format(time.RFC3339Nano), "error", err)
	key.unreadable = fmt.Errorf("the database cannot return %s %s of realm %q: %w", table(kind), key.ID(), r.Name, err)
	return key
}

// adminRecords turns rows of admin_event_entity into records. The events
// of a page are allocated together: they live as long as the page.
func (p *dbSource) adminRecords(r realm, rows []pgsource.AdminEventRow) []Record {
	out, evs := make([]Record, len(rows)), make([]AdminEvent, len(rows))
	for i, row := range rows {
		evs[i] = AdminEvent{ID: row.ID, Time: row.Time, RealmID: row.RealmID, RealmName: r.Name,
			AuthDetails: AuthDetails{RealmID: row.AuthRealmID.String, ClientID: row.AuthClientID.String,
				UserID: row.AuthUserID.String, IPAddress: row.IPAddress.String},
			OperationType: row.OperationType.String, ResourceType: row.ResourceType.String,
			ResourcePath: row.ResourcePath.String, Representation: row.Representation.String,
			Error: row.Error.String, Details: p.details(KindAdminEvent, row.ID, row.Details)}
		out[i] = p.oversized(r, Record{Admin: &evs[i]}, row.Oversize)
	}
	return out
}

// eventRecords turns rows of event_entity into records, their events
// allocated together as adminRecords's.
func (p *dbSource) eventRecords(r realm, rows []pgsource.EventRow) []Record {
	out, evs := make([]Record, len(rows)), make([]Event, len(rows))
	for i, row := range rows {
		evs[i] = Event{ID: row.ID, Time: row.Time, Type: row.Type.String, RealmID: row.RealmID, RealmName: r.Name,
			ClientID: row.ClientID.String, UserID: row.UserID.String, SessionID: row.SessionID.String,
			IPAddress: row.IPAddress.String, Error: row.Error.String,
			Details: p.details(KindEvent, row.ID, row.Details)}
		out[i] = p.oversized(r, Record{Event: &evs[i]}, row.Oversize)
	}
	return out
}

// usernames looks the users up in user_entity (user ids are unique across
// realms).
func (p *dbSource) usernames(ctx context.Context, users []userRef) (map[string]string, error) {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.userID
	}
	names, err := p.src.Usernames(ctx, ids)
	if !pgsource.Unreadable(err) {
		return names, err
	}
	// A username the database cannot return: look the users up one by
	// one, and send the events of that user without a username.
	names = map[string]string{}
	for _, u := range users {
		one, err := p.src.Usernames(ctx, []string{u.userID})
		if pgsource.Unreadable(err) {
			p.log.Error("the database cannot return a username (its text is not valid in the connection's encoding): the user's events are sent without it",
				"realm_id", u.realmID, "user_id", u.userID, "error", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		maps.Copy(names, one)
	}
	return names, nil
}

// details parses stored details JSON into a map: string values as they are,
// JSON null as "", other values as their JSON text. Text that is not a JSON
// object is kept whole under malformedDetailsKey and counted.
func (p *dbSource) details(kind Kind, id string, raw sql.NullString) map[string]string {
	if !raw.Valid || strings.TrimSpace(raw.String) == "" {
		return map[string]string{}
	}
	out, err := parseDetails(raw.String)
	if err != nil {
		p.malformed.Add(1)
		p.log.Info("stored event details are not a JSON object; forwarding them raw",
			"kind", kind, "id", id, "key", malformedDetailsKey, "error", err)
		return map[string]string{malformedDetailsKey: raw.String}
	}
	return out
}

// readBatch reads every request in one statement (pgsource.ReadBatch).
// When a row the database cannot return is in a page, it reads the counts
// and the snapshot in one statement, then each page alone, reading around
// that row (readAround).
func (p *dbSource) readBatch(ctx context.Context, reqs []readRequest, limit int) (batchRead, error) {
	b := p.batch(limit)
	slot := make([]int, len(reqs)) // index of each request in its part of b
	caps := p.shares(reqs, limit)
	for i, r := range reqs {
		rg := pgsource.Range{RealmID: r.realm.ID, AfterTime: r.after.Time, AfterID: r.after.ID, UntilTime: r.until, MaxBytes: caps[i]}
		var part *[]pgsource.Range
		switch {
		case r.kind == KindAdminEvent && r.count:
			part = &b.AdminCounts
		case r.kind == KindAdminEvent:
			part = &b.AdminPages
		case r.count:
			part = &b.EventCounts
		default:
			part = &b.EventPages
		}
		slot[i] = len(*part)
		*part = append(*part, rg)
	}
	res, err := p.src.ReadBatch(ctx, b)
	around := pgsource.Unreadable(err)
	if around {
		// The snapshot is read before the pages: a transaction it sees
		// ended is visible to them.
		counts := b
		counts.EventPages, counts.AdminPages = nil, nil
		res, err = p.src.ReadBatch(ctx, counts)
	}
	if err != nil {
		return batchRead{}, err
	}
	out := batchRead{pages: make([][]Record, len(reqs)), counts: make([]int, len(reqs)),
		snapshot: txSnapshot{xmin: res.Snapshot.Xmin, xmax: res.Snapshot.Xmax, xip: res.Snapshot.Xip}}
	var text int64 // the pages' stored details and representations, in bytes
	for i, r := range reqs {
		switch {
		case r.kind == KindAdminEvent && r.count:
			out.counts[i] = res.AdminCounts[slot[i]]
		case r.kind == KindEvent && r.count:
			out.counts[i] = res.EventCounts[slot[i]]
		case around:
			if out.pages[i], err = p.page(ctx, r.realm, r.kind, r.after, r.until, limit); err != nil {
				return batchRead{}, err
			}
		default:
			out.pages[i] = p.pageRecords(r.realm, r.kind, res, slot[i])
			text += storedTextBytes(r.kind, res, slot[i])
		}
	}
	p.noteRows(reqs, out.pages)
	out.heavy = text > p.heavyText()
	return out, nil
}

// heavyText is what the stored text of a read's rows may weigh for it to
// be light (batchRead.heavy): a quarter of the byte budget, or 2 MiB
// without one.
func (p *dbSource) heavyText() int64 {
	if p.pageBytes > 0 {
		return p.pageBytes / 4
	}
	return 2 << 20
}

// shares splits the byte budget among the pages of reqs (0 for a count,
// or without a budget): each page's share follows the rows its stream
// held at its last read, plus one (limit for a stream not read yet), so
// the pages of a drain share it evenly while the streams that found
// nothing take almost none of it, and a page cut by its share asks for
// as much again. The shares add up to at most the budget; a page keeps
// its first row whatever it weighs (pgsource.Range.MaxBytes), so a
// stream quiet until now makes progress, and has its share at the next
// read.
func (p *dbSource) shares(reqs []readRequest, limit int) []int64 {
	caps := make([]int64, len(reqs))
	if p.pageBytes <= 0 {
		return caps
	}
	p.sharesMu.Lock()
	defer p.sharesMu.Unlock()
	var total int64
	for i, r := range reqs {
		if r.count {
			continue
		}
		want := limit
		if n, ok := p.lastRows[streamKey(r.kind, r.realm.ID)]; ok {
			want = min(n+1, limit)
		}
		caps[i] = int64(want)
		total += int64(want)
	}
	for i, r := range reqs {
		if !r.count {
			caps[i] = max(1, p.pageBytes*caps[i]/total)
		}
	}
	return caps
}

// maxStreamsNoted bounds lastRows: past it (realms deleted and created
// by the thousand), it starts again empty.
const maxStreamsNoted = 100_000

// noteRows records how many rows each page of reqs held.
func (p *dbSource) noteRows(reqs []readRequest, pages [][]Record) {
	if p.pageBytes <= 0 {
		return
	}
	p.sharesMu.Lock()
	defer p.sharesMu.Unlock()
	if p.lastRows == nil || len(p.lastRows) > maxStreamsNoted {
		p.lastRows = map[string]int{}
	}
	for i, r := range reqs {
		if !r.count {
			p.lastRows[streamKey(r.kind, r.realm.ID)] = len(pages[i])
		}
	}
}
