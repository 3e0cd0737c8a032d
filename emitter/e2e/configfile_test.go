package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/smtptest"
)

// TestEndToEndConfigFileRoutesEveryRowToHTTPAndMailsTheRegistration runs
// the binary with --config --once: a file of two routes over Keycloak's
// tables on a real PostgreSQL, one to the reference receiver (every row),
// one to an SMTP server in the test (STARTTLS, AUTH, the password named by
// passwordEnv) that mails REGISTER and USER:* of the realm acme. The
// receiver gets every row once; the mailbox gets one mail, the
// registration's.
func TestEndToEndConfigFileRoutesEveryRowToHTTPAndMailsTheRegistration(t *testing.T) {
	db, dbURL := newKeycloakDB(t, "r-acme", "r-demo")
	now := time.Now().UnixMilli()
	rows := []struct{ id, realm, typ, details string }{
		{"e-login", "r-acme", "LOGIN", `{"username":"bob"}`},
		{"e-register", "r-acme", "REGISTER", `{"username":"alice","email":"alice@example.test"}`},
		{"e-register-demo", "r-demo", "REGISTER", `{"username":"carol","email":"carol@example.test"}`},
	}
	for i, r := range rows {
		if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, client_id, ip_address, details_json)
			VALUES ($1, $2, $3, $4, $5, 'account-console', '127.0.0.1', $6)`, r.id, r.realm, now+int64(i), r.typ, "u-"+r.id, r.details); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type, resource_path)
		VALUES ('a-client', 'r-acme', $1, 'UPDATE', 'CLIENT', 'clients/c-1')`, now+10); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
	srv := smtptest.Start(t, "", false)
	cfgPath := filepath.Join(dir, "routes.yaml")
	cfg := fmt.Sprintf(`keycloakId: 7
datacenterId: 1
source: db
dbUrlEnv: KC_EMITTER_DB_URL
from: beginning
pollInterval: 50ms
checkpoint: %[1]s/cp.json
listen: %[2]s
routes:
  - name: audit
    sink:
      http:
        url: %[3]s
    format: JSON
    deadLetterFile: %[1]s/audit.dead.jsonl
  - name: signups
    sink:
      mail:
        server: %[4]s
        caFile: %[5]s
        username: %[6]s
        passwordEnv: KC_EMITTER_MAIL_PASSWORD
        from: Keycloak <keycloak@example.test>
        to: [admin@example.test]
        types: [REGISTER, "USER:*"]
    filters:
      realms: [acme]
    deadLetterFile: %[1]s/signups.dead.jsonl
`, dir, freeAddr(t), rcv.url(), srv.Addr, srv.CAFile, smtptest.User)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	em := start(t, "kc-event-emitter", []string{"--config", cfgPath, "--once"},
		"KC_EMITTER_DB_URL="+dbURL, "KC_EMITTER_MAIL_PASSWORD="+smtptest.Password)
	if code := em.wait(2 * time.Minute); code != 0 {
		t.Fatalf("emitter --config --once exit status %d, want 0", code)
	}
	if strings.Contains(em.output(), smtptest.Password) {
		t.Error("the mail password appears in the emitter's log")
	}

	var ids []string
	for _, r := range readStore(t, rcv.store) {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	if want := []string{"a-client", "e-login", "e-register", "e-register-demo"}; !slices.Equal(ids, want) {
		t.Errorf("the receiver got %v, want every row once: %v", ids, want)
	}

	mails := srv.Messages()
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1 (the REGISTER of acme)", len(mails))
	}
	if m := mails[0]; !m.TLS || m.User != smtptest.User || !slices.Equal(m.To, []string{"admin@example.test"}) {
		t.Errorf("mail: TLS %v, user %q, to %v", m.TLS, m.User, m.To)
	}
	m := readMail(t, mails[0].Data)
	if want := "Keycloak acme: REGISTER alice"; m.subject != want {
		t.Errorf("subject %q, want %q", m.subject, want)
	}
	for _, line := range []string{"Email:      alice@example.test", "User ID:    u-e-register", "Client:     account-console"} {
		if !strings.Contains(m.body, "\n"+line+"\n") {
			t.Errorf("the mail lacks the line %q:\n%s", line, m.body)
		}
	}
}
