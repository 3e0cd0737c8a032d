package emitter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/apisource"
)

// APIPagerOptions configure an APIPager.
type APIPagerOptions struct {
	// Filters select the events read. Include lists of plain names (no "*")
	// without Exclude are passed to the API (type, operationTypes,
	// resourceTypes); every filter is also applied to what comes back.
	Filters SourceFilters
	// UsernameCacheSize bounds the usernames kept in memory; default 10,000.
	UsernameCacheSize int
	// Logger receives the adapter's logs; default slog.Default().
	Logger *slog.Logger
}

// APIPager is the Pager of Keycloak's admin REST API: it reads pages with
// apisource, turns EventRepresentation and AdminEventRepresentation JSON
// into Records (ParseAPIEvent) and enriches them with usernames as DBPager
// does (the Event "username" detail, the AdminEvent's AuthDetails.Username,
// and "user_id"/"username" details for an AdminEvent on "users/<id>"),
// looked up with GET /admin/realms/{realm}/users/{id} (role view-users).
//
// On Keycloak 26.2 and newer records carry Keycloak's event id. Older
// servers return no id: records then carry a synthetic dedupe key
// ("syn-<hash>-<n>", see apisource.SynthesizeIDs) derived from the event's
// content, which is what receivers see as the id. It is safe for
// concurrent use.
type APIPager struct {
	client  *apisource.Client
	filters SourceFilters
	api     apisource.Query
	log     *slog.Logger
	names   *nameCache

	mu          sync.Mutex
	pager       *apisource.Pager  // set by the first call that needs it
	realmNames  map[string]string // realm id -> name, from the last Realms
	realmIDs    map[string]string // realm name -> id, once learned and checked
	idless      map[string]bool   // realm names logged as left out for want of an id
	usersDenied bool              // the account lacks view-users: no lookups
}

// NewAPIPager returns a Pager over client. A filter pattern that is empty
// is an error naming it.
func NewAPIPager(client *apisource.Client, opts APIPagerOptions) (*APIPager, error) {
	if client == nil {
		return nil, errors.New("api pager: client is nil")
	}
	for name, f := range map[string]TypeFilter{"event type": opts.Filters.EventTypes,
		"operation type": opts.Filters.Operations, "resource type": opts.Filters.Resources} {
		for _, p := range append(append([]string(nil), f.Include...), f.Exclude...) {
			if strings.TrimSpace(p) == "" {
				return nil, fmt.Errorf("%s filter: empty pattern in %q", name, strings.Join(append(f.Include, f.Exclude...), ","))
			}
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UsernameCacheSize <= 0 {
		opts.UsernameCacheSize = 10000
	}
	api := apisource.Query{
		Types:          apiNames(opts.Filters.EventTypes),
		OperationTypes: apiNames(opts.Filters.Operations),
		ResourceTypes:  apiNames(opts.Filters.Resources),
	}
	return &APIPager{client: client, filters: opts.Filters, api: api, log: opts.Logger,
		names: newNameCache(opts.UsernameCacheSize), realmNames: map[string]string{},
		realmIDs: map[string]string{}, idless: map[string]bool{}}, nil
}

// apiNames returns the names the API can filter on for f: its Include list
// when it has only plain names and f excludes nothing; nil otherwise.
func apiNames(f TypeFilter) []string {
	if len(f.Exclude) > 0 {
		return nil
	}
	for _, p := range f.Include {
		if strings.Contains(p, "*") {
			return nil
		}
	}
	return f.Include
}

// Realms returns the realms the account can see, each with its internal id
// (the key of its streams in the checkpoint, the same as the database
// source's). Keycloak shows realm ids only to accounts with view-realm; for
// the others (a service account with view-events and view-users) the id is
// taken from the realm's newest event or admin event, and a realm that has
// neither yet is left out until its first event. The first listing of a
// realm also reads one event of it: an account without view-events fails
// here with an error naming the role, not later in every poll.
func (p *APIPager) Realms(ctx context.Context) ([]Realm, error) {
	rs, err := p.client.Realms(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Realm, 0, len(rs))
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
		out = append(out, Realm{ID: id, Name: r.Name})
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
func (p *APIPager) realmID(ctx context.Context, r apisource.Realm) (string, error) {
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
func (p *APIPager) pagerFor(ctx context.Context, realm Realm) (*apisource.Pager, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pager != nil {
		return p.pager, nil
	}
	hasSync, err := p.client.SupportsSync(ctx, realm.Name)
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

// OldestTime returns the time of the oldest stored event of kind in realm;
// on servers before 26.2 it reports none (they list newest first only).
func (p *APIPager) OldestTime(ctx context.Context, realm Realm, kind Kind) (int64, bool, error) {
	pg, err := p.pagerFor(ctx, realm)
	if err != nil {
		return 0, false, err
	}
	return pg.Oldest(ctx, realm.Name, apiKind(kind))
}

// Page reads one page of kind in realm after the cursor (see Pager). When
// the filters drop events the API returned, it reads on until the page is
// full or the source has no more.
func (p *APIPager) Page(ctx context.Context, realm Realm, kind Kind, after Cursor, until int64, limit int) ([]Record, error) {
	pg, err := p.pagerFor(ctx, realm)
	if err != nil {
		return nil, err
	}
	var out []Record
	cur := apisource.Cursor(after)
	for len(out) < limit {
		items, err := pg.Page(ctx, realm.Name, apiKind(kind), cur, until, limit)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			rec, err := p.record(realm, kind, it)
			if err != nil {
				return nil, err
			}
			if p.keep(rec) && len(out) < limit {
				out = append(out, rec)
			}
		}
		if len(items) < limit {
			break
		}
		last := items[len(items)-1]
		cur = apisource.Cursor{Time: last.Time, ID: last.ID}
	}
	if err := p.enrich(ctx, realm, out); err != nil {
		return nil, err
	}
	return out, nil
}

// record converts one API item.
func (p *APIPager) record(realm Realm, kind Kind, it apisource.Item) (Record, error) {
	rec, err := ParseAPIEvent(it.Raw)
	if err != nil {
		return Record{}, fmt.Errorf("%s %s of realm %q: %w", kind, it.ID, realm.Name, err)
	}
	if rec.Kind() != kind {
		return Record{}, fmt.Errorf("%s %s of realm %q: the API returned an %s", kind, it.ID, realm.Name, rec.Kind())
	}
	if rec.Admin != nil {
		a := rec.Admin
		a.ID, a.RealmName = it.ID, realm.Name
		if a.RealmID == "" {
			a.RealmID = realm.ID
		}
		if a.Details == nil {
			a.Details = map[string]string{}
		}
		return rec, nil
	}
	e := rec.Event
	e.ID, e.RealmName = it.ID, realm.Name
	if e.RealmID == "" {
		e.RealmID = realm.ID
	}
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	return rec, nil
}

// keep applies the filters.
func (p *APIPager) keep(r Record) bool {
	if r.Admin != nil {
		return p.filters.Operations.Match(r.Admin.OperationType) && p.filters.Resources.Match(r.Admin.ResourceType)
	}
	return p.filters.EventTypes.Match(r.Event.Type)
}

// enrich sets usernames on the records of one realm's page.
func (p *APIPager) enrich(ctx context.Context, realm Realm, recs []Record) error {
	for _, rec := range recs {
		if e := rec.Event; e != nil {
			if _, ok := e.Details["username"]; !ok && e.UserID != "" {
				name, err := p.username(ctx, realm.Name, e.UserID)
				if err != nil {
					return err
				}
				if name != "" {
					e.Details["username"] = name
				}
			}
			continue
		}
		a := rec.Admin
		if a.AuthDetails.UserID != "" {
			p.mu.Lock()
			authRealm, known := p.realmNames[a.AuthDetails.RealmID]
			p.mu.Unlock()
			if a.AuthDetails.RealmID == realm.ID || a.AuthDetails.RealmID == "" {
				authRealm, known = realm.Name, true
			}
			if known {
				name, err := p.username(ctx, authRealm, a.AuthDetails.UserID)
				if err != nil {
					return err
				}
				a.AuthDetails.Username = name
			}
		}
		if id, ok := userOfPath(a.ResourcePath); ok {
			if _, set := a.Details["user_id"]; !set {
				a.Details["user_id"] = id
			}
			if _, set := a.Details["username"]; !set {
				name, err := p.username(ctx, realm.Name, id)
				if err != nil {
					return err
				}
				if name != "" {
					a.Details["username"] = name
				}
			}
		}
	}
	return nil
}

// username returns the username of userID in realm ("" for a user that no
// longer exists, or when the account may not view users), from the cache
// or the API.
func (p *APIPager) username(ctx context.Context, realm, userID string) (string, error) {
	if name, ok := p.names.get(userID); ok {
		return name, nil
	}
	p.mu.Lock()
	denied := p.usersDenied
	p.mu.Unlock()
	if denied {
		return "", nil
	}
	name, err := p.client.Username(ctx, realm, userID)
	var se *apisource.StatusError
	switch {
	case errors.Is(err, apisource.ErrNotFound):
		name = ""
	case errors.As(err, &se) && se.StatusCode == http.StatusForbidden:
		p.mu.Lock()
		p.usersDenied = true
		p.mu.Unlock()
		p.log.Error("usernames are not added to events: the account lacks the realm-management role view-users", "realm", realm, "error", err)
		return "", nil
	case err != nil:
		return "", err
	}
	p.names.put(userID, name)
	return name, nil
}
