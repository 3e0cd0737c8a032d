package emitter

import (
	"context"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
)

// enricher adds usernames as the original event-emitter did, for both
// sources: the "username" detail of an Event that has a user id but no
// username, the AdminEvent's AuthDetails.Username, and the "user_id" and
// "username" details of an AdminEvent on "users/<id>". Names come from the
// source's userDirectory through an LRU cache that also remembers users
// that do not exist.
type enricher struct {
	dir   userDirectory // nil: no lookups
	cache *lru.Cache[string, string]
}

// defaultUsernameCache is how many usernames an enricher keeps.
const defaultUsernameCache = 10000

func newEnricher(dir userDirectory, size int) *enricher {
	c, _ := lru.New[string, string](max(size, 1)) // fails only for size <= 0
	return &enricher{dir: dir, cache: c}
}

// userOfPath returns the user id of a resource path "users/<id>".
func userOfPath(path string) (string, bool) {
	id, ok := strings.CutPrefix(path, "users/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// refs returns the users r needs the names of.
func refs(r Record, add func(userRef)) {
	if e := r.Event; e != nil {
		if _, ok := e.Details["username"]; !ok && e.UserID != "" {
			add(userRef{realmID: e.RealmID, userID: e.UserID})
		}
		return
	}
	a := r.Admin
	if a.AuthDetails.UserID != "" {
		realmID := a.AuthDetails.RealmID
		if realmID == "" {
			realmID = a.RealmID
		}
		add(userRef{realmID: realmID, userID: a.AuthDetails.UserID})
	}
	if id, ok := userOfPath(a.ResourcePath); ok {
		add(userRef{realmID: a.RealmID, userID: id})
	}
}

// lookup adds to the cache, in one call of the directory, the users of
// the records of every page the cache does not know; keep, when not nil,
// tells which records need names.
func (e *enricher) lookup(ctx context.Context, keep func(Record) bool, pages ...[]Record) error {
	_, err := e.names(ctx, keep, pages...)
	return err
}

// names returns the names of the users the records of pages need ("" for
// a user that does not exist), from the cache, and looks up in one call of
// the directory those it does not know; keep is as for lookup. Nil when
// the enricher has no directory.
func (e *enricher) names(ctx context.Context, keep func(Record) bool, pages ...[]Record) (map[string]string, error) {
	if e.dir == nil {
		return nil, nil
	}
	n := 0
	for _, recs := range pages {
		n += len(recs)
	}
	// Sized for a user a record (an admin event may have two): growing the
	// map cost more than the lookups (BenchmarkEnrichAPageOfKnownUsers).
	names := make(map[string]string, n)
	var missing []userRef
	for _, recs := range pages {
		for _, r := range recs {
			if keep != nil && !keep(r) {
				continue
			}
			refs(r, func(u userRef) {
				if _, seen := names[u.userID]; seen {
					return
				}
				name, ok := e.cache.Get(u.userID)
				names[u.userID] = name
				if !ok {
					missing = append(missing, u)
				}
			})
		}
	}
	if len(missing) == 0 {
		return names, nil
	}
	found, err := e.dir.usernames(ctx, missing)
	if err != nil {
		return nil, err
	}
	for _, u := range missing {
		names[u.userID] = found[u.userID]
		e.cache.Add(u.userID, found[u.userID]) // "" remembers a user that does not exist
	}
	return names, nil
}

// enrich sets the usernames of recs, looking up in one call the users the
// cache does not know.
func (e *enricher) enrich(ctx context.Context, recs []Record) error {
	names, err := e.names(ctx, nil, recs)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if ev := r.Event; ev != nil {
			if _, ok := ev.Details["username"]; !ok && ev.UserID != "" {
				if n := names[ev.UserID]; n != "" {
					ev.Details["username"] = n
				}
			}
			continue
		}
		a := r.Admin
		if a.AuthDetails.UserID != "" {
			a.AuthDetails.Username = names[a.AuthDetails.UserID]
		}
		if id, ok := userOfPath(a.ResourcePath); ok {
			if _, set := a.Details["user_id"]; !set {
				a.Details["user_id"] = id
			}
			if _, set := a.Details["username"]; !set {
				if n := names[id]; n != "" {
					a.Details["username"] = n
				}
			}
		}
	}
	return nil
}
