package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over m.
func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var minimalArgs = []string{"--format", "JSON", "--targetUri", "http://127.0.0.1:9/x", "--bufferCapacity", "100",
	"--keycloakId", "3", "--datacenterId", "1"}

var minimalEnv = map[string]string{"KC_EMITTER_DB_URL": "postgres://kc:pw@127.0.0.1:5432/keycloak"}

func TestParseRunFlagsRefusesAMissingOrBadMandatoryParameterNamingIt(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no flags", nil, `--format is missing (or KC_EMITTER_FORMAT)`},
		{"no targetUri", without(minimalArgs, "--targetUri"), "--targetUri is missing"},
		{"no bufferCapacity", without(minimalArgs, "--bufferCapacity"), "--bufferCapacity is missing"},
		{"no keycloakId", without(minimalArgs, "--keycloakId"), "--keycloakId is missing"},
		{"no datacenterId", without(minimalArgs, "--datacenterId"), "--datacenterId is missing"},
		{"bad format", with(minimalArgs, "--format", "XML"), `--format "XML": want JSON or FLATBUFFER`},
		{"keycloakId out of range", with(minimalArgs, "--keycloakId", "40"), `--keycloakId "40": want 0..31`},
		{"keycloakId not a number", with(minimalArgs, "--keycloakId", "one"), `--keycloakId "one": want a whole number`},
		{"datacenterId out of range", with(minimalArgs, "--datacenterId", "4"), `--datacenterId "4"`},
		{"bufferCapacity zero", with(minimalArgs, "--bufferCapacity", "0"), `--bufferCapacity "0"`},
		{"bad targetUri", with(minimalArgs, "--targetUri", "127.0.0.1:8080"), `--targetUri "127.0.0.1:8080"`},
		{"timeout not a number", append(minimalArgs[:len(minimalArgs):len(minimalArgs)], "--socketTimeoutMillis", "10s"), `socketTimeoutMillis`},
		{"unknown flag", append(minimalArgs[:len(minimalArgs):len(minimalArgs)], "--password", "x"), "flag provided but not defined: -password"},
		{"secret as an argument", append(minimalArgs[:len(minimalArgs):len(minimalArgs)], "hunter2"), `unexpected argument "hunter2"`},
		{"bad log level", append(minimalArgs[:len(minimalArgs):len(minimalArgs)], "--logLevel", "LOUD"), `--logLevel "LOUD"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRunFlags(tt.args, env(minimalEnv), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseRunFlags() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseRunFlagsTakesEveryFlagFromTheEnvironmentAndFlagsWin(t *testing.T) {
	e := map[string]string{
		"KC_EMITTER_FORMAT": "FLATBUFFER", "KC_EMITTER_TARGET_URI": "http://127.0.0.1:1/env",
		"KC_EMITTER_BUFFER_CAPACITY": "7", "KC_EMITTER_KEYCLOAK_ID": "31", "KC_EMITTER_DATACENTER_ID": "3",
		"KC_EMITTER_SOCKET_TIMEOUT_MILLIS": "1234", "KC_EMITTER_REALMS": "acme, demo", "KC_EMITTER_ONCE": "true",
		"KC_EMITTER_DB_URL": "postgres://127.0.0.1/kc", "HOSTNAME": "kc-0", "CT_KEYCLOAK_BRIDGE_SECRET_TOKEN": "tok",
	}
	o, err := parseRunFlags([]string{"--targetUri", "http://127.0.0.1:2/flag"}, env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Format != "FLATBUFFER" || c.TargetURI != "http://127.0.0.1:2/flag" || c.BufferCapacity != 7 ||
		c.KeycloakID != 31 || c.DatacenterID != 3 || c.SocketTimeout != 1234*time.Millisecond ||
		strings.Join(c.Realms, "|") != "acme|demo" || !c.Once || c.Username != "kc-0" || c.Password != "tok" {
		t.Errorf("config = %+v", c)
	}
}

func TestParseRunFlagsReadsSecretsFromFilesBeforeTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := append(minimalArgs[:len(minimalArgs):len(minimalArgs)],
		"--secretFile", write("token", "from-file\n"),
		"--dbUrlFile", write("db", "postgres://kc:file@127.0.0.1/kc\n"),
		"--signingSecretFile", write("sig", "whsec_YQ==\nwhsec_Yg==\n"))
	e := map[string]string{"CT_KEYCLOAK_BRIDGE_SECRET_TOKEN": "from-env", "KC_EMITTER_DB_URL": "postgres://env/kc", "HOSTNAME": "h"}
	o, err := parseRunFlags(args, env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Password != "from-file" || o.cfg.DatabaseURL != "postgres://kc:file@127.0.0.1/kc" || len(o.cfg.SigningSecrets) != 2 {
		t.Errorf("secrets: password %q, db %q, signing %d", o.cfg.Password, o.cfg.DatabaseURL, len(o.cfg.SigningSecrets))
	}
	_, err = parseRunFlags(append(minimalArgs[:len(minimalArgs):len(minimalArgs)], "--secretFile", filepath.Join(dir, "nope")), env(e), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--secretFile") {
		t.Errorf("missing secret file: error %v, want it to name --secretFile", err)
	}
}

func TestParseRunFlagsSendsNoBasicAuthWithoutAPassword(t *testing.T) {
	o, err := parseRunFlags(minimalArgs, env(map[string]string{"HOSTNAME": "kc-0", "KC_EMITTER_DB_URL": "postgres://127.0.0.1/kc"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Username != "" || o.cfg.Password != "" {
		t.Errorf("username %q password %q, want both empty", o.cfg.Username, o.cfg.Password)
	}
}

func TestRunHelpListsEveryFlagInAGroupWithItsVariable(t *testing.T) {
	var out strings.Builder
	_, err := parseRunFlags([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	printed := map[string]int{}
	for _, line := range strings.Split(out.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "  --"); ok {
			name, _, _ = strings.Cut(name, " ")
			printed[name]++
		}
	}
	for _, g := range flagGroups {
		for _, n := range g.names {
			if printed[n] != 1 {
				t.Errorf("flag %s of group %q printed %d times, want once", n, g.title, printed[n])
			}
		}
	}
	if strings.Contains(out.String(), "Other flags:") {
		t.Errorf("some flags are in no group:\n%s", out.String()[strings.Index(out.String(), "Other flags:"):])
	}
	for _, s := range []string{"KC_EMITTER_TARGET_URI", "CT_KEYCLOAK_BRIDGE_SECRET_TOKEN", "Operations:"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("help lacks %q", s)
		}
	}
}

func TestEnvNameIsUpperSnakeCaseOfTheFlag(t *testing.T) {
	for in, want := range map[string]string{"targetUri": "KC_EMITTER_TARGET_URI", "connectionRequestTimeoutMillis": "KC_EMITTER_CONNECTION_REQUEST_TIMEOUT_MILLIS", "once": "KC_EMITTER_ONCE"} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}

// without returns args without the flag name and its value.
func without(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == name {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// with returns args with the value of flag name replaced.
func with(args []string, name, value string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == name {
			out[i+1] = value
		}
	}
	return out
}

// TestDeployExamplesSetOnlyVariablesTheEmitterReads keeps deploy/ in step
// with the flags: a misspelled KC_EMITTER_ variable would be ignored silently.
func TestDeployExamplesSetOnlyVariablesTheEmitterReads(t *testing.T) {
	known := map[string]bool{envSecretToken: true, envDBURL: true, envAPISecret: true, envAPIPassword: true, envSigningSecret: true, envStateDBURL: true}
	var help strings.Builder
	parseRunFlags([]string{"--help"}, env(nil), &help)
	for _, line := range strings.Split(help.String(), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "env "); ok {
			known[name] = true
		}
	}
	files := []string{"../../deploy/systemd/kc-event-emitter.env", "../../deploy/kubernetes/keycloak-with-emitter.yaml", "../../deploy/Dockerfile",
		"../../deploy/keycloak-operator/keycloak-with-emitter.yaml", "../../deploy/helm/values-codecentric-keycloakx.yaml",
		"../../deploy/helm/values-bitnami-keycloak.yaml"}
	re := regexp.MustCompile(`\bKC_EMITTER_[A-Z_]+`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range re.FindAllString(string(data), -1) {
			if !known[name] {
				t.Errorf("%s sets %s, which no flag or secret reads", f, name)
			}
		}
	}
}
