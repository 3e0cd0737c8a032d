package emitter

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/webhook"
)

// Route is one destination of the events and everything that is its own:
// the sink, what it takes (realms, kinds, filters), how it is encoded and
// delivered, and its position in the state (the checkpoint file or the
// cluster's row of the route). Every route reads the source itself, at its
// own position: a route whose target is down holds only its own position.
type Route struct {
	Name string
	Sink SinkConfig

	// What the route takes.
	Realms  []string // realm names; empty is every realm
	Kinds   []Kind   // empty is both
	Filters Filters

	// Encoding and delivery.
	Format         Format
	Numbering      Numbering
	Overflow       buffer.Policy
	Concurrency    int
	BufferCapacity int
	RetryWaitMin   time.Duration // backoff of a held route (and of the HTTP sender's retries)
	RetryWaitMax   time.Duration
	DeadLetterPath string
	// DeadLetterMaxBytes is the size past which the dead-letter file is
	// rotated to DeadLetterPath.1, .2, ...
	DeadLetterMaxBytes int64
}

// SinkConfig is where a route delivers: exactly one of its fields is set.
type SinkConfig struct {
	HTTP  *HTTPSink
	Mail  *MailConfig  // sink_mail.go
	Kafka *KafkaConfig // sink_kafka.go
	NATS  *NATSConfig  // sink_nats.go
}

// HTTPSink is a target that takes one POST per event (the original's).
type HTTPSink struct {
	URL string

	// The original's timeouts.
	ConnectTimeout           time.Duration // connectTimeoutMillis: dial and TLS handshake
	ConnectionRequestTimeout time.Duration // connectionRequestTimeoutMillis: wait for a pooled connection
	SocketTimeout            time.Duration // socketTimeoutMillis: longest silence while reading a response
	RequestTimeout           time.Duration // longest whole attempt; 0 is none

	// The answer table: see Config.DeadLetterStatuses.
	DeadLetterStatuses []int
	HoldStatuses       []int

	// Credentials and TLS: Basic auth (Password set), or an OAuth2 bearer
	// token (OAuth2.TokenURL set).
	Username       string
	Password       string // secret
	OAuth2         OAuth2Config
	SigningSecrets []string // secret: Standard Webhooks whsec_ secrets
	CAFile         string
	ClientCertFile string
	ClientKeyFile  string
}

// OAuth2Config is an OAuth2 client credentials grant whose access token
// goes as a bearer token with every request. TokenURL empty: none.
type OAuth2Config struct {
	TokenURL     string
	ClientID     string
	ClientSecret string // secret
	Scopes       []string
}

// routeName is what a route's name may be: it names a state file
// (<checkpoint>.<name>), a cluster row and a metrics label.
var routeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// CheckRouteName returns an error when name cannot name a route.
func CheckRouteName(name string) error {
	if !routeName.MatchString(name) {
		return errors.New("want 1..64 letters, digits, '_' or '-', starting with a letter or digit (it names the route's state file and metrics)")
	}
	if name == "journal" {
		// <checkpoint>.journal is the default route's journal.
		return errors.New("reserved: <checkpoint>.journal is the default route's journal")
	}
	return nil
}

// DefaultRoute returns the defaults of a route named name: those of the
// flags, with a dead-letter file of its own
// (kc-event-emitter.<name>.dead-letter.jsonl) unless it is the default
// route.
func DefaultRoute(name string) Route {
	c := DefaultConfig()
	c.Routes = nil
	r := c.flagRoute()
	r.Name = name
	if name != defaultRoute {
		r.DeadLetterPath = strings.TrimSuffix(c.DeadLetterPath, ".dead-letter.jsonl") + "." + name + ".dead-letter.jsonl"
	}
	r.Sink = SinkConfig{}
	return r
}

// flagRoute is the route of a run without a configuration file: the
// per-route fields of c.
func (c Config) flagRoute() Route {
	return Route{
		Name:    defaultRoute,
		Realms:  c.Realms,
		Kinds:   c.Kinds,
		Filters: c.Filters,
		Sink:    c.flagSink(),
		Format:  c.Format, Numbering: c.Numbering, Overflow: c.Overflow, Concurrency: c.Concurrency,
		BufferCapacity: c.BufferCapacity, RetryWaitMin: c.RetryWaitMin, RetryWaitMax: c.RetryWaitMax,
		DeadLetterPath: c.DeadLetterPath, DeadLetterMaxBytes: c.DeadLetterMaxBytes,
	}
}

// routeList returns the routes of c: c.Routes when set (a configuration
// file), else the one route of the flags, named "default".
func (c Config) routeList() []Route {
	if len(c.Routes) > 0 {
		return c.Routes
	}
	return []Route{c.flagRoute()}
}

// CheckpointOf returns the checkpoint file of the route named route: the
// checkpoint path itself for the default route (so that the state file of
// a flags-only run goes on working when it becomes a file's route named
// "default"), else <checkpoint>.<route>.
func (c Config) CheckpointOf(route string) string {
	if route == defaultRoute {
		return c.CheckpointPath
	}
	return c.CheckpointPath + "." + route
}

// StateKey is the key of a route's state in the cluster's store: the
// cluster's name for the default route, else <cluster>:<route> (a colon is
// in no cluster name).
func (c Config) StateKey(route string) string {
	if route == defaultRoute {
		return c.Cluster
	}
	return c.Cluster + ":" + route
}

// WithRoute returns c as a flags-only run of the route r: its per-route
// fields set from r, its Routes none (what deadletters replay takes to
// reach the target of a file's route). r must have an HTTP, Kafka or NATS
// sink.
func (c Config) WithRoute(r Route) (Config, error) {
	h := r.Sink.HTTP
	if h == nil && r.Sink.Kafka == nil && r.Sink.NATS == nil {
		return c, &FieldError{Field: "route", Value: r.Name, Err: errors.New("not an HTTP, Kafka or NATS route")}
	}
	c.Routes = nil
	c.Realms, c.Kinds, c.Filters = r.Realms, r.Kinds, r.Filters
	c.Format, c.Numbering, c.Overflow, c.Concurrency, c.BufferCapacity = r.Format, r.Numbering, r.Overflow, r.Concurrency, r.BufferCapacity
	c.RetryWaitMin, c.RetryWaitMax, c.DeadLetterPath, c.DeadLetterMaxBytes = r.RetryWaitMin, r.RetryWaitMax, r.DeadLetterPath, r.DeadLetterMaxBytes
	switch {
	case r.Sink.Kafka != nil:
		c.Kafka = *r.Sink.Kafka
		c.TargetURI = "kafka://" + strings.Join(c.Kafka.Brokers, ",") + "/" + c.Kafka.Topic
		return c, nil
	case r.Sink.NATS != nil:
		c.NATS = *r.Sink.NATS
		hosts := make([]string, len(c.NATS.Servers))
		for i, s := range c.NATS.Servers {
			hosts[i] = strings.TrimPrefix(strings.TrimPrefix(s, "nats://"), "tls://")
		}
		c.TargetURI = "nats://" + strings.Join(hosts, ",") + "/" + c.NATS.Subject
		return c, nil
	}
	c.TargetURI = h.URL
	c.ConnectTimeout, c.ConnectionRequestTimeout, c.SocketTimeout, c.RequestTimeout = h.ConnectTimeout, h.ConnectionRequestTimeout, h.SocketTimeout, h.RequestTimeout
	c.DeadLetterStatuses, c.HoldStatuses = h.DeadLetterStatuses, h.HoldStatuses
	c.Username, c.Password, c.OAuth2, c.SigningSecrets = h.Username, h.Password, h.OAuth2, h.SigningSecrets
	c.CAFile, c.ClientCertFile, c.ClientKeyFile = h.CAFile, h.ClientCertFile, h.ClientKeyFile
	return c, nil
}

// routeFlags names the fields of a route as the flags of a flags-only run
// do; a file's routes name them routes[i].<key>.
var routeFlags = map[string]string{
	"sink": "targetUri", "sink.http.url": "targetUri",
	"sink.http.connectTimeout": "connectTimeoutMillis", "sink.http.connectionRequestTimeout": "connectionRequestTimeoutMillis",
	"sink.http.socketTimeout": "socketTimeoutMillis", "sink.http.requestTimeout": "requestTimeout",
	"sink.http.deadLetterStatuses": "deadLetterStatuses", "sink.http.holdStatuses": "holdStatuses",
	"sink.http.username": "username", "sink.http.signingSecrets": "signingSecretFile",
	"sink.http.caFile": "caFile", "sink.http.clientCertFile": "clientCertFile", "sink.http.clientKeyFile": "clientKeyFile",
	"sink.http.oauth2.tokenUrl": "oauth2TokenUrl", "sink.http.oauth2.clientId": "oauth2ClientId",
	"sink.http.oauth2.clientSecret": "oauth2ClientSecretFile", "sink.http.oauth2.scopes": "oauth2Scopes",
	"filters.realms": "realms", "filters.kinds": "kinds", "filters.eventTypes": "eventTypes",
	"filters.excludeEventTypes": "excludeEventTypes", "filters.adminOperations": "adminOperations",
	"filters.adminResources": "adminResources", "filters.clients": "clients", "filters.excludeClients": "excludeClients",
	"deadLetterFile": "deadLetterFile",

	"sink.mail.server": "targetUri", "sink.mail.tls": "mailTls", "sink.mail.caFile": "mailCaFile",
	"sink.mail.username": "mailUsername", "sink.mail.password": "mailPasswordFile", "sink.mail.auth": "mailAuth",
	"sink.mail.from": "mailFrom", "sink.mail.to": "mailTo", "sink.mail.zone": "mailZone", "sink.mail.types": "mailTypes",
	"sink.mail.digestThreshold": "mailDigestThreshold", "sink.mail.digestWindow": "mailDigestWindow",
	"sink.mail.timeout": "mailTimeout",

	"sink.kafka.brokers": "targetUri", "sink.kafka.topic": "targetUri", "sink.kafka.batchSize": "kafkaBatchSize",
	"sink.kafka.linger": "kafkaLinger", "sink.kafka.maxBytes": "kafkaMaxBytes", "sink.kafka.compression": "kafkaCompression",
	"sink.kafka.deliveryTimeout": "kafkaDeliveryTimeout", "sink.kafka.saslMechanism": "kafkaSaslMechanism",
	"sink.kafka.username": "kafkaUsername", "sink.kafka.password": "kafkaPasswordFile",
	"sink.kafka.oauthTokenUrl": "kafkaOAuthTokenUrl", "sink.kafka.oauthClientId": "kafkaOAuthClientId",
	"sink.kafka.oauthClientSecret": "kafkaOAuthClientSecretFile", "sink.kafka.tls": "kafkaTls",
	"sink.kafka.caFile": "kafkaCaFile", "sink.kafka.clientCertFile": "kafkaClientCertFile",
	"sink.kafka.clientKeyFile": "kafkaClientKeyFile",

	"sink.nats.servers": "targetUri", "sink.nats.subject": "targetUri", "sink.nats.batchSize": "natsBatchSize",
	"sink.nats.linger": "natsLinger", "sink.nats.ackTimeout": "natsAckTimeout", "sink.nats.username": "natsUsername",
	"sink.nats.password": "natsPasswordFile", "sink.nats.token": "natsTokenFile", "sink.nats.credsFile": "natsCredsFile",
	"sink.nats.caFile": "natsCaFile", "sink.nats.clientCertFile": "natsClientCertFile",
	"sink.nats.clientKeyFile": "natsClientKeyFile",
}

// flagKey names a route field by its flag.
func flagKey(key string) string {
	if f, ok := routeFlags[key]; ok {
		return f
	}
	return key
}

// targetSchemes are the schemes of --targetUri, a sink each.
var targetSchemes = []string{"http", "https", "kafka", "nats", "smtp", "smtps"}

// validateRoutes checks every route of c and that no two share a name or
// a dead-letter file.
func (c Config) validateRoutes() error {
	if len(c.Routes) == 0 {
		if isMailTarget(c.TargetURI) {
			if err := checkMailURI(c.TargetURI); err != nil {
				return &FieldError{Field: "targetUri", Value: redact.URL(c.TargetURI), Err: err}
			}
		}
		if u, err := url.Parse(c.TargetURI); err == nil && u.Scheme != "" && !slices.Contains(targetSchemes, u.Scheme) {
			return &FieldError{Field: "targetUri", Value: redact.URL(c.TargetURI),
				Err: fmt.Errorf("scheme %q: want one of %s", u.Scheme, strings.Join(targetSchemes, ", "))}
		}
		return c.flagRoute().validate(flagKey)
	}
	names := map[string]int{}
	files := map[string]int{}
	for i, r := range c.Routes {
		prefix := fmt.Sprintf("routes[%d].", i)
		key := func(k string) string { return prefix + k }
		if err := CheckRouteName(r.Name); err != nil {
			return &FieldError{Field: key("name"), Value: r.Name, Err: err}
		}
		if j, dup := names[r.Name]; dup {
			return &FieldError{Field: key("name"), Value: r.Name, Err: fmt.Errorf("routes[%d] has that name too: route names are unique", j)}
		}
		names[r.Name] = i
		if err := r.validate(key); err != nil {
			return err
		}
		if j, dup := files[r.DeadLetterPath]; dup {
			return &FieldError{Field: key("deadLetterFile"), Value: r.DeadLetterPath,
				Err: fmt.Errorf("routes[%d] writes that file too: each route has its own dead-letter file", j)}
		}
		files[r.DeadLetterPath] = i
	}
	return nil
}

// validate checks r; key names a field of r as the user sets it.
func (r Route) validate(key func(string) string) error {
	bad := func(field string, value any, format string, args ...any) error {
		return &FieldError{Field: key(field), Value: fmt.Sprint(value), Err: fmt.Errorf(format, args...)}
	}
	if _, err := ParseFormat(string(r.Format)); err != nil && r.Sink.Mail == nil { // mails are text
		if r.Format == "" {
			return bad("format", "", "missing: want JSON or FLATBUFFER")
		}
		return bad("format", r.Format, "want JSON or FLATBUFFER")
	}
	if err := r.validateSink(key); err != nil {
		return err
	}
	if r.BufferCapacity <= 0 {
		return bad("bufferCapacity", r.BufferCapacity, "want a count > 0")
	}
	if _, err := ParseNumbering(string(r.Numbering)); err != nil {
		return bad("numbering", r.Numbering, "want 20.1, bridge or 26")
	}
	if r.Overflow != buffer.DropOldest && r.Overflow != buffer.Block {
		return bad("overflow", r.Overflow, "want drop-oldest or block")
	}
	if r.Concurrency < 1 || r.Concurrency > 256 {
		return bad("concurrency", r.Concurrency, "want 1..256")
	}
	if err := r.validateFilters(key); err != nil {
		return err
	}
	if r.DeadLetterPath == "" {
		return bad("deadLetterFile", "", "missing: the file of the events the target refused for good")
	}
	if r.DeadLetterMaxBytes < 4096 {
		return bad("deadLetterMaxBytes", r.DeadLetterMaxBytes, "want a size >= 4096 bytes")
	}
	return nil
}

// validateSink checks that r has exactly one sink, and the sink.
func (r Route) validateSink(key func(string) string) error {
	n := 0
	for _, set := range []bool{r.Sink.HTTP != nil, r.Sink.Mail != nil, r.Sink.Kafka != nil, r.Sink.NATS != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return &FieldError{Field: key("sink"), Err: errors.New("missing: the route has no sink (sink.http.url: the URL every event is POSTed to; or sink.mail, sink.kafka, sink.nats)")}
	case n > 1:
		return &FieldError{Field: key("sink"), Err: errors.New("more than one sink: a route has one; declare another route")}
	}
	if err := checkRetryWaits(r.RetryWaitMin, r.RetryWaitMax, key); err != nil {
		return err
	}
	switch s := r.Sink; {
	case s.Mail != nil:
		return s.Mail.validate(func(k string) string { return key("sink.mail." + k) })
	case s.Kafka != nil:
		return s.Kafka.validate(func(k string) string { return key("sink.kafka." + k) })
	case s.NATS != nil:
		return s.NATS.validate(func(k string) string { return key("sink.nats." + k) })
	}
	return r.Sink.HTTP.validate(func(k string) string { return key("sink.http." + k) })
}

func checkRetryWaits(lo, hi time.Duration, key func(string) string) error {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"retryWaitMin", lo}, {"retryWaitMax", hi}} {
		if d.v <= 0 {
			return &FieldError{Field: key(d.field), Value: d.v.String(), Err: errors.New("want a duration > 0")}
		}
	}
	if hi < lo {
		return &FieldError{Field: key("retryWaitMax"), Value: hi.String(), Err: fmt.Errorf("want >= retryWaitMin (%s)", lo)}
	}
	return nil
}

// validate checks what a sender to the target needs: the URL, the
// timeouts, credentials, TLS files and the answer table; key names a field
// of h.
func (h *HTTPSink) validate(key func(string) string) error {
	bad := func(field string, value any, format string, args ...any) error {
		return &FieldError{Field: key(field), Value: fmt.Sprint(value), Err: fmt.Errorf(format, args...)}
	}
	if err := checkTarget(h.URL); err != nil {
		return &FieldError{Field: key("url"), Value: redact.URL(h.URL), Err: err}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"connectTimeout", h.ConnectTimeout}, {"connectionRequestTimeout", h.ConnectionRequestTimeout},
		{"socketTimeout", h.SocketTimeout},
	} {
		if d.v <= 0 {
			return bad(d.field, d.v, "want a duration > 0")
		}
	}
	if h.RequestTimeout < 0 {
		return bad("requestTimeout", h.RequestTimeout, "want a duration >= 0 (0: no bound)")
	}
	if (h.ClientCertFile == "") != (h.ClientKeyFile == "") {
		return bad("clientCertFile", h.ClientCertFile, "clientCertFile and clientKeyFile go together")
	}
	if h.Username != "" && h.Password == "" {
		return bad("username", h.Username, "set but no password: set CT_KEYCLOAK_BRIDGE_SECRET_TOKEN or --secretFile (in a file: passwordFile or passwordEnv)")
	}
	for i, s := range h.SigningSecrets {
		if _, err := webhook.ParseSecret(s); err != nil {
			return bad("signingSecrets", fmt.Sprintf("secret #%d", i+1), "want a Standard Webhooks secret (whsec_ and base64): %v", err)
		}
	}
	if err := h.OAuth2.validate(func(k string) string { return key("oauth2." + k) }); err != nil {
		return err
	}
	if h.OAuth2.TokenURL != "" && h.Password != "" {
		return bad("oauth2.tokenUrl", h.OAuth2.TokenURL, "with Basic auth too: the target gets one Authorization header; choose one")
	}
	if err := checkAnswers(h.DeadLetterStatuses, h.HoldStatuses, func(k string) string {
		if f := key(k); f != k {
			return f
		}
		return "--" + k
	}); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Field = key(fe.Field)
		}
		return err
	}
	return nil
}

// validate checks the grant: nothing set, or a token URL, a client id and
// a secret.
func (o OAuth2Config) validate(key func(string) string) error {
	if o.TokenURL == "" {
		if o.ClientID != "" || o.ClientSecret != "" || len(o.Scopes) > 0 {
			return &FieldError{Field: key("tokenUrl"), Err: errors.New("missing: the client id, secret or scopes of an OAuth2 grant are set but not its token endpoint")}
		}
		return nil
	}
	if err := checkHTTPURL(o.TokenURL); err != nil {
		return &FieldError{Field: key("tokenUrl"), Value: redact.URL(o.TokenURL), Err: err}
	}
	if o.ClientID == "" {
		return &FieldError{Field: key("clientId"), Err: errors.New("missing: the OAuth2 client id")}
	}
	if o.ClientSecret == "" {
		return &FieldError{Field: key("clientSecret"), Err: errors.New("missing: the OAuth2 client secret (KC_EMITTER_OAUTH2_CLIENT_SECRET or --oauth2ClientSecretFile; in a file: clientSecretFile or clientSecretEnv)")}
	}
	for _, s := range o.Scopes {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t") {
			return &FieldError{Field: key("scopes"), Value: strings.Join(o.Scopes, ","), Err: errors.New("a scope is empty or holds a space")}
		}
	}
	return nil
}

// adminOperations are the operation types Keycloak records.
var adminOperations = []string{"CREATE", "UPDATE", "DELETE", "ACTION"}

// validateFilters checks the realms, kinds and filters of r, and refuses a
// filter that can never match: a filter of one kind on a route that does
// not take that kind, an include pattern that an exclude pattern covers,
// an admin operation Keycloak does not record.
func (r Route) validateFilters(key func(string) string) error {
	bad := func(field string, value any, format string, args ...any) error {
		return &FieldError{Field: key(field), Value: fmt.Sprint(value), Err: fmt.Errorf(format, args...)}
	}
	for _, k := range r.Kinds {
		if k != KindEvent && k != KindAdminEvent {
			return bad("filters.kinds", k, "want %s or %s", KindEvent, KindAdminEvent)
		}
	}
	for _, realm := range r.Realms {
		if strings.TrimSpace(realm) == "" {
			return bad("filters.realms", strings.Join(r.Realms, ","), "empty realm name")
		}
	}
	if err := r.Filters.validate(key); err != nil {
		return err
	}
	takes := func(k Kind) bool { return len(r.Kinds) == 0 || slices.Contains(r.Kinds, k) }
	f := r.Filters
	if !takes(KindEvent) && len(f.EventTypes.Include)+len(f.EventTypes.Exclude) > 0 {
		field := "filters.eventTypes"
		if len(f.EventTypes.Include) == 0 {
			field = "filters.excludeEventTypes"
		}
		return bad(field, strings.Join(append(f.EventTypes.Include, f.EventTypes.Exclude...), ","),
			"never applies: the route takes only %s (filters.kinds), and event types are those of Events", KindAdminEvent)
	}
	if !takes(KindAdminEvent) {
		for _, c := range []struct {
			field string
			f     TypeFilter
		}{{"filters.adminOperations", f.Operations}, {"filters.adminResources", f.Resources}} {
			if len(c.f.Include)+len(c.f.Exclude) > 0 {
				return bad(c.field, strings.Join(append(c.f.Include, c.f.Exclude...), ","),
					"never applies: the route takes only %s (filters.kinds), and this filter is of AdminEvents", KindEvent)
			}
		}
	}
	for _, p := range f.Operations.Include {
		if !strings.Contains(p, "*") && !slices.Contains(adminOperations, p) {
			return bad("filters.adminOperations", strings.Join(f.Operations.Include, ","),
				"%s never matches: Keycloak records %s", p, strings.Join(adminOperations, ", "))
		}
	}
	for _, c := range []struct {
		field, exclude string
		f              TypeFilter
	}{
		{"filters.eventTypes", "filters.excludeEventTypes", f.EventTypes},
		{"filters.adminOperations", "filters.excludeAdminOperations", f.Operations},
		{"filters.adminResources", "filters.excludeAdminResources", f.Resources},
		{"filters.clients", "filters.excludeClients", f.Clients},
	} {
		for _, in := range c.f.Include {
			for _, ex := range c.f.Exclude {
				if covers(ex, in) {
					return bad(c.field, strings.Join(c.f.Include, ","), "%s never matches: %s excludes %s", in, c.exclude, ex)
				}
			}
		}
	}
	return nil
}

// covers tells whether every name that pattern in matches is matched by
// pattern ex too (conservatively: false when unsure).
func covers(ex, in string) bool {
	switch {
	case ex == in || ex == "*":
		return true
	case !strings.Contains(in, "*"):
		return globMatch(ex, in)
	}
	// ex a prefix pattern "ABC*": it covers every pattern whose literal
	// start begins with ABC.
	if prefix, ok := strings.CutSuffix(ex, "*"); ok && !strings.Contains(prefix, "*") {
		lit, _, _ := strings.Cut(in, "*")
		return strings.HasPrefix(lit, prefix)
	}
	return false
}

// senderOptions are the options of an HTTP sender to h for a route with
// the retry waits lo and hi and concurrency conns.
func (h *HTTPSink) senderOptions(lo, hi time.Duration, conns int) httpsender.Options {
	o := httpsender.Options{
		URL:            h.URL,
		ConnectTimeout: h.ConnectTimeout,
		RequestTimeout: h.ConnectionRequestTimeout,
		SocketTimeout:  h.SocketTimeout,
		AttemptTimeout: h.RequestTimeout,
		MaxConns:       conns,
		Username:       h.Username,
		Password:       h.Password,
		CAFile:         h.CAFile,
		ClientCertFile: h.ClientCertFile,
		ClientKeyFile:  h.ClientKeyFile,
		SigningSecrets: h.SigningSecrets,
		RetryWaitMin:   lo,
		RetryWaitMax:   hi,
	}
	if h.OAuth2.TokenURL != "" {
		o.OAuth2 = &httpsender.OAuth2{TokenURL: h.OAuth2.TokenURL, ClientID: h.OAuth2.ClientID,
			ClientSecret: h.OAuth2.ClientSecret, Scopes: h.OAuth2.Scopes}
	}
	return o
}

// LogValue renders r for logs without its secrets.
func (r Route) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("name", r.Name),
		slog.String("format", string(r.Format)),
		slog.String("numbering", string(r.Numbering)),
		slog.String("overflow", r.Overflow.String()),
		slog.Int("concurrency", r.Concurrency),
		slog.Int("bufferCapacity", r.BufferCapacity),
		slog.Any("realms", r.Realms),
		slog.Any("kinds", r.Kinds),
		slog.String("deadLetterFile", r.DeadLetterPath),
	}
	if h := r.Sink.HTTP; h != nil {
		attrs = append(attrs, slog.String("url", redact.URL(h.URL)), slog.Bool("basicAuth", h.Password != ""),
			slog.Bool("oauth2", h.OAuth2.TokenURL != ""), slog.Int("signingSecrets", len(h.SigningSecrets)))
	}
	if m := r.Sink.Mail; m != nil {
		attrs = append(attrs, slog.String("mailServer", m.Server), slog.String("mailTls", string(m.TLS)),
			slog.Any("mailTypes", m.Types), slog.Int("mailTo", len(m.To)))
	}
	if k := r.Sink.Kafka; k != nil {
		attrs = append(attrs, slog.Any("kafkaBrokers", k.Brokers), slog.String("kafkaTopic", k.Topic),
			slog.String("kafkaSasl", k.SASLMechanism), slog.Bool("kafkaTls", k.TLS))
	}
	if n := r.Sink.NATS; n != nil {
		attrs = append(attrs, slog.Any("natsServers", n.Servers), slog.String("natsSubject", n.Subject))
	}
	return slog.GroupValue(attrs...)
}
