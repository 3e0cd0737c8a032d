package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/envflag"
)

// envPrefix prefixes the environment variable of every flag: --targetUri is
// KC_EMITTER_TARGET_URI.
const envPrefix = "KC_EMITTER_"

// Secrets come only from the environment or from a file named by a flag.
const (
	envSecretToken   = "CT_KEYCLOAK_BRIDGE_SECRET_TOKEN" // the original's Basic auth password
	envDBURL         = envPrefix + "DB_URL"
	envAPISecret     = envPrefix + "API_CLIENT_SECRET"
	envAPIPassword   = envPrefix + "API_PASSWORD"
	envSigningSecret = envPrefix + "SIGNING_SECRET"
	envStateDBURL    = envPrefix + "STATE_DB_URL"
	envOAuth2Secret  = envPrefix + "OAUTH2_CLIENT_SECRET"
)

// mandatory are the original's mandatory parameters: no defaults.
var mandatory = []string{"format", "targetUri", "bufferCapacity", "keycloakId", "datacenterId"}

type flagGroup struct {
	title string
	names []string
}

// flagGroups orders the flags of --help by concern.
var flagGroups = []flagGroup{
	{"Configuration file: routes (several targets, each with its own filters, format and position) and global settings", []string{"config"}},
	{"The original event-emitter's parameters (the first five are mandatory)", []string{"format", "targetUri", "bufferCapacity",
		"keycloakId", "datacenterId", "connectTimeoutMillis", "connectionRequestTimeoutMillis", "socketTimeoutMillis", "requestTimeout"}},
	{"Source: Keycloak's database or its admin REST API", []string{"source", "dbUrlFile", "apiUrl", "apiAuthRealm",
		"apiClientId", "apiClientSecretFile", "apiUsername", "apiPasswordFile", "apiTimeout"}},
	{"What to read", []string{"realms", "kinds", "eventTypes", "excludeEventTypes", "adminOperations", "adminResources",
		"clients", "excludeClients", "from", "pollInterval", "overlap", "auditHorizon", "pageSize", "pageBytes", "maxEventBytes"}},
	{"Delivery", []string{"bufferBytes", "overflow", "concurrency", "numbering", "retryWaitMin", "retryWaitMax", "deadLetterFile",
		"deadLetterMaxBytes", "deadLetterStatuses", "holdStatuses"}},
	{"Target authentication and TLS", []string{"username", "secretFile", "oauth2TokenUrl", "oauth2ClientId", "oauth2ClientSecretFile",
		"oauth2Scopes", "signingSecretFile", "caFile", "clientCertFile", "clientKeyFile"}},
	{"Mail sink: --targetUri smtp://host:port (STARTTLS) or smtps://host:port (TLS); --format is not needed", mailFlagNames},
	{"Operations", []string{"checkpoint", "once", "listen", "shutdownTimeout", "logLevel", "logFormat"}},
	{"Cluster mode: one emitter per Keycloak pod, exactly one emitting, the state in PostgreSQL", []string{"cluster", "stateSchema", "stateDbUrlFile"}},
}

const runUsage = `Usage: kc-event-emitter [run] [flags]

Tails Keycloak's event tables (or its admin REST API) and POSTs every Event and
AdminEvent to --targetUri, in the wire formats of the original event-emitter.

Every flag can also be set by the environment variable KC_EMITTER_<NAME>, the
flag's name in upper snake case (--targetUri is KC_EMITTER_TARGET_URI); a flag
on the command line wins. Secrets are never flags: the target's Basic auth
password comes from CT_KEYCLOAK_BRIDGE_SECRET_TOKEN (user: $HOSTNAME, as the
original) or --secretFile, the database URL from KC_EMITTER_DB_URL or
--dbUrlFile, the API client secret from KC_EMITTER_API_CLIENT_SECRET or
--apiClientSecretFile, the API password from KC_EMITTER_API_PASSWORD or
--apiPasswordFile, Standard Webhooks secrets from KC_EMITTER_SIGNING_SECRET
(space-separated) or --signingSecretFile (one per line), the state database URL
of cluster mode from KC_EMITTER_STATE_DB_URL or --stateDbUrlFile, the OAuth2
client secret of the target from KC_EMITTER_OAUTH2_CLIENT_SECRET or
--oauth2ClientSecretFile, the mail server's AUTH password from
KC_EMITTER_MAIL_PASSWORD or --mailPasswordFile.

With --config FILE (KC_EMITTER_CONFIG) the routes come from the file: the
flags of one route (the target, its auth and TLS, format, buffer, delivery and
filters) are then refused; a global flag set on the command line or in the
environment wins over the file. See the README, "Routes".

Memory: the Go runtime's soft memory limit is 48 MiB unless GOMEMLIMIT sets
another. In bytes the emitter holds about 20 MiB + 2 x --pageBytes +
--bufferBytes + (--concurrency + 2) x the largest encoded event (a stored event
above --maxEventBytes is dead-lettered unread): about 126 MiB with the defaults
(docs/benchmarks.md). Small events are bounded by --bufferCapacity and by the
events read within --overlap of the cursor.
`

// routeFlagNames are the flags of the one route of a flags-only run: with
// --config they are refused (the file's routes say them).
var routeFlagNames = append([]string{"format", "bufferCapacity", "numbering", "overflow", "concurrency", "deadLetterMaxBytes",
	"realms", "kinds", "eventTypes", "excludeEventTypes", "adminOperations", "adminResources", "clients", "excludeClients"},
	append(append(targetFlagNames, mailFlagNames...), streamFlagNamesAll()...)...)

// streamFlagNamesAll returns the Kafka and NATS flags.
func streamFlagNamesAll() []string {
	var names []string
	for _, g := range streamFlagGroups {
		names = append(names, g.names...)
	}
	return names
}

// configPath returns the value of --config in args (before a "--"), else
// of KC_EMITTER_CONFIG; the flags proper are parsed once the file is read,
// so that they win over it.
func configPath(args []string, getenv func(string) string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return getenv(envName("config"))
}

// options is the parsed command line: the emitter's Config and the logging.
type options struct {
	cfg       emitter.Config
	logLevel  slog.Level
	logFormat string
}

// envName returns the environment variable of a flag: targetUri -> KC_EMITTER_TARGET_URI.
func envName(flagName string) string { return envflag.Name(envPrefix, flagName) }

// parseRunFlags reads args and the environment (through getenv). Its errors
// name the parameter and the value; flag.ErrHelp means --help was asked.
func parseRunFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	def := emitter.DefaultConfig()
	var file *configFile
	logLevel, logFormat := "INFO", "text"
	if path := configPath(args, getenv); path != "" {
		var err error
		if file, err = loadConfigFile(path); err != nil {
			return options{}, err
		}
		if err := file.apply(&def, getenv); err != nil {
			return options{}, err
		}
		setStr(&logLevel, file.fc.LogLevel)
		setStr(&logFormat, file.fc.LogFormat)
	}
	var (
		o                                options
		format, numbering                string
		bufferCapacity, keycloakID, dcID string
		dbURLFile, stateDBURLFile        string
		apiSecretFile, apiPassFile       string
		realms, kinds, eventTypes        string
		excludeTypes, adminOps, adminRes string
		clients, excludeClients          string
		configFlag                       string
	)
	c := def
	fs := flag.NewFlagSet("kc-event-emitter run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)

	fs.StringVar(&configFlag, "config", "", "YAML `file` of routes and global settings (see the README); the flags of a route are then refused")
	fs.StringVar(&format, "format", "", "wire `format`: JSON or FLATBUFFER")
	fs.StringVar(&bufferCapacity, "bufferCapacity", "", "how many undelivered events are kept in memory (`count`)")
	fs.StringVar(&keycloakID, "keycloakId", "", "snowflake worker `id` of this emitter, 0..31")
	fs.StringVar(&dcID, "datacenterId", "", "snowflake datacenter `id`, 0..3")

	fs.TextVar(&c.Source, "source", def.Source, "where events are read: db (Keycloak's PostgreSQL) or api (admin REST API)")
	fs.StringVar(&dbURLFile, "dbUrlFile", "", "`file` holding the PostgreSQL URL of Keycloak's database (else "+envDBURL+")")
	fs.StringVar(&c.API.URL, "apiUrl", def.API.URL, "Keycloak's root `URL` for --source api, e.g. http://127.0.0.1:8080")
	fs.StringVar(&c.API.AuthRealm, "apiAuthRealm", def.API.AuthRealm, "`realm` that issues the API token")
	fs.StringVar(&c.API.ClientID, "apiClientId", def.API.ClientID, "client `id`: with a secret, client_credentials (service account with view-events, view-users); else admin-cli with a password")
	fs.StringVar(&apiSecretFile, "apiClientSecretFile", "", "`file` holding the API client secret (else "+envAPISecret+")")
	fs.StringVar(&c.API.Username, "apiUsername", def.API.Username, "user `name` for the password grant")
	fs.StringVar(&apiPassFile, "apiPasswordFile", "", "`file` holding the API user's password (else "+envAPIPassword+")")
	fs.DurationVar(&c.API.Timeout, "apiTimeout", def.API.Timeout, "longest `duration` of one API request")

	fs.StringVar(&realms, "realms", "", "comma-separated realm `names` to tail; empty tails every realm, also new ones")
	fs.StringVar(&kinds, "kinds", "", "comma-separated `kinds` to tail: Event, AdminEvent; empty is both")
	fs.StringVar(&eventTypes, "eventTypes", "", "comma-separated event `types` to send (globs: LOGIN*); empty is all")
	fs.StringVar(&excludeTypes, "excludeEventTypes", "", "comma-separated event `types` never to send (globs)")
	fs.StringVar(&adminOps, "adminOperations", "", "comma-separated admin operation `types` to send: CREATE, UPDATE, DELETE, ACTION")
	fs.StringVar(&adminRes, "adminResources", "", "comma-separated admin resource `types` to send (globs: USER, CLIENT*)")
	fs.StringVar(&clients, "clients", "", "comma-separated client `ids` (globs) whose events are sent; for admin events the acting client's internal id")
	fs.StringVar(&excludeClients, "excludeClients", "", "comma-separated client `ids` (globs) whose events are never sent (e.g. the echoes of your own admin-API client)")
	fs.StringVar(&c.From, "from", def.From, "where to start without a checkpoint: now, beginning or an RFC 3339 `time`")
	fs.DurationVar(&c.PollInterval, "pollInterval", def.PollInterval, "longest pause between polls when nothing is new (5 ms while events flow, doubling to this; a stream of the database idle for 10 s is read once a second)")
	fs.DurationVar(&c.Overlap, "overlap", def.Overlap, "how far behind the newest row read rows are looked for again (Keycloak's stamp-to-commit delay, small clock skew); open transactions extend it")
	fs.DurationVar(&c.AuditHorizon, "auditHorizon", def.AuditHorizon, "how far back rows that appear late (skewed clocks, long transactions) are still delivered; older ones are counted and logged")
	fs.IntVar(&c.PageSize, "pageSize", def.PageSize, "rows per read")
	envflag.BytesVar(fs, &c.PageBytes, "pageBytes", def.PageBytes, "`bytes` of stored event text one read takes at most (cut in the database; a stream still gets one row per read, however large)")
	envflag.BytesVar(fs, &c.MaxEventBytes, "maxEventBytes", def.MaxEventBytes, "`bytes` a stored event (details, representation) may take at most to be read; a larger one is dead-lettered with its size, unread")
	envflag.BytesVar(fs, &c.BufferBytes, "bufferBytes", def.BufferBytes, "`bytes` of encoded events the buffer holds at most besides --bufferCapacity (an event larger than that waits alone)")

	fs.TextVar(&c.Overflow, "overflow", def.Overflow, "when the buffer is full: drop-oldest (the original's, counted and logged) or block (nothing lost)")
	fs.IntVar(&c.Concurrency, "concurrency", def.Concurrency, "requests in flight; 1 keeps strict order")
	fs.StringVar(&numbering, "numbering", string(def.Numbering), "FLATBUFFER enum numbering of the receiver: 20.1, bridge or 26")
	envflag.BytesVar(fs, &c.DeadLetterMaxBytes, "deadLetterMaxBytes", def.DeadLetterMaxBytes, "`size` in bytes past which the dead-letter file is rotated to file.1, file.2, ... (oldest first)")
	target := addTargetFlags(fs, &c, def, getenv)
	mailOpts := addMailFlags(fs, &c, def)
	stream := addStreamFlags(fs, &c, def)

	fs.StringVar(&c.CheckpointPath, "checkpoint", def.CheckpointPath, "`file` keeping the position across restarts")
	fs.BoolVar(&c.Once, "once", def.Once, "deliver what is new, save the checkpoint and exit (for cron)")
	fs.StringVar(&c.ListenAddr, "listen", def.ListenAddr, "`address` of /healthz, /readyz and /metrics; empty serves none")
	fs.DurationVar(&c.ShutdownTimeout, "shutdownTimeout", def.ShutdownTimeout, "on SIGTERM, longest time to deliver what is buffered")
	fs.StringVar(&c.Cluster, "cluster", def.Cluster, "cluster `name`: the emitters of one name (a sidecar in every Keycloak pod) share their state in PostgreSQL and exactly one emits; empty: one instance with --checkpoint")
	fs.StringVar(&c.StateSchema, "stateSchema", def.StateSchema, "PostgreSQL `schema` of the cluster's state (created if absent; needs USAGE and CREATE on it)")
	fs.StringVar(&stateDBURLFile, "stateDbUrlFile", "", "`file` holding the PostgreSQL URL of the cluster's state (else "+envStateDBURL+"; default: Keycloak's database)")
	fs.StringVar(&logLevel, "logLevel", logLevel, "DEBUG, INFO, WARN or ERROR")
	fs.StringVar(&o.logFormat, "logFormat", logFormat, "text or json")

	fs.Usage = func() { printRunUsage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q (secrets are never arguments: see --help)", fs.Arg(0))
	}
	set, err := envflag.Apply(fs, envPrefix, getenv)
	if err != nil {
		return options{}, err
	}
	if file != nil {
		for _, name := range routeFlagNames {
			if set[name] {
				return options{}, fmt.Errorf("--%s (or %s) with --config %s: the settings of a route are in the file's routes; drop the flag or set it in a route",
					name, envName(name), file.path)
			}
		}
	}
	for _, name := range mandatory {
		if file != nil && (name == "format" || name == "targetUri" || name == "bufferCapacity" ||
			(name == "keycloakId" && file.fc.KeycloakID != nil) || (name == "datacenterId" && file.fc.DatacenterID != nil)) {
			continue
		}
		if !set[name] && (name != "format" || !isMailURI(c.TargetURI)) {
			return options{}, fmt.Errorf("--%s is missing (or %s): it is mandatory", name, envName(name))
		}
	}
	c.Format = emitter.Format(format)
	c.Numbering = emitter.Numbering(numbering)
	if file == nil {
		if c.BufferCapacity, err = parseInt("bufferCapacity", bufferCapacity); err != nil {
			return options{}, err
		}
	}
	var n int
	if set["keycloakId"] {
		if n, err = parseInt("keycloakId", keycloakID); err != nil {
			return options{}, err
		}
		c.KeycloakID = int64(n)
	}
	if set["datacenterId"] {
		if n, err = parseInt("datacenterId", dcID); err != nil {
			return options{}, err
		}
		c.DatacenterID = int64(n)
	}
	c.Realms = list(realms)
	for _, k := range list(kinds) {
		c.Kinds = append(c.Kinds, emitter.Kind(k))
	}
	c.Filters.EventTypes = emitter.TypeFilter{Include: list(eventTypes), Exclude: list(excludeTypes)}
	c.Filters.Operations = emitter.TypeFilter{Include: list(adminOps)}
	c.Filters.Resources = emitter.TypeFilter{Include: list(adminRes)}
	c.Filters.Clients = emitter.TypeFilter{Include: list(clients), Exclude: list(excludeClients)}

	if err := target.apply(&c, getenv); err != nil {
		return options{}, err
	}
	if err := mailOpts.apply(&c, getenv); err != nil {
		return options{}, err
	}
	if err := stream.apply(&c, getenv); err != nil {
		return options{}, err
	}
	// A secret of a flag or its variable wins over the file's.
	for _, s := range []struct {
		dst             *string
		file, flag, env string
	}{
		{&c.DatabaseURL, dbURLFile, "dbUrlFile", envDBURL},
		{&c.StateDatabaseURL, stateDBURLFile, "stateDbUrlFile", envStateDBURL},
		{&c.API.ClientSecret, apiSecretFile, "apiClientSecretFile", envAPISecret},
		{&c.API.Password, apiPassFile, "apiPasswordFile", envAPIPassword},
	} {
		v, err := envflag.Secret(getenv, s.file, s.flag, s.env)
		if err != nil {
			return options{}, err
		}
		if v != "" || file == nil {
			*s.dst = v
		}
	}
	if err := o.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return options{}, fmt.Errorf("--logLevel %q: want DEBUG, INFO, WARN or ERROR", logLevel)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return options{}, fmt.Errorf("--logFormat %q: want text or json", o.logFormat)
	}
	if err := c.Validate(); err != nil {
		if file != nil {
			if ferr := file.fileFieldError(err, set); ferr != nil {
				return options{}, ferr
			}
		}
		return options{}, fmt.Errorf("--%w", err)
	}
	o.cfg = c
	return o, nil
}

func parseInt(name, s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("--%s %q: want a whole number", name, s)
	}
	return n, nil
}

// list splits a comma-separated flag value, dropping blanks around items.
func list(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// printRunUsage prints the flags of run grouped by concern.
func printRunUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, runUsage)
	printFlagGroups(w, fs, append(flagGroups[:len(flagGroups):len(flagGroups)], streamFlagGroups...))
}

// printFlagGroups prints the flags of fs in groups, each with its variable;
// the flags of no group come last, under "Other flags".
func printFlagGroups(w io.Writer, fs *flag.FlagSet, groups []flagGroup) {
	seen := map[string]bool{}
	var other []string
	fs.VisitAll(func(f *flag.Flag) { other = append(other, f.Name) })
	other = slices.DeleteFunc(other, func(n string) bool {
		return slices.ContainsFunc(groups, func(g flagGroup) bool { return slices.Contains(g.names, n) })
	})
	if len(other) > 0 {
		groups = append(groups[:len(groups):len(groups)], flagGroup{"Other flags", other})
	}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.names {
			f := fs.Lookup(name)
			if f == nil || seen[name] {
				continue
			}
			seen[name] = true
			kind, usage := flag.UnquoteUsage(f)
			line := "  --" + name
			if kind != "" {
				line += " " + kind
			}
			fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
			fmt.Fprintf(w, "\n    \tenv %s\n", envName(name))
		}
	}
}
