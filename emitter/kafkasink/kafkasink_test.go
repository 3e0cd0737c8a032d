package kafkasink_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/kafkasink"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

func TestTopicTemplateFillsRealmAndKindAndRefusesUnknownPlaceholders(t *testing.T) {
	p, err := kafkasink.New(kafkasink.Config{Brokers: []string{"127.0.0.1:9"}, Topic: "kc.{{realm}}.{{kind}}"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, tc := range []struct{ realm, kind, want string }{
		{"acme", "event", "kc.acme.event"},
		{"my realm/ü", "admin-event", "kc.my_realm__.admin-event"},
		{"", "event", "kc.unknown.event"},
	} {
		if got := p.Topic(kafkasink.Message{Realm: tc.realm, Kind: tc.kind}); got != tc.want {
			t.Errorf("Topic(%q, %q) = %q, want %q", tc.realm, tc.kind, got, tc.want)
		}
	}
	for _, bad := range []string{"", "kc.{{client}}", "kc.{{realm", "a b", strings.Repeat("x", 250)} {
		if err := kafkasink.CheckTopic(bad); err == nil {
			t.Errorf("CheckTopic(%q) = nil, want an error", bad)
		}
	}
}

func newProducer(t *testing.T, k testenv.Kafka, topic string, edit func(*kafkasink.Config)) *kafkasink.Producer {
	t.Helper()
	cfg := kafkasink.Config{Brokers: k.BrokerList(), Topic: topic, MaxBytes: int32(k.MaxBytes), DeliveryTimeout: 20 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	p, err := kafkasink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// consume reads n records of topic from the start, or fails after a minute.
func consume(t *testing.T, k testenv.Kafka, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := k.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s", len(recs), n, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestProduceDeliversKeyValueAndHeadersInOrderPerKey(t *testing.T) {
	k := testenv.KafkaEnv(t)
	topic := k.NewTopic(t, "kcee-sink", 3)
	p := newProducer(t, k, topic, nil)
	const n = 300
	msgs := make([]kafkasink.Message, n)
	for i := range msgs {
		msgs[i] = kafkasink.Message{Key: fmt.Appendf(nil, "user-%d", i%5), Value: fmt.Appendf(nil, `{"n":%d}`, i),
			Headers: []kafkasink.Header{{Key: "uid", Value: fmt.Appendf(nil, "%d", i)}}}
	}
	for i, err := range p.Produce(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	recs := consume(t, k, topic, n)
	last := map[string]int{}
	for _, r := range recs {
		var i int
		if _, err := fmt.Sscanf(header(r, "uid"), "%d", &i); err != nil {
			t.Fatalf("record without its uid header: %v", r.Headers)
		}
		if !bytes.Equal(r.Value, msgs[i].Value) || !bytes.Equal(r.Key, msgs[i].Key) {
			t.Errorf("record %d: key %q value %q, want %q %q", i, r.Key, r.Value, msgs[i].Key, msgs[i].Value)
		}
		if prev, ok := last[string(r.Key)]; ok && prev >= i {
			t.Errorf("key %s: record %d after %d", r.Key, i, prev)
		}
		last[string(r.Key)] = i
	}
}

// TestEachCompressionIsTheCodecOfTheBatchesTheConsumerReads: every codec
// the flag accepts is the one the broker stores (the batch attributes a
// consumer sees), and the records come back whole.
func TestEachCompressionIsTheCodecOfTheBatchesTheConsumerReads(t *testing.T) {
	k := testenv.KafkaEnv(t)
	for code, name := range kafkasink.Compressions { // in the order of the protocol's codes
		t.Run(name, func(t *testing.T) {
			topic := k.NewTopic(t, "kcee-codec", 1)
			p := newProducer(t, k, topic, func(c *kafkasink.Config) { c.Compression = name })
			msgs := make([]kafkasink.Message, 50)
			for i := range msgs {
				msgs[i] = kafkasink.Message{Value: fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, strings.Repeat("keycloak ", 100))}
			}
			for i, err := range p.Produce(context.Background(), msgs) {
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			for i, r := range consume(t, k, topic, len(msgs)) {
				if got := int(r.Attrs.CompressionType()); got != code {
					t.Fatalf("record %d of %s is in a batch of codec %d, want %d", i, name, got, code)
				}
				if !bytes.Equal(r.Value, msgs[i].Value) {
					t.Fatalf("record %d of %s: value %.40q, want %.40q", i, name, r.Value, msgs[i].Value)
				}
			}
		})
	}
	if _, err := kafkasink.New(kafkasink.Config{Brokers: []string{"127.0.0.1:9"}, Topic: "t", Compression: "brotli"}); err == nil ||
		!strings.Contains(err.Error(), `"brotli"`) {
		t.Errorf("New with compression brotli: %v, want an error naming it", err)
	}
}

func TestARecordForATopicThatDoesNotExistIsRefusedForGoodAfterABoundedWait(t *testing.T) {
	k := testenv.KafkaEnv(t)
	p := newProducer(t, k, "kcee-no-such-topic-{{realm}}", nil)
	start := time.Now()
	errs := p.Produce(context.Background(), []kafkasink.Message{{Realm: fmt.Sprint(time.Now().UnixNano()), Value: []byte("{}")}})
	var pe interface{ Permanent() bool }
	if !errors.As(errs[0], &pe) || !pe.Permanent() || !errors.Is(errs[0], kerr.UnknownTopicOrPartition) {
		t.Fatalf("error %v, want a permanent UNKNOWN_TOPIC_OR_PARTITION", errs[0])
	}
	t.Logf("refused after %s: %v", time.Since(start).Round(time.Millisecond), errs[0])
}

func TestARecordOverTheSizeLimitIsRefusedForGoodAndTheOthersGo(t *testing.T) {
	k := testenv.KafkaEnv(t)
	topic := k.NewTopic(t, "kcee-size", 1)
	big := make([]byte, k.MaxBytes+1000) // random: compression does not make it fit
	_, _ = rand.Read(big)
	for _, tc := range []struct {
		name     string
		maxBytes int32
		msgs     []kafkasink.Message
	}{
		// The producer's limit is the broker's: the producer refuses the record itself.
		{"producer's limit", int32(k.MaxBytes), []kafkasink.Message{{Value: []byte("a")}, {Value: big}, {Value: []byte("b")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProducer(t, k, topic, func(c *kafkasink.Config) { c.MaxBytes = tc.maxBytes })
			for i, err := range p.Produce(context.Background(), tc.msgs) {
				var pe interface{ Permanent() bool }
				switch {
				case len(tc.msgs[i].Value) == len(big):
					if !errors.As(err, &pe) || !pe.Permanent() || !errors.Is(err, kerr.MessageTooLarge) {
						t.Errorf("the large record: %v, want a permanent MESSAGE_TOO_LARGE", err)
					}
				case err != nil:
					t.Errorf("record %d: %v", i, err)
				}
			}
		})
	}
}

func TestABatchTheBrokerRefusesAsTooLargeIsAPassingErrorNamingTheSetting(t *testing.T) {
	k := testenv.KafkaEnv(t)
	topic := k.NewTopic(t, "kcee-size", 1)
	big := make([]byte, k.MaxBytes+1000)
	_, _ = rand.Read(big)
	// The producer allows more than the broker: the broker refuses the
	// batch, which says nothing about the records in it.
	p := newProducer(t, k, topic, func(c *kafkasink.Config) { c.MaxBytes = 4 << 20 })
	err := p.Produce(context.Background(), []kafkasink.Message{{Value: big}})[0]
	var pe interface{ Permanent() bool }
	if !errors.Is(err, kerr.MessageTooLarge) || !errors.As(err, &pe) || pe.Permanent() || !strings.Contains(err.Error(), "lower it") {
		t.Fatalf("error %v, want a passing MESSAGE_TOO_LARGE that says to lower the max bytes", err)
	}
}

func TestEachSASLMechanismAuthenticatesAndAWrongPasswordIsAPassingError(t *testing.T) {
	k := testenv.KafkaEnv(t)
	if k.SASLBrokers == "" {
		t.Fatal("KCEE_TEST_KAFKA_SASL_BROKERS is not set: scripts/kafka.sh env prints it")
	}
	topic := k.NewTopic(t, "kcee-sasl", 1)
	for _, mech := range []string{kafkasink.MechanismPlain, kafkasink.MechanismSCRAMSHA256, kafkasink.MechanismSCRAMSHA512} {
		t.Run(mech, func(t *testing.T) {
			for _, tc := range []struct {
				password string
				ok       bool
			}{{k.SASLPassword, true}, {"wrong-" + k.SASLPassword, false}} {
				p := newProducer(t, k, topic, func(c *kafkasink.Config) {
					c.Brokers = strings.Split(k.SASLBrokers, ",")
					c.SASL = kafkasink.SASL{Mechanism: mech, Username: k.SASLUser, Password: tc.password}
					c.DeliveryTimeout = 3 * time.Second
				})
				err := p.Produce(context.Background(), []kafkasink.Message{{Value: []byte(mech)}})[0]
				var pe interface{ Permanent() bool }
				switch {
				case tc.ok && err != nil:
					t.Errorf("the right password: %v", err)
				case !tc.ok && err == nil:
					t.Error("a wrong password: produced")
				case !tc.ok && errors.As(err, &pe) && pe.Permanent():
					t.Errorf("a wrong password: %v is permanent; a credential is the setup's, retried", err)
				case !tc.ok && strings.Contains(err.Error(), tc.password):
					t.Errorf("the error shows the password: %v", err)
				case !tc.ok && !errors.Is(err, kerr.SaslAuthenticationFailed):
					t.Errorf("a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
				}
			}
		})
	}
}

// Failed tells a record's refusal without waiting for the batch; Wait then
// returns it.
func TestSentTellsAFailureBeforeTheBatchIsWaitedFor(t *testing.T) {
	k := testenv.KafkaEnv(t)
	p := newProducer(t, k, "kcee-no-such-topic-{{realm}}", nil)
	sent := p.Start(context.Background(), []kafkasink.Message{{Realm: fmt.Sprint(time.Now().UnixNano()), Value: []byte("{}")}})
	deadline := time.Now().Add(time.Minute)
	for !sent.Failed() {
		if time.Now().After(deadline) {
			t.Fatal("Failed still false a minute after a record for a topic that does not exist")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if errs := sent.Wait(); !errors.Is(errs[0], kerr.UnknownTopicOrPartition) {
		t.Fatalf("error %v, want UNKNOWN_TOPIC_OR_PARTITION", errs[0])
	}
}
