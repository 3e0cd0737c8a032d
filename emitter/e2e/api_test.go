package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// The end-to-end tests of --source api: the emitter reads a seeded realm of
// the real Keycloak through its admin REST API as the seed's service account
// (client_credentials; the secret in KC_EMITTER_API_CLIENT_SECRET, never on
// the command line), and what reaches the receiver is compared with
// Keycloak's own tables.

// apiEmitter returns the arguments and environment of an emitter reading
// realm through the admin API as the seed's confidential client.
func apiEmitter(kc testenv.Keycloak, s testenv.Seeded, target, checkpoint, listen string, extra ...string) ([]string, string) {
	args := emitterArgs(target, checkpoint, listen, append([]string{"--source", "api", "--apiUrl", kc.URL,
		"--apiAuthRealm", s.Realm, "--apiClientId", s.ClientID, "--realms", s.Realm}, extra...)...)
	return args, "KC_EMITTER_API_CLIENT_SECRET=" + s.ClientSecret
}

// apiMatch is how events read through the API pair with Keycloak's rows:
// by id in JSON on Keycloak 26.2+ (the API carries the event id), by their
// fields otherwise (FLATBUFFER carries no id; before 26.2 the API has none
// and the emitter sends synthetic ones).
func apiMatch(t testing.TB, kc testenv.Keycloak, format string) match {
	return match{byID: format == "JSON" && kc.AtLeast(t, 26, 2), unknownOK: format == "FLATBUFFER"}
}

// TestEndToEndAPISourceDeliversEveryKeycloakEventOnceWithItsFields seeds a
// realm with real traffic, runs the emitter with --source api --once from
// the beginning in each format, and checks that every row of event_entity
// and admin_event_entity of the realm arrived exactly once with the fields
// both the API and the tables carry; and once more as the master realm's
// admin (password grant of admin-cli, which sees realm ids). The emitter's
// own token request as the service account is an event of the realm too
// (CLIENT_LOGIN), written before it reads: the rows are read after it exits.
func TestEndToEndAPISourceDeliversEveryKeycloakEventOnceWithItsFields(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	seeded := testenv.SeedKeycloak(t, realmName("e2e-api-once"), 2)
	for _, tt := range []struct {
		name, format string
		password     bool // the bootstrap admin's password grant of admin-cli in master
	}{
		{"JSON", "JSON", false},
		{"FLATBUFFER", "FLATBUFFER", false},
		{"JSON, password grant of the master admin", "JSON", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
			args, env := apiEmitter(kc, seeded, rcv.url(), filepath.Join(dir, "checkpoint.json"), freeAddr(t), "--once")
			args = with(args, "--format", tt.format)
			secret := seeded.ClientSecret
			if tt.password {
				args = with(with(args, "--apiAuthRealm", "master"), "--apiClientId", "admin-cli")
				args = append(args, "--apiUsername", kc.Admin)
				env, secret = "KC_EMITTER_API_PASSWORD="+kc.AdminPassword, kc.AdminPassword
			}
			// (The test Keycloak's admin password may equal its user name,
			// which is on the command line and in the log by right.)
			checkSecret := secret != kc.Admin
			for _, a := range args {
				if checkSecret && strings.Contains(a, secret) {
					t.Fatal("the secret is on the command line")
				}
			}
			em := start(t, "kc-event-emitter", args, env)
			if code := em.wait(2 * time.Minute); code != 0 {
				t.Fatalf("emitter --source api --once exit status %d, want 0", code)
			}
			if checkSecret && strings.Contains(em.output(), secret) {
				t.Error("the secret appears in the emitter's log")
			}
			want := keycloakRows(t, kc.DBURL, seeded.Realm)
			if len(want) < 20 {
				t.Fatalf("the seed made only %d events", len(want))
			}
			got, raw := arrived(t, rcv.store)
			m := apiMatch(t, kc, tt.format)
			compareOnceBy(t, want, got, m)
			if tt.format == "JSON" {
				compareDetails(t, kc, seeded.Realm, got, raw, m)
			}
		})
	}
}

// TestEndToEndAPISourceContinuesTheDatabaseSourcesCheckpoint runs the
// emitter with --once on Keycloak's database, then more traffic, then with
// --once through the admin API on the same checkpoint: the checkpoint keys
// realms by their internal id and events by Keycloak's id in both sources,
// so the second run sends only what the first did not, and every event
// arrives exactly once.
func TestEndToEndAPISourceContinuesTheDatabaseSourcesCheckpoint(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	if !kc.AtLeast(t, 26, 2) {
		t.Skipf("Keycloak %s: the API before 26.2 has no event ids, so it cannot continue a checkpoint of Keycloak's ids", kc.Version)
	}
	seeded := testenv.SeedKeycloak(t, realmName("e2e-api-switch"), 1)
	dir := t.TempDir()
	rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
	checkpoint := filepath.Join(dir, "checkpoint.json")
	db := start(t, "kc-event-emitter", emitterArgs(rcv.url(), checkpoint, freeAddr(t), "--once", "--realms", seeded.Realm),
		"KC_EMITTER_DB_URL="+kc.DBURL)
	if code := db.wait(2 * time.Minute); code != 0 {
		t.Fatalf("emitter --source db --once exit status %d, want 0", code)
	}
	first := countLines(rcv.store)
	if code := seedTraffic(t, kc, seeded.Realm, 1).wait(5 * time.Minute); code != 0 {
		t.Fatalf("seed traffic exit status %d", code)
	}
	args, env := apiEmitter(kc, seeded, rcv.url(), checkpoint, freeAddr(t), "--once")
	api := start(t, "kc-event-emitter", args, env)
	if code := api.wait(2 * time.Minute); code != 0 {
		t.Fatalf("emitter --source api --once exit status %d, want 0", code)
	}
	want := keycloakRows(t, kc.DBURL, seeded.Realm)
	got, _ := arrived(t, rcv.store)
	compareOnce(t, want, got, true)
	if first < 20 || len(got) <= first {
		t.Fatalf("%d events from the database, %d in all: want both runs to send some", first, len(got))
	}
	t.Logf("%d events from the database source, %d more from the API source", first, len(got)-first)
}

// compareDetails checks the details and representations that arrived (got
// and raw, JSON payloads, in the same order) against Keycloak's tables,
// pairing events as m says: every stored detail arrived with its value, the
// only details added are the usernames the emitter looks up ("username",
// and "user_id" of an admin event on users/<id>), and an admin event's
// representation arrived as stored. Details are read from the columns the
// version has (details_json_long_value from 23, admin details from 26.1).
func compareDetails(t *testing.T, kc testenv.Keycloak, realm string, got []stored, raw []received, m match) {
	t.Helper()
	db, err := sql.Open("postgres", kc.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	type extra struct {
		details        map[string]string
		representation string
	}
	eventDetails, adminDetails := "e.details_json", "NULL"
	if kc.HasColumn(t, "event_entity", "details_json_long_value") {
		eventDetails = "COALESCE(e.details_json_long_value, e.details_json)"
	}
	if kc.HasColumn(t, "admin_event_entity", "details_json") {
		adminDetails = "a.details_json"
	}
	byID := map[string]extra{}
	rows, err := db.Query(`SELECT e.id, `+eventDetails+`, NULL FROM event_entity e
		JOIN realm r ON r.id = e.realm_id WHERE r.name = $1
		UNION ALL SELECT a.id, `+adminDetails+`, a.representation FROM admin_event_entity a
		JOIN realm r ON r.id = a.realm_id WHERE r.name = $1`, realm)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var details, rep sql.NullString
		if err := rows.Scan(&id, &details, &rep); err != nil {
			t.Fatal(err)
		}
		x := extra{details: map[string]string{}, representation: rep.String}
		if details.String != "" {
			if err := json.Unmarshal([]byte(details.String), &x.details); err != nil {
				t.Fatalf("details of %s: %v", id, err)
			}
		}
		byID[id] = x
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	stored := map[string][]extra{}
	for _, w := range keycloakRows(t, kc.DBURL, realm) {
		stored[m.key(w)] = append(stored[m.key(w)], byID[w.ID])
	}
	added := map[string]bool{"username": true, "user_id": true}
	withDetails, withRep := 0, 0
	for i, r := range raw {
		rec, _, err := emitter.DecodePayload(r.Payload, emitter.Numbering201)
		if err != nil {
			t.Fatal(err)
		}
		cands, ok := stored[m.key(got[i])]
		if !ok {
			continue // compareOnce reports it
		}
		var details map[string]string
		rep := ""
		if rec.Event != nil {
			details = rec.Event.Details
		} else {
			details, rep = rec.Admin.Details, rec.Admin.Representation
		}
		// Without ids, events with equal fields pair with any of their rows.
		var problems []string
		for _, want := range cands {
			problems = problems[:0]
			for k, v := range want.details {
				if details[k] != v {
					problems = append(problems, fmt.Sprintf("detail %s = %q, stored %q", k, details[k], v))
				}
			}
			for k, v := range details {
				if _, ok := want.details[k]; !ok && !added[k] {
					problems = append(problems, fmt.Sprintf("detail %s = %q is not stored in Keycloak", k, v))
				}
			}
			if rep != want.representation {
				problems = append(problems, fmt.Sprintf("representation\n %s\nstored\n %s", rep, want.representation))
			}
			if len(problems) == 0 {
				if len(want.details) > 0 {
					withDetails++
				}
				if want.representation != "" {
					withRep++
				}
				break
			}
		}
		for _, p := range problems {
			t.Errorf("%s %s: %s", rec.Kind(), rec.ID(), p)
		}
	}
	if withDetails == 0 || withRep == 0 {
		t.Errorf("%d events with details, %d with a representation: the comparison compared nothing", withDetails, withRep)
	}
}

// TestEndToEndAPISourceDeliversSameMillisecondBurstsOnce writes bursts of
// 30 events (and 30 admin events) sharing one millisecond into the seeded
// realm's tables, ids in no particular order (HTTP traffic on two cores
// rarely shares a millisecond; the real server reads these rows as its
// own), and runs the emitter with --source api --once, pages of 7 and the
// client secret in --apiClientSecretFile: every event arrives exactly once.
func TestEndToEndAPISourceDeliversSameMillisecondBurstsOnce(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	seeded := testenv.SeedKeycloak(t, realmName("e2e-api-burst"), 0)
	db, err := sql.Open("postgres", kc.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var realmID string
	if err := db.QueryRow(`SELECT id FROM realm WHERE name = $1`, seeded.Realm).Scan(&realmID); err != nil {
		t.Fatal(err)
	}
	details := "details_json"
	if kc.HasColumn(t, "event_entity", "details_json_long_value") {
		details = "details_json_long_value" // where Keycloak 23+ writes them
	}
	base := time.Now().Add(-time.Minute).UnixMilli()
	for b := range 3 {
		ms := base + int64(b)*3
		for _, i := range rand.Perm(30) {
			id := fmt.Sprintf("%08x-0000-4000-8000-%012d", rand.Uint32(), i)
			if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, client_id, user_id, ip_address, error, `+details+`)
				VALUES ($1, $2, $3, 'LOGIN_ERROR', $4, $5, '127.0.0.1', 'invalid_user_credentials', '{"username":"burst"}')`,
				id, realmID, ms, seeded.PublicClientID, fmt.Sprintf("u-%d-%d", b, i)); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type, resource_path,
				auth_realm_id, auth_client_id, auth_user_id, ip_address) VALUES ($1, $2, $3, 'UPDATE', 'GROUP', $4, $2, 'c-burst', 'u-burst', '127.0.0.1')`,
				"a"+id[1:], realmID, ms, fmt.Sprintf("groups/g-%d-%d", b, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
	// The secret from a file this time (--apiClientSecretFile), not the environment.
	secretFile := filepath.Join(dir, "api-secret")
	if err := os.WriteFile(secretFile, []byte(seeded.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args, _ := apiEmitter(kc, seeded, rcv.url(), filepath.Join(dir, "checkpoint.json"), freeAddr(t), "--once", "--pageSize", "7",
		"--apiClientSecretFile", secretFile)
	em := start(t, "kc-event-emitter", args)
	if code := em.wait(2 * time.Minute); code != 0 {
		t.Fatalf("emitter --source api --once exit status %d, want 0", code)
	}
	want := keycloakRows(t, kc.DBURL, seeded.Realm)
	if len(want) < 180 {
		t.Fatalf("%d events in the realm, want the 180 written and the seed's", len(want))
	}
	got, _ := arrived(t, rcv.store)
	compareOnceBy(t, want, got, apiMatch(t, kc, "JSON"))
}

// serviceAccountRoles returns functions that take a realm-management role
// from the seed's service account and give it back.
func serviceAccountRoles(t *testing.T, adm *kcAdmin, s testenv.Seeded) (remove, add func(t *testing.T, role string)) {
	base := "/admin/realms/" + url.PathEscape(s.Realm)
	var clients []struct{ ID string }
	adm.do(t, "GET", base+"/clients?clientId="+url.QueryEscape(s.ClientID), nil, &clients)
	var rm []struct{ ID string }
	adm.do(t, "GET", base+"/clients?clientId=realm-management", nil, &rm)
	if len(clients) != 1 || len(rm) != 1 {
		t.Fatalf("clients %v, realm-management %v", clients, rm)
	}
	var sa struct{ ID string }
	adm.do(t, "GET", base+"/clients/"+clients[0].ID+"/service-account-user", nil, &sa)
	mappings := base + "/users/" + sa.ID + "/role-mappings/clients/" + rm[0].ID
	role := func(t *testing.T, name string) []json.RawMessage {
		var r json.RawMessage
		adm.do(t, "GET", base+"/clients/"+rm[0].ID+"/roles/"+name, nil, &r)
		return []json.RawMessage{r}
	}
	remove = func(t *testing.T, name string) { adm.do(t, "DELETE", mappings, role(t, name), nil) }
	add = func(t *testing.T, name string) { adm.do(t, "POST", mappings, role(t, name), nil) }
	return remove, add
}

// TestEndToEndAPISourceRefusedAccountExitsWithAClearMessage runs the
// emitter with --once as a service account that lacks realm-management
// view-events, with view-users only (Keycloak lists the realm, then refuses
// its events) and with no role at all (Keycloak refuses the realm list),
// and with a wrong client secret. It exits with status 1 and a message
// that names the missing role, or the token endpoint's refusal.
func TestEndToEndAPISourceRefusedAccountExitsWithAClearMessage(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	seeded := testenv.SeedKeycloak(t, realmName("e2e-api-403"), 0)
	remove, add := serviceAccountRoles(t, newKCAdmin(t, kc), seeded)
	for _, tt := range []struct {
		name   string
		remove []string
		secret string
		want   []string
	}{
		{"view-users only", []string{"view-events"}, "", []string{"403 Forbidden", `lacks the realm-management role \"view-events\"`}},
		{"no realm-management role", []string{"view-events", "view-users"}, "", []string{"403 Forbidden", `lacks the realm-management role \"view-events\"`}},
		{"wrong client secret", nil, "not-the-secret", []string{"401 Unauthorized", "unauthorized_client", `client_credentials grant of client \"` + seeded.ClientID}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range tt.remove {
				remove(t, r)
				t.Cleanup(func() { add(t, r) })
			}
			dir := t.TempDir()
			rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
			args, env := apiEmitter(kc, seeded, rcv.url(), filepath.Join(dir, "checkpoint.json"), freeAddr(t), "--once")
			if tt.secret != "" {
				env = "KC_EMITTER_API_CLIENT_SECRET=" + tt.secret
			}
			em := start(t, "kc-event-emitter", args, env)
			code := em.wait(time.Minute)
			out := em.output()
			if code != 1 {
				t.Fatalf("exit status %d, want 1; log:\n%s", code, tail(out, 20))
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Fatalf("the log lacks %s:\n%s", w, tail(out, 20))
				}
			}
			if tt.secret != "" && strings.Contains(out, tt.secret) {
				t.Fatal("the secret appears in the log")
			}
			if n := countLines(rcv.store); n != 0 {
				t.Fatalf("%d events arrived", n)
			}
			t.Logf("the emitter's last words: %s", tail(out, 1))
		})
	}
}

// TestEndToEndAPISourcePicksUpARoleGrantedWhileItRuns starts the emitter
// (no --once) as a service account without view-events: it logs the
// refusal as an error naming the role and keeps trying; once the role is
// granted, every event of the realm arrives once.
func TestEndToEndAPISourcePicksUpARoleGrantedWhileItRuns(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	seeded := testenv.SeedKeycloak(t, realmName("e2e-api-grant"), 1)
	remove, add := serviceAccountRoles(t, newKCAdmin(t, kc), seeded)
	remove(t, "view-events")
	dir := t.TempDir()
	rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
	args, env := apiEmitter(kc, seeded, rcv.url(), filepath.Join(dir, "checkpoint.json"), freeAddr(t))
	em := start(t, "kc-event-emitter", args, env)
	waitFor(t, 30*time.Second, "the refusal in the log", func() bool {
		out := em.output()
		return strings.Contains(out, `level=ERROR msg="Keycloak refuses the emitter's account; retrying"`) &&
			strings.Contains(out, `lacks the realm-management role \"view-events\"`)
	})
	add(t, "view-events")
	cutoff := time.Now().UnixMilli()
	waitFor(t, time.Minute, "the realm's events at the receiver", func() bool {
		return countLines(rcv.store) >= len(keycloakRows(t, kc.DBURL, seeded.Realm))
	})
	time.Sleep(500 * time.Millisecond)
	if code := em.stop(30 * time.Second); code != 0 {
		t.Errorf("emitter exit status after SIGTERM = %d, want 0", code)
	}
	got, _ := arrived(t, rcv.store)
	compareExceptLateLogins(t, kc, seeded, cutoff, got, apiMatch(t, kc, "JSON"))
}

// compareExceptLateLogins checks that every event of the seeded realm up to
// cutoff (ms) arrived exactly once (compareOnceBy, pairing as m says), and that of the later
// events each arrived at most once and only the emitter's own token
// requests (CLIENT_LOGIN of its client, written while it ran) may be
// missing. It returns how many such token requests there are.
func compareExceptLateLogins(t *testing.T, kc testenv.Keycloak, seeded testenv.Seeded, cutoff int64, gotAll []stored, m match) int {
	t.Helper()
	split := func(rows []stored) (before, after []stored) {
		for _, r := range rows {
			if r.Time <= cutoff {
				before = append(before, r)
			} else {
				after = append(after, r)
			}
		}
		return before, after
	}
	want, wantLate := split(keycloakRows(t, kc.DBURL, seeded.Realm))
	got, gotLate := split(gotAll)
	compareOnceBy(t, want, got, m)
	// Each later event arrives at most once (events with equal keys: at
	// most as often as stored), and only the emitter's own token requests
	// may be missing.
	late := map[string]int{}
	for _, g := range gotLate {
		late[m.key(g)]++
	}
	logins := 0
	for _, w := range wantLate {
		ownLogin := w.Type == "CLIENT_LOGIN" && w.ClientID == seeded.ClientID
		if ownLogin {
			logins++
		}
		k := m.key(w)
		if late[k] == 0 {
			if !ownLogin {
				t.Errorf("%s %s at %d (after %d) never arrived", w.Type, w.ID, w.Time, cutoff)
			}
			continue
		}
		if late[k]--; late[k] == 0 {
			delete(late, k)
		}
	}
	for k, n := range late {
		t.Errorf("event %s arrived %d more times than Keycloak's tables hold it", k, n)
	}
	t.Logf("%d events up to %d, %d after (%d token requests of the emitter)", len(want), cutoff, len(wantLate), logins)
	return logins
}

// TestEndToEndAPISourceKilledWhileKeycloakWritesLosesNothing kills the
// emitter reading through the API with SIGKILL three times while the seed
// makes traffic, and restarts it each time: every event arrives exactly
// once. The realm's access tokens live 5 seconds, so the emitter renews its
// token many times during the run. Its token requests are events of the
// realm (CLIENT_LOGIN of its client): those written after the traffic ended
// may be missing when it stops; nothing else may. After the traffic every
// token of the realm is revoked: the emitter authenticates again and goes on.
func TestEndToEndAPISourceKilledWhileKeycloakWritesLosesNothing(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	seeded := testenv.SeedKeycloak(t, realmName("e2e-api-kill"), 0)
	adm := newKCAdmin(t, kc)
	adm.do(t, "PUT", "/admin/realms/"+url.PathEscape(seeded.Realm), map[string]any{"accessTokenLifespan": 5}, nil)
	dir := t.TempDir()
	rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
	args, env := apiEmitter(kc, seeded, rcv.url(), filepath.Join(dir, "checkpoint.json"), freeAddr(t))
	em := start(t, "kc-event-emitter", args, env)
	traffic := seedTraffic(t, kc, seeded.Realm, 8)
	for range 3 {
		time.Sleep(time.Duration(500+rand.IntN(2000)) * time.Millisecond)
		em = em.restart()
	}
	if code := traffic.wait(5 * time.Minute); code != 0 {
		t.Fatalf("seed traffic exit status %d", code)
	}
	cutoff := time.Now().UnixMilli()
	wantAll := keycloakRows(t, kc.DBURL, seeded.Realm)
	waitFor(t, time.Minute, fmt.Sprintf("%d events at the receiver", len(wantAll)), func() bool {
		return countLines(rcv.store) >= len(wantAll)
	})
	// Revoke every token issued up to a second from now: the emitter's next
	// call gets a 401 for a token that has not expired, and it
	// authenticates again (and again after a backoff while Keycloak still
	// rejects the new tokens) instead of failing.
	adm.do(t, "PUT", "/admin/realms/"+url.PathEscape(seeded.Realm), map[string]any{"notBefore": time.Now().Unix() + 1}, nil)
	// The emitter's next call with its revoked token gets a 401 and it
	// authenticates again; and its tokens live 5 s, so it renews at least
	// once after the traffic.
	revoked := time.Now()
	waitFor(t, time.Minute, "re-authentication after the revocation in the emitter's log", func() bool {
		return strings.Contains(em.output(), "token rejected, authenticating again")
	})
	time.Sleep(time.Until(revoked.Add(6 * time.Second)))
	if code := em.stop(30 * time.Second); code != 0 {
		t.Errorf("emitter exit status after SIGTERM = %d, want 0", code)
	}
	m := apiMatch(t, kc, "JSON")
	if want := "ascending pages by epoch-millisecond dates"; m.byID && !strings.Contains(em.output(), want) {
		t.Errorf("the emitter did not read through the sync API of Keycloak 26.2+")
	} else if want := "admin API of a Keycloak before 26.2"; !m.byID && !strings.Contains(em.output(), want) {
		t.Errorf("the emitter did not say it reads the API of Keycloak %s newest first by day", kc.Version)
	}
	gotAll, _ := arrived(t, rcv.store)
	if compareExceptLateLogins(t, kc, seeded, cutoff, gotAll, m) == 0 {
		t.Errorf("no token request of the emitter after the traffic, though tokens live 5s")
	}
}

// kcAdmin calls the admin REST API of the test Keycloak as its bootstrap
// admin (password grant of admin-cli in master).
type kcAdmin struct {
	kc  testenv.Keycloak
	tok string
	exp time.Time
}

func newKCAdmin(t testing.TB, kc testenv.Keycloak) *kcAdmin {
	return &kcAdmin{kc: kc}
}

func (a *kcAdmin) token(t testing.TB) string {
	t.Helper()
	if a.tok != "" && time.Now().Before(a.exp) {
		return a.tok
	}
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {a.kc.Admin}, "password": {a.kc.AdminPassword}}
	resp, err := http.PostForm(a.kc.URL+"/realms/master/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin token: status %d, %v", resp.StatusCode, err)
	}
	a.tok, a.exp = r.AccessToken, time.Now().Add(time.Duration(r.ExpiresIn)*time.Second/2)
	return a.tok
}

// do sends body as JSON to path and decodes the response into out (when
// not nil); a status other than 2xx fails the test.
func (a *kcAdmin) do(t testing.TB, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.kc.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token(t))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}
