package emitter

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestKafkaRecordAndNATSMessageCarryTheKeyTheBodyAndTheHeaders(t *testing.T) {
	env := envelope{Kind: KindAdminEvent, UID: 42, ID: "kc-1", RealmID: "r-id", RealmName: "acme", Type: "UPDATE:USER",
		Body: []byte(`{"uid":42}`), Key: "u-7"}
	want := map[string]string{"uid": "42", "kind": "AdminEvent", "type": "UPDATE:USER", "realm": "acme", "realm_id": "r-id", "id": "kc-1"}
	// The records of a batch share their buffers: each keeps its own.
	other := envelope{Kind: KindEvent, UID: 1234567, ID: "kc-2", RealmID: "r2", RealmName: "beta", Type: "LOGIN", Body: []byte(`{}`)}
	otherWant := map[string]string{"uid": "1234567", "kind": "Event", "type": "LOGIN", "realm": "beta", "realm_id": "r2", "id": "kc-2"}

	ms := kafkaMessages([]envelope{env, other, env})
	for i, tc := range []struct {
		env  envelope
		want map[string]string
	}{{env, want}, {other, otherWant}, {env, want}} {
		m := ms[i]
		if string(m.Key) != tc.env.Key || string(m.Value) != string(tc.env.Body) || m.Realm != tc.env.RealmName || m.Kind != kindToken(tc.env.Kind) {
			t.Errorf("kafka message %d: key %q value %q realm %q kind %q", i, m.Key, m.Value, m.Realm, m.Kind)
		}
		got := map[string]string{}
		for _, h := range m.Headers {
			got[h.Key] = string(h.Value)
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("kafka message %d: headers %v, want %v", i, got, tc.want)
		}
	}
	if ms[0].Kind != "admin-event" {
		t.Errorf("kind token %q", ms[0].Kind)
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
