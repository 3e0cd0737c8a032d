package pgsource

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/lib/pq"
)

// Range is a keyset range of one realm's rows: (time, id) > (AfterTime,
// AfterID), and time <= UntilTime when UntilTime is not 0.
type Range struct {
	RealmID   string
	AfterTime int64
	AfterID   string
	UntilTime int64
	// MaxBytes, when not 0, is the most the rows of a page of this range
	// may weigh (their large columns plus RowBytes each): the database
	// cuts the page once they weigh more, so the rows are never read
	// whole first, and reads no more rows than the cap can keep and one
	// more (pageLimit). A page keeps at least its first row whatever it
	// weighs, so every stream makes progress; BatchResult's EventCut and
	// AdminCut tell which pages were cut. Counts ignore it.
	MaxBytes int64
}

// Batch is one round trip to the database: a page of each of EventPages and
// AdminPages (at most Limit rows each, ordered by (time, id)), the number of
// rows in each of EventCounts and AdminCounts, and the snapshot they were
// all read in. The filters apply to every range of their table.
type Batch struct {
	EventPages, AdminPages   []Range
	EventCounts, AdminCounts []Range
	Limit                    int
	Types                    Filter // event_entity.type
	Operations, Resources    Filter // admin_event_entity.operation_type, resource_type
	// MaxRowBytes, when not 0, is the most a row may weigh (as for
	// Range.MaxBytes) to be read: a heavier row comes without its large columns
	// (details, representation), its weight in Oversize, never read whole.
	MaxRowBytes int64
	// KeysOnly reads only the id and time of each page's rows (the other
	// columns are NULL; the realm is the range's): to find the rows around one that the
	// database cannot return (Unreadable).
	KeysOnly bool
}

// Unreadable tells whether err is the database failing to return a value
// in the connection's encoding: SQLSTATE 22021 (character not in
// repertoire: bytes invalid in UTF-8, stored in a SQL_ASCII database) or
// 22P05 (untranslatable character). The statement fails at the first such
// row, whatever the rows around it hold.
func Unreadable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && (pe.Code == "22021" || pe.Code == "22P05")
}

// BatchResult holds what a Batch read, index by index.
type BatchResult struct {
	EventPages               [][]EventRow
	AdminPages               [][]AdminEventRow
	EventCounts, AdminCounts []int
	// EventCut and AdminCut tell, page by page, that a row read after the
	// page's last row was left out: its range's MaxBytes cut the page
	// before Limit rows (a full page may say so too).
	EventCut, AdminCut []bool
	// Snapshot is the snapshot every part was read in.
	Snapshot Snapshot
}

// Snapshot tells which transactions had not ended when a read was made
// (PostgreSQL's pg_current_snapshot()): Xmin is the oldest of them, Xmax one
// past the newest transaction id assigned then, and Xip those between that
// were still in progress. Only transactions that have written have ids.
type Snapshot struct {
	Xmin, Xmax uint64
	Xip        []uint64
}

// Running tells whether transaction xid may still commit after s: it was in
// progress at s (or began after it).
func (s Snapshot) Running(xid uint64) bool {
	if xid >= s.Xmax {
		return true
	}
	if xid < s.Xmin {
		return false
	}
	for _, x := range s.Xip {
		if x == xid {
			return true
		}
	}
	return false
}

// ParseSnapshot reads the text form of pg_snapshot, "xmin:xmax:xip,...".
func ParseSnapshot(text string) (Snapshot, error) {
	parts := strings.Split(text, ":")
	if len(parts) != 3 {
		return Snapshot{}, fmt.Errorf("snapshot %q: want xmin:xmax:xip", text)
	}
	var s Snapshot
	var err error
	if s.Xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: xmin: %w", text, err)
	}
	if s.Xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: xmax: %w", text, err)
	}
	if parts[2] != "" {
		for _, x := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return Snapshot{}, fmt.Errorf("snapshot %q: xip: %w", text, err)
			}
			s.Xip = append(s.Xip, v)
		}
	}
	return s, nil
}

// The kinds of row a batch query returns, in its first column: small
// integers, which the driver hands over without an allocation (a text
// column costs two per row). They sort as the letters they replaced
// (a, c, d, e, s), the order in which the byte budget takes pages of one
// place.
const (
	rowAdmin = iota + 1
	rowEvCount
	rowAdCount
	rowEvent
	rowSnapshot
)

// batchCols are the columns every branch of a batch query returns, in
// order; a branch fills those of its table and NULLs the others. A page's
// realm_id is not among them: it is its range's, which readBatchRows fills
// in (a text column costs the driver two allocations a row).
var batchCols = []string{"id", "t", "type", "client_id", "user_id", "session_id", "ip_address",
	"error", "details", "operation_type", "resource_type", "auth_realm_id", "auth_client_id", "auth_user_id",
	"resource_path", "representation", "more", "big"}

// ReadBatch reads b in one statement: one round trip, one transaction, one
// snapshot. Each range is read on the (realm_id, time) index (a LATERAL
// keyset scan per range), so the cost follows the rows read, not the
// number of realms.
func (s *Source) ReadBatch(ctx context.Context, b Batch) (BatchResult, error) {
	stmt, args, err := s.batchSQL(b)
	if err != nil {
		return BatchResult{}, err
	}
	rows, err := s.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return BatchResult{}, fmt.Errorf("read %d pages and %d counts: %w",
			len(b.EventPages)+len(b.AdminPages), len(b.EventCounts)+len(b.AdminCounts), err)
	}
	defer rows.Close()
	return readBatchRows(rows, b)
}

// batchSQL builds the statement of a batch and its arguments.
func (s *Source) batchSQL(b Batch) (string, []any, error) {
	if b.Limit <= 0 && len(b.EventPages)+len(b.AdminPages) > 0 {
		return "", nil, fmt.Errorf("batch read: limit %d is not positive", b.Limit)
	}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	// null is the columns of a branch outside pages: NULL of each column's
	// type, but for those in except.
	null := func(except map[string]string) string {
		out := make([]string, len(batchCols))
		for i, c := range batchCols {
			typ := "text"
			switch c {
			case "t":
				typ = "bigint"
			case "more":
				typ = "int"
			}
			if v, ok := except[c]; ok {
				out[i] = v + " AS " + c
			} else {
				out[i] = "NULL::" + typ + " AS " + c
			}
		}
		return strings.Join(out, ", ")
	}
	// Every branch also has each row's place in its page (rn_); NULL
	// outside pages.
	// The snapshot branch names every column's type for the others.
	branches := []string{fmt.Sprintf("SELECT %d AS k, 0::bigint AS n, ", rowSnapshot) +
		null(map[string]string{"id": "pg_current_snapshot()::text"}) + ", NULL::bigint AS rn_"}
	ranges := func(rs []Range) string {
		realms, times, ids := make([]string, len(rs)), make([]int64, len(rs)), make([]string, len(rs))
		untils, caps, lims := make([]int64, len(rs)), make([]int64, len(rs)), make([]int64, len(rs))
		for i, r := range rs {
			realms[i], times[i], ids[i], untils[i], caps[i], lims[i] = r.RealmID, r.AfterTime, r.AfterID, r.UntilTime, r.MaxBytes, int64(pageLimit(b, r))
		}
		return fmt.Sprintf("unnest(%s::text[], %s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[]) WITH ORDINALITY AS q(realm_id, after_t, after_id, until_t, max_bytes, lim, n)",
			arg(pq.Array(realms)), arg(pq.Array(times)), arg(pq.Array(ids)), arg(pq.Array(untils)), arg(pq.Array(caps)), arg(pq.Array(lims)))
	}
	// where is the condition on the rows of table t (alias x) in the range
	// q; with bound, on those after q.after_t (alias y), whatever their id.
	where := func(t Table, filters map[string]Filter, bound bool) (string, error) {
		tc := t.timeColumn()
		x := "x"
		var w strings.Builder
		if bound {
			x = "y"
			fmt.Fprintf(&w, "y.realm_id = q.realm_id AND y.%s > q.after_t AND (q.until_t = 0 OR y.%s <= q.until_t)", tc, tc)
		} else {
			fmt.Fprintf(&w, "x.realm_id = q.realm_id AND x.%s >= q.after_t AND (x.%s, x.id) > (q.after_t, q.after_id) AND (q.until_t = 0 OR x.%s <= q.until_t)", tc, tc, tc)
		}
		for _, col := range []string{"type", "operation_type", "resource_type"} {
			f, ok := filters[col]
			if !ok {
				continue
			}
			if err := f.Validate(); err != nil {
				return "", fmt.Errorf("filter of %s.%s: %w", t, col, err)
			}
			if len(f.Include) > 0 {
				cond, more := matchSQL(x+"."+col, f.Include, len(args))
				args = append(args, more...)
				fmt.Fprintf(&w, " AND %s", cond)
			}
			if len(f.Exclude) > 0 {
				cond, more := matchSQL(x+"."+col, f.Exclude, len(args))
				args = append(args, more...)
				fmt.Fprintf(&w, " AND (%s.%s IS NULL OR NOT %s)", x, col, cond)
			}
		}
		return w.String(), nil
	}
	evFilters := map[string]Filter{"type": b.Types}
	adFilters := map[string]Filter{"operation_type": b.Operations, "resource_type": b.Resources}
	evCols := map[string]string{"id": "x.id", "t": "x.event_time", "type": "x.type",
		"client_id": "x.client_id", "user_id": "x.user_id", "session_id": "x.session_id", "ip_address": "x.ip_address",
		"error": "x.error", "details": s.eventDetails("x.")}
	adCols := map[string]string{"id": "x.id", "t": "x.admin_event_time",
		"operation_type": "x.operation_type", "resource_type": "x.resource_type", "auth_realm_id": "x.auth_realm_id",
		"auth_client_id": "x.auth_client_id", "auth_user_id": "x.auth_user_id", "ip_address": "x.ip_address",
		"resource_path": "x.resource_path", "representation": "x.representation", "error": "x.error",
		"details": s.adminDetails("x.")}
	for _, part := range []struct {
		kind    int
		t       Table
		rs      []Range
		count   bool
		filters map[string]Filter
		cols    map[string]string
	}{
		{rowEvent, EventTable, b.EventPages, false, evFilters, evCols},
		{rowAdmin, AdminEventTable, b.AdminPages, false, adFilters, adCols},
		{rowEvCount, EventTable, b.EventCounts, true, evFilters, nil},
		{rowAdCount, AdminEventTable, b.AdminCounts, true, adFilters, nil},
	} {
		if len(part.rs) == 0 {
			continue
		}
		from := ranges(part.rs)
		w, err := where(part.t, part.filters, false)
		if err != nil {
			return "", nil, err
		}
		if part.count {
			branches = append(branches, fmt.Sprintf("SELECT %d, q.n, %s%s FROM %s",
				part.kind, null(map[string]string{"t": fmt.Sprintf("(SELECT count(*) FROM %s x WHERE %s)", part.t, w)}), ", NULL", from))
			continue
		}
		capped := slices.ContainsFunc(part.rs, func(r Range) bool { return r.MaxBytes > 0 })
		cols := make([]string, len(batchCols))
		for i, c := range batchCols {
			cols[i] = "NULL AS " + c
			if _, ok := part.cols[c]; ok {
				cols[i] = "p." + c
			}
		}
		inner := make([]string, 0, len(part.cols)+4)
		size, maxRow := s.rowBytes(part.t, "x."), ""
		if b.MaxRowBytes > 0 {
			maxRow = arg(b.MaxRowBytes)
		}
		for i, c := range batchCols {
			v, ok := part.cols[c]
			if !ok {
				continue
			}
			if b.KeysOnly && c != "id" && c != "t" {
				cols[i] = "NULL AS " + c
				continue
			}
			if maxRow != "" && (c == "details" || c == "representation") {
				v = fmt.Sprintf("CASE WHEN %s > %s THEN NULL ELSE %s END", size, maxRow, v)
			}
			inner = append(inner, v+" AS "+c)
		}
		if maxRow != "" {
			inner = append(inner, fmt.Sprintf("CASE WHEN %s > %s THEN (%s)::text END AS big", size, maxRow, size))
			cols[slices.Index(batchCols, "big")] = "p.big"
		}
		// A page reads its limit of rows (q.lim: Limit, or fewer under a
		// byte cap, pageLimit). It ends at the time of the lim-th row
		// after the cursor's time (hi), found on the (realm_id, time)
		// index in its order: the page then sorts only what it returns.
		// Sorted by (time, id) over every row after the cursor, a page
		// would cost the whole backlog of its realm (the planner cannot
		// tell how many rows follow a cursor it gets from an array, and
		// picks a bitmap scan and a sort of all of them). The first lim
		// rows after the cursor all lie at or before hi, so the page is
		// what it would be without it.
		wb, err := where(part.t, part.filters, true)
		if err != nil {
			return "", nil, err
		}
		tc := part.t.timeColumn()
		hi := fmt.Sprintf("(SELECT y.%s FROM %s y WHERE %s ORDER BY y.%s OFFSET q.lim - 1 LIMIT 1)", tc, part.t, wb, tc)
		// Its place in the page, whether a row of the stream follows it,
		// and with a byte cap the weight of the page up to it (all
		// computed in the page's own sort: free). The cap keeps the rows
		// up to it, and the first: what a page keeps is a prefix of it,
		// and a large value left out is never read (its TOAST pointer is
		// only weighed).
		inner = append(inner, "row_number() OVER w AS rn_, CASE WHEN lead(x.id) OVER w IS NULL THEN 0 ELSE 1 END AS more")
		if capped {
			inner = append(inner, fmt.Sprintf("sum(%s) OVER w AS sum_", size))
		}
		cols[slices.Index(batchCols, "more")] = "p.more"
		page := fmt.Sprintf("SELECT %s FROM %s x WHERE %s AND x.%s <= COALESCE(h.hi, %d) WINDOW w AS (ORDER BY x.%s, x.id ROWS UNBOUNDED PRECEDING) ORDER BY x.%s, x.id LIMIT q.lim",
			strings.Join(inner, ", "), part.t, w, tc, int64(math.MaxInt64), tc, tc)
		if capped {
			page = fmt.Sprintf("SELECT * FROM (%s) c WHERE c.rn_ = 1 OR q.max_bytes = 0 OR c.sum_ <= q.max_bytes", page)
		}
		from = fmt.Sprintf("%s CROSS JOIN LATERAL (SELECT %s AS hi) h CROSS JOIN LATERAL (%s) p", from, hi, page)
		branches = append(branches, fmt.Sprintf("SELECT %d, q.n, %s, p.rn_ FROM %s", part.kind, strings.Join(cols, ", "), from))
	}
	// No ORDER BY: sorting every row read by its text id cost more than
	// the scans. The rows of a page carry their place in it (rn_), and
	// readBatchRows puts them in that order.
	return strings.Join(branches, " UNION ALL "), args, nil
}

// readBatchRows reads the answer of a batch's statement.
func readBatchRows(rows *sql.Rows, b Batch) (BatchResult, error) {
	var err error
	res := BatchResult{
		EventPages: make([][]EventRow, len(b.EventPages)), AdminPages: make([][]AdminEventRow, len(b.AdminPages)),
		EventCounts: make([]int, len(b.EventCounts)), AdminCounts: make([]int, len(b.AdminCounts)),
		EventCut: make([]bool, len(b.EventPages)), AdminCut: make([]bool, len(b.AdminPages)),
	}
	var (
		k, n int64
		id   sql.NullString
		t    sql.NullInt64
		c    [14]sql.NullString
		more sql.NullInt64
		big  sql.NullString
		rn   sql.NullInt64
	)
	dest := []any{&k, &n, &id, &t}
	for i := range c {
		dest = append(dest, &c[i])
	}
	dest = append(dest, &more, &big, &rn)
	// The statement does not sort: each page's rows are put in the order of
	// their places, should they come in another.
	evPlace, adPlace := make([][]place, len(b.EventPages)), make([][]place, len(b.AdminPages))
	seenSnapshot := false
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return BatchResult{}, fmt.Errorf("read a batch: %w", err)
		}
		i := int(n) - 1
		switch k {
		case rowSnapshot:
			if res.Snapshot, err = ParseSnapshot(id.String); err != nil {
				return BatchResult{}, err
			}
			seenSnapshot = true
		case rowEvCount:
			res.EventCounts[i] = int(t.Int64)
		case rowAdCount:
			res.AdminCounts[i] = int(t.Int64)
		case rowEvent:
			if res.EventPages[i] == nil {
				res.EventPages[i], evPlace[i] = make([]EventRow, 0, pageCap(b, b.EventPages[i])), make([]place, 0, pageCap(b, b.EventPages[i]))
			}
			res.EventPages[i] = append(res.EventPages[i], EventRow{ID: id.String, Time: t.Int64, RealmID: b.EventPages[i].RealmID,
				Type: c[0], ClientID: c[1], UserID: c[2], SessionID: c[3], IPAddress: c[4], Error: c[5], Details: c[6],
				Oversize: oversize(big)})
			evPlace[i] = append(evPlace[i], place{rn.Int64, more.Int64 == 1})
		case rowAdmin:
			if res.AdminPages[i] == nil {
				res.AdminPages[i], adPlace[i] = make([]AdminEventRow, 0, pageCap(b, b.AdminPages[i])), make([]place, 0, pageCap(b, b.AdminPages[i]))
			}
			res.AdminPages[i] = append(res.AdminPages[i], AdminEventRow{ID: id.String, Time: t.Int64, RealmID: b.AdminPages[i].RealmID,
				IPAddress: c[4], Error: c[5], Details: c[6], OperationType: c[7], ResourceType: c[8], AuthRealmID: c[9],
				AuthClientID: c[10], AuthUserID: c[11], ResourcePath: c[12], Representation: c[13],
				Oversize: oversize(big)})
			adPlace[i] = append(adPlace[i], place{rn.Int64, more.Int64 == 1})
		}
	}
	if err := rows.Err(); err != nil {
		return BatchResult{}, fmt.Errorf("read a batch: %w", err)
	}
	if !seenSnapshot {
		return BatchResult{}, fmt.Errorf("read a batch: no snapshot row")
	}
	for i := range res.EventPages {
		res.EventCut[i] = inPlaceOrder(res.EventPages[i], evPlace[i])
	}
	for i := range res.AdminPages {
		res.AdminCut[i] = inPlaceOrder(res.AdminPages[i], adPlace[i])
	}
	return res, nil
}

// pageCap is the most rows a page of r may hold: Limit, or fewer under its
// byte cap (each row weighs RowBytes at least), and at most 1,024. A page
// is allocated at its first row with room for them: growing it by appends
// cost a copy of every row read and twice the memory.
func pageCap(b Batch, r Range) int { return min(pageLimit(b, r), 1024) }

// pageLimit is how many rows a page of r reads: Limit, or fewer under its
// byte cap. Every row weighs RowBytes at least, so no more than
// MaxBytes/RowBytes rows fit under it (and the first, whatever it weighs):
// one more is read, which tells that the cap cut the page.
func pageLimit(b Batch, r Range) int {
	if r.MaxBytes <= 0 {
		return b.Limit
	}
	return int(min(int64(b.Limit), max(2, r.MaxBytes/RowBytes+1)))
}

// place is where a row read stands in its page (rn, from 1), and whether
// a row of its stream followed it in the read (more).
type place struct {
	rn   int64
	more bool
}

// inPlaceOrder sorts page by places (its rows' places, as the statement
// numbered them) when it is not in that order, and tells whether a row
// followed its last row in the read.
func inPlaceOrder[R any](page []R, places []place) bool {
	if len(page) == 0 {
		return false
	}
	byRN := func(a, b place) int { return cmp.Compare(a.rn, b.rn) }
	if !slices.IsSortedFunc(places, byRN) {
		idx := make([]int, len(page))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return byRN(places[a], places[b]) })
		sorted, sortedPlaces := make([]R, len(page)), make([]place, len(page))
		for i, j := range idx {
			sorted[i], sortedPlaces[i] = page[j], places[j]
		}
		copy(page, sorted)
		copy(places, sortedPlaces)
	}
	return places[len(places)-1].more
}

// eventDetails is the expression of event_entity's details text for the
// columns this database has, with prefix before each column.
func (s *Source) eventDetails(prefix string) string {
	switch {
	case s.cols.EventDetails && s.cols.EventDetailsLong:
		return "COALESCE(" + prefix + "details_json_long_value, " + prefix + "details_json)"
	case s.cols.EventDetailsLong:
		return prefix + "details_json_long_value"
	case s.cols.EventDetails:
		return prefix + "details_json"
	}
	return "NULL::text"
}

// adminDetails is the expression of admin_event_entity's details text.
func (s *Source) adminDetails(prefix string) string {
	if s.cols.AdminDetails {
		return prefix + "details_json"
	}
	return "NULL::text"
}

// RowBytes is what a row weighs against a byte budget: its large text
// columns (details, representation) as stored, octet_length (read from
// the TOAST header, without reading the value), plus this much for the
// rest of it: about what the rest costs in memory once read (its dozen
// strings, its details map, its record; 1.5 to 2 KiB in heap profiles of
// reads of small events). So a budget bounds the memory of a read of many
// small rows too: a poll of 1,000 busy realms takes about 4,000 of them
// with the default 8 MiB, not 16,000 (48 MiB of heap).
const RowBytes = 2048

// rowBytes is the SQL expression of a row's weight against a byte budget,
// with prefix before each column.
func (s *Source) rowBytes(t Table, prefix string) string {
	e := fmt.Sprintf("%d + COALESCE(octet_length(%s), 0)", RowBytes, s.eventDetails(prefix))
	if t == AdminEventTable {
		e = fmt.Sprintf("%d + COALESCE(octet_length(%srepresentation), 0) + COALESCE(octet_length(%s), 0)",
			RowBytes, prefix, s.adminDetails(prefix))
	}
	return e
}

// oversize returns the weight the big column holds (0 when NULL).
func oversize(big sql.NullString) int64 {
	if !big.Valid {
		return 0 // and no error value allocated for parsing ""
	}
	n, _ := strconv.ParseInt(big.String, 10, 64)
	return n
}
