// Package pgsource reads Keycloak's event tables (event_entity and
// admin_event_entity) from its PostgreSQL database with keyset pages on the
// (realm_id, time) indexes. It is a dumb backend: it returns raw rows and
// keeps no position; the emitter package owns the cursor and the loop. In
// cluster mode it also holds the cluster's advisory lock (Locker, lock.go).
//
// The database user needs only read access to four tables (with Keycloak's
// schema, database and user names in place of these):
//
//	CREATE ROLE kc_event_emitter LOGIN PASSWORD '...';
//	GRANT CONNECT ON DATABASE keycloak TO kc_event_emitter;
//	GRANT USAGE ON SCHEMA public TO kc_event_emitter;
//	GRANT SELECT ON event_entity, admin_event_entity, realm, user_entity TO kc_event_emitter;
package pgsource

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/pgsession"
)

// Table names one of the two event tables.
type Table int

// The two event tables.
const (
	EventTable Table = iota
	AdminEventTable
)

// String returns the table's name in the database.
func (t Table) String() string {
	if t == AdminEventTable {
		return "admin_event_entity"
	}
	return "event_entity"
}

// timeColumn returns the name of the table's time column.
func (t Table) timeColumn() string {
	if t == AdminEventTable {
		return "admin_event_time"
	}
	return "event_time"
}

// Columns tells which of the columns that differ across Keycloak versions the
// database has.
type Columns struct {
	EventDetails     bool // event_entity.details_json (all versions)
	EventDetailsLong bool // event_entity.details_json_long_value (Keycloak 23+)
	AdminDetails     bool // admin_event_entity.details_json (Keycloak 26.0+)
}

// Warning is a problem found at Open that does not stop tailing, with the
// SQL statement an operator can run to fix it.
type Warning struct {
	Message string
	SQL     string
}

// Realm is a row of Keycloak's realm table.
type Realm struct {
	ID   string
	Name string
}

// Source reads one Keycloak database. It is safe for concurrent use; the
// underlying database/sql pool reconnects by itself after a lost connection.
type Source struct {
	db       *sql.DB
	cols     Columns
	warnings []Warning
}

// Open connects to the database at url (a lib/pq URL or key=value string),
// checks that both event tables exist, discovers their optional columns and
// checks their time indexes. A missing index is reported by Warnings, not as
// an error. The url is never part of an error message: it may hold a password.
func Open(ctx context.Context, url string) (*Source, error) {
	connector, err := pq.NewConnector(withBinaryParameters(url))
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL connection string: %w", err)
	}
	// JIT compilation off: a poll over many realms is one statement whose
	// estimated cost passes PostgreSQL's jit_above_cost (100,000 by
	// default): it was compiled at every poll, about 200 ms for 1,000
	// realms against 28 ms to run it. A server without JIT (before
	// PostgreSQL 11) does not have the setting, which is fine.
	db := sql.OpenDB(pgsession.Connector{Connector: connector, Sets: []string{"SET jit = off"}, Optional: true})
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Source{db: db}
	if err := s.discover(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// withBinaryParameters adds binary_parameters=yes to a connection string
// that does not set it: lib/pq then sends a parameterised query in one
// exchange (one transaction) instead of preparing it first (two).
func withBinaryParameters(dsn string) string {
	if strings.Contains(dsn, "binary_parameters") {
		return dsn
	}
	if strings.Contains(dsn, "://") {
		if strings.Contains(dsn, "?") {
			return dsn + "&binary_parameters=yes"
		}
		return dsn + "?binary_parameters=yes"
	}
	return dsn + " binary_parameters=yes"
}

// Close closes the connection pool.
func (s *Source) Close() error { return s.db.Close() }

// Columns returns the optional columns Open found.
func (s *Source) Columns() Columns { return s.cols }

// Warnings returns the problems Open found that do not stop tailing.
func (s *Source) Warnings() []Warning { return slices.Clone(s.warnings) }

// discover reads the tables' columns and indexes from the catalog. It uses
// to_regclass, so the tables are found wherever the connection's search_path
// points (Keycloak's KC_DB_SCHEMA).
func (s *Source) discover(ctx context.Context) error {
	required := map[Table][]string{
		EventTable: {"id", "event_time", "type", "realm_id", "client_id", "user_id",
			"session_id", "ip_address", "error"},
		AdminEventTable: {"id", "admin_event_time", "realm_id", "operation_type", "resource_type",
			"auth_realm_id", "auth_client_id", "auth_user_id", "ip_address", "resource_path",
			"representation", "error"},
	}
	for _, t := range []Table{EventTable, AdminEventTable} {
		cols, err := s.columns(ctx, t.String())
		if err != nil {
			return err
		}
		if len(cols) == 0 {
			return fmt.Errorf("table %s not found (check the database name and search_path)", t)
		}
		for _, c := range required[t] {
			if _, ok := cols[c]; !ok {
				return fmt.Errorf("table %s has no column %s: not a Keycloak 21+ schema", t, c)
			}
		}
		switch t {
		case EventTable:
			_, s.cols.EventDetails = cols["details_json"]
			_, s.cols.EventDetailsLong = cols["details_json_long_value"]
		case AdminEventTable:
			_, s.cols.AdminDetails = cols["details_json"]
		}
		ok, err := s.hasTimeIndex(ctx, t, cols)
		if err != nil {
			return err
		}
		if !ok {
			name := "idx_event_time"
			if t == AdminEventTable {
				name = "idx_admin_event_time"
			}
			s.warnings = append(s.warnings, Warning{
				Message: fmt.Sprintf("table %s has no index on (realm_id, %s): every poll scans the table", t, t.timeColumn()),
				SQL:     fmt.Sprintf("CREATE INDEX CONCURRENTLY %s ON %s (realm_id, %s);", name, t, t.timeColumn()),
			})
		}
	}
	for _, t := range []string{"realm", "user_entity"} {
		cols, err := s.columns(ctx, t)
		if err != nil {
			return err
		}
		if len(cols) == 0 {
			return fmt.Errorf("table %s not found (check the database name and search_path)", t)
		}
	}
	return nil
}

// columns returns the attribute numbers of table's columns by name; an empty
// map when the table does not exist.
func (s *Source) columns(ctx context.Context, table string) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT attname, attnum FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of table %s: %w", table, err)
	}
	defer rows.Close()
	cols := map[string]int{}
	for rows.Next() {
		var name string
		var num int
		if err := rows.Scan(&name, &num); err != nil {
			return nil, fmt.Errorf("read columns of table %s: %w", table, err)
		}
		cols[name] = num
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of table %s: %w", table, err)
	}
	return cols, nil
}

// hasTimeIndex tells whether a valid index of t starts with (realm_id, time).
func (s *Source) hasTimeIndex(ctx context.Context, t Table, cols map[string]int) (bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT indkey[0], indkey[1] FROM pg_index
		WHERE indrelid = to_regclass($1) AND indisvalid AND indnatts >= 2`, t.String())
	if err != nil {
		return false, fmt.Errorf("read indexes of table %s: %w", t, err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var first, second int
		if err := rows.Scan(&first, &second); err != nil {
			return false, fmt.Errorf("read indexes of table %s: %w", t, err)
		}
		if first == cols["realm_id"] && second == cols[t.timeColumn()] {
			found = true
		}
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("read indexes of table %s: %w", t, err)
	}
	return found, nil
}

// Realms returns every realm, ordered by name.
func (s *Source) Realms(ctx context.Context) ([]Realm, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name FROM realm ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list realms: %w", err)
	}
	defer rows.Close()
	var realms []Realm
	for rows.Next() {
		var r Realm
		var name sql.NullString
		if err := rows.Scan(&r.ID, &name); err != nil {
			return nil, fmt.Errorf("list realms: %w", err)
		}
		r.Name = name.String
		realms = append(realms, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list realms: %w", err)
	}
	return realms, nil
}

// Usernames returns the usernames of the users with the given ids (user ids
// are unique across realms). Ids of users that no longer exist are absent
// from the map.
func (s *Source) Usernames(ctx context.Context, ids []string) (map[string]string, error) {
	names := make(map[string]string, len(ids))
	if len(ids) == 0 {
		return names, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, username FROM user_entity WHERE id = ANY($1)`, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("look up %d usernames: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var name sql.NullString
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("look up %d usernames: %w", len(ids), err)
		}
		if name.Valid {
			names[id] = name.String
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up %d usernames: %w", len(ids), err)
	}
	return names, nil
}

// OldestTime returns the time of the oldest row of table t in the realm, and
// false when the realm has no rows there.
func (s *Source) OldestTime(ctx context.Context, t Table, realmID string) (int64, bool, error) {
	var oldest sql.NullInt64
	q := fmt.Sprintf(`SELECT min(%s) FROM %s WHERE realm_id = $1`, t.timeColumn(), t)
	if err := s.db.QueryRowContext(ctx, q, realmID).Scan(&oldest); err != nil {
		return 0, false, fmt.Errorf("read oldest time of %s in realm %q: %w", t, realmID, err)
	}
	return oldest.Int64, oldest.Valid, nil
}

// Why stored rows are never read.
const (
	NoRealm   = "no_realm"   // realm_id names no realm row
	NullTime  = "null_time"  // the time is NULL (in a realm that exists)
	NullRealm = "null_realm" // realm_id is NULL
)

// Unreachable is a count of rows of Table that no keyset page ever selects,
// and why (Reason: NoRealm, NullTime or NullRealm); RealmID is empty for
// NullRealm.
type Unreachable struct {
	Table   Table
	Reason  string
	RealmID string
	Rows    int
}

// Unreachable counts, in both tables, the rows no page selects. It walks
// the distinct realm ids on the (realm_id, time) index (one probe per id)
// and counts per id on it, so its cost follows the number of realm ids and
// of the rows it finds, not the size of the tables.
func (s *Source) Unreachable(ctx context.Context) ([]Unreachable, error) {
	var out []Unreachable
	for _, t := range []Table{EventTable, AdminEventTable} {
		q := fmt.Sprintf(`WITH RECURSIVE ids(id) AS (
			(SELECT realm_id FROM %[1]s WHERE realm_id IS NOT NULL ORDER BY realm_id LIMIT 1)
			UNION ALL
			SELECT (SELECT x.realm_id FROM %[1]s x WHERE x.realm_id > ids.id ORDER BY x.realm_id LIMIT 1) FROM ids WHERE ids.id IS NOT NULL
		), known AS (
			SELECT i.id, EXISTS (SELECT 1 FROM realm r WHERE r.id = i.id) AS known FROM ids i WHERE i.id IS NOT NULL
		)
		SELECT '%[3]s', k.id, (SELECT count(*) FROM %[1]s x WHERE x.realm_id = k.id) FROM known k WHERE NOT k.known
		UNION ALL
		SELECT '%[4]s', k.id, (SELECT count(*) FROM %[1]s x WHERE x.realm_id = k.id AND x.%[2]s IS NULL) FROM known k WHERE k.known
		UNION ALL
		SELECT '%[5]s', '', count(*) FROM %[1]s WHERE realm_id IS NULL`, t, t.timeColumn(), NoRealm, NullTime, NullRealm)
		rows, err := s.db.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("count the rows of %s no read reaches: %w", t, err)
		}
		for rows.Next() {
			u := Unreachable{Table: t}
			if err := rows.Scan(&u.Reason, &u.RealmID, &u.Rows); err != nil {
				rows.Close()
				return nil, fmt.Errorf("count the rows of %s no read reaches: %w", t, err)
			}
			if u.Rows > 0 {
				out = append(out, u)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("count the rows of %s no read reaches: %w", t, err)
		}
	}
	return out, nil
}
