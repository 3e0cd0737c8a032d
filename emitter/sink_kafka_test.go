package emitter

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestKafkaRecordAndNATSMessageCarryTheKeyTheBodyAndTheHeaders(t *testing.T) {
	env := envelope{Kind: KindAdminEvent, UID: 42, ID: "kc-1", RealmID: "r-id", RealmName: "acme", Type: "UPDATE:USER",
		Body: []byte(`{"uid":42}`), Key: "u-7"}
	want := map[string]string{"uid": "42", "kind": "AdminEvent", "type": "UPDATE:USER", "realm": "acme", "realm_id": "r-id", "id": "kc-1"}

	m := kafkaMessage(env)
	if string(m.Key) != "u-7" || string(m.Value) != string(env.Body) || m.Realm != "acme" || m.Kind != "admin-event" {
		t.Errorf("kafka message key %q value %q realm %q kind %q", m.Key, m.Value, m.Realm, m.Kind)
	}
	got := map[string]string{}
	for _, h := range m.Headers {
		got[h.Key] = string(h.Value)
	}
	if len(got) != len(want) {
		t.Errorf("kafka headers %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("kafka header %s = %q, want %q", k, got[k], v)
		}
	}

	n := natsMessage(env)
	if n.ID != "42" || string(n.Data) != string(env.Body) || n.Kind != "admin-event" {
		t.Errorf("nats message id %q data %q kind %q; want the uid as the Nats-Msg-Id", n.ID, n.Data, n.Kind)
	}
	for k, v := range want {
		if n.Headers[k] != v {
			t.Errorf("nats header %s = %q, want %q", k, n.Headers[k], v)
		}
	}
}

func TestATargetURIOfKafkaOrNATSGivesTheBrokersAndTheTopic(t *testing.T) {
	c := DefaultConfig()
	c.TargetURI = "kafka://127.0.0.1:9092, 127.0.0.1:9093/kc.{{realm}}"
	k, ok := c.kafkaConfig()
	if !ok || !slices.Equal(k.Brokers, []string{"127.0.0.1:9092", "127.0.0.1:9093"}) || k.Topic != "kc.{{realm}}" || k.BatchSize != 1000 {
		t.Errorf("kafkaConfig() = %+v, %v", k, ok)
	}
	if size, linger := c.flagSink().batchOptions(); size != 1000 || linger != k.Linger {
		t.Errorf("batchOptions = %d, %s", size, linger)
	}
	c.TargetURI = "nats://127.0.0.1:4222/kc.events"
	n, ok := c.natsConfig()
	if !ok || !slices.Equal(n.Servers, []string{"nats://127.0.0.1:4222"}) || n.Subject != "kc.events" {
		t.Errorf("natsConfig() = %+v, %v", n, ok)
	}
	c.TargetURI = "https://127.0.0.1/x"
	if _, ok := c.kafkaConfig(); ok || c.flagSink().HTTP == nil {
		t.Error("an https target taken for a stream target")
	}
	if size, _ := c.flagSink().batchOptions(); size != 0 {
		t.Errorf("batchOptions of an HTTP target = %d, want 0 (one at a time)", size)
	}
}

func TestReplayRefusesAMailTargetNamingIt(t *testing.T) {
	c := DefaultConfig()
	c.TargetURI, c.DeadLetterPath = "smtp://127.0.0.1:25", filepath.Join(t.TempDir(), "dl.jsonl")
	_, err := ReplayDeadLetters(context.Background(), c, nil)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "targetUri" || !strings.Contains(err.Error(), "mail target cannot be replayed") {
		t.Errorf("replay to a mail target: %v, want a targetUri error", err)
	}
}
