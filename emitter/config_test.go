package emitter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Format = FormatJSON
	c.TargetURI = "http://127.0.0.1:8080/event/receiver"
	c.DatabaseURL = "postgres://keycloak:s3cret@127.0.0.1:5432/keycloak"
	return c
}

func TestConfigValidateNamesTheFieldAndTheValue(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		field  string
		value  string
	}{
		{"format missing", func(c *Config) { c.Format = "" }, "format", ""},
		{"format lower case", func(c *Config) { c.Format = "json" }, "format", "json"},
		{"target missing", func(c *Config) { c.TargetURI = "" }, "targetUri", ""},
		{"target not http", func(c *Config) { c.TargetURI = "ftp://127.0.0.1/x" }, "targetUri", "ftp://127.0.0.1/x"},
		{"target without host", func(c *Config) { c.TargetURI = "http:///x" }, "targetUri", "http:///x"},
		{"buffer zero", func(c *Config) { c.BufferCapacity = 0 }, "bufferCapacity", "0"},
		{"keycloakId too big", func(c *Config) { c.KeycloakID = 32 }, "keycloakId", "32"},
		{"keycloakId negative", func(c *Config) { c.KeycloakID = -1 }, "keycloakId", "-1"},
		{"datacenterId too big", func(c *Config) { c.DatacenterID = 4 }, "datacenterId", "4"},
		{"socket timeout zero", func(c *Config) { c.SocketTimeout = 0 }, "socketTimeoutMillis", "0s"},
		{"numbering", func(c *Config) { c.Numbering = "21" }, "numbering", "21"},
		{"overflow", func(c *Config) { c.Overflow = buffer.Policy(7) }, "overflow", "Policy(7)"},
		{"concurrency", func(c *Config) { c.Concurrency = 0 }, "concurrency", "0"},
		{"from", func(c *Config) { c.From = "yesterday" }, "from", "yesterday"},
		{"source", func(c *Config) { c.Source = "kafka" }, "source", "kafka"},
		{"db url missing", func(c *Config) { c.DatabaseURL = "" }, "dbUrl", ""},
		{"db url scheme", func(c *Config) { c.DatabaseURL = "mysql://u:pw@127.0.0.1/kc" }, "dbUrl", "mysql://u:xxxxx@127.0.0.1/kc"},
		{"api url", func(c *Config) { c.Source = "api"; c.API.URL = "127.0.0.1:8080" }, "apiUrl", "127.0.0.1:8080"},
		{"api without credentials", func(c *Config) { c.Source = "api"; c.API.URL = "http://127.0.0.1:8080"; c.API.ClientID = "x" }, "apiClientId", "x"},
		{"username without password", func(c *Config) { c.Username = "kc-1" }, "username", "kc-1"},
		{"signing secret", func(c *Config) { c.SigningSecrets = []string{"abc"} }, "signingSecretFile", "secret #1"},
		{"cert without key", func(c *Config) { c.ClientCertFile = "c.pem" }, "clientCertFile", "c.pem"},
		{"empty filter pattern", func(c *Config) { c.Filters.EventTypes.Include = []string{"LOGIN", ""} }, "eventTypes", "LOGIN,"},
		{"kind", func(c *Config) { c.Kinds = []Kind{"Login"} }, "kinds", "Login"},
		{"retry caps", func(c *Config) { c.RetryWaitMax = time.Millisecond }, "retryWaitMax", "1ms"},
		{"listen", func(c *Config) { c.ListenAddr = "9464" }, "listen", "9464"},
		{"checkpoint", func(c *Config) { c.CheckpointPath = "" }, "checkpoint", ""},
		{"dead-letter file", func(c *Config) { c.DeadLetterPath = "" }, "deadLetterFile", ""},
		{"excluded resource pattern", func(c *Config) { c.Filters.Resources.Exclude = []string{" "} }, "adminResources", " "},
		{"cluster name", func(c *Config) { c.Cluster = "a b" }, "cluster", "a b"},
		{"cluster with once", func(c *Config) { c.Cluster = "kc"; c.Once = true }, "once", "true"},
		{"state schema", func(c *Config) { c.Cluster = "kc"; c.StateSchema = "Emitter" }, "stateSchema", "Emitter"},
		{"state url of the api source", func(c *Config) {
			c.Cluster, c.Source, c.API.URL, c.API.ClientSecret = "kc", "api", "http://127.0.0.1:8080", "s"
		}, "stateDbUrl", ""},
		{"state url scheme", func(c *Config) { c.Cluster = "kc"; c.StateDatabaseURL = "mysql://u:pw@h/db" }, "stateDbUrl", "mysql://u:xxxxx@h/db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || fe.Value != tt.value {
				t.Errorf("Validate() = field %q value %q (%v), want field %q value %q", fe.Field, fe.Value, err, tt.field, tt.value)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("message %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestConfigValidateAcceptsTheDefaultsAndBothSources(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("db source: %v", err)
	}
	c.DatabaseURL = "host=127.0.0.1 dbname=keycloak password='a b'"
	if err := c.Validate(); err != nil {
		t.Fatalf("key=value connection string: %v", err)
	}
	c.Source, c.API.URL, c.API.ClientID, c.API.ClientSecret = "api", "http://127.0.0.1:8080", "kc-event-emitter", "secret"
	if err := c.Validate(); err != nil {
		t.Fatalf("api source: %v", err)
	}
}

func TestConfigLogValueAndErrorsNeverShowSecrets(t *testing.T) {
	c := validConfig()
	c.Password, c.API.ClientSecret, c.API.Password = "pw-target", "pw-client", "pw-api"
	c.SigningSecrets = []string{"whsec_cGF5bG9hZA=="}
	c.DatabaseURL = "postgres://kc:pw-db@127.0.0.1/kc?sslmode=disable&password=pw-query"
	c.TargetURI = "https://127.0.0.1/event/receiver?token=pw-token"
	shown := c.LogValue().String()
	c.Source = "api"
	c.API.URL = "http://127.0.0.1:8080/?access_token=pw-api-token"
	shown += c.LogValue().String()
	c.Source, c.DatabaseURL = "db", "host=127.0.0.1 password=pw-dsn"
	shown += c.LogValue().String()
	c.DatabaseURL = "mysql://kc:pw-db@127.0.0.1/kc"
	shown += c.Validate().Error()
	for _, s := range []string{"pw-target", "pw-client", "pw-api", "pw-db", "pw-dsn", "pw-query", "pw-token", "cGF5bG9hZA"} {
		if strings.Contains(shown, s) {
			t.Errorf("secret %q shown in %s", s, shown)
		}
	}
}

func TestConfigStateURLDefaultsToKeycloaksDatabase(t *testing.T) {
	c := validConfig()
	c.Cluster = "kc"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.StateURL() != c.DatabaseURL {
		t.Errorf("StateURL = %q, want the source's database", c.StateURL())
	}
	c.StateDatabaseURL = "postgres://state@127.0.0.1/state"
	if c.StateURL() != c.StateDatabaseURL {
		t.Errorf("StateURL = %q, want the state database", c.StateURL())
	}
}

func TestConfigValidateOfATargetOfAnUnknownSchemeListsTheSchemesOfEverySink(t *testing.T) {
	c := validConfig()
	c.TargetURI = "tls://127.0.0.1:4222/kc"
	err := c.Validate()
	want := `targetUri "tls://127.0.0.1:4222/kc": scheme "tls": want one of http, https, kafka, nats, smtp, smtps`
	if err == nil || err.Error() != want {
		t.Fatalf("Validate: %v, want %s", err, want)
	}
}
