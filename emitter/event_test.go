package emitter

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRecordKeyIsTheUserTheEventIsAbout(t *testing.T) {
	acting := AuthDetails{UserID: "admin-1"}
	for _, tc := range []struct {
		name string
		r    Record
		want string
	}{
		{"event: its user", Record{Event: &Event{UserID: "u-1"}}, "u-1"},
		{"event without a user", Record{Event: &Event{}}, ""},
		{"admin event on a user", Record{Admin: &AdminEvent{AuthDetails: acting, ResourcePath: "users/u-2"}}, "u-2"},
		{"admin event below a user", Record{Admin: &AdminEvent{AuthDetails: acting, ResourcePath: "users/u-3/role-mappings/realm"}}, "u-3"},
		{"admin event on a client: the acting user", Record{Admin: &AdminEvent{AuthDetails: acting, ResourcePath: "clients/c-1"}}, "admin-1"},
		{"admin event on users/ with no id: the acting user", Record{Admin: &AdminEvent{AuthDetails: acting, ResourcePath: "users/"}}, "admin-1"},
		{"admin event without an acting user", Record{Admin: &AdminEvent{ResourcePath: "groups/g-1"}}, ""},
	} {
		if got := tc.r.Key(); got != tc.want {
			t.Errorf("%s: Key() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPipelineSendPutsTheKeyAndTheRealmNameOnTheEnvelope(t *testing.T) {
	s := &memBatchSink{}
	f := newBatchFixture(t, s, nil)
	enc, err := NewEncoder(FormatJSON, DefaultConfig().Numbering)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{enc: enc, delivery: f.d, metrics: newMetrics(prometheus.NewRegistry())}
	r := Record{Admin: &AdminEvent{ID: "a-1", UID: 9, Time: 1, RealmID: "r-id", RealmName: "acme",
		OperationType: "UPDATE", ResourceType: "USER", ResourcePath: "users/u-7", Details: map[string]string{}}}
	if err := p.send(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	env, err := f.d.ring.Take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if env.Key != "u-7" || env.RealmName != "acme" || env.RealmID != "r-id" {
		t.Errorf("envelope key %q realm %q (%s), want u-7 acme (r-id)", env.Key, env.RealmName, env.RealmID)
	}
}
