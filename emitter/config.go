package emitter

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
)

// Config is the whole configuration of a running emitter: the original
// event-emitter's parameters, the source to read, delivery and operations.
// Zero values of optional fields take the defaults of DefaultConfig.
//
// Routes, when set (a configuration file), are where the events go, each
// with its own sink, filters, encoding, delivery and position; the fields
// of one route below (from Format to Filters, marked "per route") are then
// not used. Without Routes those fields make the one route "default" (a
// flags-only run).
type Config struct {
	Routes []Route

	// The original's mandatory parameters (Format, TargetURI and
	// BufferCapacity per route).
	// The original's mandatory parameters.
	Format         Format
	TargetURI      string
	BufferCapacity int
	// BufferBytes bounds the buffer in bytes as well (encoded events
	// waiting); an event larger than that waits alone.
	BufferBytes  int64
	KeycloakID   int64
	DatacenterID int64

	// The original's optional timeouts.
	ConnectTimeout           time.Duration // connectTimeoutMillis: dial and TLS handshake
	ConnectionRequestTimeout time.Duration // connectionRequestTimeoutMillis: wait for a pooled connection
	SocketTimeout            time.Duration // socketTimeoutMillis: longest silence while reading a response
	RequestTimeout           time.Duration // requestTimeout: longest whole attempt; 0 is none

	// Wire and delivery beyond the original.
	Numbering      Numbering     // FlatBuffer enum numbering; default 20.1
	Overflow       buffer.Policy // drop-oldest (default) or block
	Concurrency    int           // requests in flight; 1 (default) keeps strict order
	RetryWaitMin   time.Duration
	RetryWaitMax   time.Duration
	DeadLetterPath string
	// DeadLetterMaxBytes is the size past which the dead-letter file is
	// rotated to DeadLetterPath.1, .2, ... (oldest first).
	DeadLetterMaxBytes int64
	// DeadLetterStatuses are the target's answers about the event: the
	// event is dead-lettered and the route moves on. HoldStatuses are its
	// answers about itself: the route holds its position and retries. The
	// defaults come from answerTable; other statuses are retried.
	DeadLetterStatuses []int
	HoldStatuses       []int

	// Target credentials and TLS. Username and Password make Basic auth as
	// the original (HOSTNAME and CT_KEYCLOAK_BRIDGE_SECRET_TOKEN).
	Username       string
	Password       string       // secret
	OAuth2         OAuth2Config // a bearer token of a client credentials grant instead of Basic auth
	SigningSecrets []string     // secret: Standard Webhooks whsec_ secrets
	CAFile         string
	ClientCertFile string
	ClientKeyFile  string

	// Kafka and NATS hold the options of a kafka:// or nats:// targetUri
	// (sink_kafka.go, sink_nats.go).
	Kafka KafkaConfig
	NATS  NATSConfig

	// Source.
	Source       Source
	DatabaseURL  string // secret: may hold a password
	API          APIConfig
	Realms       []string // per route: realm names; empty is every realm
	Kinds        []Kind   // per route: empty is both
	Filters      Filters  // per route
	From         string   // "now" (default), "beginning" or an RFC 3339 time
	PollInterval time.Duration
	Overlap      time.Duration // rows stamped this long before the newest read are looked for again
	AuditHorizon time.Duration // how far back rows that appear late are still delivered (skewed clocks, long transactions)
	PageSize     int
	// PageBytes is the byte budget of one read (the stored size of the
	// rows' large columns): the database cuts the pages there; a stream
	// still gets at least one row per read.
	PageBytes int64
	// MaxEventBytes is the most a stored event (its details and
	// representation) may weigh to be read: a heavier one is dead-lettered
	// with its size, never read whole.
	MaxEventBytes int64

	// Operations.
	CheckpointPath  string
	Once            bool   // drain what is new, deliver it, save and return
	ListenAddr      string // /healthz, /readyz, /metrics; "" serves nothing
	ShutdownTimeout time.Duration

	// Cluster mode: with Cluster set, the emitters of that name share one
	// state in PostgreSQL and only the holder of the cluster's lock emits.
	Cluster          string
	StateSchema      string // the emitter's own schema; default kc_event_emitter
	StateDatabaseURL string // secret: the state's database; default DatabaseURL

	// Mail holds the mail sink's settings when TargetURI is
	// smtp://host:port or smtps://host:port (its Server and TLS come from
	// there).
	Mail MailConfig
}

// Source is where events are read.
type Source string

// The sources.
const (
	SourceDB  Source = "db"  // Keycloak's PostgreSQL database
	SourceAPI Source = "api" // Keycloak's admin REST API
)

// ParseSource returns the Source named s.
func ParseSource(s string) (Source, error) {
	switch Source(s) {
	case SourceDB, SourceAPI:
		return Source(s), nil
	}
	return "", fmt.Errorf("source %q: want db or api", s)
}

// MarshalText returns the source's name, for flags and configuration files.
func (s Source) MarshalText() ([]byte, error) { return []byte(s), nil }

// UnmarshalText sets s to the source named by text (see ParseSource).
func (s *Source) UnmarshalText(text []byte) error {
	v, err := ParseSource(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// APIConfig is how the API source reaches Keycloak's admin REST API.
type APIConfig struct {
	URL          string // Keycloak's root URL
	AuthRealm    string // realm that issues the token; default master
	ClientID     string // with ClientSecret: client_credentials; else password grant
	ClientSecret string // secret
	Username     string
	Password     string // secret
	Timeout      time.Duration
}

// DefaultConfig returns the defaults of every optional field.
func DefaultConfig() Config {
	return Config{
		BufferCapacity:           10000,
		BufferBytes:              16 << 20,
		ConnectTimeout:           httpsender.DefaultConnectTimeout,
		ConnectionRequestTimeout: httpsender.DefaultRequestTimeout,
		SocketTimeout:            httpsender.DefaultSocketTimeout,
		Numbering:                Numbering201,
		Overflow:                 buffer.DropOldest,
		Concurrency:              httpsender.DefaultMaxConns,
		RetryWaitMin:             httpsender.DefaultRetryWaitMin,
		RetryWaitMax:             httpsender.DefaultRetryWaitMax,
		Source:                   SourceDB,
		API:                      APIConfig{AuthRealm: "master", Timeout: 30 * time.Second},
		From:                     "now",
		PollInterval:             100 * time.Millisecond,
		Overlap:                  5 * time.Second,
		AuditHorizon:             10 * time.Minute,
		PageSize:                 500,
		PageBytes:                8 << 20,
		MaxEventBytes:            16 << 20,
		CheckpointPath:           "kc-event-emitter.checkpoint.json",
		DeadLetterPath:           "kc-event-emitter.dead-letter.jsonl",
		DeadLetterMaxBytes:       64 << 20,
		DeadLetterStatuses:       defaultStatuses(deadLetterAnswer),
		HoldStatuses:             defaultStatuses(holdAnswer),
		ListenAddr:               "127.0.0.1:9464",
		ShutdownTimeout:          10 * time.Second,
		StateSchema:              "kc_event_emitter",
		Mail:                     defaultMailConfig(),
		Kafka:                    defaultKafkaConfig(),
		NATS:                     defaultNATSConfig(),
	}
}

// Timings of the loop that are not settings.
const (
	rescanInterval = 500 * time.Millisecond // least time between two re-reads of a stream's overlap window
	realmInterval  = 30 * time.Second       // how often realms are listed again
	saveInterval   = time.Second            // least time between two checkpoint saves
	maxBackoff     = 30 * time.Second       // cap of the wait between retries after a source error
	pastHorizon    = time.Hour              // how long beyond the audit horizon rows read are counted per minute
)

// FieldError is a configuration value that is missing or invalid. Field is
// the parameter's name as the user sets it (the flag name).
type FieldError struct {
	Field string
	Value string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks c before anything starts and returns the first problem as
// a *FieldError naming the parameter and its value (secrets are never
// shown).
func (c Config) Validate() error {
	bad := func(field string, value any, format string, args ...any) error {
		return &FieldError{Field: field, Value: fmt.Sprint(value), Err: fmt.Errorf(format, args...)}
	}
	if err := c.validateRoutes(); err != nil {
		return err
	}
	for _, b := range []struct {
		field string
		v     int64
	}{{"bufferBytes", c.BufferBytes}, {"pageBytes", c.PageBytes}, {"maxEventBytes", c.MaxEventBytes}} {
		if b.v < 64<<10 || b.v > 1<<40 {
			return bad(b.field, b.v, "want a size in bytes from 65536 (64 KiB) to 2^40")
		}
	}
	if c.KeycloakID < 0 || c.KeycloakID > 31 {
		return bad("keycloakId", c.KeycloakID, "want 0..31 (5 bits of the snowflake uid)")
	}
	if c.DatacenterID < 0 || c.DatacenterID > 3 {
		return bad("datacenterId", c.DatacenterID, "want 0..3 (2 bits of the snowflake uid)")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"pollInterval", c.PollInterval}, {"overlap", c.Overlap}, {"auditHorizon", c.AuditHorizon},
		{"shutdownTimeout", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			return bad(d.field, d.v, "want a duration > 0")
		}
	}
	if c.AuditHorizon < c.Overlap {
		return bad("auditHorizon", c.AuditHorizon, "want >= overlap (%s)", c.Overlap)
	}
	if c.PageSize < 1 || c.PageSize > 100000 {
		return bad("pageSize", c.PageSize, "want 1..100000")
	}
	if _, err := parseFrom(c.From, time.Now()); err != nil {
		return bad("from", c.From, "want now, beginning or an RFC 3339 time")
	}
	switch c.Source {
	case SourceDB:
		if c.DatabaseURL == "" {
			return bad("dbUrl", "", "missing: set KC_EMITTER_DB_URL or --dbUrlFile for --source db")
		}
		if u, err := url.Parse(c.DatabaseURL); (err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql")) &&
			!strings.Contains(c.DatabaseURL, "=") {
			return bad("dbUrl", redact.ConnString(c.DatabaseURL), "want postgres://user@host:port/dbname or host=... dbname=...")
		}
	case SourceAPI:
		if err := checkHTTPURL(c.API.URL); err != nil {
			return &FieldError{Field: "apiUrl", Value: c.API.URL, Err: err}
		}
		if c.API.ClientSecret == "" && (c.API.Username == "" || c.API.Password == "") {
			return bad("apiClientId", c.API.ClientID, "need a client secret (KC_EMITTER_API_CLIENT_SECRET) or --apiUsername with KC_EMITTER_API_PASSWORD")
		}
		if c.API.Timeout <= 0 {
			return bad("apiTimeout", c.API.Timeout, "want a duration > 0")
		}
	default:
		return bad("source", c.Source, "want db or api")
	}
	if c.CheckpointPath == "" {
		return bad("checkpoint", "", "missing: the file that keeps the position across restarts")
	}
	if c.ListenAddr != "" {
		if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
			return &FieldError{Field: "listen", Value: c.ListenAddr, Err: err}
		}
	}
	return c.validateCluster()
}

// clusterName is what --cluster accepts.
var clusterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// validateCluster checks the settings of cluster mode.
func (c Config) validateCluster() error {
	if c.Cluster == "" {
		return nil
	}
	if !clusterName.MatchString(c.Cluster) {
		return &FieldError{Field: "cluster", Value: c.Cluster, Err: errors.New("want 1..128 letters, digits, '.', '_' or '-', starting with a letter or digit")}
	}
	if c.Once {
		return &FieldError{Field: "once", Value: "true", Err: errors.New("--once and --cluster do not go together: a cluster's emitters run on")}
	}
	if err := checkpoint.CheckSchemaName(c.StateSchema); err != nil {
		return &FieldError{Field: "stateSchema", Value: c.StateSchema, Err: err}
	}
	state := c.StateURL()
	if state == "" {
		return &FieldError{Field: "stateDbUrl", Err: errors.New("missing: set KC_EMITTER_STATE_DB_URL or --stateDbUrlFile (with --source db the state goes to Keycloak's database by default)")}
	}
	if u, err := url.Parse(state); (err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql")) && !strings.Contains(state, "=") {
		return &FieldError{Field: "stateDbUrl", Value: redact.ConnString(state), Err: errors.New("want postgres://user@host:port/dbname or host=... dbname=...")}
	}
	return nil
}

// validateTarget checks what a sender to the target of the flags needs:
// the URL, the timeouts and retry waits, credentials, TLS files and the
// answer table. The deadletters replay command checks only it.
func (c Config) validateTarget() error {
	r := c.flagRoute()
	if err := checkRetryWaits(r.RetryWaitMin, r.RetryWaitMax, flagKey); err != nil {
		return err
	}
	return r.validateSink(flagKey)
}

// checkAnswers checks the two sides of the answer table: HTTP statuses
// 300..599 (a 2xx is a delivery), each on one side only. key names a side
// in messages (--holdStatuses, routes[0].sink.http.holdStatuses); the
// error's Field is the side's bare name.
func checkAnswers(deadLetter, hold []int, key func(string) string) error {
	for _, side := range []struct {
		field, other string
		statuses     []int
		others       []int
	}{
		{"deadLetterStatuses", "holdStatuses", deadLetter, hold},
		{"holdStatuses", "deadLetterStatuses", hold, deadLetter},
	} {
		for _, st := range side.statuses {
			value := joinInts(side.statuses)
			if st < 300 || st > 599 {
				return &FieldError{Field: side.field, Value: value,
					Err: fmt.Errorf("%d: want HTTP statuses 300..599 (a 2xx is a delivery)", st)}
			}
			if slices.Contains(side.others, st) {
				return &FieldError{Field: side.field, Value: value,
					Err: fmt.Errorf("%d is also in %s (%s): a status goes to one side only", st, key(side.other), joinInts(side.others))}
			}
		}
	}
	return nil
}

// joinInts writes statuses as a flag takes them: 400,413,422.
func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// StateURL is the database of the cluster's state and lock: StateDatabaseURL,
// else with --source db Keycloak's database.
func (c Config) StateURL() string {
	if c.StateDatabaseURL != "" {
		return c.StateDatabaseURL
	}
	if c.Source == SourceDB {
		return c.DatabaseURL
	}
	return ""
}

// checkTarget checks the targetUri: an absolute http or https URL.
func checkTarget(s string) error {
	if s == "" {
		return errors.New("missing: the URL every event is POSTed to")
	}
	return checkHTTPURL(s)
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// LogValue renders c for logs without its secrets.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("format", string(c.Format)),
		slog.String("targetUri", redact.URL(c.TargetURI)),
		slog.Int("bufferCapacity", c.BufferCapacity),
		slog.Int64("bufferBytes", c.BufferBytes),
		slog.Int64("keycloakId", c.KeycloakID),
		slog.Int64("datacenterId", c.DatacenterID),
		slog.Duration("connectTimeout", c.ConnectTimeout),
		slog.Duration("connectionRequestTimeout", c.ConnectionRequestTimeout),
		slog.Duration("socketTimeout", c.SocketTimeout),
		slog.Duration("requestTimeout", c.RequestTimeout),
		slog.String("numbering", string(c.Numbering)),
		slog.String("overflow", c.Overflow.String()),
		slog.Int("concurrency", c.Concurrency),
		slog.String("source", string(c.Source)),
		slog.Any("realms", c.Realms),
		slog.String("checkpoint", c.CheckpointPath),
		slog.Bool("basicAuth", c.Password != ""),
		slog.Bool("oauth2", c.OAuth2.TokenURL != ""),
		slog.Int("signingSecrets", len(c.SigningSecrets)),
		slog.Bool("once", c.Once),
	}
	if len(c.Routes) == 0 && isMailTarget(c.TargetURI) {
		m := c.mail()
		attrs = append(attrs, slog.String("mailFrom", m.From), slog.Any("mailTo", m.To), slog.Any("mailTypes", m.Types),
			slog.String("mailTls", string(m.TLS)), slog.Bool("mailAuth", m.Username != ""),
			slog.Int("mailDigestThreshold", m.DigestThreshold), slog.Duration("mailDigestWindow", m.DigestWindow))
	}
	if len(c.Routes) > 0 {
		attrs = attrs[:0]
		for _, r := range c.Routes {
			attrs = append(attrs, slog.Any("route", r))
		}
		attrs = append(attrs, slog.Int64("keycloakId", c.KeycloakID), slog.Int64("datacenterId", c.DatacenterID),
			slog.String("source", string(c.Source)), slog.String("checkpoint", c.CheckpointPath), slog.Bool("once", c.Once))
	}
	if c.Cluster != "" {
		attrs = append(attrs, slog.String("cluster", c.Cluster), slog.String("stateSchema", c.StateSchema),
			slog.String("stateDbUrl", redact.ConnString(c.StateURL())))
	}
	switch c.Source {
	case SourceDB:
		attrs = append(attrs, slog.String("dbUrl", redact.ConnString(c.DatabaseURL)))
	case SourceAPI:
		attrs = append(attrs, slog.String("apiUrl", redact.URL(c.API.URL)), slog.String("apiClientId", c.API.ClientID),
			slog.String("apiUsername", c.API.Username))
	}
	return slog.GroupValue(attrs...)
}

// parseFrom turns a start position ("now", "" meaning now, "beginning" or an
// RFC 3339 time) into milliseconds since the Unix epoch.
func parseFrom(from string, now time.Time) (int64, error) {
	switch from {
	case "", "now":
		return now.UnixMilli(), nil
	case "beginning":
		return 0, nil
	}
	ts, err := time.Parse(time.RFC3339, from)
	if err != nil {
		return 0, fmt.Errorf("from %q: want now, beginning or an RFC 3339 time such as 2026-01-02T15:04:05Z", from)
	}
	return ts.UnixMilli(), nil
}
