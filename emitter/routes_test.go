package emitter

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

// eventTarget answers 2xx and keeps, per event id, how often it came
// and when it first arrived.
type eventTarget struct {
	mu    sync.Mutex
	count map[string]int
	times map[string]int64 // event time (ms) of each id
	at    map[string]time.Time
}

func newEventTarget(t testing.TB) (*eventTarget, *httptest.Server) {
	rt := &eventTarget{count: map[string]int{}, times: map[string]int64{}, at: map[string]time.Time{}}
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return rt, srv
}

func (rt *eventTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		ID   string `json:"id"`
		Time int64  `json:"time"`
	}
	if json.Unmarshal(body, &ev); ev.ID == "" {
		ev.ID = "uid:" + r.Header.Get("webhook-id") // a FLATBUFFER body: the uid of a signed request
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.count[ev.ID] == 0 {
		rt.at[ev.ID] = time.Now()
		rt.times[ev.ID] = ev.Time
	}
	rt.count[ev.ID]++
}

func (rt *eventTarget) got() map[string]int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := map[string]int{}
	for k, v := range rt.count {
		out[k] = v
	}
	return out
}

// addRecord adds an Event of type typ by client to m.
func addRecord(m *memSource, realmID, id string, ms int64, typ, client string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := streamKey(KindEvent, realmID)
	m.rows[key] = append(m.rows[key], Record{Event: &Event{ID: id, Time: ms, RealmID: realmID, Type: typ, ClientID: client, Details: map[string]string{}}})
}

// httpRoute is a route named name to url, JSON, with the defaults.
func httpRoute(dir, name, url string) Route {
	r := DefaultRoute(name)
	r.Sink.HTTP = &HTTPSink{URL: url}
	d := DefaultConfig()
	r.Sink.HTTP.ConnectTimeout, r.Sink.HTTP.ConnectionRequestTimeout, r.Sink.HTTP.SocketTimeout = d.ConnectTimeout, d.ConnectionRequestTimeout, d.SocketTimeout
	r.Sink.HTTP.DeadLetterStatuses, r.Sink.HTTP.HoldStatuses = d.DeadLetterStatuses, d.HoldStatuses
	r.Format = FormatJSON
	r.DeadLetterPath = filepath.Join(dir, name+".dead.jsonl")
	return r
}

func TestRoutesEachDeliverWhatTheirFiltersTakeAndKeepTheirOwnPosition(t *testing.T) {
	src := newMemSource(acme)
	addRecord(src, "r", "reg-1", 1700000000000, "REGISTER", "account-console")
	addRecord(src, "r", "login-1", 1700000000001, "LOGIN", "account-console")
	addRecord(src, "r", "login-ops", 1700000000002, "LOGIN", "ops-automation")
	addRecord(src, "r", "logout-1", 1700000000003, "LOGOUT", "account-console")
	src.add(KindAdminEvent, "r", "admin-1", 1700000000004)
	all, allSrv := newEventTarget(t)
	signups, signupsSrv := newEventTarget(t)
	dir := t.TempDir()
	cfg := validConfig()
	cfg.From, cfg.Once, cfg.PollInterval = "beginning", true, 5*time.Millisecond
	cfg.CheckpointPath = filepath.Join(dir, "cp.json")
	audit := httpRoute(dir, "default", allSrv.URL)
	audit.Format = FormatFlatBuffer
	audit.Sink.HTTP.SigningSecrets = []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	sign := httpRoute(dir, "signups", signupsSrv.URL)
	sign.Kinds = []Kind{KindEvent}
	sign.Filters = Filters{EventTypes: TypeFilter{Include: []string{"REGISTER", "LOGIN"}},
		Clients: TypeFilter{Exclude: []string{"ops-*"}}}
	cfg.Routes = []Route{audit, sign}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	run := func() *emitter {
		t.Helper()
		e, err := newEmitter(cfg, RunOptions{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.run(context.Background(), oneSource(src),
			func(r *route) checkpoint.Store { return checkpoint.NewFile(cfg.CheckpointOf(r.cfg.Name)) }); err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := run()
	if got := signups.got(); len(got) != 2 || got["reg-1"] != 1 || got["login-1"] != 1 {
		t.Errorf("route signups got %v, want reg-1 and login-1 once (not the ops client's, not LOGOUT, not the admin event)", got)
	}
	if n := len(all.count); n != 5 {
		t.Errorf("route default got %d events, want all 5", n)
	}
	for _, c := range []struct {
		route string
		vec   *prometheus.CounterVec
		kind  string
		want  float64
	}{
		{"default", e.metrics.all.delivered, "Event", 4}, {"default", e.metrics.all.delivered, "AdminEvent", 1},
		{"signups", e.metrics.all.delivered, "Event", 2}, {"signups", e.metrics.all.filtered, "Event", 2},
		{"signups", e.metrics.all.read, "AdminEvent", 0},
	} {
		if got := testutil.ToFloat64(c.vec.WithLabelValues(c.route, c.kind)); got != c.want {
			t.Errorf("%v{route=%q,kind=%q} = %v, want %v", c.vec, c.route, c.kind, got, c.want)
		}
	}
	for _, name := range []string{"default", "signups"} {
		st, err := checkpoint.Load(cfg.CheckpointOf(name))
		if err != nil {
			t.Fatalf("state of route %s: %v", name, err)
		}
		if c := st.Streams["Event/r"].Cursor; c.Time != 1700000000003 {
			t.Errorf("route %s: saved cursor %+v, want the last event's", name, c)
		}
		if _, admin := st.Streams["AdminEvent/r"]; admin != (name == "default") {
			t.Errorf("route %s: admin stream in its state = %v", name, admin)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cp.json.signups")); err != nil {
		t.Errorf("the state file of route signups: %v", err)
	}

	// Only route signups' new event, and a second run sends nothing twice.
	addRecord(src, "r", "reg-2", 1700000000010, "REGISTER", "account-console")
	run()
	if got := signups.got(); len(got) != 3 || got["reg-2"] != 1 || got["reg-1"] != 1 {
		t.Errorf("after a second run route signups got %v, want reg-2 once more and nothing twice", got)
	}
	for id, n := range all.got() {
		if n != 1 || !strings.HasPrefix(id, "uid:") || len(id) < 10 {
			t.Errorf("route default (FLATBUFFER, signed) got %q %d times", id, n)
		}
	}
	if n := len(all.got()); n != 6 {
		t.Errorf("after a second run route default got %d events, want 6", n)
	}
}

func TestReadinessNamesTheRouteThatStalls(t *testing.T) {
	dir := t.TempDir()
	cfg := validConfig()
	cfg.CheckpointPath = filepath.Join(dir, "cp.json")
	cfg.Routes = []Route{httpRoute(dir, "audit", "http://127.0.0.1:9/a"), httpRoute(dir, "signups", "http://127.0.0.1:9/b")}
	e, err := newEmitter(cfg, RunOptions{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.routes {
		src := &observedSource{source: newMemSource(), reads: r.metrics.SourceReads}
		src.note(nil)
		r.src.Store(src)
	}
	now := time.Now()
	if got := e.ready.notReady(now); got != "" || e.ready.readyText() != "ready (routes audit, signups)" {
		t.Errorf("both routes idle: notReady %q, text %q", got, e.ready.readyText())
	}
	if err := e.routes[1].p.delivery.put(context.Background(), envelope{Kind: KindEvent, UID: 1, ID: "e", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	got := e.ready.notReady(now.Add(readyAfter + time.Second))
	if !strings.HasPrefix(got, "route signups: target took no event") || strings.Contains(got, "audit") {
		t.Errorf("route signups stalled: notReady %q, want it to name signups only", got)
	}
}

func TestClientFiltersMatchTheEventsClientAndTheAdminEventsActingClient(t *testing.T) {
	f := Filters{Clients: TypeFilter{Include: []string{"account*", "3f6c*"}, Exclude: []string{"account-console"}}}
	for _, c := range []struct {
		name string
		rec  Record
		want bool
	}{
		{"an included client", Record{Event: &Event{ClientID: "account"}}, true},
		{"an excluded client", Record{Event: &Event{ClientID: "account-console"}}, false},
		{"another client", Record{Event: &Event{ClientID: "admin-cli"}}, false},
		{"no client", Record{Event: &Event{}}, false},
		{"an admin event by an included client", Record{Admin: &AdminEvent{AuthDetails: AuthDetails{ClientID: "3f6c0e8a-uuid"}}}, true},
		{"an admin event by another client", Record{Admin: &AdminEvent{AuthDetails: AuthDetails{ClientID: "9a9a"}}}, false},
	} {
		if got := f.keep(c.rec); got != c.want {
			t.Errorf("%s: keep = %v, want %v", c.name, got, c.want)
		}
	}
	if !(Filters{}).keep(Record{Event: &Event{}}) {
		t.Error("no client filter: an event without a client is left out")
	}
}

func TestConfigValidateRefusesRoutesThatCannotRun(t *testing.T) {
	dir := t.TempDir()
	base := func() Config {
		c := validConfig()
		c.Routes = []Route{httpRoute(dir, "a", "http://127.0.0.1:9/a"), httpRoute(dir, "b", "http://127.0.0.1:9/b")}
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		field  string
	}{
		{"duplicate names", func(c *Config) { c.Routes[1].Name = "a" }, "routes[1].name"},
		{"a name with a dot", func(c *Config) { c.Routes[0].Name = "a.b" }, "routes[0].name"},
		{"the name of the default route's journal", func(c *Config) { c.Routes[1].Name = "journal" }, "routes[1].name"},
		{"no sink", func(c *Config) { c.Routes[1].Sink = SinkConfig{} }, "routes[1].sink"},
		{"one dead-letter file", func(c *Config) { c.Routes[1].DeadLetterPath = c.Routes[0].DeadLetterPath }, "routes[1].deadLetterFile"},
		{"bad buffer", func(c *Config) { c.Routes[0].BufferCapacity = 0 }, "routes[0].bufferCapacity"},
		{"bad socket timeout", func(c *Config) { c.Routes[1].Sink.HTTP.SocketTimeout = 0 }, "routes[1].sink.http.socketTimeout"},
		{"oauth2 without a client", func(c *Config) { c.Routes[0].Sink.HTTP.OAuth2.TokenURL = "http://127.0.0.1:9/t" }, "routes[0].sink.http.oauth2.clientId"},
		{"a never-matching filter", func(c *Config) {
			c.Routes[0].Kinds = []Kind{KindEvent}
			c.Routes[0].Filters.Operations.Include = []string{"CREATE"}
		}, "routes[0].filters.adminOperations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(&c)
			err := c.Validate()
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != tt.field {
				t.Fatalf("Validate() = %v, want a FieldError of %s", err, tt.field)
			}
		})
	}
	if err := base().Validate(); err != nil {
		t.Errorf("two good routes: %v", err)
	}
}

func TestARouteWithOAuth2SendsTheBearerTokenOfItsGrant(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, _ := r.BasicAuth(); id != "emitter" || secret != "s3cret" || r.FormValue("scope") != "events.write" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`)
	})
	mux.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	src := newMemSource(acme)
	src.add(KindEvent, "r", "e-1", 1700000000000)
	dir := t.TempDir()
	cfg := validConfig()
	cfg.From, cfg.Once, cfg.PollInterval, cfg.CheckpointPath = "beginning", true, 5*time.Millisecond, filepath.Join(dir, "cp.json")
	r := httpRoute(dir, "hooks", srv.URL+"/events")
	r.Sink.HTTP.OAuth2 = OAuth2Config{TokenURL: srv.URL + "/token", ClientID: "emitter", ClientSecret: "s3cret", Scopes: []string{"events.write"}}
	cfg.Routes = []Route{r}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e, err := newEmitter(cfg, RunOptions{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.run(context.Background(), oneSource(src), oneStore(checkpoint.NewFile(cfg.CheckpointOf("hooks")))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auth) != 1 || auth[0] != "Bearer tok-1" {
		t.Errorf("the target got Authorization %q, want the grant's bearer token once", auth)
	}
}
