package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// TestEmitterToNATSOverTLSWithAPasswordDeadLettersASubjectNoStreamTakesAndReplaysItOnceThereIsOne
// runs the binary with a configuration file whose NATS route connects over
// TLS (the test's CA) with a user and the password from the environment:
// the events of a realm no stream listens on are dead-lettered, the others
// stored. Once the operator adds a stream, deadletters replay --config
// --route sends them with the route's settings, each with its uid as
// Nats-Msg-Id, and empties the file.
func TestEmitterToNATSOverTLSWithAPasswordDeadLettersASubjectNoStreamTakesAndReplaysItOnceThereIsOne(t *testing.T) {
	const user, password = "kcee", "nats-e2e-password"
	pki := testenv.NewPKI(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.ServerCertFile, KeyFile: pki.ServerKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.StartNATSWith(t, func(o *server.Options) {
		o.TLSConfig, o.TLSTimeout = tc, 5
		o.Users = []*server.User{{Username: user, Password: password}}
	})
	nc, err := nats.Connect("tls://"+srv.HostPort(), nats.RootCAs(pki.CAFile), nats.UserInfo(user, password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acme, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ACME", Subjects: []string{"kc.acme.>"}, Duplicates: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	db, dbURL := newKeycloakDB(t, "r-acme", "r-ghost")
	now := time.Now().UnixMilli()
	for i, realm := range []string{"r-acme", "r-ghost", "r-acme", "r-ghost", "r-acme"} {
		if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, details_json) VALUES ($1, $2, $3, 'LOGIN', 'u1', '{}')`,
			fmt.Sprintf("%s-%d", realm, i), realm, now+int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cfgPath, dead := filepath.Join(dir, "routes.yaml"), filepath.Join(dir, "jetstream.dead.jsonl")
	cfg := fmt.Sprintf(`keycloakId: 7
datacenterId: 1
source: db
dbUrlEnv: KC_EMITTER_DB_URL
from: beginning
pollInterval: 50ms
checkpoint: %[1]s/cp.json
listen: %[2]s
routes:
  - name: jetstream
    sink:
      nats:
        servers: [tls://%[3]s]
        subject: kc.{{realm}}.{{kind}}
        ackTimeout: 2s
        username: %[4]s
        passwordEnv: TEST_NATS_PASSWORD
        caFile: %[5]s
    format: JSON
    deadLetterFile: %[6]s
`, dir, freeAddr(t), srv.HostPort(), user, pki.CAFile, dead)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	em := start(t, "kc-event-emitter", []string{"--config", cfgPath, "--once"}, "KC_EMITTER_DB_URL="+dbURL, "TEST_NATS_PASSWORD="+password)
	if code := em.wait(2 * time.Minute); code != 0 {
		t.Fatalf("emitter --once exit status %d, want 0", code)
	}
	if got := natsRecords(t, acme); len(got) != 3 {
		t.Errorf("stream ACME holds %d messages, want the 3 of acme", len(got))
	}
	uids := map[string]int64{}
	for _, r := range readDeadLetterFile(t, dead) {
		if !strings.Contains(r.Reason, "no JetStream stream listens on the subject") {
			t.Errorf("dead letter %s: reason %q, want it to say no stream listens", r.ID, r.Reason)
		}
		uids[r.ID] = r.UID
	}
	if len(uids) != 2 {
		t.Fatalf("%d dead letters (%v), want the 2 of ghost", len(uids), uids)
	}

	ghost, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "GHOST", Subjects: []string{"kc.ghost.>"}, Duplicates: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"deadletters", "replay", "--config", cfgPath, "--route", "jetstream", "--logLevel", "WARN"}
	// The replay runs in the run's environment (the file's dbUrlEnv is read too).
	if p := start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+dbURL, "TEST_NATS_PASSWORD=wrong-"+password); p.wait(time.Minute) != 1 ||
		!strings.Contains(p.output(), "refuses the credentials") || strings.Contains(p.output(), password) {
		t.Errorf("a replay with a wrong password: want exit status 1 saying the credentials are refused, without the password:\n%s", p.output())
	}
	replay := start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+dbURL, "TEST_NATS_PASSWORD="+password)
	if code := replay.wait(time.Minute); code != 0 {
		t.Fatalf("deadletters replay exit status %d, want 0:\n%s", code, replay.output())
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead-letter file after the replay: %v, want it gone", err)
	}
	got := natsRecords(t, ghost)
	if len(got) != 2 {
		t.Fatalf("stream GHOST holds %d messages, want the 2 replayed", len(got))
	}
	for _, r := range got {
		if r.uid != uids[r.id] || r.key != "kc.ghost.event" {
			t.Errorf("replayed %s: uid %d on %s, want the dead letter's uid %d on kc.ghost.event", r.id, r.uid, r.key, uids[r.id])
		}
	}
}
