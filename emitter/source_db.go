package emitter

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/pgsource"
)

// malformedDetailsKey is the detail key under which an event whose stored
// details are not a JSON object carries the stored text as is.
const malformedDetailsKey = "details_raw"

// dbSource is the source of Keycloak's database: it reads pages with
// pgsource (the filters pushed into the query) and turns rows into Records.
// It is safe for concurrent use.
type dbSource struct {
	src       *pgsource.Source
	filters   Filters
	log       *slog.Logger
	malformed atomic.Uint64
}

func newDBSource(src *pgsource.Source, filters Filters, log *slog.Logger) *dbSource {
	return &dbSource{src: src, filters: filters, log: log}
}

func (p *dbSource) realms(ctx context.Context) ([]realm, error) {
	rs, err := p.src.Realms(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]realm, len(rs))
	for i, r := range rs {
		out[i] = realm(r)
	}
	return out, nil
}

func (p *dbSource) oldestTime(ctx context.Context, r realm, kind Kind) (int64, bool, error) {
	return p.src.OldestTime(ctx, table(kind), r.ID)
}

// table returns the table holding events of kind.
func table(kind Kind) pgsource.Table {
	if kind == KindAdminEvent {
		return pgsource.AdminEventTable
	}
	return pgsource.EventTable
}

// query is the pgsource query of kind in the realm after the cursor, with
// the filters of kind.
func (p *dbSource) query(r realm, kind Kind, after cursor, until int64, limit int) pgsource.Query {
	q := pgsource.Query{RealmID: r.ID, AfterTime: after.Time, AfterID: after.ID, UntilTime: until, Limit: limit}
	if kind == KindAdminEvent {
		q.Operations = pgsource.Filter(p.filters.Operations)
		q.Resources = pgsource.Filter(p.filters.Resources)
	} else {
		q.Types = pgsource.Filter(p.filters.EventTypes)
	}
	return q
}

func (p *dbSource) count(ctx context.Context, r realm, kind Kind, after cursor, until int64) (int, error) {
	return p.src.Count(ctx, table(kind), p.query(r, kind, after, until, 0))
}

func (p *dbSource) page(ctx context.Context, r realm, kind Kind, after cursor, until int64, limit int) ([]Record, error) {
	q := p.query(r, kind, after, until, limit)
	if kind == KindAdminEvent {
		rows, err := p.src.AdminEvents(ctx, q)
		if err != nil {
			return nil, err
		}
		return p.adminRecords(r, rows), nil
	}
	rows, err := p.src.Events(ctx, q)
	if err != nil {
		return nil, err
	}
	return p.eventRecords(r, rows), nil
}

// adminRecords turns rows of admin_event_entity into records.
func (p *dbSource) adminRecords(r realm, rows []pgsource.AdminEventRow) []Record {
	out := make([]Record, len(rows))
	for i, row := range rows {
		out[i] = Record{Admin: &AdminEvent{ID: row.ID, Time: row.Time, RealmID: row.RealmID, RealmName: r.Name,
			AuthDetails: AuthDetails{RealmID: row.AuthRealmID.String, ClientID: row.AuthClientID.String,
				UserID: row.AuthUserID.String, IPAddress: row.IPAddress.String},
			OperationType: row.OperationType.String, ResourceType: row.ResourceType.String,
			ResourcePath: row.ResourcePath.String, Representation: row.Representation.String,
			Error: row.Error.String, Details: p.details(KindAdminEvent, row.ID, row.Details)}}
	}
	return out
}

// eventRecords turns rows of event_entity into records.
func (p *dbSource) eventRecords(r realm, rows []pgsource.EventRow) []Record {
	out := make([]Record, len(rows))
	for i, row := range rows {
		out[i] = Record{Event: &Event{ID: row.ID, Time: row.Time, Type: row.Type.String, RealmID: row.RealmID, RealmName: r.Name,
			ClientID: row.ClientID.String, UserID: row.UserID.String, SessionID: row.SessionID.String,
			IPAddress: row.IPAddress.String, Error: row.Error.String,
			Details: p.details(KindEvent, row.ID, row.Details)}}
	}
	return out
}

// usernames looks the users up in user_entity (user ids are unique across
// realms).
func (p *dbSource) usernames(ctx context.Context, users []userRef) (map[string]string, error) {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.userID
	}
	return p.src.Usernames(ctx, ids)
}

// details parses stored details JSON into a map: string values as they are,
// JSON null as "", other values as their JSON text. Text that is not a JSON
// object is kept whole under malformedDetailsKey and counted.
func (p *dbSource) details(kind Kind, id string, raw sql.NullString) map[string]string {
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
			"kind", kind, "id", id, "key", malformedDetailsKey, "error", err)
		out[malformedDetailsKey] = raw.String
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

// readBatch reads every request in one statement (pgsource.ReadBatch).
func (p *dbSource) readBatch(ctx context.Context, reqs []readRequest, limit int) (batchRead, error) {
	b := pgsource.Batch{Limit: limit, Types: pgsource.Filter(p.filters.EventTypes),
		Operations: pgsource.Filter(p.filters.Operations), Resources: pgsource.Filter(p.filters.Resources)}
	slot := make([]int, len(reqs)) // index of each request in its part of b
	for i, r := range reqs {
		rg := pgsource.Range{RealmID: r.realm.ID, AfterTime: r.after.Time, AfterID: r.after.ID, UntilTime: r.until}
		var part *[]pgsource.Range
		switch {
		case r.kind == KindAdminEvent && r.count:
			part = &b.AdminCounts
		case r.kind == KindAdminEvent:
			part = &b.AdminPages
		case r.count:
			part = &b.EventCounts
		default:
			part = &b.EventPages
		}
		slot[i] = len(*part)
		*part = append(*part, rg)
	}
	res, err := p.src.ReadBatch(ctx, b)
	if err != nil {
		return batchRead{}, err
	}
	out := batchRead{pages: make([][]Record, len(reqs)), counts: make([]int, len(reqs)),
		snapshot: txSnapshot{xmin: res.Snapshot.Xmin, xmax: res.Snapshot.Xmax, xip: res.Snapshot.Xip}}
	for i, r := range reqs {
		switch {
		case r.kind == KindAdminEvent && r.count:
			out.counts[i] = res.AdminCounts[slot[i]]
		case r.kind == KindAdminEvent:
			out.pages[i] = p.adminRecords(r.realm, res.AdminPages[slot[i]])
		case r.count:
			out.counts[i] = res.EventCounts[slot[i]]
		default:
			out.pages[i] = p.eventRecords(r.realm, res.EventPages[slot[i]])
		}
	}
	return out, nil
}
