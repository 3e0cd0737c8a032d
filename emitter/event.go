// Package emitter holds the domain of kc-event-emitter: the Event and
// AdminEvent types that Keycloak stores, their wire encodings, and Run, which
// tails a source and delivers every event: source -> tailer (tail.go) ->
// pipeline (pipeline.go: uid, filter, enrich, encode) -> delivery
// (delivery.go) -> sink (httpsender), acknowledged into the ledger
// (checkpoint). docs/architecture.md says where each step lives.
package emitter

import "strings"

// Kind tells an Event from an AdminEvent. Its values are the names the
// FLATBUFFER container uses in its "type" key.
type Kind string

// The two kinds of Keycloak event.
const (
	KindEvent      Kind = "Event"
	KindAdminEvent Kind = "AdminEvent"
)

// Event is a Keycloak user event (a row of event_entity, or an
// EventRepresentation of the admin API). An empty string stands for a value
// Keycloak did not set (SQL NULL, JSON null).
type Event struct {
	// ID is Keycloak's own event id (a UUID). The original emitter never sent
	// it; we do, so that receivers can dedupe on it.
	ID string
	// UID is the snowflake id stamped by the emitter; 0 until stamped.
	UID int64
	// Time is when Keycloak recorded the event, in milliseconds since the Unix epoch.
	Time int64
	// Type is Keycloak's EventType name, e.g. "LOGIN" (kept as Keycloak wrote it,
	// also when this build does not know the name).
	Type      string
	RealmID   string
	RealmName string // the realm's name, looked up by the source; empty when unknown
	ClientID  string
	UserID    string
	SessionID string
	IPAddress string
	Error     string
	// Details are Keycloak's event details; never nil after decoding.
	Details map[string]string
}

// AuthDetails tells who performed an admin operation.
type AuthDetails struct {
	RealmID   string
	ClientID  string // the client's internal UUID, as Keycloak stores it
	UserID    string
	IPAddress string
	Username  string // looked up by the emitter; Keycloak does not store it
}

// AdminEvent is a Keycloak admin event (a row of admin_event_entity, or an
// AdminEventRepresentation of the admin API).
type AdminEvent struct {
	ID          string
	UID         int64
	Time        int64
	RealmID     string
	RealmName   string
	AuthDetails AuthDetails
	// OperationType is CREATE, UPDATE, DELETE or ACTION.
	OperationType string
	// ResourceType is Keycloak's ResourceType name, e.g. "USER"; custom
	// providers may store other strings.
	ResourceType   string
	ResourcePath   string
	Representation string
	Error          string
	Details        map[string]string
}

// Record is one event of either kind as it flows from a source to a sender.
// Exactly one of Event and Admin is set.
type Record struct {
	Event *Event
	Admin *AdminEvent

	// more, on the last record of a page, says that the source cut the
	// page short (its byte budget) although more records follow.
	more bool
	// unreadable, when not nil, is why the source could not read the row
	// (the database's error): only its key fields are set, and it is
	// dead-lettered with this reason instead of being sent.
	unreadable error
}

// Kind returns which of the two kinds r holds.
func (r Record) Kind() Kind {
	if r.Admin != nil {
		return KindAdminEvent
	}
	return KindEvent
}

// ID returns Keycloak's id of the event r holds.
func (r Record) ID() string {
	if r.Admin != nil {
		return r.Admin.ID
	}
	return r.Event.ID
}

// UID returns the snowflake uid of the event r holds.
func (r Record) UID() int64 {
	if r.Admin != nil {
		return r.Admin.UID
	}
	return r.Event.UID
}

// SetUID stamps the event r holds with uid.
func (r Record) SetUID(uid int64) {
	if r.Admin != nil {
		r.Admin.UID = uid
		return
	}
	r.Event.UID = uid
}

// Time returns the event's time in milliseconds since the Unix epoch.
func (r Record) Time() int64 {
	if r.Admin != nil {
		return r.Admin.Time
	}
	return r.Event.Time
}

// RealmID returns the internal id of the realm the event belongs to.
func (r Record) RealmID() string {
	if r.Admin != nil {
		return r.Admin.RealmID
	}
	return r.Event.RealmID
}

// TypeName returns the event type for an Event and
// "<operationType>:<resourceType>" for an AdminEvent, for logs and filters.
func (r Record) TypeName() string {
	if r.Admin != nil {
		return r.Admin.OperationType + ":" + r.Admin.ResourceType
	}
	return r.Event.Type
}

// envelope is an encoded event on its way to the target: the payload and
// what the buffer, the sender and the checkpoint need to know about it
// without decoding it again.
type envelope struct {
	Kind    Kind
	UID     int64
	ID      string // Keycloak's event id
	RealmID string
	Type    string // Record.TypeName, for logs
	Time    int64  // event time, ms since the Unix epoch
	Body    []byte // the wire payload, sent as is
	// Key is the user the event is about, for sinks that keep order per key
	// (a Kafka record's key): see Record.Key. Empty when there is none.
	Key string
	// RealmName is the realm's name; empty when the source did not know it.
	RealmName string
}

// Key returns the user the event is about: an Event's userId; for an
// AdminEvent on a user (a resource path users/<id>...) that user, else the
// acting user. Empty when there is none.
func (r Record) Key() string {
	if r.Admin == nil {
		return r.Event.UserID
	}
	if rest, ok := strings.CutPrefix(r.Admin.ResourcePath, "users/"); ok {
		if id, _, _ := strings.Cut(rest, "/"); id != "" {
			return id
		}
	}
	return r.Admin.AuthDetails.UserID
}

// RealmName returns the name of the realm the event belongs to; empty when
// unknown.
func (r Record) RealmName() string {
	if r.Admin != nil {
		return r.Admin.RealmName
	}
	return r.Event.RealmName
}
