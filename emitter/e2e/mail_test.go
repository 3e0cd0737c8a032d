package e2e

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/smtptest"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// mailRead is a received mail as a reader sees it.
type mailRead struct {
	subject, messageID, body string
}

func readMail(t testing.TB, data []byte) mailRead {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a mail: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	return mailRead{subject: subject, messageID: m.Header.Get("Message-Id"), body: strings.ReplaceAll(string(body), "\r\n", "\n")}
}

// mailedRow is what Keycloak's tables say a mail must show.
type mailedRow struct {
	typ, username, email, userID, client, ip string
	time                                     int64
}

// mailedRows returns the REGISTER events and the admin USER CREATE events
// of realm, as Keycloak stored them.
func mailedRows(t testing.TB, dbURL, realm string) []mailedRow {
	t.Helper()
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []mailedRow
	rs, err := db.Query(`SELECT e.event_time, coalesce(e.user_id, ''), coalesce(e.client_id, ''), coalesce(e.ip_address, ''),
		coalesce(e.details_json_long_value, e.details_json, '{}')
		FROM event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = $1 AND e.type = 'REGISTER'`, realm)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var r mailedRow
		var details string
		if err := rs.Scan(&r.time, &r.userID, &r.client, &r.ip, &details); err != nil {
			t.Fatal(err)
		}
		var d map[string]string
		if err := json.Unmarshal([]byte(details), &d); err != nil {
			t.Fatal(err)
		}
		r.typ, r.username, r.email = "REGISTER", d["username"], d["email"]
		out = append(out, r)
	}
	rs.Close()
	rs, err = db.Query(`SELECT e.admin_event_time, e.resource_path, coalesce(e.ip_address, ''), coalesce(e.representation, '{}')
		FROM admin_event_entity e JOIN realm r ON r.id = e.realm_id
		WHERE r.name = $1 AND e.resource_type = 'USER' AND e.operation_type = 'CREATE'`, realm)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var r mailedRow
		var path, rep string
		if err := rs.Scan(&r.time, &path, &r.ip, &rep); err != nil {
			t.Fatal(err)
		}
		var u struct{ Username, Email string }
		if err := json.Unmarshal([]byte(rep), &u); err != nil {
			t.Fatal(err)
		}
		r.typ, r.username, r.email, r.userID = "USER:CREATE", u.Username, u.Email, strings.TrimPrefix(path, "users/")
		out = append(out, r)
	}
	return out
}

// TestEndToEndMailSinkMailsEachRegistrationAndUserCreationWithKeycloaksFields
// makes real traffic in a seeded realm (registrations through Keycloak's
// registration form, users created through the admin API), runs the
// emitter with --once to an SMTP server in the test (STARTTLS, AUTH PLAIN,
// the password from the environment) with --mailTypes REGISTER,USER:CREATE,
// and checks that each such event, and no other, arrived as one mail whose
// subject and fields are Keycloak's.
func TestEndToEndMailSinkMailsEachRegistrationAndUserCreationWithKeycloaksFields(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	realm := realmName("e2e-mail")
	testenv.SeedKeycloak(t, realm, 0)
	if code := seedTraffic(t, kc, realm, 3, "-workers", "3").wait(5 * time.Minute); code != 0 {
		t.Fatalf("seed traffic exit status %d", code)
	}
	want := mailedRows(t, kc.DBURL, realm)
	if len(want) != 6 {
		t.Fatalf("%d registrations and user creations in Keycloak, want 3 of each", len(want))
	}
	srv := smtptest.Start(t, "", false)
	dir := t.TempDir()
	args := emitterArgs("smtp://"+srv.Addr, filepath.Join(dir, "checkpoint.json"), freeAddr(t), "--once", "--realms", realm,
		"--mailFrom", "Keycloak <keycloak@example.test>", "--mailTo", "admin@example.test", "--mailZone", "Europe/Berlin",
		"--mailTypes", "REGISTER,USER:CREATE", "--mailCaFile", srv.CAFile, "--mailUsername", smtptest.User)
	args = slices.Delete(args, 0, 2) // --format JSON: not needed for mails
	em := start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+kc.DBURL, "KC_EMITTER_MAIL_PASSWORD="+smtptest.Password)
	if code := em.wait(2 * time.Minute); code != 0 {
		t.Fatalf("emitter --once exit status %d, want 0", code)
	}
	if strings.Contains(em.output(), smtptest.Password) {
		t.Error("the mail password appears in the emitter's log")
	}
	got := srv.Messages()
	if len(got) != len(want) {
		t.Fatalf("%d mails, want %d (one per registration and user creation)", len(got), len(want))
	}
	bySubject := map[string]mailRead{}
	for _, m := range got {
		if !m.TLS || m.User != smtptest.User {
			t.Errorf("a mail without STARTTLS or AUTH (TLS %v, user %q)", m.TLS, m.User)
		}
		r := readMail(t, m.Data)
		bySubject[r.subject] = r
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, w := range want {
		subject := "Keycloak " + realm + ": " + w.typ + " " + w.username
		m, ok := bySubject[subject]
		if !ok {
			t.Errorf("no mail %q; subjects: %v", subject, keys(bySubject))
			continue
		}
		at := time.UnixMilli(w.time)
		lines := []string{
			"Time:       " + at.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + at.In(berlin).Format("2006-01-02 15:04:05 MST") + ", Europe/Berlin)",
			"Type:       " + w.typ,
			"Username:   " + w.username,
			"Email:      " + w.email,
			"User ID:    " + w.userID,
			"IP address: " + w.ip,
		}
		if w.typ == "REGISTER" {
			lines = append(lines, "Client:     "+w.client)
		}
		for _, line := range lines {
			if !strings.Contains(m.body, "\n"+line+"\n") {
				t.Errorf("mail %q lacks the line %q:\n%s", subject, line, m.body)
			}
		}
		if !strings.Contains(m.body, "\nRealm:      "+realm+" (id ") {
			t.Errorf("mail %q does not name the realm:\n%s", subject, m.body)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}
