package emitter

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/pgsource"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// pgSchemaVersion is the Keycloak version whose real schema dump the
// database tests load.
const pgSchemaVersion = "26.5.6"

// kcDB is a fresh database with Keycloak's schema, for the tests of the
// database source.
type kcDB struct {
	t   testing.TB
	url string
	db  *sql.DB
}

func newKCDB(t testing.TB) *kcDB {
	t.Helper()
	return newKCDBOn(t, testenv.NewDatabase(t))
}

func newKCDBOn(t testing.TB, url string) *kcDB {
	t.Helper()
	return newKCDBVersion(t, url, pgSchemaVersion)
}

func newKCDBVersion(t testing.TB, url, version string) *kcDB {
	t.Helper()
	testenv.LoadSchema(t, url, version)
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &kcDB{t: t, url: url, db: db}
}

func (k *kcDB) exec(q string, args ...any) {
	k.t.Helper()
	if _, err := k.db.Exec(q, args...); err != nil {
		k.t.Fatalf("%s: %v", q, err)
	}
}

func (k *kcDB) realm(id, name string) {
	k.exec(`INSERT INTO realm (id, name) VALUES ($1, $2)`, id, name)
}

func (k *kcDB) event(id, realm string, ms int64, typ string) {
	k.t.Helper()
	k.exec(`INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ($1, $2, $3, $4)`, id, realm, ms, typ)
}

func (k *kcDB) admin(id, realm string, ms int64) {
	k.t.Helper()
	k.exec(`INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type)
		VALUES ($1, $2, $3, 'UPDATE', 'USER')`, id, realm, ms)
}

// pager opens the database and returns a DBPager over it.
// source opens the database source on the test database.
func (k *kcDB) source(f Filters, log *slog.Logger) *dbSource {
	k.t.Helper()
	src, err := pgsource.Open(context.Background(), k.url)
	if err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() { src.Close() })
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return newDBSource(src, f, log)
}

// enrichedPage reads a page of src and runs the pipeline's username step
// over it.
func enrichedPage(t *testing.T, src source, r realm, kind Kind, limit int) []Record {
	t.Helper()
	recs, err := src.page(context.Background(), r, kind, cursor{}, 0, limit)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := src.(userDirectory)
	if err := newEnricher(dir, 100).enrich(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestDBSourceConvertsRowsAndEnrichesUsernamesAsTheOriginal(t *testing.T) {
	k := newKCDB(t)
	k.realm("rid", "acme")
	k.realm("master", "master")
	k.exec(`INSERT INTO user_entity (id, username, realm_id) VALUES ('u-alice', 'alice', 'rid'), ('u-admin', 'admin', 'master')`)
	k.exec(`INSERT INTO event_entity (id, realm_id, event_time, type, client_id, user_id, session_id, ip_address, error, details_json)
		VALUES ('e1', 'rid', 10, 'LOGIN', 'app', 'u-alice', 's1', '10.0.0.1', NULL, '{"auth_method":"openid-connect","remember_me":true,"n":null}'),
		       ('e2', 'rid', 11, 'LOGIN', 'app', 'u-alice', 's1', '10.0.0.1', NULL, '{"username":"typed-name"}'),
		       ('e3', 'rid', 12, 'LOGIN_ERROR', 'app', 'u-gone', NULL, NULL, 'user_not_found', NULL)`)
	k.exec(`INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type, auth_realm_id,
		auth_client_id, auth_user_id, ip_address, resource_path, representation)
		VALUES ('a1', 'rid', 20, 'UPDATE', 'USER', 'master', 'c-uuid', 'u-admin', '::1', 'users/u-alice', '{"enabled":true}'),
		       ('a2', 'rid', 21, 'DELETE', 'USER', 'master', 'c-uuid', 'u-admin', '::1', 'users/u-deleted', NULL),
		       ('a3', 'rid', 22, 'CREATE', 'REALM_ROLE_MAPPING', 'master', 'c-uuid', 'u-admin', '::1', 'users/u-alice/role-mappings/realm', NULL)`)
	p := k.source(Filters{}, nil)
	acme := realm{ID: "rid", Name: "acme"}
	evs := enrichedPage(t, p, acme, KindEvent, 10)
	wantEv := []Event{
		{ID: "e1", Time: 10, Type: "LOGIN", RealmID: "rid", RealmName: "acme", ClientID: "app", UserID: "u-alice",
			SessionID: "s1", IPAddress: "10.0.0.1",
			Details: map[string]string{"auth_method": "openid-connect", "remember_me": "true", "n": "", "username": "alice"}},
		{ID: "e2", Time: 11, Type: "LOGIN", RealmID: "rid", RealmName: "acme", ClientID: "app", UserID: "u-alice",
			SessionID: "s1", IPAddress: "10.0.0.1", Details: map[string]string{"username": "typed-name"}},
		{ID: "e3", Time: 12, Type: "LOGIN_ERROR", RealmID: "rid", RealmName: "acme", ClientID: "app", UserID: "u-gone",
			Error: "user_not_found", Details: map[string]string{}},
	}
	if len(evs) != len(wantEv) {
		t.Fatalf("got %d events, want %d", len(evs), len(wantEv))
	}
	for i, r := range evs {
		if r.Admin != nil || !reflect.DeepEqual(*r.Event, wantEv[i]) {
			t.Errorf("event %d = %+v, want %+v", i, r.Event, wantEv[i])
		}
	}

	ads := enrichedPage(t, p, acme, KindAdminEvent, 10)
	auth := AuthDetails{RealmID: "master", ClientID: "c-uuid", UserID: "u-admin", IPAddress: "::1", Username: "admin"}
	wantAd := []AdminEvent{
		{ID: "a1", Time: 20, RealmID: "rid", RealmName: "acme", AuthDetails: auth, OperationType: "UPDATE",
			ResourceType: "USER", ResourcePath: "users/u-alice", Representation: `{"enabled":true}`,
			Details: map[string]string{"user_id": "u-alice", "username": "alice"}},
		{ID: "a2", Time: 21, RealmID: "rid", RealmName: "acme", AuthDetails: auth, OperationType: "DELETE",
			ResourceType: "USER", ResourcePath: "users/u-deleted", Details: map[string]string{"user_id": "u-deleted"}},
		{ID: "a3", Time: 22, RealmID: "rid", RealmName: "acme", AuthDetails: auth, OperationType: "CREATE",
			ResourceType: "REALM_ROLE_MAPPING", ResourcePath: "users/u-alice/role-mappings/realm", Details: map[string]string{}},
	}
	if len(ads) != len(wantAd) {
		t.Fatalf("got %d admin events, want %d", len(ads), len(wantAd))
	}
	for i, r := range ads {
		if r.Event != nil || !reflect.DeepEqual(*r.Admin, wantAd[i]) {
			t.Errorf("admin event %d = %+v, want %+v", i, r.Admin, wantAd[i])
		}
	}
}

func TestDBSourceForwardsMalformedDetailsRawAndCountsThem(t *testing.T) {
	k := newKCDB(t)
	truncated := `{"redirect_uri":"https://app.example/cb","code_id":"abc` // cut as Keycloak < 23 cut long details
	k.exec(`INSERT INTO event_entity (id, realm_id, event_time, type, details_json) VALUES
		('ok', 'r', 1, 'LOGIN', '{"a":"b"}'), ('cut', 'r', 2, 'LOGIN', $1), ('array', 'r', 3, 'LOGIN', '["x"]'),
		('null', 'r', 4, 'LOGIN', 'null')`, truncated)
	var logs strings.Builder
	p := k.source(Filters{}, slog.New(slog.NewTextHandler(&logs, nil)))
	recs := enrichedPage(t, p, realm{ID: "r"}, KindEvent, 10)
	want := []map[string]string{
		{"a": "b"}, {malformedDetailsKey: truncated}, {malformedDetailsKey: `["x"]`}, {malformedDetailsKey: "null"},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want all %d: none dropped", len(recs), len(want))
	}
	for i, r := range recs {
		if !maps.Equal(r.Event.Details, want[i]) {
			t.Errorf("%s details = %v, want %v", r.Event.ID, r.Event.Details, want[i])
		}
	}
	if got := p.malformed.Load(); got != 3 {
		t.Fatalf("malformed = %d, want 3", got)
	}
	if !strings.Contains(logs.String(), "id=cut") {
		t.Fatalf("no log line names the malformed event: %s", logs.String())
	}
}

func TestDBSourceReadsTheKeycloak22SchemaWithoutTheNewerColumns(t *testing.T) {
	k := newKCDBVersion(t, testenv.NewDatabase(t), "22.0.5")
	k.exec(`INSERT INTO event_entity (id, realm_id, event_time, type, details_json) VALUES ('e', 'r', 1, 'LOGIN', '{"k":"v"}')`)
	k.admin("a", "r", 2)
	p := k.source(Filters{}, nil)
	ev := enrichedPage(t, p, realm{ID: "r"}, KindEvent, 5)
	ad := enrichedPage(t, p, realm{ID: "r"}, KindAdminEvent, 5)
	if len(ev) != 1 || !maps.Equal(ev[0].Event.Details, map[string]string{"k": "v"}) {
		t.Fatalf("events %+v, want e with details k=v", ev)
	}
	if len(ad) != 1 || ad[0].Admin.Details == nil || len(ad[0].Admin.Details) != 0 {
		t.Fatalf("admin events %+v, want a with empty, non-nil details", ad)
	}
}

func TestDBSourceAppliesTheFiltersToPagesAndCounts(t *testing.T) {
	k := newKCDB(t)
	for i, typ := range []string{"LOGIN", "LOGIN_ERROR", "CODE_TO_TOKEN", "LOGOUT"} {
		k.event(fmt.Sprint("e", i), "r", int64(i), typ)
	}
	k.exec(`INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type)
		VALUES ('a0', 'r', 1, 'CREATE', 'USER'), ('a1', 'r', 2, 'UPDATE', 'CLIENT'), ('a2', 'r', 3, 'DELETE', 'USER')`)
	p := k.source(Filters{
		EventTypes: TypeFilter{Include: []string{"LOG*"}, Exclude: []string{"*_ERROR"}},
		Operations: TypeFilter{Exclude: []string{"DELETE"}},
		Resources:  TypeFilter{Include: []string{"USER", "CLI*"}},
	}, nil)
	got := func(kind Kind) []string {
		recs := enrichedPage(t, p, realm{ID: "r"}, kind, 10)
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID())
		}
		return ids
	}
	if ev, ad := fmt.Sprint(got(KindEvent)), fmt.Sprint(got(KindAdminEvent)); ev != "[e0 e3]" || ad != "[a0 a1]" {
		t.Fatalf("events %s admin events %s, want [e0 e3] and [a0 a1]", ev, ad)
	}
	// count counts what page returns, bounds and filters included.
	for _, c := range []struct {
		kind         Kind
		after, until int64
		want         int
	}{{KindEvent, 0, 0, 2}, {KindEvent, 1, 3, 1}, {KindEvent, 0, 2, 1}, {KindAdminEvent, 0, 0, 2}, {KindAdminEvent, 2, 3, 1}} {
		n, err := p.count(context.Background(), realm{ID: "r"}, c.kind, cursor{Time: c.after}, c.until)
		if err != nil || n != c.want {
			t.Errorf("Count(%s, from %d, until %d) = %d, %v; want %d", c.kind, c.after, c.until, n, err, c.want)
		}
	}
}

func TestTypeFilterMatchesGlobs(t *testing.T) {
	cases := []struct {
		f    TypeFilter
		name string
		want bool
	}{
		{TypeFilter{}, "ANYTHING", true},
		{TypeFilter{Include: []string{"LOGIN"}}, "LOGIN", true},
		{TypeFilter{Include: []string{"LOGIN"}}, "LOGIN_ERROR", false},
		{TypeFilter{Include: []string{"LOGIN*"}}, "LOGIN_ERROR", true},
		{TypeFilter{Include: []string{"*ERROR"}}, "LOGIN_ERROR", true},
		{TypeFilter{Include: []string{"*_TO_*"}}, "CODE_TO_TOKEN", true},
		{TypeFilter{Include: []string{"A*A"}}, "A", false},
		{TypeFilter{Include: []string{"A*A"}}, "AA", true},
		{TypeFilter{Include: []string{"login*"}}, "LOGIN", false},
		{TypeFilter{Exclude: []string{"*"}}, "LOGIN", false},
		{TypeFilter{Include: []string{"LOG*"}, Exclude: []string{"LOGOUT"}}, "LOGOUT", false},
	}
	for _, c := range cases {
		if got := c.f.Match(c.name); got != c.want {
			t.Errorf("%+v.Match(%q) = %v, want %v", c.f, c.name, got, c.want)
		}
	}
}

// TestBudgetSharesFollowEachStreamsLastPage pins how a read's pages share
// --pageBytes: evenly while nothing is known, then by the rows each
// stream's last page held (plus one), never more than the budget in all,
// at least a byte each (the first row), nothing for a count.
func TestBudgetSharesFollowEachStreamsLastPage(t *testing.T) {
	ev := func(id string) readRequest { return readRequest{realm: realm{ID: id}, kind: KindEvent} }
	ad := func(id string) readRequest { return readRequest{realm: realm{ID: id}, kind: KindAdminEvent} }
	count := readRequest{realm: realm{ID: "a"}, kind: KindEvent, count: true}
	rows := func(n int) []Record { return make([]Record, n) }
	const budget, limit = 1000_000, 500
	for _, c := range []struct {
		name   string
		budget int64
		last   [][]Record // the pages of a first read of reqs, when not nil
		reqs   []readRequest
		want   []int64
	}{
		{"no budget", 0, nil, []readRequest{ev("a"), ad("a")}, []int64{0, 0}},
		{"nothing known: even", budget, nil, []readRequest{ev("a"), ad("a"), count, ev("b")}, []int64{333_333, 333_333, 0, 333_333}},
		{"a drain: the empty admin pages take almost nothing", budget, [][]Record{rows(limit), rows(0), rows(limit), rows(0)},
			[]readRequest{ev("a"), ad("a"), ev("b"), ad("b")}, []int64{499_001, 998, 499_001, 998}},
		{"a page cut short asks for its rows again", budget, [][]Record{rows(99), rows(9)},
			[]readRequest{ev("a"), ev("b")}, []int64{909_090, 90_909}},
		{"a tiny budget keeps a byte a page", 3, [][]Record{rows(limit), rows(0)},
			[]readRequest{ev("a"), ad("a")}, []int64{2, 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := (&dbSource{}).withBudgets(c.budget, 0)
			if c.last != nil {
				p.noteRows(c.reqs, c.last)
			}
			got := p.shares(c.reqs, limit)
			if !slices.Equal(got, c.want) {
				t.Errorf("shares %v, want %v", got, c.want)
			}
			var sum int64
			for _, s := range got {
				sum += s
			}
			if c.budget > 3 && sum > c.budget {
				t.Errorf("shares add up to %d, above the budget %d", sum, c.budget)
			}
		})
	}
}

func TestDBSourceSaysAReadOfHugeRowsIsHeavyAndOneOfSmallRowsIsNot(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	for i := range 20 {
		k.event(fmt.Sprintf("e-%02d", i), "r", 1700000000000+int64(i), "LOGIN")
	}
	k.exec(`UPDATE event_entity SET details_json = '{"auth_method":"openid-connect","code_id":"c"}'`)
	for i := range 3 {
		k.admin(fmt.Sprintf("a-%d", i), "r", 1700000000000+int64(i))
	}
	k.exec(`UPDATE admin_event_entity SET representation = repeat('x', 300000)`) // 900 KB in all
	src := k.source(Filters{}, nil).withBudgets(2<<20, 0)                        // heavy above 512 KiB
	r := realm{ID: "r", Name: "acme"}
	for _, c := range []struct {
		kind  Kind
		heavy bool
	}{{KindEvent, false}, {KindAdminEvent, true}} {
		res, err := src.readBatch(context.Background(), []readRequest{{realm: r, kind: c.kind}}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(res.pages[0]); n == 0 || res.heavy != c.heavy {
			t.Errorf("a read of %d %s rows: heavy %v, want %v", n, c.kind, res.heavy, c.heavy)
		}
	}
}

func TestDBSourceAllocatesTheEventsOfAPageTogether(t *testing.T) {
	p := newDBSource(nil, Filters{}, slog.New(slog.DiscardHandler))
	r := realm{ID: "r", Name: "acme"}
	const n = 100
	details := sql.NullString{String: `{"auth_method":"openid-connect"}`, Valid: true}
	evRows, adRows := make([]pgsource.EventRow, n), make([]pgsource.AdminEventRow, n)
	for i := range n {
		evRows[i] = pgsource.EventRow{ID: fmt.Sprint("e-", i), Time: int64(i), RealmID: "r", Details: details}
		adRows[i] = pgsource.AdminEventRow{ID: fmt.Sprint("a-", i), Time: int64(i), RealmID: "r", Details: details}
	}
	// Per row only its details map; the records and the events of the
	// page are two allocations, not one an event.
	for name, read := range map[string]func(){
		"events":       func() { p.eventRecords(r, evRows) },
		"admin events": func() { p.adminRecords(r, adRows) },
	} {
		perRow := func() float64 {
			details := testing.AllocsPerRun(20, func() { p.details(KindEvent, "x", details) })
			return testing.AllocsPerRun(20, read)/n - details
		}()
		if perRow > 0.05 {
			t.Errorf("%s: %.2f allocations a row beyond its details, want none", name, perRow)
		}
	}
}
