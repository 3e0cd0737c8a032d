package apisource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The realm-management roles the calls need; a 403 error names them.
const (
	RoleViewEvents = "view-events"
	RoleViewUsers  = "view-users"
)

// Realm is a realm the account can see.
type Realm struct {
	// ID is the realm's internal id. Keycloak shows it only to accounts
	// that may view the realm (realm-management view-realm): for a service
	// account holding only view-events it is empty.
	ID   string `json:"id"`
	Name string `json:"realm"`
}

// Realms lists the realms the account can see (GET /admin/realms), kept to
// Config.Realms when that is set. A configured realm the account cannot see
// is an error naming it. Keycloak lists the realms in which the account
// holds any realm-management role and answers 403 to an account that holds
// none: the error then names view-events, the role the emitter needs.
func (c *Client) Realms(ctx context.Context) ([]Realm, error) {
	body, err := c.get(ctx, "/admin/realms", url.Values{"briefRepresentation": {"true"}}, RoleViewEvents)
	if err != nil {
		return nil, fmt.Errorf("listing realms: %w", err)
	}
	var all []Realm
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, fmt.Errorf("listing realms: decoding the response: %w", err)
	}
	if len(c.cfg.Realms) == 0 {
		return all, nil
	}
	var out []Realm
	var names []string
	for _, r := range all {
		names = append(names, r.Name)
	}
	for _, want := range c.cfg.Realms {
		i := slices.Index(names, want)
		if i < 0 {
			return nil, fmt.Errorf("realm %q: not among the realms the account can see (%s)", want, strings.Join(names, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// Version is a Keycloak server version; the zero Version means unknown.
type Version struct {
	Major, Minor, Patch int
	Raw                 string // as the server wrote it, e.g. "26.5.6"
}

// ParseVersion reads the leading "major.minor.patch" of s (a suffix such
// as "-SNAPSHOT" is ignored).
func ParseVersion(s string) (Version, error) {
	v := Version{Raw: s}
	core, _, _ := strings.Cut(s, "-")
	parts := strings.SplitN(core, ".", 4)
	nums := []*int{&v.Major, &v.Minor, &v.Patch}
	for i := 0; i < len(nums) && i < len(parts); i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			if i < 2 {
				return Version{}, fmt.Errorf("server version %q: %w", s, err)
			}
			break
		}
		*nums[i] = n
	}
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("server version %q: want major.minor[.patch]", s)
	}
	return v, nil
}

// Known reports whether v holds a version.
func (v Version) Known() bool { return v.Raw != "" }

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// String returns the version as the server wrote it.
func (v Version) String() string { return v.Raw }

// ServerVersion returns systemInfo.version of GET /admin/serverinfo. Keycloak
// 26 only fills systemInfo for accounts that may manage their realm; for
// others it returns the zero Version and no error.
func (c *Client) ServerVersion(ctx context.Context) (Version, error) {
	body, err := c.get(ctx, "/admin/serverinfo", nil, "")
	if err != nil {
		return Version{}, fmt.Errorf("server version: %w", err)
	}
	var r struct {
		SystemInfo struct {
			Version string `json:"version"`
		} `json:"systemInfo"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Version{}, fmt.Errorf("server version: decoding /admin/serverinfo: %w", err)
	}
	if r.SystemInfo.Version == "" {
		return Version{}, nil
	}
	return ParseVersion(r.SystemInfo.Version)
}

// SupportsSync reports whether the server has the API for syncing events
// (Keycloak 26.2 and newer): dateFrom/dateTo in epoch milliseconds,
// direction=asc, and the event id in both representations. It asks
// ServerVersion and, when that does not tell, probes the events of realm
// with an epoch-millisecond dateFrom, which older servers reject with 400.
func (c *Client) SupportsSync(ctx context.Context, realm string) (bool, error) {
	v, err := c.ServerVersion(ctx)
	var se *StatusError
	if err != nil && !(errors.As(err, &se) && se.StatusCode == http.StatusForbidden) {
		return false, err
	}
	if v.Known() {
		return v.AtLeast(26, 2), nil
	}
	q := Query{DateFrom: Millis(c.now().UnixMilli()), Direction: "asc", Max: 1}
	_, err = c.Events(ctx, realm, q)
	if errors.As(err, &se) && se.StatusCode == http.StatusBadRequest {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("probing the events API of realm %q: %w", realm, err)
	}
	return true, nil
}

// Query selects events. Zero fields are not sent.
type Query struct {
	// DateFrom and DateTo bound the event time, both inclusive: epoch
	// milliseconds (Keycloak >= 26.2, see Millis) or a yyyy-MM-dd day (see Day).
	DateFrom, DateTo string
	// Direction is "asc" or "desc" (Keycloak >= 26.2); older servers always
	// return newest first.
	Direction string
	// First is the paging offset and Max the page size (the server's
	// default is 100).
	First, Max int
	// Types are event types to return (events only).
	Types []string
	// OperationTypes and ResourceTypes filter admin events.
	OperationTypes, ResourceTypes []string
}

// Millis formats an epoch-millisecond time for Query.DateFrom/DateTo.
func Millis(ms int64) string { return strconv.FormatInt(ms, 10) }

// Day formats the day of an epoch-millisecond time, in loc (UTC when nil),
// for Query.DateFrom/DateTo on servers older than 26.2.
func Day(ms int64, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return time.UnixMilli(ms).In(loc).Format(time.DateOnly)
}

func (q Query) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("dateFrom", q.DateFrom)
	set("dateTo", q.DateTo)
	set("direction", q.Direction)
	if q.First > 0 {
		v.Set("first", strconv.Itoa(q.First))
	}
	if q.Max > 0 {
		v.Set("max", strconv.Itoa(q.Max))
	}
	for _, t := range q.Types {
		v.Add("type", t)
	}
	for _, t := range q.OperationTypes {
		v.Add("operationTypes", t)
	}
	for _, t := range q.ResourceTypes {
		v.Add("resourceTypes", t)
	}
	return v
}

// Item is one event as the API returned it.
type Item struct {
	// Raw is the EventRepresentation or AdminEventRepresentation JSON object.
	Raw json.RawMessage
	// Time is the event's time in epoch milliseconds.
	Time int64
	// ID is Keycloak's event id, or on servers older than 26.2 a dedupe key
	// derived from the event's content (see SynthesizeIDs); Synthetic tells which.
	ID        string
	Synthetic bool
}

// Events returns the user events of realm that q selects
// (GET /admin/realms/{realm}/events), in the server's order.
func (c *Client) Events(ctx context.Context, realm string, q Query) ([]Item, error) {
	if len(q.OperationTypes) > 0 || len(q.ResourceTypes) > 0 {
		return nil, fmt.Errorf("events of realm %q: operationTypes and resourceTypes filter admin events only", realm)
	}
	return c.list(ctx, "/admin/realms/"+url.PathEscape(realm)+"/events", q)
}

// AdminEvents returns the admin events of realm that q selects
// (GET /admin/realms/{realm}/admin-events), in the server's order.
func (c *Client) AdminEvents(ctx context.Context, realm string, q Query) ([]Item, error) {
	if len(q.Types) > 0 {
		return nil, fmt.Errorf("admin events of realm %q: type filters user events only; use OperationTypes and ResourceTypes", realm)
	}
	return c.list(ctx, "/admin/realms/"+url.PathEscape(realm)+"/admin-events", q)
}

func (c *Client) list(ctx context.Context, path string, q Query) ([]Item, error) {
	body, err := c.get(ctx, path, q.values(), RoleViewEvents)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, fmt.Errorf("GET %s: decoding the response: %w", path, err)
	}
	items := make([]Item, len(raws))
	for i, raw := range raws {
		var head struct {
			ID   string `json:"id"`
			Time *int64 `json:"time"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("GET %s: event %d: %w", path, i, err)
		}
		if head.Time == nil {
			return nil, fmt.Errorf("GET %s: event %d has no time: %s", path, i, snippet(raw))
		}
		items[i] = Item{Raw: raw, Time: *head.Time, ID: head.ID}
	}
	return items, nil
}

// Username returns the username of the user with id userID in realm
// (GET /admin/realms/{realm}/users/{id}). The error wraps ErrNotFound when
// the user does not exist (any more).
func (c *Client) Username(ctx context.Context, realm, userID string) (string, error) {
	if userID == "" {
		return "", fmt.Errorf("username in realm %q: empty user id", realm)
	}
	body, err := c.get(ctx, "/admin/realms/"+url.PathEscape(realm)+"/users/"+url.PathEscape(userID), nil, RoleViewUsers)
	if err != nil {
		return "", fmt.Errorf("username of user %q in realm %q: %w", userID, realm, err)
	}
	var u struct {
		Username string `json:"username"`
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return "", fmt.Errorf("username of user %q in realm %q: decoding the response: %w", userID, realm, err)
	}
	return u.Username, nil
}
