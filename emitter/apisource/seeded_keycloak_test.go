package apisource

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// TestKeycloakSeededTrafficPagesLikeOneRequestWithTheSeedsServiceAccount
// reads a realm that scripts/seed filled with a round of real traffic
// (registration, logins in both flows, failures, refresh, logout, admin
// operations with representations) as the seed's service account, which
// holds view-events and view-users but not view-realm: paging with small
// pages returns exactly what one large request returns, ordered by (time,
// id), and the type filters (type, operationTypes, resourceTypes) return
// exactly the matching events. With KCEE_RECORD_API=1 it writes what it read to testdata/api/, the
// recorded responses that the unit tests of package emitter parse.
func TestKeycloakSeededTrafficPagesLikeOneRequestWithTheSeedsServiceAccount(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	realm := fmt.Sprintf("kcee-api-seed-%d", rand.Uint32())
	seeded := testenv.SeedKeycloak(t, realm, 1)
	c, err := New(Config{BaseURL: kc.URL, AuthRealm: realm, ClientID: seeded.ClientID, ClientSecret: seeded.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	realms, err := c.Realms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(realms) != 1 || realms[0].Name != realm {
		t.Fatalf("realms of the seed's service account: %+v, want only %s", realms, realm)
	}
	hasSync := checkSupportsSync(t, c, realm)
	p := &Pager{Client: c, Sync: hasSync}
	for _, kind := range []Kind{KindEvents, KindAdminEvents} {
		t.Run(kind.String(), func(t *testing.T) {
			list := c.Events
			if kind == KindAdminEvents {
				list = c.AdminEvents
			}
			all, err := list(ctx, realm, Query{Max: 10000})
			if err != nil {
				t.Fatal(err)
			}
			if err := SynthesizeIDs(all); err != nil { // before 26.2: no ids
				t.Fatal(err)
			}
			if len(all) < 5 {
				t.Fatalf("only %d %s after a round of the seed", len(all), kind)
			}
			var want []Cursor
			for _, it := range all {
				want = append(want, Cursor{it.Time, it.ID})
			}
			slices.SortFunc(want, func(a, b Cursor) int {
				if a.Time != b.Time {
					return int(a.Time - b.Time)
				}
				return cmpString(a.ID, b.ID)
			})
			var got []Item
			var after Cursor
			for range 1000 {
				items, err := p.Page(ctx, realm, kind, after, 0, 3)
				if err != nil {
					t.Fatal(err)
				}
				if len(items) == 0 {
					break
				}
				for _, it := range items {
					after = Cursor{it.Time, it.ID}
					got = append(got, it)
				}
			}
			var gotCur []Cursor
			for _, it := range got {
				gotCur = append(gotCur, Cursor{it.Time, it.ID})
			}
			if !slices.Equal(gotCur, want) {
				t.Fatalf("pages of 3 gave\n %v\none request gave\n %v", gotCur, want)
			}
			record(t, kind, got)
		})
	}
	t.Run("type filters", func(t *testing.T) {
		for _, tt := range []struct {
			kind  Kind
			q     Query
			match func(string) bool
		}{
			{KindEvents, Query{Types: []string{"LOGIN", "LOGOUT"}}, func(s string) bool { return s == "LOGIN" || s == "LOGOUT" }},
			{KindAdminEvents, Query{OperationTypes: []string{"CREATE"}}, func(s string) bool { return strings.HasPrefix(s, "CREATE:") }},
			{KindAdminEvents, Query{ResourceTypes: []string{"USER"}}, func(s string) bool { return strings.HasSuffix(s, ":USER") }},
			{KindAdminEvents, Query{OperationTypes: []string{"UPDATE", "DELETE"}, ResourceTypes: []string{"USER", "CLIENT"}},
				func(s string) bool {
					return s == "UPDATE:USER" || s == "DELETE:USER" || s == "UPDATE:CLIENT" || s == "DELETE:CLIENT"
				}},
		} {
			p := &Pager{Client: c, Sync: hasSync, Filter: tt.q}
			items, err := p.Page(ctx, realm, tt.kind, Cursor{}, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			all, err := (&Pager{Client: c, Sync: hasSync}).Page(ctx, realm, tt.kind, Cursor{}, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, it := range all {
				if tt.match(typeOf(it.Raw)) {
					want++
				}
			}
			for _, it := range items {
				if !tt.match(typeOf(it.Raw)) {
					t.Errorf("filter %+v let %s through", tt.q, typeOf(it.Raw))
				}
			}
			if want == 0 || len(items) != want {
				t.Errorf("filter %+v: %d events, want the %d of %d that match", tt.q, len(items), want, len(all))
			}
		}
	})
}
