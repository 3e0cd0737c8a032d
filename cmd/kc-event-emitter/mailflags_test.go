package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/mailsink"
)

var mailArgs = []string{"--targetUri", "smtp://127.0.0.1:2525", "--bufferCapacity", "100", "--keycloakId", "3", "--datacenterId", "1",
	"--mailFrom", "Keycloak <keycloak@example.com>", "--mailTo", "a@example.com, b@example.com"}

func TestParseRunFlagsFillsTheMailSettingsWithoutFormatAndThePasswordFromEnvOrFile(t *testing.T) {
	e := map[string]string{"KC_EMITTER_DB_URL": "postgres://kc:pw@127.0.0.1:5432/keycloak", "KC_EMITTER_MAIL_PASSWORD": "from-env"}
	args := append(slices.Clone(mailArgs), "--mailUsername", "mailer", "--mailTypes", "REGISTER,USER:*", "--mailZone", "Europe/Berlin",
		"--mailDigestThreshold", "5", "--mailDigestWindow", "2m")
	o, err := parseRunFlags(args, env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := o.cfg.Mail
	if m.From != "Keycloak <keycloak@example.com>" || !slices.Equal(m.To, []string{"a@example.com", "b@example.com"}) ||
		!slices.Equal(m.Types, []string{"REGISTER", "USER:*"}) || m.Zone != "Europe/Berlin" || m.DigestThreshold != 5 ||
		m.DigestWindow != 2*time.Minute || m.Username != "mailer" || m.Password != "from-env" || m.TLS != "" {
		t.Errorf("mail settings %+v", m)
	}

	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err = parseRunFlags(append(slices.Clone(mailArgs), "--mailPasswordFile", file, "--mailTls", "none"), env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Mail.Password != "from-file" || o.cfg.Mail.TLS != mailsink.NoTLS || !slices.Equal(o.cfg.Mail.Types, []string{"REGISTER"}) {
		t.Errorf("password %q, TLS %q, types %v: want the file's, none and the default REGISTER", o.cfg.Mail.Password, o.cfg.Mail.TLS, o.cfg.Mail.Types)
	}
}

func TestParseRunFlagsRefusesBadMailSettingsNamingTheFlag(t *testing.T) {
	e := env(map[string]string{"KC_EMITTER_DB_URL": "postgres://kc:pw@127.0.0.1:5432/keycloak"})
	for _, tt := range []struct {
		args []string
		want string
	}{
		{with(mailArgs, "--mailTo", ""), "--mailTo: missing"},
		{append(slices.Clone(mailArgs), "--mailZone", "Nowhere/City"), `--mailZone "Nowhere/City"`},
		{append(slices.Clone(mailArgs), "--mailUsername", "mailer"), `--mailUsername "mailer"`},
		{with(mailArgs, "--targetUri", "smtp://192.0.2.1:25"), ""}, // STARTTLS to another host: fine
		{append(with(mailArgs, "--targetUri", "smtp://192.0.2.1:25"), "--mailTls", "none"), `--mailTls "none"`},
	} {
		_, err := parseRunFlags(tt.args, e, io.Discard)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tt.args, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want it to contain %q", tt.args, err, tt.want)
		}
	}
}
