package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// TestDeadlettersReplayOfAFilesKafkaRouteProducesWithItsSASLSettings
// replays the dead letters of a Kafka route of a configuration file (SCRAM
// on the broker's SASL listener, the password from the environment): each
// becomes a record of the topic of its realm, keyed by its user, with its
// uid, and the file is emptied.
func TestDeadlettersReplayOfAFilesKafkaRouteProducesWithItsSASLSettings(t *testing.T) {
	k := testenv.KafkaEnv(t)
	if k.SASLBrokers == "" {
		t.Fatal("KCEE_TEST_KAFKA_SASL_BROKERS is not set: scripts/kafka.sh env prints it")
	}
	prefix := k.NewTopic(t, "kcee-replay", 1) // a fresh name; the route's topic of acme is prefix-acme
	k.CreateTopic(t, prefix+"-acme", 1)
	dir := t.TempDir()
	dead := filepath.Join(dir, "stream.dead.jsonl")
	f, err := deadletter.Open(dead, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := f.Append(deadletter.Record{UID: int64(100 + i), Kind: "Event", ID: fmt.Sprint("e", i), RealmID: "r-acme", Realm: "acme",
			Key: fmt.Sprint("user-", i), Type: "LOGIN", Time: 1700000000000, At: time.Now(), Body: fmt.Sprintf(`{"uid":%d}`, 100+i),
			Reason: "UNKNOWN_TOPIC_OR_PARTITION"}); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "routes.yaml")
	file := fmt.Sprintf("keycloakId: 1\ndatacenterId: 0\nroutes:\n"+
		"  - name: stream\n    sink:\n      kafka:\n        brokers: [%s]\n        topic: %s-{{realm}}\n"+
		"        saslMechanism: SCRAM-SHA-512\n        username: %s\n        passwordEnv: ROUTE_KAFKA_PW\n        deliveryTimeout: 3s\n"+
		"    format: JSON\n    deadLetterFile: %s\n", k.SASLBrokers, prefix, k.SASLUser, dead)
	if err := os.WriteFile(cfgPath, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	// A wrong password stops the replay (no retry mends it), the file intact.
	if code := replayMain(context.Background(), []string{"--config", cfgPath, "--route", "stream"}, env(map[string]string{"ROUTE_KAFKA_PW": "wrong"}), &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "the target refuses the credentials") || !strings.Contains(out.String(), "delivered 0, refused again 0, unsendable 0, left 3") {
		t.Fatalf("a wrong password: exit %d, stdout %q, stderr %q; want 1, the credentials refused, 3 left", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	vars := map[string]string{"ROUTE_KAFKA_PW": k.SASLPassword}
	if code := replayMain(context.Background(), []string{"--config", cfgPath, "--route", "stream"}, env(vars), &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "delivered 3, refused again 0") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if strings.Contains(errOut.String(), k.SASLPassword) {
		t.Error("the log shows the password")
	}
	cl := k.Client(t, kgo.ConsumeTopics(prefix+"-acme"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := map[string]string{} // uid -> key
	for len(got) < 3 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "uid" {
					got[string(h.Value)] = string(r.Key)
				}
			}
		})
	}
	for i := 1; i <= 3; i++ {
		if key := got[fmt.Sprint(100+i)]; key != fmt.Sprint("user-", i) {
			t.Errorf("uid %d: key %q in %s-acme, want user-%d", 100+i, key, prefix, i)
		}
	}
}
