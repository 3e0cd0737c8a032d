package emitter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/apisource"
)

// apiSource is the source of Keycloak's admin REST API: it reads pages with
// apisource and turns EventRepresentation and AdminEventRepresentation JSON
// into Records (ParseAPIEvent). Include lists of plain names without
// exclusions are passed to the API (type, operationTypes, resourceTypes);
// the pipeline applies every filter. Usernames are looked up with GET
// /admin/realms/{realm}/users/{id} (role view-users).
//
// On Keycloak 26.2 and newer records carry Keycloak's event id. Older
// servers return no id: records then carry a synthetic dedupe key
// ("syn-<hash>-<n>", see apisource.SynthesizeIDs) derived from the event's
// content, which is what receivers see as the id. It is safe for
// concurrent use.
type apiSource struct {
	client *apisource.Client
	api    apisource.Query
	log    *slog.Logger

	mu          sync.Mutex
	pager       *apisource.Pager  // set by the first call that needs it
	realmNames  map[string]string // realm id -> name, from the last realms
	realmIDs    map[string]string // realm name -> id, once learned and checked
	idless      map[string]bool   // realm names logged as left out for want of an id
	usersDenied bool              // the account lacks view-users: no lookups
}

func newAPISource(client *apisource.Client, filters Filters, log *slog.Logger) *apiSource {
	api := apisource.Query{
		Types:          filters.EventTypes.plainNames(),
		OperationTypes: filters.Operations.plainNames(),
		ResourceTypes:  filters.Resources.plainNames(),
	}
	return &apiSource{client: client, api: api, log: log, realmNames: map[string]string{},
		realmIDs: map[string]string{}, idless: map[string]bool{}}
}

// realms returns the realms the account can see, each with its internal id
// (the key of its streams in the checkpoint, the same as the database
// source's). Keycloak shows realm ids only to accounts with view-realm; for
// the others (a service account with view-events and view-users) the id is
// taken from the realm's newest event or admin event, and a realm that has
// neither yet is left out until its first event. The first listing of a
// realm also reads one event of it: an account without view-events fails
// here with an error naming the role, not later in every poll.
func (p *apiSource) realms(ctx context.Context) ([]realm, error) {
	rs, err := p.client.Realms(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]realm, 0, len(rs))
	listed := map[string]bool{}
	for _, r := range rs {
		listed[r.Name] = true
		id, err := p.realmID(ctx, r)
		if err != nil {
			return nil, err
		}
		if id == "" {
			continue
		}
		out = append(out, realm{ID: id, Name: r.Name})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for name := range p.realmIDs {
		if !listed[name] {
			// Deleted: a realm created later under this name has a new id.
			delete(p.realmIDs, name)
		}
	}
	for _, r := range out {
		p.realmNames[r.ID] = r.Name
	}
	return out, nil
}

// realmID returns the internal id of r, learning it (and checking that the
// account may read r's events) the first time; "" while r has no id the
// account can see and no event.
func (p *apiSource) realmID(ctx context.Context, r apisource.Realm) (string, error) {
	p.mu.Lock()
	id, checked := p.realmIDs[r.Name]
	p.mu.Unlock()
	if checked && (r.ID == "" || r.ID == id) {
		return id, nil
	}
	id = r.ID
	for _, list := range []func(context.Context, string, apisource.Query) ([]apisource.Item, error){
		p.client.Events, p.client.AdminEvents,
	} {
		items, err := list(ctx, r.Name, apisource.Query{Max: 1})
		if err != nil {
			return "", fmt.Errorf("realm %q: %w", r.Name, err)
		}
		if id == "" && len(items) > 0 {
			var v struct {
				RealmID string `json:"realmId"`
			}
			if err := json.Unmarshal(items[0].Raw, &v); err != nil {
				return "", fmt.Errorf("realm %q: event %s: %w", r.Name, items[0].ID, err)
			}
			id = v.RealmID
		}
		if id != "" {
			break
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if id == "" {
		if !p.idless[r.Name] {
			p.idless[r.Name] = true
			p.log.Info("realm left out until its first event: the account sees neither its id (that needs realm-management view-realm) nor an event of it", "realm", r.Name)
		}
		return "", nil
	}
	delete(p.idless, r.Name)
	p.realmIDs[r.Name] = id
	return id, nil
}

// pagerFor returns the apisource pager, asking the server once (through
// realm) whether it has the sync API of Keycloak 26.2.
func (p *apiSource) pagerFor(ctx context.Context, r realm) (*apisource.Pager, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pager != nil {
		return p.pager, nil
	}
	hasSync, err := p.client.SupportsSync(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	if hasSync {
		p.log.Info("admin API: ascending pages by epoch-millisecond dates, Keycloak's event ids")
	} else {
		p.log.Warn("admin API of a Keycloak before 26.2: newest-first reads by day, events carry synthetic ids (syn-...) derived from their content, not Keycloak's ids")
	}
	p.pager = &apisource.Pager{Client: p.client, Sync: hasSync, Filter: p.api}
	return p.pager, nil
}

func apiKind(kind Kind) apisource.Kind {
	if kind == KindAdminEvent {
		return apisource.KindAdminEvents
	}
	return apisource.KindEvents
}

// oldestTime returns the time of the oldest stored event of kind in the
// realm; on servers before 26.2 it reports none (they list newest first only).
func (p *apiSource) oldestTime(ctx context.Context, r realm, kind Kind) (int64, bool, error) {
	pg, err := p.pagerFor(ctx, r)
	if err != nil {
		return 0, false, err
	}
	return pg.Oldest(ctx, r.Name, apiKind(kind))
}

func (p *apiSource) page(ctx context.Context, r realm, kind Kind, after cursor, until int64, limit int) ([]Record, error) {
	pg, err := p.pagerFor(ctx, r)
	if err != nil {
		return nil, err
	}
	items, err := pg.Page(ctx, r.Name, apiKind(kind), apisource.Cursor(after), until, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(items))
	for i, it := range items {
		if out[i], err = p.record(r, kind, it); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// record converts one API item.
func (p *apiSource) record(r realm, kind Kind, it apisource.Item) (Record, error) {
	rec, err := ParseAPIEvent(it.Raw)
	if err != nil {
		return Record{}, fmt.Errorf("%s %s of realm %q: %w", kind, it.ID, r.Name, err)
	}
	if rec.Kind() != kind {
		return Record{}, fmt.Errorf("%s %s of realm %q: the API returned an %s", kind, it.ID, r.Name, rec.Kind())
	}
	if a := rec.Admin; a != nil {
		a.ID, a.RealmName = it.ID, r.Name
		if a.RealmID == "" {
			a.RealmID = r.ID
		}
		if a.Details == nil {
			a.Details = map[string]string{}
		}
		return rec, nil
	}
	e := rec.Event
	e.ID, e.RealmName = it.ID, r.Name
	if e.RealmID == "" {
		e.RealmID = r.ID
	}
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	return rec, nil
}

// usernames looks the users up in their realms; users of a realm whose
// name is unknown, users that do not exist, and all users once the account
// proved to lack view-users are left out.
func (p *apiSource) usernames(ctx context.Context, users []userRef) (map[string]string, error) {
	out := map[string]string{}
	for _, u := range users {
		p.mu.Lock()
		name, known := p.realmNames[u.realmID]
		denied := p.usersDenied
		p.mu.Unlock()
		if denied {
			return out, nil
		}
		if !known {
			continue
		}
		username, err := p.client.Username(ctx, name, u.userID)
		var se *apisource.StatusError
		switch {
		case errors.Is(err, apisource.ErrNotFound):
		case errors.As(err, &se) && se.StatusCode == http.StatusForbidden:
			p.mu.Lock()
			p.usersDenied = true
			p.mu.Unlock()
			p.log.Error("usernames are not added to events: the account lacks the realm-management role view-users", "realm", name, "error", err)
			return out, nil
		case err != nil:
			return nil, err
		default:
			out[u.userID] = username
		}
	}
	return out, nil
}
