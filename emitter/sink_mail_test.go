package emitter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/smtptest"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/mailsink"
)

func TestMailEncoderCarriesTheNotificationFieldsOfBothKinds(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
		want mailNotification
	}{
		{"a registration: username and email from the details",
			Record{Event: &Event{ID: "e1", UID: 11, Time: 1700000000000, Type: "REGISTER", RealmID: "r1", RealmName: "demo",
				ClientID: "kcee-app", UserID: "u1", IPAddress: "127.0.0.2",
				Details: map[string]string{"username": "alice", "email": "alice@example.org", "auth_method": "openid-connect"}}},
			mailNotification{UID: 11, Kind: KindEvent, Time: 1700000000000, RealmName: "demo", RealmID: "r1", Type: "REGISTER",
				Username: "alice", Email: "alice@example.org", UserID: "u1", Client: "kcee-app", IPAddress: "127.0.0.2"}},
		{"a failed login: the error",
			Record{Event: &Event{UID: 12, Type: "LOGIN_ERROR", RealmID: "r1", Error: "invalid_user_credentials", Details: map[string]string{}}},
			mailNotification{UID: 12, Kind: KindEvent, RealmID: "r1", Type: "LOGIN_ERROR", Error: "invalid_user_credentials"}},
		{"an admin creating a user: RESOURCE:OPERATION, the user from the path's lookup, the email from the representation",
			Record{Admin: &AdminEvent{UID: 13, Time: 1700000000001, RealmID: "r1", RealmName: "demo", OperationType: "CREATE",
				ResourceType: "USER", ResourcePath: "users/u2", Representation: `{"username":"bob","email":"bob@example.org","enabled":true}`,
				AuthDetails: AuthDetails{ClientID: "c-uuid", IPAddress: "127.0.0.3", Username: "admin"},
				Details:     map[string]string{"user_id": "u2", "username": "bob-now"}}},
			mailNotification{UID: 13, Kind: KindAdminEvent, Time: 1700000000001, RealmName: "demo", RealmID: "r1", Type: "USER:CREATE",
				Username: "bob-now", Email: "bob@example.org", UserID: "u2", Client: "c-uuid", IPAddress: "127.0.0.3"}},
		{"a deleted user: the representation names it",
			Record{Admin: &AdminEvent{UID: 14, RealmID: "r1", OperationType: "DELETE", ResourceType: "USER",
				Representation: `{"id":"u3","username":"carol"}`, Details: map[string]string{}}},
			mailNotification{UID: 14, Kind: KindAdminEvent, RealmID: "r1", Type: "USER:DELETE", Username: "carol", UserID: "u3"}},
		{"another resource's representation is not read as a user's",
			Record{Admin: &AdminEvent{UID: 15, RealmID: "r1", OperationType: "UPDATE", ResourceType: "CLIENT",
				Representation: `{"username":"not-a-user","email":"x@example.org"}`, Details: map[string]string{}}},
			mailNotification{UID: 15, Kind: KindAdminEvent, RealmID: "r1", Type: "CLIENT:UPDATE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := newMailEncoder().Encode([]byte("prefix:"), tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			body, ok := bytes.CutPrefix(b, []byte("prefix:"))
			if !ok {
				t.Fatalf("Encode did not append to dst: %q", b)
			}
			var got mailNotification
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if got != tt.want {
				t.Errorf("notification\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestMailTypesDefaultToRegisterAndNameAdminEventsResourceColonOperation(t *testing.T) {
	reg := Record{Event: &Event{Type: "REGISTER"}}
	login := Record{Event: &Event{Type: "LOGIN"}}
	create := Record{Admin: &AdminEvent{ResourceType: "USER", OperationType: "CREATE"}}
	update := Record{Admin: &AdminEvent{ResourceType: "USER", OperationType: "UPDATE"}}
	client := Record{Admin: &AdminEvent{ResourceType: "CLIENT", OperationType: "CREATE"}}
	tests := []struct {
		types []string
		keeps []Record
		drops []Record
	}{
		{DefaultConfig().Mail.Types, []Record{reg}, []Record{login, create, update, client}},
		{[]string{"REGISTER", "USER:CREATE"}, []Record{reg, create}, []Record{login, update, client}},
		{[]string{"USER:*"}, []Record{create, update}, []Record{reg, login, client}},
		{[]string{"*:CREATE", "LOGIN*"}, []Record{login, create, client}, []Record{reg, update}},
	}
	for _, tt := range tests {
		m := MailConfig{Types: tt.types}
		for _, r := range tt.keeps {
			if !m.keeps(r) {
				t.Errorf("types %v drop %s", tt.types, mailTypeName(r))
			}
		}
		for _, r := range tt.drops {
			if m.keeps(r) {
				t.Errorf("types %v keep %s", tt.types, mailTypeName(r))
			}
		}
	}
}

// mailConfig is a valid Config with a mail target.
func mailConfig() Config {
	c := validConfig()
	c.Format = ""
	c.TargetURI = "smtp://127.0.0.1:2525"
	c.Mail.From = "keycloak@example.com"
	c.Mail.To = []string{"admin@example.com"}
	return c
}

func TestMailConfigValidateNamesTheFlagAndTheValue(t *testing.T) {
	if err := mailConfig().Validate(); err != nil {
		t.Fatalf("a mail target without --format: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Config)
		field  string
		value  string
	}{
		{"no port", func(c *Config) { c.TargetURI = "smtp://127.0.0.1" }, "targetUri", "127.0.0.1"},
		{"credentials in the URI", func(c *Config) { c.TargetURI = "smtp://u:secret@127.0.0.1:25" }, "targetUri", "smtp://u:xxxxx@127.0.0.1:25"},
		{"a path", func(c *Config) { c.TargetURI = "smtp://127.0.0.1:25/inbox" }, "targetUri", "smtp://127.0.0.1:25/inbox"},
		{"from missing", func(c *Config) { c.Mail.From = "" }, "mailFrom", ""},
		{"from not an address", func(c *Config) { c.Mail.From = "keycloak" }, "mailFrom", "keycloak"},
		{"to missing", func(c *Config) { c.Mail.To = nil }, "mailTo", ""},
		{"to not an address", func(c *Config) { c.Mail.To = []string{"admin@example.com", "ops"} }, "mailTo", "ops"},
		{"no types: not every event", func(c *Config) { c.Mail.Types = nil }, "mailTypes", ""},
		{"empty type", func(c *Config) { c.Mail.Types = []string{"REGISTER", " "} }, "mailTypes", "REGISTER, "},
		{"bad zone", func(c *Config) { c.Mail.Zone = "Berlin" }, "mailZone", "Berlin"},
		{"bad TLS mode", func(c *Config) { c.Mail.TLS = "ssl" }, "mailTls", "ssl"},
		{"plain text off loopback", func(c *Config) { c.TargetURI, c.Mail.TLS = "smtp://192.0.2.1:25", mailsink.NoTLS }, "mailTls", "none"},
		{"bad auth", func(c *Config) { c.Mail.Auth = "CRAM-MD5" }, "mailAuth", "CRAM-MD5"},
		{"user without password", func(c *Config) { c.Mail.Username = "mailer" }, "mailUsername", "mailer"},
		{"CA file missing", func(c *Config) { c.Mail.CAFile = "/nonexistent.pem" }, "mailCaFile", "/nonexistent.pem"},
		{"threshold zero", func(c *Config) { c.Mail.DigestThreshold = 0 }, "mailDigestThreshold", "0"},
		{"window zero", func(c *Config) { c.Mail.DigestWindow = 0 }, "mailDigestWindow", "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mailConfig()
			tt.change(&c)
			var fe *FieldError
			if err := c.Validate(); !errors.As(err, &fe) || fe.Field != tt.field || fe.Value != tt.value {
				t.Errorf("Validate() = %v, want a FieldError of %s %q", err, tt.field, tt.value)
			}
		})
	}
	c := mailConfig()
	c.TargetURI = "smtps://127.0.0.1:465"
	c.Mail.TLS = mailsink.NoTLS
	if m := c.mail(); m.TLS != mailsink.ImplicitTLS || m.Server != "127.0.0.1:465" {
		t.Errorf("smtps:// gives %s %s, want implicit TLS to 127.0.0.1:465", m.TLS, m.Server)
	}
}

// mailEnvelopes encodes recs as a mail route's envelopes.
func mailEnvelopes(t *testing.T, recs ...Record) []envelope {
	t.Helper()
	envs := make([]envelope, len(recs))
	for i, r := range recs {
		b, err := newMailEncoder().Encode(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		envs[i] = envelope{Kind: r.Kind(), UID: r.UID(), Body: b}
	}
	return envs
}

func TestMailSinkMailsEachEnvelopeOfABatchOrOneDigestOverTheThreshold(t *testing.T) {
	srv := smtptest.Start(t, "", false)
	m := mailConfig()
	m.TargetURI = "smtp://" + srv.Addr
	m.Mail.CAFile, m.Mail.Username, m.Mail.Password = srv.CAFile, smtptest.User, smtptest.Password
	m.Mail.DigestThreshold = 3
	s, err := newMailSink(m.mail(), time.Millisecond, time.Millisecond, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	reg := func(uid int64, user string) Record {
		return Record{Event: &Event{UID: uid, Time: 1700000000000, Type: "REGISTER", RealmID: "r1", RealmName: "demo",
			Details: map[string]string{"username": user}}}
	}
	for i, err := range s.SendBatch(context.Background(), mailEnvelopes(t, reg(1, "a"), reg(2, "b"))) {
		if err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
	}
	if err := s.Send(context.Background(), mailEnvelopes(t, reg(3, "c"))[0]); err != nil {
		t.Fatal(err)
	}
	burst := mailEnvelopes(t, reg(4, "d"), reg(5, "e"), reg(6, "f"))
	burst = append(burst, envelope{UID: 7, Body: []byte("not json")})
	errs := s.SendBatch(context.Background(), burst)
	for i, err := range errs[:3] {
		if err != nil {
			t.Fatalf("burst envelope %d: %v", i, err)
		}
	}
	if !permanent(errs[3]) || !strings.Contains(errs[3].Error(), "uid 7") {
		t.Errorf("an undecodable body: %v, want a permanent refusal naming uid 7", errs[3])
	}
	got := srv.Messages()
	if len(got) != 4 {
		t.Fatalf("%d mails, want 3 single ones and a digest", len(got))
	}
	for i, want := range []string{"Subject: Keycloak demo: REGISTER a", "Subject: Keycloak demo: REGISTER b",
		"Subject: Keycloak demo: REGISTER c", "Subject: =?utf-8?q?Keycloak_demo:_3_events_(REGISTER_=C3=973)_since"} {
		if !bytes.Contains(got[i].Data, []byte(want)) {
			t.Errorf("mail %d lacks %q:\n%s", i+1, want, got[i].Data)
		}
	}
	if s.Failing() {
		t.Error("Failing after the server took every mail")
	}
}

func TestMailSinkSendRetriesUntilTheServerIsUpAndReportsFailingMeanwhile(t *testing.T) {
	srv := smtptest.Start(t, "", false)
	srv.Stop()
	c := mailConfig()
	c.TargetURI = "smtp://" + srv.Addr
	c.Mail.CAFile, c.Mail.Username, c.Mail.Password = srv.CAFile, smtptest.User, smtptest.Password
	s, err := newMailSink(c.mail(), 10*time.Millisecond, 50*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	env := mailEnvelopes(t, Record{Event: &Event{UID: 1, Type: "REGISTER", Details: map[string]string{}}})[0]
	done := make(chan error, 1)
	go func() { done <- s.Send(context.Background(), env) }()
	deadline := time.Now().Add(10 * time.Second)
	for !s.Failing() {
		if time.Now().After(deadline) {
			t.Fatal("the sink does not report failing while the server is down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.Restart(t)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Send after the server came up: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send did not deliver once the server was up")
	}
	if n := len(srv.Messages()); n != 1 || s.Failing() {
		t.Errorf("%d mails, failing %v: want 1 and not failing", n, s.Failing())
	}
}
