package emitter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// eventJSON holds the keys of every JSON form of an event: Keycloak's
// EventRepresentation and AdminEventRepresentation (admin API) and the
// JSON wire format (which adds uid and names the auth details
// extAuthDetails). A pointer is nil for a key that is absent or null.
type eventJSON struct {
	ID             *string           `json:"id"`
	UID            *int64            `json:"uid"`
	Time           int64             `json:"time"`
	Type           *string           `json:"type"`
	RealmID        *string           `json:"realmId"`
	ClientID       *string           `json:"clientId"`
	UserID         *string           `json:"userId"`
	SessionID      *string           `json:"sessionId"`
	IPAddress      *string           `json:"ipAddress"`
	Error          *string           `json:"error"`
	Details        map[string]string `json:"details"`
	AuthDetails    *authDetailsJSON  `json:"authDetails"`
	ExtAuthDetails *authDetailsJSON  `json:"extAuthDetails"`
	OperationType  *string           `json:"operationType"`
	ResourceType   *string           `json:"resourceType"`
	ResourcePath   *string           `json:"resourcePath"`
	Representation *string           `json:"representation"`
}

type authDetailsJSON struct {
	RealmID   *string `json:"realmId"`
	ClientID  *string `json:"clientId"`
	UserID    *string `json:"userId"`
	IPAddress *string `json:"ipAddress"`
	Username  *string `json:"username"`
}

// isAdmin tells an admin event: it has an operation type (or, when that is
// null, one of the keys only admin events have).
func (j *eventJSON) isAdmin() bool {
	return j.OperationType != nil || j.AuthDetails != nil || j.ExtAuthDetails != nil ||
		j.ResourceType != nil || j.ResourcePath != nil
}

// record returns the Record j describes, UID left 0 and Details never nil.
func (j *eventJSON) record() Record {
	details := j.Details
	if details == nil {
		details = map[string]string{}
	}
	if !j.isAdmin() {
		return Record{Event: &Event{ID: deref(j.ID), Time: j.Time, Type: deref(j.Type),
			RealmID: deref(j.RealmID), ClientID: deref(j.ClientID), UserID: deref(j.UserID),
			SessionID: deref(j.SessionID), IPAddress: deref(j.IPAddress), Error: deref(j.Error),
			Details: details}}
	}
	a := &AdminEvent{ID: deref(j.ID), Time: j.Time, RealmID: deref(j.RealmID),
		OperationType: deref(j.OperationType), ResourceType: deref(j.ResourceType),
		ResourcePath: deref(j.ResourcePath), Representation: deref(j.Representation),
		Error: deref(j.Error), Details: details}
	auth := j.ExtAuthDetails
	if auth == nil {
		auth = j.AuthDetails
	}
	if auth != nil {
		a.AuthDetails = AuthDetails{RealmID: deref(auth.RealmID), ClientID: deref(auth.ClientID),
			UserID: deref(auth.UserID), IPAddress: deref(auth.IPAddress), Username: deref(auth.Username)}
	}
	return Record{Admin: a}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// errNotObject is returned for JSON that is not an object.
var errNotObject = errors.New("not a JSON object")

// unmarshalObject decodes raw, which must be one JSON object, into v.
func unmarshalObject(raw []byte, v any) error {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errNotObject
	}
	return json.Unmarshal(raw, v)
}

// ParseAPIEvent returns the Record of one EventRepresentation or
// AdminEventRepresentation JSON object, as Keycloak's admin REST API returns
// them (GET /admin/realms/{realm}/events and .../admin-events): an object
// with "operationType" is an AdminEvent. It keeps every field the API
// gives, including "id" (Keycloak 26.2 and newer), "details" and
// "representation"; the uid is left 0, Details is never nil, and RealmName
// and AuthDetails.Username are left for the caller to look up.
func ParseAPIEvent(raw []byte) (Record, error) {
	var j eventJSON
	if err := unmarshalObject(raw, &j); err != nil {
		return Record{}, fmt.Errorf("event JSON: %w", err)
	}
	return j.record(), nil
}
