package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka is the broker of scripts/kafka.sh.
type Kafka struct {
	Brokers  string // host:port[,host:port]
	MaxBytes int    // the broker's message.max.bytes
	// The SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
	// and its user; empty when the script did not print them.
	SASLBrokers, SASLUser, SASLPassword string
	// The SSL listener (TLSBrokers) and the one that requires a client
	// certificate (MTLSBrokers), the CA of both sides' certificates, and a
	// client certificate and key of that CA.
	TLSBrokers, MTLSBrokers               string
	CAFile, ClientCertFile, ClientKeyFile string
	// The SASL_PLAINTEXT listener of OAUTHBEARER, the RSA key (PEM) whose
	// RS256 JWTs of OAuthIssuer for OAuthAudience it takes.
	OAuthBrokers, OAuthKeyFile, OAuthIssuer, OAuthAudience string

	held *heldLock // the test's shared lock of the broker (see Restart)
}

// heldLock is a lock of the broker and its release.
type heldLock struct{ release func() }

// KafkaEnv returns the broker of KCEE_TEST_KAFKA_BROKERS and
// KCEE_TEST_KAFKA_MAX_BYTES (as `scripts/kafka.sh env` prints them). When
// unset the test is skipped, or fails when KCEE_REQUIRE_KAFKA=1 (make
// test-kafka sets it; make test does not start Kafka, see the Makefile).
// It fails when a broker is not on a loopback address.
func KafkaEnv(t testing.TB) Kafka {
	t.Helper()
	k := Kafka{Brokers: os.Getenv("KCEE_TEST_KAFKA_BROKERS")}
	if k.Brokers == "" {
		msg := "KCEE_TEST_KAFKA_BROKERS is not set: run `scripts/kafka.sh start && eval \"$(scripts/kafka.sh env)\"` first"
		if os.Getenv("KCEE_REQUIRE_KAFKA") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, b := range strings.Split(k.Brokers, ",") {
		host, _, err := net.SplitHostPort(b)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			t.Fatalf("KCEE_TEST_KAFKA_BROKERS %q: %q is not a loopback host:port", k.Brokers, b)
		}
	}
	k.SASLBrokers, k.SASLUser, k.SASLPassword = os.Getenv("KCEE_TEST_KAFKA_SASL_BROKERS"),
		os.Getenv("KCEE_TEST_KAFKA_SASL_USER"), os.Getenv("KCEE_TEST_KAFKA_SASL_PASSWORD")
	k.TLSBrokers, k.MTLSBrokers = os.Getenv("KCEE_TEST_KAFKA_TLS_BROKERS"), os.Getenv("KCEE_TEST_KAFKA_MTLS_BROKERS")
	k.CAFile, k.ClientCertFile, k.ClientKeyFile = os.Getenv("KCEE_TEST_KAFKA_CA_FILE"),
		os.Getenv("KCEE_TEST_KAFKA_CLIENT_CERT_FILE"), os.Getenv("KCEE_TEST_KAFKA_CLIENT_KEY_FILE")
	k.OAuthBrokers, k.OAuthKeyFile = os.Getenv("KCEE_TEST_KAFKA_OAUTH_BROKERS"), os.Getenv("KCEE_TEST_KAFKA_OAUTH_KEY_FILE")
	k.OAuthIssuer, k.OAuthAudience = os.Getenv("KCEE_TEST_KAFKA_OAUTH_ISSUER"), os.Getenv("KCEE_TEST_KAFKA_OAUTH_AUDIENCE")
	k.MaxBytes, _ = strconv.Atoi(os.Getenv("KCEE_TEST_KAFKA_MAX_BYTES"))
	if k.MaxBytes == 0 {
		k.MaxBytes = 262144
	}
	// The broker is shared by the test processes go test runs at once: a
	// restart (Restart) waits until no other test uses it.
	k.held = &heldLock{release: lockBroker(t, false)}
	t.Cleanup(func() { k.held.release() })
	return k
}

// NeedTLS fails the test unless the script printed the TLS listeners and
// files (an older broker of the script: scripts/kafka.sh destroy, start).
func (k Kafka) NeedTLS(t testing.TB) {
	t.Helper()
	if k.TLSBrokers == "" || k.MTLSBrokers == "" || k.CAFile == "" || k.ClientCertFile == "" || k.ClientKeyFile == "" {
		t.Fatal("KCEE_TEST_KAFKA_TLS_BROKERS, _MTLS_BROKERS, _CA_FILE, _CLIENT_CERT_FILE or _CLIENT_KEY_FILE is not set: scripts/kafka.sh env prints them (a broker of an older script: scripts/kafka.sh destroy && scripts/kafka.sh start)")
	}
}

// NeedOAuth fails the test unless the script printed the OAUTHBEARER
// listener and its key.
func (k Kafka) NeedOAuth(t testing.TB) {
	t.Helper()
	if k.OAuthBrokers == "" || k.OAuthKeyFile == "" || k.OAuthIssuer == "" || k.OAuthAudience == "" {
		t.Fatal("KCEE_TEST_KAFKA_OAUTH_BROKERS, _OAUTH_KEY_FILE, _OAUTH_ISSUER or _OAUTH_AUDIENCE is not set: scripts/kafka.sh env prints them (a broker of an older script: scripts/kafka.sh destroy && scripts/kafka.sh start)")
	}
}

// BrokerList returns the brokers as a list.
func (k Kafka) BrokerList() []string { return strings.Split(k.Brokers, ",") }

// Client returns a client of the broker, closed with the test; opts are
// added (a consumer's topics, say).
func (k Kafka) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.BrokerList()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// NewTopic creates a topic of a new name with the prefix and partitions,
// deleted with the test, and returns its name.
func (k Kafka) NewTopic(t testing.TB, prefix string, partitions int32) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + "-" + hex.EncodeToString(b)
	k.CreateTopic(t, name, partitions)
	return name
}

// CreateTopic creates the topic name, deleted with the test.
func (k Kafka) CreateTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 20000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.BrokerList()...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		del := kmsg.NewPtrDeleteTopicsRequest()
		del.TopicNames = []string{name}
		dt := kmsg.NewDeleteTopicsRequestTopic()
		dt.Topic = kmsg.StringPtr(name)
		del.Topics = append(del.Topics, dt)
		_, _ = del.RequestWith(ctx, cl)
	})
}

// Restart stops the broker of scripts/kafka.sh, waits down, and starts it
// again on the same port, once the tests of other processes that use it
// are done (and before the next ones start).
func (k Kafka) Restart(t testing.TB, down time.Duration) {
	t.Helper()
	k.held.release()
	release := lockBroker(t, true)
	KafkaScript(t, "stop")
	time.Sleep(down)
	KafkaScript(t, "start")
	release()
	k.held.release = lockBroker(t, false)
}

// KafkaScript runs scripts/kafka.sh with args.
func KafkaScript(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"scripts/kafka.sh"}, args...)...)
	cmd.Dir = ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/kafka.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// SetTopicConfig sets the configuration key of topic (max.message.bytes,
// say) to value.
func (k Kafka) SetTopicConfig(t testing.TB, topic, key, value string) {
	t.Helper()
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Op, cfg.Value = key, kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(value)
	res.Configs = append(res.Configs, cfg)
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("topic %s: set %s=%s: %v", topic, key, value, err)
	}
	if err := kerr.ErrorForCode(resp.Resources[0].ErrorCode); err != nil {
		t.Fatalf("topic %s: set %s=%s: %v", topic, key, value, err)
	}
}

// EndOffset returns the offset the next record of partition 0 of topic
// will get: how many records it holds.
func (k Kafka) EndOffset(t testing.TB, topic string) int64 {
	t.Helper()
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = 0, -1 // -1: the latest offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	return p.Offset
}
