package apisource

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventsServer is a local HTTP server that answers the token endpoint and
// the two event listings with the query semantics of Keycloak's
// RealmAdminResource: inclusive dateFrom/dateTo, ORDER BY time only (ties
// come back in a different random order on every request, as PostgreSQL
// may return them), first/max. With legacy set it behaves like a server
// before 26.2: newest first, day dates only (400 on epoch ms), no id.
type eventsServer struct {
	*httptest.Server
	legacy bool

	mu       sync.Mutex
	events   []json.RawMessage
	requests []string // query strings of event listings
}

func newEventsServer(t *testing.T, legacy bool, events []json.RawMessage) *eventsServer {
	t.Helper()
	s := &eventsServer{legacy: legacy, events: events}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"tok","expires_in":300,"token_type":"Bearer"}`))
	})
	mux.HandleFunc("GET /admin/realms/{realm}/events", s.list)
	mux.HandleFunc("GET /admin/realms/{realm}/admin-events", s.list)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *eventsServer) add(events ...json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, events...)
}

func evTime(raw json.RawMessage) int64 {
	var v struct{ Time int64 }
	json.Unmarshal(raw, &v)
	return v.Time
}

func (s *eventsServer) parseDate(v string, end bool) (int64, bool) {
	if strings.Contains(v, "-") {
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return 0, false
		}
		if end {
			return d.Add(24*time.Hour).UnixMilli() - 1, true
		}
		return d.UnixMilli(), true
	}
	if s.legacy {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

func (s *eventsServer) list(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.URL.Query()
	s.requests = append(s.requests, r.URL.RawQuery)
	from, to := int64(0), int64(1<<62)
	var ok bool
	if v := q.Get("dateFrom"); v != "" {
		if from, ok = s.parseDate(v, false); !ok {
			http.Error(w, `{"error":"Invalid value for 'dateFrom'"}`, http.StatusBadRequest)
			return
		}
	}
	if v := q.Get("dateTo"); v != "" {
		if to, ok = s.parseDate(v, true); !ok {
			http.Error(w, `{"error":"Invalid value for 'dateTo'"}`, http.StatusBadRequest)
			return
		}
	}
	var sel []json.RawMessage
	for _, e := range s.events {
		if t := evTime(e); t >= from && t <= to {
			sel = append(sel, e)
		}
	}
	rand.Shuffle(len(sel), func(i, j int) { sel[i], sel[j] = sel[j], sel[i] })
	asc := !s.legacy && q.Get("direction") == "asc"
	slices.SortStableFunc(sel, func(a, b json.RawMessage) int {
		if asc {
			return int(evTime(a) - evTime(b))
		}
		return int(evTime(b) - evTime(a))
	})
	first, _ := strconv.Atoi(q.Get("first"))
	max := 100
	if v := q.Get("max"); v != "" {
		max, _ = strconv.Atoi(v)
	}
	sel = sel[min(first, len(sel)):]
	sel = sel[:min(max, len(sel))]
	if s.legacy {
		for i, e := range sel {
			var m map[string]any
			json.Unmarshal(e, &m)
			delete(m, "id")
			sel[i], _ = json.Marshal(m)
		}
	}
	if sel == nil {
		sel = []json.RawMessage{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(sel)
}

func testClient(t *testing.T, url string) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: url, AuthRealm: "demo", ClientID: "kc-event-emitter", ClientSecret: "s3cret", RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
