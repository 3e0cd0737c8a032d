package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// streamRecord is a record a consumer of the emitter's stream read.
type streamRecord struct {
	key, id, realm string
	uid            int64
	partition      int32
}

// kafkaConsumer reads topics from the start in the background until the
// test ends.
type kafkaConsumer struct {
	mu   sync.Mutex
	recs []streamRecord
}

func consumeKafka(t *testing.T, k testenv.Kafka, topics ...string) *kafkaConsumer {
	t.Helper()
	c := &kafkaConsumer{}
	cl := k.Client(t, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				sr := streamRecord{key: string(r.Key), partition: r.Partition}
				for _, h := range r.Headers {
					switch h.Key {
					case "uid":
						sr.uid, _ = strconv.ParseInt(string(h.Value), 10, 64)
					case "id":
						sr.id = string(h.Value)
					case "realm":
						sr.realm = string(h.Value)
					}
				}
				c.mu.Lock()
				c.recs = append(c.recs, sr)
				c.mu.Unlock()
			})
		}
	}()
	return c
}

func (c *kafkaConsumer) records() []streamRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]streamRecord(nil), c.recs...)
}

// distinct returns how many distinct Keycloak ids were read.
func distinct(recs []streamRecord) int {
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.id] = true
	}
	return len(seen)
}

// checkOnceInOrder checks what a consumer that dedupes on the uid header
// sees: every event of want, each with one uid however often it came, and,
// per key, new events in the order of their uids (a replay comes again
// with its uid, never before an event that preceded it).
//
// With strictOrder false an event out of order is only counted (NATS: a
// message lost in flight when the server fails is published again after
// newer ones, as the README says).
func checkOnceInOrder(t *testing.T, recs []streamRecord, want []string, strictOrder bool) (dups, unordered int) {
	t.Helper()
	uidOf := map[string]int64{}
	maxUID := map[string]int64{}
	for _, r := range recs {
		if r.uid == 0 || r.id == "" {
			t.Fatalf("a record without its uid or id header: %+v", r)
		}
		if uid, ok := uidOf[r.id]; ok {
			if uid != r.uid {
				t.Errorf("event %s came with uid %d and uid %d: a replay must carry the same uid", r.id, uid, r.uid)
			}
			dups++
			continue
		}
		uidOf[r.id] = r.uid
		if r.uid < maxUID[r.key] {
			unordered++
		}
		if r.uid < maxUID[r.key] && strictOrder {
			t.Errorf("key %s: new event %s (uid %d) after uid %d: out of order", r.key, r.id, r.uid, maxUID[r.key])
		}
		maxUID[r.key] = max(maxUID[r.key], r.uid)
	}
	for _, id := range want {
		if _, ok := uidOf[id]; !ok {
			t.Errorf("event %s never arrived", id)
		}
	}
	return dups, unordered
}

// TestEmitterToKafkaKilledAndBrokerRestartedDeliversEveryEventWithOneUID
// streams 20,000 events into Keycloak's tables while the emitter (the
// binary, target kafka://) is killed with SIGKILL at random points and the
// broker is stopped and started again: a consumer that dedupes on the uid
// header sees every event, each with one uid, in order per key.
func TestEmitterToKafkaKilledAndBrokerRestartedDeliversEveryEventWithOneUID(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 20,000 events through the binary and restarts the broker")
	}
	k := testenv.KafkaEnv(t)
	topic := k.NewTopic(t, "kcee-e2e", 3)
	realms := []string{"r-acme", "r-demo", "r-ops"}
	db, dbURL := newKeycloakDB(t, realms...)
	dir := t.TempDir()
	checkpoint, listen := filepath.Join(dir, "checkpoint.json"), freeAddr(t)
	args := emitterArgs("kafka://"+k.Brokers+"/"+topic, checkpoint, listen, "--kafkaMaxBytes", strconv.Itoa(k.MaxBytes),
		"--retryWaitMax", "1s", "--kafkaDeliveryTimeout", "5s")
	em := start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+dbURL)
	consumer := consumeKafka(t, k, topic)

	const total, batch = 20000, 50
	var ids []string
	for i := range total {
		ids = append(ids, fmt.Sprintf("ev-%06d", i))
	}
	inserted := make(chan error, 1)
	go func() {
		base := time.Now().UnixMilli()
		for i := 0; i < total; i += batch {
			var values []string
			var args []any
			for j := i; j < min(i+batch, total); j++ {
				realm := realms[j%len(realms)]
				values = append(values, fmt.Sprintf("($%d, $%d, $%d, 'LOGIN', $%d, 'c1', '{}')", len(args)+1, len(args)+2, len(args)+3, len(args)+4))
				args = append(args, ids[j], realm, base+int64(j/10), fmt.Sprintf("%s-u%d", realm, j%7))
			}
			if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, client_id, details_json) VALUES `+
				strings.Join(values, ","), args...); err != nil {
				inserted <- err
				return
			}
			time.Sleep(time.Duration(mrand.IntN(4)) * time.Millisecond)
		}
		inserted <- nil
	}()

	kills, brokerRestarted := 0, false
	for done := false; !done; {
		select {
		case err := <-inserted:
			if err != nil {
				t.Fatalf("insert: %v", err)
			}
			done = true
		case <-time.After(time.Duration(300+mrand.IntN(1200)) * time.Millisecond):
			if kills == 2 && !brokerRestarted {
				brokerRestarted = true
				k.Restart(t, 2*time.Second) // the stream goes on meanwhile
				continue
			}
			em = em.restart()
			kills++
		}
	}
	if !brokerRestarted {
		k.Restart(t, 2*time.Second)
	}
	em = em.restart() // and once more after the last insert: the tail is replayed too
	kills++
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d events in the topic", total), func() bool {
		return distinct(consumer.records()) >= total
	})
	time.Sleep(time.Second) // anything sent with another uid would arrive now
	if code := em.stop(30 * time.Second); code != 0 {
		t.Errorf("emitter exit status after SIGTERM = %d, want 0", code)
	}
	recs := consumer.records()
	dups, _ := checkOnceInOrder(t, recs, ids, true)
	if _, err := os.Stat(checkpoint + ".deadletter.jsonl"); err == nil {
		t.Errorf("events were dead-lettered:\n%s", tail(readFile(t, checkpoint+".deadletter.jsonl"), 5))
	}
	t.Logf("%d SIGKILLs, 1 broker restart: %d records for %d events (%d sent again after a kill)", kills, len(recs), total, dups)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readDeadLetterFile(t *testing.T, path string) []deadletter.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []deadletter.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r deadletter.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestEmitterToKafkaDeadLettersARecordOverTheLimitAndTheEventsOfATopicThatDoesNotExist
// runs the emitter once with a topic per realm, where the topic of one
// realm was never created (the broker does not create topics), and one
// admin event larger than the broker takes: those are dead-lettered with
// the broker's reason, every other event is delivered.
func TestEmitterToKafkaDeadLettersARecordOverTheLimitAndTheEventsOfATopicThatDoesNotExist(t *testing.T) {
	k := testenv.KafkaEnv(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "kcee-e2e-" + hex.EncodeToString(b)
	k.CreateTopic(t, prefix+"-acme", 1)
	db, dbURL := newKeycloakDB(t, "r-acme", "r-ghost")
	now := time.Now().UnixMilli()
	var want []string
	for i := range 10 {
		id := fmt.Sprintf("acme-%02d", i)
		want = append(want, id)
		if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, details_json) VALUES ($1, 'r-acme', $2, 'LOGIN', 'u1', '{}')`, id, now+int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, details_json) VALUES ($1, 'r-ghost', $2, 'LOGIN', 'u1', '{}')`, fmt.Sprintf("ghost-%d", i), now+int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, k.MaxBytes)
	_, _ = rand.Read(big)
	if _, err := db.Exec(`INSERT INTO admin_event_entity (id, admin_event_time, realm_id, operation_type, auth_user_id, resource_path, resource_type, representation)
		VALUES ('admin-big', $1, 'r-acme', 'UPDATE', 'admin-1', 'users/u1', 'USER', $2)`, now+20, hex.EncodeToString(big)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	checkpoint := filepath.Join(dir, "checkpoint.json")
	args := emitterArgs("kafka://"+k.Brokers+"/"+prefix+"-{{realm}}", checkpoint, freeAddr(t), "--once", "--kafkaMaxBytes", strconv.Itoa(k.MaxBytes))
	em := start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+dbURL)
	if code := em.wait(2 * time.Minute); code != 0 {
		t.Fatalf("emitter --once exit status %d, want 0", code)
	}
	consumer := consumeKafka(t, k, prefix+"-acme")
	waitFor(t, time.Minute, "10 events in the topic of acme", func() bool { return distinct(consumer.records()) >= 10 })
	checkOnceInOrder(t, consumer.records(), want, true)
	reasons := map[string]string{}
	for _, r := range readDeadLetterFile(t, checkpoint+".deadletter.jsonl") {
		reasons[r.ID] = r.Reason
	}
	for id, want := range map[string]string{"ghost-0": "UNKNOWN_TOPIC_OR_PARTITION", "ghost-1": "UNKNOWN_TOPIC_OR_PARTITION", "admin-big": "MESSAGE_TOO_LARGE"} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("dead letter of %s: reason %q, want it to name %s", id, reasons[id], want)
		}
	}
	if len(reasons) != 3 {
		t.Errorf("%d dead letters (%v), want 3", len(reasons), reasons)
	}

	// The operator creates the missing topic and raises the limit of the
	// other (the topic's max.message.bytes, the producer's --kafkaMaxBytes):
	// deadletters replay with the run's flags delivers the three, each
	// with its uid, its key and the topic of its realm, and empties the file.
	uids := map[string]int64{}
	for _, r := range readDeadLetterFile(t, checkpoint+".deadletter.jsonl") {
		uids[r.ID] = r.UID
	}
	k.CreateTopic(t, prefix+"-ghost", 1)
	k.SetTopicConfig(t, prefix+"-acme", "max.message.bytes", "4000000")
	replay := start(t, "kc-event-emitter", []string{"deadletters", "replay", "--deadLetterFile", checkpoint + ".deadletter.jsonl",
		"--targetUri", "kafka://" + k.Brokers + "/" + prefix + "-{{realm}}", "--kafkaMaxBytes", "4000000", "--logLevel", "WARN"})
	if code := replay.wait(2 * time.Minute); code != 0 {
		t.Fatalf("deadletters replay exit status %d, want 0:\n%s", code, replay.output())
	}
	if !strings.Contains(replay.output(), "delivered 3, refused again 0") {
		t.Errorf("replay output %q, want it to count 3 delivered", replay.output())
	}
	if _, err := os.Stat(checkpoint + ".deadletter.jsonl"); !os.IsNotExist(err) {
		t.Errorf("the dead-letter file after the replay: %v, want it gone", err)
	}
	ghosts := consumeKafka(t, k, prefix+"-ghost")
	waitFor(t, time.Minute, "the 2 replayed events of ghost", func() bool { return distinct(ghosts.records()) >= 2 })
	waitFor(t, time.Minute, "the replayed admin event in acme", func() bool { return distinct(consumer.records()) >= 11 })
	for _, r := range append(ghosts.records(), consumer.records()...) {
		if want, ok := uids[r.id]; ok && (r.uid != want || r.key != "u1") {
			t.Errorf("replayed %s: uid %d key %q, want the dead letter's uid %d and key u1", r.id, r.uid, r.key, want)
		}
	}
}
