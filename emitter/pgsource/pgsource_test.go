package pgsource

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// schemaVersion is the Keycloak version whose real schema dump the tests load.
const schemaVersion = "26.5.6"

// newDB returns the URL of a fresh database holding Keycloak's schema and a
// handle on it for inserting rows.
func newDB(t *testing.T, version string) (string, *sql.DB) {
	t.Helper()
	url := testenv.NewDatabase(t)
	testenv.LoadSchema(t, url, version)
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return url, db
}

func open(t *testing.T, url string) *Source {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func insertEvent(t *testing.T, db *sql.DB, id, realm string, ms int64, typ string) {
	t.Helper()
	exec(t, db, `INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ($1, $2, $3, $4)`, id, realm, ms, typ)
}

func insertAdmin(t *testing.T, db *sql.DB, id, realm string, ms int64, op, res string) {
	t.Helper()
	exec(t, db, `INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type)
		VALUES ($1, $2, $3, $4, $5)`, id, realm, ms, op, res)
}

func ids[R EventRow | AdminEventRow](rows []R) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		switch r := any(r).(type) {
		case EventRow:
			out[i] = r.ID
		case AdminEventRow:
			out[i] = r.ID
		}
	}
	return out
}

// schemaVersions returns the Keycloak versions whose dumps are in testdata.
func schemaVersions(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.ModuleRoot(t), "testdata", "schema", "keycloak-*-events.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema dumps in testdata/schema (%v)", err)
	}
	var out []string
	for _, f := range files {
		v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "keycloak-"), "-events.sql")
		out = append(out, v)
	}
	return out
}

func TestOpenDiscoversTheOptionalColumnsOfEachKeycloakVersion(t *testing.T) {
	for _, v := range schemaVersions(t) {
		t.Run(v, func(t *testing.T) {
			url, db := newDB(t, v)
			has := func(table, col string) bool {
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM information_schema.columns
					WHERE table_name = $1 AND column_name = $2`, table, col).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n == 1
			}
			want := Columns{
				EventDetails:     has("event_entity", "details_json"),
				EventDetailsLong: has("event_entity", "details_json_long_value"),
				AdminDetails:     has("admin_event_entity", "details_json"),
			}
			known := map[string]Columns{
				"22.0.5": {EventDetails: true},
				"26.5.6": {EventDetails: true, EventDetailsLong: true, AdminDetails: true},
			}
			if k, ok := known[v]; ok && k != want {
				t.Fatalf("the %s dump has columns %+v, the test expects %+v", v, want, k)
			}
			s := open(t, url)
			if got := s.Columns(); got != want {
				t.Fatalf("Columns() = %+v, information_schema says %+v", got, want)
			}
			if w := s.Warnings(); len(w) != 0 {
				t.Fatalf("Warnings() = %+v on a schema with both time indexes", w)
			}
			// Both page queries run on this schema.
			if _, err := s.Events(context.Background(), Query{RealmID: "r", Limit: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AdminEvents(context.Background(), Query{RealmID: "r", Limit: 1}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenWarnsWithTheCreateIndexStatementWhenATimeIndexIsMissing(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	var dropped []string
	for _, table := range []string{"event_entity", "admin_event_entity"} {
		var name string
		if err := db.QueryRow(`SELECT indexname FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%(realm_id, %time)'`,
			table).Scan(&name); err != nil {
			t.Fatalf("find the time index of %s: %v", table, err)
		}
		exec(t, db, "DROP INDEX "+name)
		dropped = append(dropped, name)
	}
	s := open(t, url)
	w := s.Warnings()
	if len(w) != 2 {
		t.Fatalf("Warnings() = %+v, want one per table", w)
	}
	for i, table := range []string{"event_entity", "admin_event_entity"} {
		if !strings.Contains(w[i].Message, table) || !strings.Contains(w[i].SQL, "CREATE INDEX") {
			t.Fatalf("warning %d = %+v, want one about %s with a CREATE INDEX", i, w[i], table)
		}
		exec(t, db, w[i].SQL) // the statement given works
	}
	if w := open(t, url).Warnings(); len(w) != 0 {
		t.Fatalf("after running the suggested statements (dropped %v): Warnings() = %+v", dropped, w)
	}
}

func TestOpenFailsOnADatabaseWithoutKeycloakTables(t *testing.T) {
	url := testenv.NewDatabase(t)
	_, err := Open(context.Background(), url)
	if err == nil || !strings.Contains(err.Error(), "event_entity") {
		t.Fatalf("Open on an empty database: error %v, want one naming event_entity", err)
	}
}

func TestOpenErrorDoesNotRevealThePassword(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=1")
	if err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("error reveals the password: %v", err)
	}
}

func TestEventsPagesInTimeAndIDOrderWithoutGapsOrRepeatsAcrossSameMillisecondRows(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	var want []string
	for ms := int64(1000); ms < 1005; ms++ {
		for i := range 9 { // nine rows share each millisecond
			id := fmt.Sprintf("e-%d-%d", ms, 8-i)
			insertEvent(t, db, id, "r1", ms, "LOGIN")
			want = append(want, id)
		}
	}
	insertEvent(t, db, "other-realm", "r2", 1001, "LOGIN")
	slices.Sort(want) // equals (time, id) order here
	s := open(t, url)
	for _, limit := range []int{1, 4, 9, 10, 100} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []string
			q := Query{RealmID: "r1", Limit: limit}
			for {
				page, err := s.Events(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ids(page)...)
				if len(page) < limit {
					break
				}
				last := page[len(page)-1]
				q.AfterTime, q.AfterID = last.Time, last.ID
			}
			if !slices.Equal(got, want) {
				t.Fatalf("paged ids\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func TestQueryBoundsSelectTheirRange(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	for i, ms := range []int64{10, 20, 20, 30, 40} {
		insertEvent(t, db, fmt.Sprintf("e%d", i), "r", ms, "LOGIN")
		insertAdmin(t, db, fmt.Sprintf("a%d", i), "r", ms, "CREATE", "USER")
	}
	s := open(t, url)
	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"after time with empty id includes that time", Query{AfterTime: 20}, []string{"1", "2", "3", "4"}},
		{"after (time, id) excludes up to that id", Query{AfterTime: 20, AfterID: "e1"}, []string{"2", "3", "4"}},
		{"until is inclusive", Query{AfterTime: 10, UntilTime: 30}, []string{"0", "1", "2", "3"}},
		{"limit cuts the page", Query{Limit: 2}, []string{"0", "1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.q.RealmID = "r"
			if c.q.Limit == 0 {
				c.q.Limit = 100
			}
			ev, err := s.Events(context.Background(), c.q)
			if err != nil {
				t.Fatal(err)
			}
			if c.q.AfterID != "" {
				c.q.AfterID = "a" + strings.TrimPrefix(c.q.AfterID, "e")
			}
			ad, err := s.AdminEvents(context.Background(), c.q)
			if err != nil {
				t.Fatal(err)
			}
			var wantEv, wantAd []string
			for _, n := range c.want {
				wantEv, wantAd = append(wantEv, "e"+n), append(wantAd, "a"+n)
			}
			if !slices.Equal(ids(ev), wantEv) || !slices.Equal(ids(ad), wantAd) {
				t.Fatalf("events %v admin %v, want %v and %v", ids(ev), ids(ad), wantEv, wantAd)
			}
		})
	}
}

func TestEventsReturnEveryColumnAndPreferTheLongDetails(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	exec(t, db, `INSERT INTO event_entity (id, realm_id, event_time, type, client_id, user_id, session_id,
		ip_address, error, details_json, details_json_long_value)
		VALUES ('e1', 'r', 5, 'LOGIN_ERROR', 'app', 'u1', 's1', '127.0.0.1', 'invalid_user_credentials',
		'{"short":"1"}', '{"long":"1"}'), ('e2', 'r', 6, 'LOGIN', NULL, NULL, NULL, NULL, NULL, '{"short":"2"}', NULL)`)
	exec(t, db, `INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type,
		auth_realm_id, auth_client_id, auth_user_id, ip_address, resource_path, representation, error, details_json)
		VALUES ('a1', 'r', 7, 'UPDATE', 'USER', 'master', 'c-uuid', 'u0', '::1', 'users/u1', '{"x":1}', 'e', '{"d":"1"}')`)
	s := open(t, url)
	ev, err := s.Events(context.Background(), Query{RealmID: "r", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	ns := func(v string) sql.NullString { return sql.NullString{String: v, Valid: true} }
	want := []EventRow{
		{ID: "e1", Time: 5, Type: ns("LOGIN_ERROR"), RealmID: "r", ClientID: ns("app"), UserID: ns("u1"),
			SessionID: ns("s1"), IPAddress: ns("127.0.0.1"), Error: ns("invalid_user_credentials"), Details: ns(`{"long":"1"}`)},
		{ID: "e2", Time: 6, Type: ns("LOGIN"), RealmID: "r", Details: ns(`{"short":"2"}`)},
	}
	if !slices.Equal(ev, want) {
		t.Fatalf("Events =\n%+v\nwant\n%+v", ev, want)
	}
	ad, err := s.AdminEvents(context.Background(), Query{RealmID: "r", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	wantAd := []AdminEventRow{{ID: "a1", Time: 7, RealmID: "r", OperationType: ns("UPDATE"), ResourceType: ns("USER"),
		AuthRealmID: ns("master"), AuthClientID: ns("c-uuid"), AuthUserID: ns("u0"), IPAddress: ns("::1"),
		ResourcePath: ns("users/u1"), Representation: ns(`{"x":1}`), Error: ns("e"), Details: ns(`{"d":"1"}`)}}
	if !s.Columns().AdminDetails {
		wantAd[0].Details = sql.NullString{}
	}
	if !slices.Equal(ad, wantAd) {
		t.Fatalf("AdminEvents =\n%+v\nwant\n%+v", ad, wantAd)
	}
}

func TestFiltersSelectTypesByNameAndGlob(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	types := []string{"LOGIN", "LOGIN_ERROR", "LOGOUT", "CODE_TO_TOKEN", "REFRESH_TOKEN", "LOGINXERROR", "CUSTOM%"}
	for i, typ := range types {
		insertEvent(t, db, fmt.Sprintf("e%d", i), "r", int64(i), typ)
	}
	exec(t, db, `INSERT INTO event_entity (id, realm_id, event_time) VALUES ('null-type', 'r', 100)`)
	admins := [][2]string{{"CREATE", "USER"}, {"UPDATE", "USER"}, {"DELETE", "CLIENT"}, {"ACTION", "REALM_ROLE_MAPPING"}, {"CREATE", "CLIENT_ROLE_MAPPING"}}
	for i, a := range admins {
		insertAdmin(t, db, fmt.Sprintf("a%d", i), "r", int64(i), a[0], a[1])
	}
	s := open(t, url)
	cases := []struct {
		name      string
		types     Filter
		ops, ress Filter
		wantEv    []string
		wantAd    []string
	}{
		{name: "no filter keeps all, NULL type included", wantEv: []string{"e0", "e1", "e2", "e3", "e4", "e5", "e6", "null-type"},
			wantAd: []string{"a0", "a1", "a2", "a3", "a4"}},
		{name: "exact names", types: Filter{Include: []string{"LOGIN", "LOGOUT"}}, wantEv: []string{"e0", "e2"}},
		{name: "glob prefix; underscore is literal", types: Filter{Include: []string{"LOGIN_*"}}, wantEv: []string{"e1"}},
		{name: "glob in the middle", types: Filter{Include: []string{"*_TO*"}}, wantEv: []string{"e3", "e4"}},
		{name: "percent is literal", types: Filter{Include: []string{"CUSTOM%*"}}, wantEv: []string{"e6"}},
		{name: "exclude glob keeps NULL type", types: Filter{Exclude: []string{"LOG*", "*TOKEN"}}, wantEv: []string{"e6", "null-type"}},
		{name: "include and exclude", types: Filter{Include: []string{"LOG*"}, Exclude: []string{"*ERROR"}}, wantEv: []string{"e0", "e2"}},
		{name: "operation types", ops: Filter{Include: []string{"CREATE", "DELETE"}}, wantAd: []string{"a0", "a2", "a4"}},
		{name: "resource glob", ress: Filter{Include: []string{"*_ROLE_MAPPING"}}, wantAd: []string{"a3", "a4"}},
		{name: "operation and resource", ops: Filter{Exclude: []string{"ACTION"}}, ress: Filter{Include: []string{"*ROLE*", "USER"}},
			wantAd: []string{"a0", "a1", "a4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.ops.Include == nil && c.ops.Exclude == nil && c.ress.Include == nil && c.ress.Exclude == nil {
				ev, err := s.Events(context.Background(), Query{RealmID: "r", Limit: 100, Types: c.types})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(ev), c.wantEv) {
					t.Fatalf("events %v, want %v", ids(ev), c.wantEv)
				}
			}
			if c.types.Include == nil && c.types.Exclude == nil {
				ad, err := s.AdminEvents(context.Background(), Query{RealmID: "r", Limit: 100, Operations: c.ops, Resources: c.ress})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(ad), c.wantAd) {
					t.Fatalf("admin events %v, want %v", ids(ad), c.wantAd)
				}
			}
		})
	}
}

func TestBadQueriesAreErrorsNamingTheProblem(t *testing.T) {
	url, _ := newDB(t, schemaVersion)
	s := open(t, url)
	ctx := context.Background()
	_, err1 := s.Events(ctx, Query{RealmID: "r", Limit: 0})
	_, err2 := s.Events(ctx, Query{RealmID: "r", Limit: 1, Types: Filter{Include: []string{" "}}})
	_, err3 := s.Events(ctx, Query{RealmID: "r", Limit: 1, Operations: Filter{Include: []string{"CREATE"}}})
	_, err4 := s.AdminEvents(ctx, Query{RealmID: "r", Limit: 1, Types: Filter{Include: []string{"LOGIN"}}})
	for i, c := range []struct {
		err  error
		want string
	}{{err1, "limit 0"}, {err2, `pattern " " is empty`}, {err3, "admin events only"}, {err4, "events only"}} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("case %d: error %v, want one containing %q", i, c.err, c.want)
		}
	}
}

func TestPageQueriesReadOnlyTheIndexRangeAndStopAfterThePage(t *testing.T) {
	_, db := newDB(t, schemaVersion)
	// 40 realms x 2,500 rows. A plan that leaves the (realm_id, time) index
	// range shows a Seq Scan or a realm-only condition; a plan that reads the
	// whole range and sorts it (quadratic over a backlog) reads 2,500 rows
	// for a page of 100.
	for _, table := range []string{"event_entity", "admin_event_entity"} {
		tc, typ := "event_time", "type"
		if table == "admin_event_entity" {
			tc, typ = "admin_event_time", "operation_type"
		}
		exec(t, db, fmt.Sprintf(`INSERT INTO %s (id, realm_id, %s, %s)
			SELECT md5(g::text), 'realm-' || (g %% 40), 1700000000000 + g / 3,
				CASE WHEN g %% 3 = 0 THEN 'LOGIN' ELSE 'CODE_TO_TOKEN' END
			FROM generate_series(1, 100000) g`, table, tc, typ))
		exec(t, db, "ANALYZE "+table)
	}
	cases := []struct {
		name    string
		table   Table
		q       Query
		filters map[string]Filter
	}{
		{"no filter", EventTable, Query{AfterTime: 1700000000000, AfterID: "x"}, nil},
		{"until bound", EventTable, Query{AfterTime: 1700000000000, UntilTime: 1700000030000}, nil},
		{"include names and globs", EventTable, Query{AfterTime: 1700000000000},
			map[string]Filter{"type": {Include: []string{"LOG*", "CODE_TO_TOKEN"}}}},
		{"exclude", EventTable, Query{AfterTime: 1700000000000},
			map[string]Filter{"type": {Exclude: []string{"LOGOUT", "*_ERROR"}}}},
		{"admin filters", AdminEventTable, Query{AfterTime: 1700000000000},
			map[string]Filter{"operation_type": {Include: []string{"LOGIN"}}, "resource_type": {Exclude: []string{"US*"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.q.RealmID, c.q.Limit = "realm-7", 100
			stmt, args, err := pageSQL(c.table, "*", c.q, c.filters)
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
			scan := nodes[0].Plan.leaf()
			cond := fmt.Sprintf("((realm_id)::text = 'realm-7'::text) AND (%s >=", c.table.timeColumn())
			if scan.RelationName != c.table.String() || !strings.Contains(scan.IndexCond, cond) {
				t.Fatalf("scan node %+v does not scan the (realm_id, time) index range; plan:\n%s", scan, plan)
			}
			if scan.ActualRows > 5*float64(c.q.Limit) {
				t.Fatalf("scan read %v rows for a page of %d: it does not stop after the page; plan:\n%s",
					scan.ActualRows, c.q.Limit, plan)
			}
		})
	}
}

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexCond    string     `json:"Index Cond"`
	ActualRows   float64    `json:"Actual Rows"`
	Plans        []planNode `json:"Plans"`
}

// leaf returns the first node without children: the scan.
func (n planNode) leaf() planNode {
	for len(n.Plans) > 0 {
		n = n.Plans[0]
	}
	return n
}

func TestRealmsUsernamesAndOldestTime(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	exec(t, db, `INSERT INTO realm (id, name) VALUES ('id-b', 'beta'), ('master', 'master'), ('id-a', 'alpha')`)
	exec(t, db, `INSERT INTO user_entity (id, username, realm_id) VALUES ('u1', 'alice', 'id-a'), ('u2', 'admin', 'master')`)
	insertEvent(t, db, "e1", "id-a", 300, "LOGIN")
	insertEvent(t, db, "e2", "id-a", 200, "LOGIN")
	insertAdmin(t, db, "a1", "id-b", 50, "CREATE", "USER")
	s := open(t, url)
	ctx := context.Background()
	realms, err := s.Realms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Realm{{"id-a", "alpha"}, {"id-b", "beta"}, {"master", "master"}}; !slices.Equal(realms, want) {
		t.Fatalf("Realms = %v, want %v", realms, want)
	}
	names, err := s.Usernames(ctx, []string{"u1", "u2", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names["u1"] != "alice" || names["u2"] != "admin" {
		t.Fatalf("Usernames = %v, want alice and admin across realms, gone absent", names)
	}
	for _, c := range []struct {
		table Table
		realm string
		want  int64
		ok    bool
	}{{EventTable, "id-a", 200, true}, {EventTable, "id-b", 0, false}, {AdminEventTable, "id-b", 50, true}} {
		got, ok, err := s.OldestTime(ctx, c.table, c.realm)
		if err != nil || got != c.want || ok != c.ok {
			t.Errorf("OldestTime(%s, %s) = %d, %v, %v; want %d, %v", c.table, c.realm, got, ok, err, c.want, c.ok)
		}
	}
}

func TestAUserWithOnlyTheDocumentedGrantsCanTail(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	var dbname string
	if err := db.QueryRow("SELECT current_database()").Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	role := dbname + "_reader"
	exec(t, db, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		// The database is dropped after this cleanup runs; drop what the role owns first.
		db.Exec("REVOKE ALL ON event_entity, admin_event_entity, realm, user_entity FROM " + role)
		db.Exec("REVOKE ALL ON SCHEMA public FROM " + role)
		db.Exec("REVOKE ALL ON DATABASE " + dbname + " FROM " + role)
		db.Exec("DROP ROLE " + role)
	})
	exec(t, db, "REVOKE ALL ON DATABASE "+dbname+" FROM PUBLIC")
	exec(t, db, "GRANT CONNECT ON DATABASE "+dbname+" TO "+role)
	exec(t, db, "GRANT USAGE ON SCHEMA public TO "+role)
	exec(t, db, "GRANT SELECT ON event_entity, admin_event_entity, realm, user_entity TO "+role)
	exec(t, db, `INSERT INTO realm (id, name) VALUES ('r', 'acme')`)
	insertEvent(t, db, "e1", "r", 1, "LOGIN")
	insertAdmin(t, db, "a1", "r", 1, "CREATE", "USER")

	readerURL := strings.Replace(url, "postgres://postgres@", "postgres://"+role+"@", 1)
	s := open(t, readerURL)
	ctx := context.Background()
	if _, err := s.Realms(ctx); err != nil {
		t.Fatal(err)
	}
	if ev, err := s.Events(ctx, Query{RealmID: "r", Limit: 5}); err != nil || len(ev) != 1 {
		t.Fatalf("Events = %v, %v", ev, err)
	}
	if ad, err := s.AdminEvents(ctx, Query{RealmID: "r", Limit: 5}); err != nil || len(ad) != 1 {
		t.Fatalf("AdminEvents = %v, %v", ad, err)
	}
	if _, err := s.Usernames(ctx, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	// And the grant is needed: without it reading fails.
	exec(t, db, "REVOKE SELECT ON user_entity FROM "+role)
	if _, err := s.Usernames(ctx, []string{"x"}); err == nil {
		t.Fatal("Usernames succeeded without SELECT on user_entity: the test does not use the reader role")
	}
}

func TestUnreachableCountsRowsOfUnknownRealmsNullTimesAndNullRealms(t *testing.T) {
	url, db := newDB(t, schemaVersion)
	exec(t, db, `INSERT INTO realm (id, name) VALUES ('r', 'acme'), ('empty', 'empty')`)
	for i := range 3 {
		insertEvent(t, db, fmt.Sprint("ok-", i), "r", int64(100+i), "LOGIN")
		insertEvent(t, db, fmt.Sprint("gone-", i), "deleted-realm", int64(100+i), "LOGIN")
	}
	insertEvent(t, db, "gone-3", "deleted-realm", 200, "LOGIN")
	exec(t, db, `INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ('nt-1', 'r', NULL, 'LOGIN'), ('nt-2', 'r', NULL, 'LOGIN'), ('nr', NULL, 5, 'LOGIN')`)
	insertAdmin(t, db, "a-ok", "r", 100, "CREATE", "USER")
	exec(t, db, `INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type) VALUES ('a-nt', 'r', NULL, 'CREATE', 'USER')`)
	s := open(t, url)
	got, err := s.Unreachable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Unreachable{
		{EventTable, NoRealm, "deleted-realm", 4},
		{EventTable, NullTime, "r", 2},
		{EventTable, NullRealm, "", 1},
		{AdminEventTable, NullTime, "r", 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Unreachable = %+v, want %+v", got, want)
	}
	exec(t, db, `DELETE FROM event_entity WHERE id LIKE 'gone-%' OR id LIKE 'nt-%' OR id = 'nr'`)
	exec(t, db, `DELETE FROM admin_event_entity WHERE id = 'a-nt'`)
	if got, err := s.Unreachable(context.Background()); err != nil || len(got) != 0 {
		t.Errorf("Unreachable = %+v, %v once those rows are gone, want none", got, err)
	}
}

// TestOpenTurnsJITOffForItsConnections pins the source's session setup: a poll of 1,000 realms
// is a statement PostgreSQL would compile at every poll (about 200 ms,
// against 28 ms to run it), on every connection of the pool.
func TestOpenTurnsJITOffForItsConnections(t *testing.T) {
	url, _ := newDB(t, schemaVersion)
	s := open(t, url)
	ctx := context.Background()
	var conns []*sql.Conn
	for range 3 {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		var jit string
		if err := c.QueryRowContext(ctx, "SHOW jit").Scan(&jit); err != nil {
			t.Fatal(err)
		}
		if jit != "off" {
			t.Errorf("connection %d: jit = %s, want off", i, jit)
		}
		c.Close()
	}
}
