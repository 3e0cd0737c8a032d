package emitter

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/pgsource"
)

// MalformedDetailsKey is the detail key under which an event whose stored
// details are not a JSON object carries the stored text as is.
const MalformedDetailsKey = "details_raw"

// TypeFilter keeps the names that match a pattern of Include (every name when
// Include is empty) and none of Exclude. In a pattern "*" stands for any run
// of characters ("LOGIN*"); matching is case-sensitive.
type TypeFilter struct {
	Include []string
	Exclude []string
}

// Match tells whether f keeps name.
func (f TypeFilter) Match(name string) bool {
	in := len(f.Include) == 0
	for _, p := range f.Include {
		in = in || globMatch(p, name)
	}
	for _, p := range f.Exclude {
		if globMatch(p, name) {
			return false
		}
	}
	return in
}

// globMatch tells whether name matches pattern, where "*" matches any run of
// characters and every other character itself.
func globMatch(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(name, p)
		if i < 0 {
			return false
		}
		name = name[i+len(p):]
	}
	return len(name) >= len(last) && strings.HasSuffix(name, last)
}

// SourceFilters select the events a source reads: event types for Events,
// operation and resource types for AdminEvents.
type SourceFilters struct {
	EventTypes TypeFilter
	Operations TypeFilter
	Resources  TypeFilter
}

// DBPagerOptions configure a DBPager.
type DBPagerOptions struct {
	Filters SourceFilters
	// UsernameCacheSize bounds the usernames kept in memory; default 10,000.
	UsernameCacheSize int
	// Logger receives the adapter's logs; default slog.Default().
	Logger *slog.Logger
}

// DBPager is the Pager of Keycloak's database: it reads pages with pgsource,
// turns rows into Records and enriches them with usernames as the original
// event-emitter did (the Event "username" detail, the AdminEvent's
// AuthDetails.Username, and "user_id"/"username" details for an AdminEvent
// on "users/<id>"). It is safe for concurrent use.
type DBPager struct {
	src       *pgsource.Source
	filters   SourceFilters
	log       *slog.Logger
	names     *nameCache
	malformed atomic.Uint64
}

// NewDBPager returns a Pager over src. A filter pattern that is empty is an
// error naming it.
func NewDBPager(src *pgsource.Source, opts DBPagerOptions) (*DBPager, error) {
	for name, f := range map[string]TypeFilter{"event type": opts.Filters.EventTypes,
		"operation type": opts.Filters.Operations, "resource type": opts.Filters.Resources} {
		if err := pgsource.Filter(f).Validate(); err != nil {
			return nil, fmt.Errorf("%s filter: %w", name, err)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UsernameCacheSize <= 0 {
		opts.UsernameCacheSize = 10000
	}
	return &DBPager{src: src, filters: opts.Filters, log: opts.Logger, names: newNameCache(opts.UsernameCacheSize)}, nil
}

// Malformed returns how many events read so far had stored details that were
// not a JSON object (forwarded under MalformedDetailsKey).
func (p *DBPager) Malformed() uint64 { return p.malformed.Load() }

// Realms returns every realm of the database.
func (p *DBPager) Realms(ctx context.Context) ([]Realm, error) {
	rs, err := p.src.Realms(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Realm, len(rs))
	for i, r := range rs {
		out[i] = Realm(r)
	}
	return out, nil
}

// OldestTime returns the time of the oldest stored event of kind in realm.
func (p *DBPager) OldestTime(ctx context.Context, realm Realm, kind Kind) (int64, bool, error) {
	return p.src.OldestTime(ctx, table(kind), realm.ID)
}

// table returns the table holding events of kind.
func table(kind Kind) pgsource.Table {
	if kind == KindAdminEvent {
		return pgsource.AdminEventTable
	}
	return pgsource.EventTable
}

// query is the pgsource query of kind in realm after the cursor, with the
// filters of kind.
func (p *DBPager) query(realm Realm, kind Kind, after Cursor, until int64, limit int) pgsource.Query {
	q := pgsource.Query{RealmID: realm.ID, AfterTime: after.Time, AfterID: after.ID, UntilTime: until, Limit: limit}
	if kind == KindAdminEvent {
		q.Operations = pgsource.Filter(p.filters.Operations)
		q.Resources = pgsource.Filter(p.filters.Resources)
	} else {
		q.Types = pgsource.Filter(p.filters.EventTypes)
	}
	return q
}

// Count returns how many events Page would return after the cursor up to
// until, with no limit (see Counter).
func (p *DBPager) Count(ctx context.Context, realm Realm, kind Kind, after Cursor, until int64) (int, error) {
	return p.src.Count(ctx, table(kind), p.query(realm, kind, after, until, 0))
}

// Page reads one page of kind in realm after the cursor (see Pager).
func (p *DBPager) Page(ctx context.Context, realm Realm, kind Kind, after Cursor, until int64, limit int) ([]Record, error) {
	q := p.query(realm, kind, after, until, limit)
	if kind == KindAdminEvent {
		rows, err := p.src.AdminEvents(ctx, q)
		if err != nil {
			return nil, err
		}
		return p.adminRecords(ctx, realm, rows)
	}
	rows, err := p.src.Events(ctx, q)
	if err != nil {
		return nil, err
	}
	return p.eventRecords(ctx, realm, rows)
}

// eventRecords converts rows and adds the "username" detail where Keycloak
// stored a user id but no username.
func (p *DBPager) eventRecords(ctx context.Context, realm Realm, rows []pgsource.EventRow) ([]Record, error) {
	out := make([]Record, len(rows))
	var ids []string
	for i, r := range rows {
		e := &Event{ID: r.ID, Time: r.Time, Type: r.Type.String, RealmID: r.RealmID, RealmName: realm.Name,
			ClientID: r.ClientID.String, UserID: r.UserID.String, SessionID: r.SessionID.String,
			IPAddress: r.IPAddress.String, Error: r.Error.String,
			Details: p.details(KindEvent, r.ID, r.Details)}
		if _, ok := e.Details["username"]; !ok && e.UserID != "" {
			ids = append(ids, e.UserID)
		}
		out[i] = Record{Event: e}
	}
	names, err := p.usernames(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, rec := range out {
		e := rec.Event
		if _, ok := e.Details["username"]; !ok && e.UserID != "" {
			if name, ok := names[e.UserID]; ok {
				e.Details["username"] = name
			}
		}
	}
	return out, nil
}

// adminRecords converts rows, sets AuthDetails.Username and, for events on
// "users/<id>", the "user_id" and "username" details.
func (p *DBPager) adminRecords(ctx context.Context, realm Realm, rows []pgsource.AdminEventRow) ([]Record, error) {
	out := make([]Record, len(rows))
	var ids []string
	for i, r := range rows {
		a := &AdminEvent{ID: r.ID, Time: r.Time, RealmID: r.RealmID, RealmName: realm.Name,
			AuthDetails: AuthDetails{RealmID: r.AuthRealmID.String, ClientID: r.AuthClientID.String,
				UserID: r.AuthUserID.String, IPAddress: r.IPAddress.String},
			OperationType: r.OperationType.String, ResourceType: r.ResourceType.String,
			ResourcePath: r.ResourcePath.String, Representation: r.Representation.String,
			Error: r.Error.String, Details: p.details(KindAdminEvent, r.ID, r.Details)}
		if a.AuthDetails.UserID != "" {
			ids = append(ids, a.AuthDetails.UserID)
		}
		if id, ok := userOfPath(a.ResourcePath); ok {
			ids = append(ids, id)
		}
		out[i] = Record{Admin: a}
	}
	names, err := p.usernames(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, rec := range out {
		a := rec.Admin
		a.AuthDetails.Username = names[a.AuthDetails.UserID]
		if id, ok := userOfPath(a.ResourcePath); ok {
			if _, set := a.Details["user_id"]; !set {
				a.Details["user_id"] = id
			}
			if name, found := names[id]; found {
				if _, set := a.Details["username"]; !set {
					a.Details["username"] = name
				}
			}
		}
	}
	return out, nil
}

// userOfPath returns the user id of a resource path "users/<id>".
func userOfPath(path string) (string, bool) {
	id, ok := strings.CutPrefix(path, "users/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// details parses stored details JSON into a map: string values as they are,
// JSON null as "", other values as their JSON text. Text that is not a JSON
// object is kept whole under MalformedDetailsKey and counted.
func (p *DBPager) details(kind Kind, id string, raw sql.NullString) map[string]string {
	out := map[string]string{}
	if !raw.Valid || strings.TrimSpace(raw.String) == "" {
		return out
	}
	var fields map[string]json.RawMessage
	err := json.Unmarshal([]byte(raw.String), &fields)
	if err == nil && fields == nil {
		err = errors.New("not a JSON object")
	}
	if err != nil {
		p.malformed.Add(1)
		p.log.Info("stored event details are not a JSON object; forwarding them raw",
			"kind", kind, "id", id, "key", MalformedDetailsKey, "error", err)
		out[MalformedDetailsKey] = raw.String
		return out
	}
	for k, v := range fields {
		var s string
		switch {
		case string(v) == "null":
		case json.Unmarshal(v, &s) == nil:
		default:
			s = string(v)
		}
		out[k] = s
	}
	return out
}

// usernames returns the usernames of ids, from the cache or the database.
func (p *DBPager) usernames(ctx context.Context, ids []string) (map[string]string, error) {
	found := map[string]string{}
	var unknown []string
	for _, id := range ids {
		if _, done := found[id]; done {
			continue
		}
		if name, ok := p.names.get(id); ok {
			if name != "" {
				found[id] = name
			}
			continue
		}
		if !slices.Contains(unknown, id) {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) == 0 {
		return found, nil
	}
	names, err := p.src.Usernames(ctx, unknown)
	if err != nil {
		return nil, err
	}
	for _, id := range unknown {
		name := names[id]
		p.names.put(id, name) // "" remembers a user that does not exist
		if name != "" {
			found[id] = name
		}
	}
	return found, nil
}

// nameCache is a bounded cache of usernames by user id in two generations:
// when the young one is full it becomes the old one and the previous old one
// is forgotten, so the cache holds at most size entries and recently used
// names survive.
type nameCache struct {
	mu         sync.Mutex
	size       int
	young, old map[string]string
}

func newNameCache(size int) *nameCache {
	return &nameCache{size: max(size/2, 1), young: map[string]string{}, old: map[string]string{}}
}

func (c *nameCache) get(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name, ok := c.young[id]; ok {
		return name, true
	}
	name, ok := c.old[id]
	if ok {
		c.putLocked(id, name)
	}
	return name, ok
}

func (c *nameCache) put(id, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(id, name)
}

func (c *nameCache) putLocked(id, name string) {
	if len(c.young) >= c.size {
		c.old, c.young = c.young, map[string]string{}
	}
	c.young[id] = name
}
