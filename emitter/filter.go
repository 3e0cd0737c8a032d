package emitter

import (
	"errors"
	"strings"
)

// TypeFilter keeps the names that match a pattern of Include (every name
// when Include is empty) and none of Exclude. In a pattern "*" stands for
// any run of characters ("LOGIN*"); matching is case-sensitive.
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

// validate refuses empty patterns.
func (f TypeFilter) validate() error {
	for _, p := range append(append([]string(nil), f.Include...), f.Exclude...) {
		if strings.TrimSpace(p) == "" {
			return errors.New("empty pattern")
		}
	}
	return nil
}

// plainNames returns f's Include list when it holds only plain names (no
// "*") and f excludes nothing: what a source can filter on by equality.
// It is nil otherwise.
func (f TypeFilter) plainNames() []string {
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

// Filters select the events sent: event types for Events, operation and
// resource types for AdminEvents, and for both the client: the Event's
// client id, the AdminEvent's acting client (its authDetails.clientId, which
// Keycloak stores as the client's internal id). Sources apply what they can
// when reading; the pipeline applies all of it.
type Filters struct {
	EventTypes TypeFilter
	Operations TypeFilter
	Resources  TypeFilter
	Clients    TypeFilter
}

// keep tells whether the filters keep r.
func (f Filters) keep(r Record) bool {
	if r.Admin != nil {
		return f.Operations.Match(r.Admin.OperationType) && f.Resources.Match(r.Admin.ResourceType) &&
			f.Clients.Match(r.Admin.AuthDetails.ClientID)
	}
	return f.EventTypes.Match(r.Event.Type) && f.Clients.Match(r.Event.ClientID)
}

// validate returns the first bad pattern as a *FieldError naming its field
// through key (filters.eventTypes, filters.clients, ...).
func (f Filters) validate(key func(string) string) error {
	for _, c := range []struct {
		field string
		f     TypeFilter
	}{
		{"filters.eventTypes", f.EventTypes}, {"filters.adminOperations", f.Operations},
		{"filters.adminResources", f.Resources}, {"filters.clients", f.Clients},
	} {
		if err := c.f.validate(); err != nil {
			return &FieldError{Field: key(c.field), Value: strings.Join(append(c.f.Include, c.f.Exclude...), ","), Err: err}
		}
	}
	return nil
}
