package apisource

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// sameMillisecondRows writes events straight into the event tables of the
// real Keycloak's database for realmID: burst events (and as many admin
// events) in one millisecond ms, in an order unrelated to their ids, and
// one event of each kind a millisecond before and after. HTTP traffic on
// two cores rarely puts two events in one millisecond; rows written this
// way are read back by the real server as it reads its own. It returns the
// ids, sorted.
func sameMillisecondRows(t *testing.T, kc testenv.Keycloak, realmID string, ms int64, burst int) (events, admin []string) {
	t.Helper()
	details := "details_json"
	if kc.HasColumn(t, "event_entity", "details_json_long_value") {
		details = "details_json_long_value" // where Keycloak 23+ writes them
	}
	db, err := sql.Open("postgres", kc.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	type row struct {
		id string
		ms int64
	}
	var rows []row
	for i := range burst {
		rows = append(rows, row{fmt.Sprintf("%08x-0000-4000-8000-%012d", rand.Uint32(), i), ms})
	}
	rows = append(rows, row{fmt.Sprintf("%08x-0000-4000-8000-before000000", rand.Uint32()), ms - 1},
		row{fmt.Sprintf("%08x-0000-4000-8000-after0000000", rand.Uint32()), ms + 1})
	rand.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	for _, r := range rows {
		if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, client_id, user_id, ip_address, error, `+details+`)
			VALUES ($1, $2, $3, 'LOGIN_ERROR', 'app', $4, '127.0.0.1', 'invalid_user_credentials', '{"username":"same-ms"}')`,
			r.id, realmID, r.ms, "u-"+r.id); err != nil {
			t.Fatal(err)
		}
		events = append(events, r.id)
		aid := "a" + r.id[1:]
		if _, err := db.Exec(`INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type, resource_path,
			auth_realm_id, auth_user_id, ip_address) VALUES ($1, $2, $3, 'UPDATE', 'USER', $4, $2, 'u-admin', '127.0.0.1')`,
			aid, realmID, r.ms, "users/"+r.id); err != nil {
			t.Fatal(err)
		}
		admin = append(admin, aid)
	}
	slices.Sort(events)
	slices.Sort(admin)
	return events, admin
}

// TestKeycloakSameMillisecondEventsAreNeverSkipped pages through 25 events
// of one millisecond (and as many admin events) on the real Keycloak with
// pages smaller than the burst, from the zero cursor and from cursors inside
// the millisecond: every event comes exactly once, in (time, id) order,
// nothing at or before the cursor comes again, and a page is short only
// when nothing follows it. On Keycloak 26.2+ the ids are Keycloak's; before,
// the API has none and the order is that of the synthetic ids, which one
// request for everything gives too.
func TestKeycloakSameMillisecondEventsAreNeverSkipped(t *testing.T) {
	env := requireKeycloak(t)
	kc := testenv.KeycloakEnv(t)
	r := newTestRealm(t, env, nil)
	var rep struct{ ID string }
	r.adm.do("GET", "/admin/realms/"+r.name, nil, &rep)
	const burst = 25
	ms := time.Now().Add(-time.Minute).UnixMilli()
	evIDs, admIDs := sameMillisecondRows(t, kc, rep.ID, ms, burst)

	ctx := context.Background()
	c := r.client(t, "emitter", nil)
	hasSync := checkSupportsSync(t, c, r.name)
	p := &Pager{Client: c, Sync: hasSync}
	for _, kind := range []Kind{KindEvents, KindAdminEvents} {
		ids := evIDs
		if kind == KindAdminEvents {
			ids = admIDs
		}
		// Only the rows written here are in the window [ms-1, ms+1]: the
		// realm's own setup events are newer. Expected order: ms-1, the
		// burst by id, ms+1.
		var want []Cursor
		for _, id := range ids {
			switch {
			case strings.HasSuffix(id, "before000000"):
				want = append([]Cursor{{ms - 1, id}}, want...)
			case strings.HasSuffix(id, "after0000000"):
			default:
				want = append(want, Cursor{ms, id})
			}
		}
		for _, id := range ids {
			if strings.HasSuffix(id, "after0000000") {
				want = append(want, Cursor{ms + 1, id})
			}
		}
		if !hasSync {
			want = legacyWindow(t, c, r.name, kind, ms, ids)
		}
		for _, start := range []int{0, 1, 9, burst - 1, burst} { // cursor before the window, and inside the burst
			for _, limit := range []int{1, 2, 7, 100} {
				t.Run(fmt.Sprintf("%s/after=%d/limit=%d", kind, start, limit), func(t *testing.T) {
					after := Cursor{Time: ms - 2}
					if start > 0 {
						after = want[start]
					}
					var got []Cursor
					for range 200 {
						items, err := p.Page(ctx, r.name, kind, after, ms+1, limit)
						if err != nil {
							t.Fatal(err)
						}
						if len(items) > limit {
							t.Fatalf("%d items, limit %d", len(items), limit)
						}
						if len(items) == 0 {
							break
						}
						for _, it := range items {
							cur := Cursor{it.Time, it.ID}
							if !after.before(it) {
								t.Fatalf("(%d, %s) is not after the cursor (%d, %s)", it.Time, it.ID, after.Time, after.ID)
							}
							after = cur
							got = append(got, cur)
						}
						if len(items) < limit {
							break // a short page says there is no more: the Tailer's --once stops here
						}
					}
					wantHere := want
					if start > 0 {
						wantHere = want[start+1:]
					}
					if !slices.Equal(got, wantHere) {
						t.Fatalf("got %d events\n %v\nwant %d\n %v", len(got), got, len(wantHere), wantHere)
					}
				})
			}
		}
	}
}

// legacyWindow reads every event of kind in realm in one request from a
// server before 26.2, gives them their synthetic ids, and returns the
// cursors of those in [ms-1, ms+1] in (time, id) order. It fails unless
// they are exactly the rows written with ids (by their user id, "u-<id>",
// or resource path, "users/<id>").
func legacyWindow(t *testing.T, c *Client, realm string, kind Kind, ms int64, ids []string) []Cursor {
	t.Helper()
	list := c.Events
	if kind == KindAdminEvents {
		list = c.AdminEvents
	}
	all, err := list(context.Background(), realm, Query{Max: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if err := SynthesizeIDs(all); err != nil {
		t.Fatal(err)
	}
	var want []Cursor
	var written []string
	for _, it := range all {
		if it.Time < ms-1 || it.Time > ms+1 {
			continue
		}
		var v struct{ UserID, ResourcePath string }
		if err := json.Unmarshal(it.Raw, &v); err != nil {
			t.Fatal(err)
		}
		id := strings.TrimPrefix(v.UserID, "u-")
		if kind == KindAdminEvents {
			id = "a" + strings.TrimPrefix(v.ResourcePath, "users/")[1:]
		}
		written = append(written, id)
		want = append(want, Cursor{it.Time, it.ID})
	}
	slices.Sort(written)
	if !slices.Equal(written, ids) {
		t.Fatalf("the server lists %d %s in the window, want the %d written:\n %v\n %v", len(written), kind, len(ids), written, ids)
	}
	slices.SortFunc(want, func(a, b Cursor) int {
		if a.Time != b.Time {
			return int(a.Time - b.Time)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return want
}
