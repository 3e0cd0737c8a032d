package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
	"github.com/kc-event-emitter/kc-event-emitter/emitter"
)

var routesEnv = map[string]string{
	"TEST_DB_URL": "postgres://kc:pw@127.0.0.1:5432/keycloak", "TEST_AUDIT_PASSWORD": "audit-pw", "TEST_OAUTH2_SECRET": "oauth-secret",
}

func TestConfigFileDeclaresRoutesWithTheirSinksFiltersAndDefaults(t *testing.T) {
	o, err := parseRunFlags([]string{"--config", "testdata/routes.yaml"}, env(routesEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.KeycloakID != 7 || c.DatacenterID != 2 || c.PollInterval != 50*time.Millisecond || c.ListenAddr != "" ||
		c.DatabaseURL != routesEnv["TEST_DB_URL"] || c.CheckpointPath != "/tmp/kcee-test/cp.json" || o.logLevel.String() != "DEBUG" {
		t.Errorf("global settings: %+v (log level %v)", c, o.logLevel)
	}
	if len(c.Routes) != 2 {
		t.Fatalf("routes: %+v, want 2", c.Routes)
	}
	def := emitter.DefaultConfig()
	audit, signups := c.Routes[0], c.Routes[1]
	wantAudit := emitter.Route{
		Name: "default",
		Sink: emitter.SinkConfig{HTTP: &emitter.HTTPSink{
			URL: "http://127.0.0.1:9/audit", ConnectTimeout: def.ConnectTimeout, ConnectionRequestTimeout: def.ConnectionRequestTimeout,
			SocketTimeout: 3 * time.Second, DeadLetterStatuses: def.DeadLetterStatuses, HoldStatuses: []int{401, 403},
			Username: "kc-0", Password: "audit-pw",
		}},
		Format: emitter.FormatFlatBuffer, Numbering: emitter.Numbering26, Overflow: buffer.Block, Concurrency: 1, BufferCapacity: 500,
		RetryWaitMin: def.RetryWaitMin, RetryWaitMax: def.RetryWaitMax,
		DeadLetterPath: def.DeadLetterPath, DeadLetterMaxBytes: def.DeadLetterMaxBytes,
	}
	if !reflect.DeepEqual(audit, wantAudit) {
		t.Errorf("route default:\n got %+v %+v\nwant %+v %+v", audit, audit.Sink.HTTP, wantAudit, wantAudit.Sink.HTTP)
	}
	if h := signups.Sink.HTTP; h == nil || h.OAuth2.TokenURL != "http://127.0.0.1:9/token" || h.OAuth2.ClientID != "emitter" ||
		h.OAuth2.ClientSecret != "oauth-secret" || !reflect.DeepEqual(h.OAuth2.Scopes, []string{"events.write", "audit"}) || h.Password != "" {
		t.Errorf("route signups sink: %+v", signups.Sink.HTTP)
	}
	wantFilters := emitter.Filters{
		EventTypes: emitter.TypeFilter{Include: []string{"REGISTER"}},
		Resources:  emitter.TypeFilter{Include: []string{"USER"}},
		Clients:    emitter.TypeFilter{Include: []string{"*"}, Exclude: []string{"ops-automation"}},
	}
	if !reflect.DeepEqual(signups.Filters, wantFilters) || !reflect.DeepEqual(signups.Realms, []string{"acme"}) ||
		len(signups.Kinds) != 2 || signups.Format != emitter.FormatJSON || signups.Concurrency != 4 ||
		signups.BufferCapacity != def.BufferCapacity || signups.Overflow != buffer.DropOldest ||
		signups.DeadLetterPath != "/tmp/kcee-test/signups.dead.jsonl" {
		t.Errorf("route signups: %+v", signups)
	}
	if got := c.CheckpointOf("signups"); got != "/tmp/kcee-test/cp.json.signups" {
		t.Errorf("state file of signups: %s", got)
	}
	if got := c.CheckpointOf("default"); got != c.CheckpointPath {
		t.Errorf("state file of the default route: %s, want the checkpoint path itself", got)
	}
}

func TestConfigFileGlobalFlagsWinOverTheFile(t *testing.T) {
	e := map[string]string{"KC_EMITTER_POLL_INTERVAL": "2s"}
	for k, v := range routesEnv {
		e[k] = v
	}
	o, err := parseRunFlags([]string{"--config", "testdata/routes.yaml", "--keycloakId", "9"}, env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.KeycloakID != 9 || o.cfg.PollInterval != 2*time.Second || o.cfg.DatacenterID != 2 {
		t.Errorf("keycloakId %d (flag 9), pollInterval %s (env 2s), datacenterId %d (file 2)", o.cfg.KeycloakID, o.cfg.PollInterval, o.cfg.DatacenterID)
	}
	e["KC_EMITTER_CONFIG"] = "testdata/routes.yaml"
	if o, err = parseRunFlags(nil, env(e), io.Discard); err != nil || len(o.cfg.Routes) != 2 {
		t.Errorf("KC_EMITTER_CONFIG: %v, routes %d", err, len(o.cfg.Routes))
	}
}

func TestConfigFileAndFlagsTakeSizesInBytesOrBinaryUnits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sizes.yaml")
	file := "pageBytes: 4MiB\nmaxEventBytes: 1048576\nbufferBytes: 32 MiB\n" + goodRoute + "    deadLetterMaxBytes: 1GiB\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseRunFlags([]string{"--config", path}, env(minimalEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; c.PageBytes != 4<<20 || c.MaxEventBytes != 1<<20 || c.BufferBytes != 32<<20 || c.Routes[0].DeadLetterMaxBytes != 1<<30 {
		t.Errorf("pageBytes %d, maxEventBytes %d, bufferBytes %d, deadLetterMaxBytes %d: want 4 MiB, 1 MiB, 32 MiB, 1 GiB",
			c.PageBytes, c.MaxEventBytes, c.BufferBytes, c.Routes[0].DeadLetterMaxBytes)
	}
	o, err = parseRunFlags(append(minimalArgs, "--pageBytes", "2MiB", "--kafkaMaxBytes", "512KiB"),
		env(map[string]string{"KC_EMITTER_BUFFER_BYTES": "64MiB", "KC_EMITTER_DB_URL": minimalEnv["KC_EMITTER_DB_URL"]}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.PageBytes != 2<<20 || o.cfg.BufferBytes != 64<<20 || o.cfg.Kafka.MaxBytes != 512<<10 {
		t.Errorf("--pageBytes 2MiB: %d, KC_EMITTER_BUFFER_BYTES=64MiB: %d, --kafkaMaxBytes 512KiB: %d", o.cfg.PageBytes, o.cfg.BufferBytes, o.cfg.Kafka.MaxBytes)
	}
}

// TestConfigFileDeclaresMailKafkaAndNATSSinksOverTheirDefaults pins the
// keys of sink.mail, sink.kafka and sink.nats: each route of
// testdata/sinks.yaml has the sink it says, the keys it leaves out at
// their defaults, its secrets read from where it points.
func TestConfigFileDeclaresMailKafkaAndNATSSinksOverTheirDefaults(t *testing.T) {
	e := map[string]string{"TEST_DB_URL": "postgres://kc@127.0.0.1/keycloak", "TEST_MAIL_PASSWORD": "mail-pw", "TEST_NATS_TOKEN": "nats-token"}
	o, err := parseRunFlags([]string{"--config", "testdata/sinks.yaml"}, env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	def := emitter.DefaultConfig()
	wantMail := def.Mail
	wantMail.Server, wantMail.TLS, wantMail.Username, wantMail.Password, wantMail.Auth = "127.0.0.1:2525", "none", "kc-mailer", "mail-pw", "LOGIN"
	wantMail.From, wantMail.To, wantMail.Zone = "Keycloak <keycloak@example.com>", []string{"admin@example.com", "ops@example.com"}, "Europe/Berlin"
	wantMail.Types, wantMail.DigestThreshold, wantMail.DigestWindow = []string{"REGISTER", "USER:*"}, 5, 2*time.Minute
	wantKafka := def.Kafka
	wantKafka.Brokers, wantKafka.Topic = []string{"127.0.0.1:9092", "127.0.0.1:9093"}, "keycloak.{{realm}}"
	wantKafka.BatchSize, wantKafka.Linger = 200, 20*time.Millisecond
	wantKafka.SASLMechanism, wantKafka.Username, wantKafka.Password = "SCRAM-SHA-512", "emitter", "kafka-pw"
	wantNATS := def.NATS
	wantNATS.Servers, wantNATS.Subject, wantNATS.AckTimeout, wantNATS.Token = []string{"nats://127.0.0.1:4222"}, "kc.{{kind}}", 3*time.Second, "nats-token"

	tests := []struct {
		route  string
		format emitter.Format
		sink   emitter.SinkConfig
	}{
		{"signups", "", emitter.SinkConfig{Mail: &wantMail}},
		{"stream", emitter.FormatJSON, emitter.SinkConfig{Kafka: &wantKafka}},
		{"jetstream", emitter.FormatJSON, emitter.SinkConfig{NATS: &wantNATS}},
	}
	if len(o.cfg.Routes) != 1+len(tests) {
		t.Fatalf("routes: %d, want %d", len(o.cfg.Routes), 1+len(tests))
	}
	if h := o.cfg.Routes[0].Sink.HTTP; h == nil || h.URL != "http://127.0.0.1:9/audit" || o.cfg.Routes[0].Format != emitter.FormatFlatBuffer {
		t.Errorf("route audit: %+v", o.cfg.Routes[0])
	}
	for i, tt := range tests {
		r := o.cfg.Routes[i+1]
		want := emitter.DefaultRoute(tt.route)
		want.Sink, want.Format = tt.sink, tt.format
		if tt.route == "signups" {
			want.Realms = []string{"acme"}
		}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("route %s:\n got %+v\n     %+v %+v %+v\nwant %+v\n     %+v %+v %+v", tt.route,
				r, r.Sink.Mail, r.Sink.Kafka, r.Sink.NATS, want, want.Sink.Mail, want.Sink.Kafka, want.Sink.NATS)
		}
	}
}

// TestTheExampleConfigurationOfDeployDeclaresTheAuditAndTheMailRoute
// parses deploy/config/two-routes.yaml (the README's worked example) as a
// run would: every event to the audit store in FLATBUFFER; REGISTER and
// admin USER events of the realm acme by mail.
func TestTheExampleConfigurationOfDeployDeclaresTheAuditAndTheMailRoute(t *testing.T) {
	e := map[string]string{"KC_EMITTER_DB_URL": "postgres://kc@127.0.0.1/keycloak", "CT_KEYCLOAK_BRIDGE_SECRET_TOKEN": "audit-pw",
		"KC_EMITTER_MAIL_PASSWORD": "smtp-pw"}
	o, err := parseRunFlags([]string{"--config", "../../deploy/config/two-routes.yaml"}, env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.cfg.Routes) != 2 {
		t.Fatalf("routes: %+v", o.cfg.Routes)
	}
	audit, signups := o.cfg.Routes[0], o.cfg.Routes[1]
	if h := audit.Sink.HTTP; h == nil || h.Password != "audit-pw" || audit.Format != emitter.FormatFlatBuffer ||
		len(audit.Realms)+len(audit.Kinds) != 0 || !reflect.DeepEqual(audit.Filters, emitter.Filters{}) {
		t.Errorf("route %s: %+v", audit.Name, audit)
	}
	m := signups.Sink.Mail
	if m == nil || signups.Sink.HTTP != nil || m.Password != "smtp-pw" || m.TLS != "starttls" ||
		!reflect.DeepEqual(m.Types, []string{"REGISTER", "USER:*"}) || !reflect.DeepEqual(signups.Realms, []string{"acme"}) {
		t.Errorf("route %s: %+v, mail %+v", signups.Name, signups, m)
	}
}

const goodRoute = `keycloakId: 1
datacenterId: 0
routes:
  - name: a
    sink:
      http:
        url: http://127.0.0.1:9/a
    format: JSON
`

// mailRoute is goodRoute and a second route, of a mail sink, with the
// keys extra added under sink.mail (from line 14).
func mailRoute(extra string) string {
	return goodRoute + `  - name: m
    sink:
      mail:
        server: 127.0.0.1:2525
        tls: none
` + extra + `        from: keycloak@example.com
        to: [admin@example.com]
`
}

// TestConfigFileRefusesABadFileNamingTheFileTheLineAndTheKey pins the
// message of every refusal of a file: each names the file, the line and
// column, and the key.
func TestConfigFileRefusesABadFileNamingTheFileTheLineAndTheKey(t *testing.T) {
	tests := []struct {
		name, file string
		args       []string
		env        map[string]string
		want       string // after "<file>:"
	}{
		{"unknown top-level key", "bogus: 1\n" + goodRoute, nil, nil, `1:1: unknown field "bogus"`},
		{"unknown key of a sink", strings.Replace(goodRoute, "        url:", "        uri: x\n        url:", 1), nil, nil, `7:9: unknown field "uri"`},
		{"no routes", "keycloakId: 1\ndatacenterId: 0\n", nil, nil, ` routes: missing: the file declares no route`},
		{"a route without a sink", "keycloakId: 1\ndatacenterId: 0\nroutes:\n  - name: a\n    format: JSON\n", nil, nil,
			`4:5: routes[0].sink: missing: the route has no sink`},
		{"an empty sink", strings.Replace(goodRoute, "      http:\n        url: http://127.0.0.1:9/a\n", "      {}\n", 1), nil, nil,
			`5:5: routes[0].sink: missing`},
		{"duplicate route names", goodRoute + "  - name: a\n    sink: {http: {url: http://127.0.0.1:9/b}}\n    format: JSON\n    deadLetterFile: b.jsonl\n",
			nil, nil, `9:5: routes[1].name "a": routes[0] has that name too`},
		{"a route name that cannot name a file", strings.Replace(goodRoute, "name: a", "name: a/b", 1), nil, nil, `4:5: routes[0].name "a/b": want 1..64 letters`},
		{"two routes, one dead-letter file", goodRoute + "  - name: b\n    sink: {http: {url: http://127.0.0.1:9/b}}\n    format: JSON\n    deadLetterFile: kc-event-emitter.a.dead-letter.jsonl\n",
			nil, nil, `12:5: routes[1].deadLetterFile "kc-event-emitter.a.dead-letter.jsonl": routes[0] writes that file too`},
		{"a bad url", strings.Replace(goodRoute, "http://127.0.0.1:9/a", "ftp://127.0.0.1/a", 1), nil, nil,
			`7:9: routes[0].sink.http.url "ftp://127.0.0.1/a": scheme "ftp": want http or https`},
		{"missing format", strings.Replace(goodRoute, "    format: JSON\n", "", 1), nil, nil, `4:5: routes[0].format: missing: want JSON or FLATBUFFER`},
		{"bad overflow", goodRoute + "    overflow: drop-newest\n", nil, nil, `9:5: routes[0].overflow "drop-newest"`},
		{"not a number", goodRoute + "    bufferCapacity: many\n", nil, nil, `9:21: "many": want a whole number`},
		{"a duration without its unit", goodRoute + "    retryWaitMin: 5\n", nil, nil, `9:19: "5": want a duration such as 5s`},
		{"a scalar for a list", goodRoute + "    filters:\n      kinds: Event\n", nil, nil, `10:14: string was used where sequence is expected`},
		{"an admin-only route filtering event types", goodRoute + "    filters:\n      kinds: [AdminEvent]\n      eventTypes: [LOGIN]\n", nil, nil,
			`11:7: routes[0].filters.eventTypes "LOGIN": never applies: the route takes only AdminEvent`},
		{"an event-only route filtering admin resources", goodRoute + "    filters:\n      kinds: [Event]\n      adminResources: [USER]\n", nil, nil,
			`11:7: routes[0].filters.adminResources "USER": never applies`},
		{"an include pattern its exclude covers", goodRoute + "    filters:\n      eventTypes: [LOGIN_ERROR]\n      excludeEventTypes: [LOGIN*]\n", nil, nil,
			`10:7: routes[0].filters.eventTypes "LOGIN_ERROR": LOGIN_ERROR never matches: filters.excludeEventTypes excludes LOGIN*`},
		{"an include glob its exclude covers", goodRoute + "    filters:\n      clients: [ops-*]\n      excludeClients: [ops*]\n", nil, nil,
			`10:7: routes[0].filters.clients "ops-*": ops-* never matches`},
		{"an admin resource its exclude covers", goodRoute + "    filters:\n      adminResources: [USER]\n      excludeAdminResources: [\"*\"]\n", nil, nil,
			`10:7: routes[0].filters.adminResources "USER": USER never matches: filters.excludeAdminResources excludes *`},
		{"an operation Keycloak does not record", goodRoute + "    filters:\n      adminOperations: [READ]\n", nil, nil,
			`10:7: routes[0].filters.adminOperations "READ": READ never matches: Keycloak records CREATE, UPDATE, DELETE, ACTION`},
		{"an unknown kind", goodRoute + "    filters:\n      kinds: [Login]\n", nil, nil, `10:7: routes[0].filters.kinds "Login"`},
		{"an inline password", strings.Replace(goodRoute, "        url:", "        password: hunter2\n        url:", 1), nil, nil,
			`7:9: password: a secret is never written in the file: use passwordFile`},
		{"an inline database url", "dbUrl: postgres://u:pw@h/k\n" + goodRoute, nil, nil, `1:1: dbUrl: a secret is never written in the file`},
		{"a password variable that is not set", strings.Replace(goodRoute, "        url:", "        username: u\n        passwordEnv: NOT_SET\n        url:", 1), nil, nil,
			`8:9: passwordEnv: the environment variable NOT_SET is not set`},
		{"a password file and a variable", strings.Replace(goodRoute, "        url:", "        passwordFile: /x\n        passwordEnv: X\n        url:", 1), nil, nil,
			`7:9: passwordFile and passwordEnv: set one`},
		{"a password file that is not there", strings.Replace(goodRoute, "        url:", "        passwordFile: /nonexistent/pw\n        url:", 1), nil, nil,
			`7:9: open /nonexistent/pw`},
		{"username without password", strings.Replace(goodRoute, "        url:", "        username: kc-0\n        url:", 1), nil, nil,
			`7:9: routes[0].sink.http.username "kc-0": set but no password`},
		{"an oauth2 grant without its secret", strings.Replace(goodRoute, "        url:", "        oauth2: {tokenUrl: http://127.0.0.1:9/t, clientId: c}\n        url:", 1), nil, nil,
			`7:9: routes[0].sink.http.oauth2.clientSecret: missing`},
		{"Basic auth and oauth2", strings.Replace(goodRoute, "        url:", "        username: u\n        passwordEnv: PW\n        oauth2: {tokenUrl: http://127.0.0.1:9/t, clientId: c, clientSecretEnv: PW}\n        url:", 1),
			nil, map[string]string{"PW": "x"}, `9:18: routes[0].sink.http.oauth2.tokenUrl "http://127.0.0.1:9/t": with Basic auth too`},
		{"a status on both sides", strings.Replace(goodRoute, "        url:", "        holdStatuses: [400]\n        url:", 1), nil, nil,
			`6:7: routes[0].sink.http.deadLetterStatuses "400,413,422": 400 is also in routes[0].sink.http.holdStatuses (400)`},
		{"a bad global value", "pollInterval: -1s\n" + goodRoute, nil, nil, `1:1: pollInterval "-1s": want a duration > 0`},
		{"a size in a decimal unit", "pageBytes: 16MB\n" + goodRoute, nil, nil, `1:1: pageBytes: size "16MB": unit "MB": want bytes, KiB, MiB or GiB`},
		{"a route's size that is not one", goodRoute + "    deadLetterMaxBytes: lots\n", nil, nil, `9:5: routes[0].deadLetterMaxBytes: size "lots"`},
		{"a duplicate key", "keycloakId: 2\n" + goodRoute, nil, nil, `2:1: mapping key "keycloakId" already defined`},
		{"bad yaml", goodRoute + "  - name: [b\n", nil, nil, `9:11: sequence end token ']' not found`},
		{"a route flag with --config", goodRoute, []string{"--targetUri", "http://127.0.0.1:9/x"}, nil,
			`--targetUri (or KC_EMITTER_TARGET_URI) with --config`},
		{"a route flag's variable with --config", goodRoute, nil, map[string]string{"KC_EMITTER_FORMAT": "JSON"},
			`--format (or KC_EMITTER_FORMAT) with --config`},
		// sink.mail, sink.kafka, sink.nats
		{"an inline mail password", mailRoute("        password: hunter2\n"), nil, nil,
			`14:9: password: a secret is never written in the file: use passwordFile`},
		{"an unknown key of sink.mail", mailRoute("        subject: hi\n"), nil, nil, `14:9: unknown field "subject"`},
		{"a mail route without from", strings.Replace(mailRoute(""), "        from: keycloak@example.com\n", "", 1), nil, nil,
			`11:7: routes[1].sink.mail.from: missing: the sender's address`},
		{"a mail route without to", strings.Replace(mailRoute(""), "        to: [admin@example.com]\n", "", 1), nil, nil,
			`11:7: routes[1].sink.mail.to: missing: the administrator's address`},
		{"a mail digest threshold that is not a number", mailRoute("        digestThreshold: many\n"), nil, nil, `14:26: "many": want a whole number`},
		{"a mail address the mail sink refuses", strings.Replace(mailRoute(""), "to: [admin@example.com]", "to: [not-an-address]", 1), nil, nil,
			`15:9: routes[1].sink.mail.to "not-an-address": mail: missing '@'`},
		{"a mail route with a format", mailRoute("") + "    format: JSON\n", nil, nil,
			`16:5: routes[1].format "JSON": a mail route sends plain-text mails: drop format`},
		{"a kafka route without brokers", goodRoute + "  - name: k\n    sink:\n      kafka:\n        topic: keycloak\n    format: JSON\n", nil, nil,
			`11:7: routes[1].sink.kafka.brokers: missing: no broker`},
		{"a kafka compression unknown", goodRoute + "  - name: k\n    sink:\n      kafka: {brokers: [\"127.0.0.1:9092\"], topic: t, compression: brotli}\n    format: JSON\n", nil, nil,
			`11:54: routes[1].sink.kafka.compression "brotli": want one of none, gzip, snappy, lz4, zstd`},
		{"a kafka broker without its port", goodRoute + "  - name: k\n    sink:\n      kafka: {brokers: [kafka.internal], topic: keycloak}\n    format: JSON\n", nil, nil,
			`11:15: routes[1].sink.kafka.brokers "kafka.internal": a Kafka broker: want host:port`},
		{"an inline kafka oauth secret", goodRoute + "  - name: k\n    sink:\n      kafka: {brokers: [\"127.0.0.1:9092\"], topic: t, oauthClientSecret: hunter2}\n    format: JSON\n", nil, nil,
			`11:54: oauthClientSecret: a secret is never written in the file: use oauthClientSecretFile`},
		{"kafka SASL without its password", goodRoute + "  - name: k\n    sink:\n      kafka: {brokers: [\"127.0.0.1:9092\"], topic: t, saslMechanism: PLAIN, username: u}\n    format: JSON\n", nil, nil,
			`11:7: routes[1].sink.kafka.password: missing: SASL PLAIN needs a password`},
		{"a nats route without a subject", goodRoute + "  - name: n\n    sink:\n      nats: {servers: [\"nats://127.0.0.1:4222\"]}\n    format: JSON\n", nil, nil,
			`11:7: routes[1].sink.nats.subject: the subject`},
		{"an inline nats token", goodRoute + "  - name: n\n    sink:\n      nats: {servers: [\"nats://127.0.0.1:4222\"], subject: kc, token: hunter2}\n    format: JSON\n", nil, nil,
			`11:63: token: a secret is never written in the file: use tokenFile`},
		{"two sinks in one route", strings.Replace(goodRoute, "      http:\n", "      nats: {servers: [\"nats://127.0.0.1:4222\"], subject: kc}\n      http:\n", 1), nil, nil,
			`5:5: routes[0].sink: more than one sink: a route has one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kcee.yaml")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			e := map[string]string{"KC_EMITTER_DB_URL": "postgres://kc@127.0.0.1/keycloak"}
			for k, v := range tt.env {
				e[k] = v
			}
			_, err := parseRunFlags(append([]string{"--config", path}, tt.args...), env(e), io.Discard)
			want := tt.want
			if !strings.HasPrefix(want, "--") {
				want = path + ":" + want
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}
}
