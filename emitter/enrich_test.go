package emitter

import (
	"context"
	"fmt"
	"testing"
)

// countingDirectory names every user "name-<id>" and counts its calls.
type countingDirectory struct{ calls, users int }

func (d *countingDirectory) usernames(_ context.Context, users []userRef) (map[string]string, error) {
	d.calls++
	d.users += len(users)
	out := map[string]string{}
	for _, u := range users {
		out[u.userID] = "name-" + u.userID
	}
	return out, nil
}

func TestPrefetchOfAPollsPagesLooksUpTheirUsernamesOnceAndEmitFindsThemCached(t *testing.T) {
	dir := &countingDirectory{}
	p := &pipeline{users: newEnricher(dir, 100)}
	var pages [][]Record
	for realm := range 3 {
		var page []Record
		for i := range 2 {
			page = append(page, Record{Event: &Event{ID: fmt.Sprint(realm, i), RealmID: fmt.Sprint("r", realm), Type: "LOGIN",
				UserID: fmt.Sprintf("u%d-%d", realm, i), Details: map[string]string{}}})
		}
		pages = append(pages, page)
	}
	p.prefetch(context.Background(), pages)
	for _, page := range pages {
		if err := p.users.enrich(context.Background(), page); err != nil {
			t.Fatal(err)
		}
	}
	if dir.calls != 1 || dir.users != 6 {
		t.Fatalf("%d lookups of %d users for 3 pages of 2 users, want 1 of 6", dir.calls, dir.users)
	}
	for _, page := range pages {
		for _, r := range page {
			if got, want := r.Event.Details["username"], "name-"+r.Event.UserID; got != want {
				t.Errorf("event %s: username %q, want %q", r.Event.ID, got, want)
			}
		}
	}
}

// BenchmarkEnrichAPageOfKnownUsers prefetches and then sets the usernames
// of a page of 500 LOGIN events of 500 users the cache knows, as a drain
// does: its time per event is the enricher's share of a drain's CPU.
func BenchmarkEnrichAPageOfKnownUsers(b *testing.B) {
	const n = 500
	p := &pipeline{users: newEnricher(&countingDirectory{}, defaultUsernameCache)}
	page := make([]Record, n)
	for i := range page {
		page[i] = Record{Event: &Event{ID: fmt.Sprint(i), RealmID: "r", Type: "LOGIN",
			UserID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), Details: map[string]string{"auth_method": "openid-connect"}}}
	}
	ctx := context.Background()
	for b.Loop() {
		for _, r := range page {
			delete(r.Event.Details, "username")
		}
		p.prefetch(ctx, [][]Record{page})
		if err := p.users.enrich(ctx, page); err != nil || page[n-1].Event.Details["username"] == "" {
			b.Fatalf("enrich = %v, username %q: want a name", err, page[n-1].Event.Details["username"])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
