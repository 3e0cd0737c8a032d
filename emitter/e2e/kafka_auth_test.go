package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// TestEmitterToKafkaOverTLSMutualTLSAndOAuthBearerByItsFlags runs the
// binary with --once against the broker's SSL listener, its listener that
// requires a client certificate, and its OAUTHBEARER listener (a token of
// the client credentials grant, the secret from the environment): every
// event arrives each time. A run with a client certificate missing, or a
// client secret the token endpoint refuses, delivers nothing and says why.
func TestEmitterToKafkaOverTLSMutualTLSAndOAuthBearerByItsFlags(t *testing.T) {
	k := testenv.KafkaEnv(t)
	k.NeedTLS(t)
	k.NeedOAuth(t)
	const clientID, secret = "kcee-e2e", "e2e-client-secret"
	te := k.StartTokenEndpoint(t, clientID, secret, "", time.Hour)
	secretFile := filepath.Join(t.TempDir(), "oauth-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		brokers string
		flags   []string
		env     []string
		fail    []string // in the log when nothing may arrive
	}{
		{"TLS", k.TLSBrokers, []string{"--kafkaTls", "--kafkaCaFile", k.CAFile}, nil, nil},
		{"mutual TLS", k.MTLSBrokers, []string{"--kafkaTls", "--kafkaCaFile", k.CAFile,
			"--kafkaClientCertFile", k.ClientCertFile, "--kafkaClientKeyFile", k.ClientKeyFile}, nil, nil},
		{"OAUTHBEARER, the secret in the environment", k.OAuthBrokers, []string{"--kafkaSaslMechanism", "OAUTHBEARER",
			"--kafkaOAuthTokenUrl", te.URL, "--kafkaOAuthClientId", clientID}, []string{"KC_EMITTER_KAFKA_OAUTH_CLIENT_SECRET=" + secret}, nil},
		{"OAUTHBEARER, the secret in a file", k.OAuthBrokers, []string{"--kafkaSaslMechanism", "OAUTHBEARER",
			"--kafkaOAuthTokenUrl", te.URL, "--kafkaOAuthClientId", clientID, "--kafkaOAuthClientSecretFile", secretFile}, nil, nil},
		{"mutual TLS without the client certificate", k.MTLSBrokers, []string{"--kafkaTls", "--kafkaCaFile", k.CAFile}, nil,
			[]string{"requires a client certificate and none is set", "check --kafkaCaFile, --kafkaClientCertFile"}},
		{"OAUTHBEARER with a secret the token endpoint refuses", k.OAuthBrokers, []string{"--kafkaSaslMechanism", "OAUTHBEARER",
			"--kafkaOAuthTokenUrl", te.URL, "--kafkaOAuthClientId", clientID}, []string{"KC_EMITTER_KAFKA_OAUTH_CLIENT_SECRET=wrong-" + secret},
			[]string{"the token endpoint answered 401 Unauthorized"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := k.NewTopic(t, "kcee-e2e-auth", 1)
			db, dbURL := newKeycloakDB(t, "r-acme")
			now := time.Now().UnixMilli()
			var want []string
			for i := range 5 {
				id := fmt.Sprintf("ev-%d", i)
				want = append(want, id)
				if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, details_json) VALUES ($1, 'r-acme', $2, 'LOGIN', 'u1', '{}')`, id, now+int64(i)); err != nil {
					t.Fatal(err)
				}
			}
			checkpoint := filepath.Join(t.TempDir(), "checkpoint.json")
			args := emitterArgs("kafka://"+tc.brokers+"/"+topic, checkpoint, freeAddr(t), append([]string{"--once",
				"--kafkaMaxBytes", strconv.Itoa(k.MaxBytes), "--kafkaDeliveryTimeout", "3s", "--retryWaitMax", "500ms"}, tc.flags...)...)
			em := start(t, "kc-event-emitter", args, append([]string{"KC_EMITTER_DB_URL=" + dbURL}, tc.env...)...)
			if tc.fail != nil {
				for _, f := range tc.fail {
					waitFor(t, time.Minute, "the log to say "+f, func() bool { return strings.Contains(em.output(), f) })
				}
				em.quiet = true
				em.kill()
				if n := k.EndOffset(t, topic); n != 0 {
					t.Errorf("%d records delivered", n)
				}
				if strings.Contains(em.output(), secret) {
					t.Error("the log shows the client secret")
				}
				return
			}
			if code := em.wait(2 * time.Minute); code != 0 {
				t.Fatalf("emitter --once exit status %d, want 0:\n%s", code, tail(em.output(), 20))
			}
			consumer := consumeKafka(t, k, topic)
			waitFor(t, time.Minute, "5 events in the topic", func() bool { return distinct(consumer.records()) >= 5 })
			checkOnceInOrder(t, consumer.records(), want, true)
			if n := k.EndOffset(t, topic); n != 5 {
				t.Errorf("the topic's end offset %d, want 5", n)
			}
		})
	}
}
