package pgsource

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/lib/pq"
)

// Query selects one keyset page of one realm's rows: those with
// (time, id) > (AfterTime, AfterID), and time <= UntilTime when UntilTime is
// not 0, that pass the filters, ordered by (time, id), at most Limit of them.
// AfterID "" selects every row at AfterTime too (Keycloak ids are never
// empty). Rows whose time or realm_id is NULL are never selected.
type Query struct {
	RealmID   string
	AfterTime int64
	AfterID   string
	UntilTime int64
	Limit     int
	// Types filters event_entity.type; Events only.
	Types Filter
	// Operations and Resources filter admin_event_entity.operation_type and
	// resource_type; AdminEvents only.
	Operations Filter
	Resources  Filter
}

// Filter keeps the rows whose column matches a pattern of Include (all rows
// when Include is empty) and none of Exclude. A pattern is a name where "*"
// stands for any run of characters, e.g. "LOGIN*"; matching is case-sensitive,
// as Keycloak's names are upper case. A NULL column matches no pattern: it is
// dropped by Include and kept by Exclude.
type Filter struct {
	Include []string
	Exclude []string
}

// Validate returns an error naming the first empty pattern of f.
func (f Filter) Validate() error {
	for _, p := range append(append([]string(nil), f.Include...), f.Exclude...) {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("filter pattern %q is empty", p)
		}
	}
	return nil
}

// EventRow is a raw row of event_entity. Details is the details JSON text as
// stored (the long column when set, else the short one).
type EventRow struct {
	ID        string
	Time      int64
	Type      sql.NullString
	RealmID   string
	ClientID  sql.NullString
	UserID    sql.NullString
	SessionID sql.NullString
	IPAddress sql.NullString
	Error     sql.NullString
	Details   sql.NullString
	// Oversize, when not 0, is what the row weighs above Batch.MaxRowBytes:
	// Details is then NULL, not read.
	Oversize int64
}

// AdminEventRow is a raw row of admin_event_entity. Details is NULL on
// Keycloak versions without the column.
type AdminEventRow struct {
	ID             string
	Time           int64
	RealmID        string
	OperationType  sql.NullString
	ResourceType   sql.NullString
	AuthRealmID    sql.NullString
	AuthClientID   sql.NullString
	AuthUserID     sql.NullString
	IPAddress      sql.NullString
	ResourcePath   sql.NullString
	Representation sql.NullString
	Error          sql.NullString
	Details        sql.NullString
	// Oversize, when not 0, is what the row weighs above Batch.MaxRowBytes:
	// Representation and Details are then NULL, not read.
	Oversize int64
}

// Events returns one page of event_entity rows.
func (s *Source) Events(ctx context.Context, q Query) ([]EventRow, error) {
	if len(q.Operations.Include)+len(q.Operations.Exclude)+len(q.Resources.Include)+len(q.Resources.Exclude) > 0 {
		return nil, fmt.Errorf("query of %s: operation and resource filters apply to admin events only", EventTable)
	}
	details := "NULL::text"
	switch {
	case s.cols.EventDetails && s.cols.EventDetailsLong:
		details = "COALESCE(details_json_long_value, details_json)"
	case s.cols.EventDetailsLong:
		details = "details_json_long_value"
	case s.cols.EventDetails:
		details = "details_json"
	}
	cols := "id, event_time, type, realm_id, client_id, user_id, session_id, ip_address, error, " + details
	stmt, args, err := pageSQL(EventTable, cols, q, map[string]Filter{"type": q.Types})
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s of realm %q after (%d, %q): %w", EventTable, q.RealmID, q.AfterTime, q.AfterID, err)
	}
	defer rows.Close()
	page := make([]EventRow, 0, q.Limit)
	for rows.Next() {
		var r EventRow
		if err := rows.Scan(&r.ID, &r.Time, &r.Type, &r.RealmID, &r.ClientID, &r.UserID,
			&r.SessionID, &r.IPAddress, &r.Error, &r.Details); err != nil {
			return nil, fmt.Errorf("read %s of realm %q: %w", EventTable, q.RealmID, err)
		}
		page = append(page, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s of realm %q after (%d, %q): %w", EventTable, q.RealmID, q.AfterTime, q.AfterID, err)
	}
	return page, nil
}

// AdminEvents returns one page of admin_event_entity rows.
func (s *Source) AdminEvents(ctx context.Context, q Query) ([]AdminEventRow, error) {
	if len(q.Types.Include)+len(q.Types.Exclude) > 0 {
		return nil, fmt.Errorf("query of %s: type filters apply to events only", AdminEventTable)
	}
	details := "NULL::text"
	if s.cols.AdminDetails {
		details = "details_json"
	}
	cols := "id, admin_event_time, realm_id, operation_type, resource_type, auth_realm_id, auth_client_id, " +
		"auth_user_id, ip_address, resource_path, representation, error, " + details
	stmt, args, err := pageSQL(AdminEventTable, cols, q,
		map[string]Filter{"operation_type": q.Operations, "resource_type": q.Resources})
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s of realm %q after (%d, %q): %w", AdminEventTable, q.RealmID, q.AfterTime, q.AfterID, err)
	}
	defer rows.Close()
	page := make([]AdminEventRow, 0, q.Limit)
	for rows.Next() {
		var r AdminEventRow
		if err := rows.Scan(&r.ID, &r.Time, &r.RealmID, &r.OperationType, &r.ResourceType,
			&r.AuthRealmID, &r.AuthClientID, &r.AuthUserID, &r.IPAddress, &r.ResourcePath,
			&r.Representation, &r.Error, &r.Details); err != nil {
			return nil, fmt.Errorf("read %s of realm %q: %w", AdminEventTable, q.RealmID, err)
		}
		page = append(page, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s of realm %q after (%d, %q): %w", AdminEventTable, q.RealmID, q.AfterTime, q.AfterID, err)
	}
	return page, nil
}

// Count returns how many rows of table t a query selects, ignoring its
// Limit: the rows Events or AdminEvents would return with no limit.
func (s *Source) Count(ctx context.Context, t Table, q Query) (int, error) {
	filters := map[string]Filter{"type": q.Types}
	if t == AdminEventTable {
		filters = map[string]Filter{"operation_type": q.Operations, "resource_type": q.Resources}
	}
	where, args, err := whereSQL(t, q, filters)
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) "+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s of realm %q in (%d, %q] .. %d: %w", t, q.RealmID, q.AfterTime, q.AfterID, q.UntilTime, err)
	}
	return n, nil
}

// pageSQL builds the keyset query of a page.
func pageSQL(t Table, cols string, q Query, filters map[string]Filter) (string, []any, error) {
	if q.Limit <= 0 {
		return "", nil, fmt.Errorf("query of %s: limit %d is not positive", t, q.Limit)
	}
	where, args, err := whereSQL(t, q, filters)
	if err != nil {
		return "", nil, err
	}
	args = append(args, q.Limit)
	return fmt.Sprintf("SELECT %s %s ORDER BY %s, id LIMIT $%d", cols, where, t.timeColumn(), len(args)), args, nil
}

// whereSQL builds the FROM and WHERE clauses of a query. The redundant
// "time >= after" term gives the planner the start of the (realm_id, time)
// index range, which the row comparison alone does not; filters only narrow
// rows inside it.
func whereSQL(t Table, q Query, filters map[string]Filter) (string, []any, error) {
	tc := t.timeColumn()
	args := []any{q.RealmID, q.AfterTime, q.AfterID}
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s WHERE realm_id = $1 AND %s >= $2 AND (%s, id) > ($2, $3)", t, tc, tc)
	if q.UntilTime != 0 {
		args = append(args, q.UntilTime)
		fmt.Fprintf(&b, " AND %s <= $%d", tc, len(args))
	}
	for _, col := range []string{"type", "operation_type", "resource_type"} {
		f, ok := filters[col]
		if !ok {
			continue
		}
		if err := f.Validate(); err != nil {
			return "", nil, fmt.Errorf("filter of %s.%s: %w", t, col, err)
		}
		if len(f.Include) > 0 {
			cond, more := matchSQL(col, f.Include, len(args))
			args = append(args, more...)
			fmt.Fprintf(&b, " AND %s", cond)
		}
		if len(f.Exclude) > 0 {
			cond, more := matchSQL(col, f.Exclude, len(args))
			args = append(args, more...)
			fmt.Fprintf(&b, " AND (%s IS NULL OR NOT %s)", col, cond)
		}
	}
	return b.String(), args, nil
}

// matchSQL returns a condition true when col matches one of patterns, and
// its arguments numbered after n existing ones: exact names go to "= ANY",
// patterns with "*" to "LIKE ANY". The column is compared bare so that the
// planner estimates the filter from the column's statistics: a wrong low
// estimate would make it read the whole index range and sort it instead of
// stopping after the page.
func matchSQL(col string, patterns []string, n int) (string, []any) {
	var exact, like []string
	for _, p := range patterns {
		if !strings.Contains(p, "*") {
			exact = append(exact, p)
			continue
		}
		r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`, `*`, `%`)
		like = append(like, r.Replace(p))
	}
	var terms []string
	var args []any
	if len(exact) > 0 {
		args = append(args, pq.Array(exact))
		terms = append(terms, fmt.Sprintf("%s = ANY($%d)", col, n+len(args)))
	}
	if len(like) > 0 {
		args = append(args, pq.Array(like))
		terms = append(terms, fmt.Sprintf("%s LIKE ANY($%d)", col, n+len(args)))
	}
	return "(" + strings.Join(terms, " OR ") + ")", args
}
