package kafkasink_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/kafkasink"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

func TestTLSAndMutualTLSProduceAndAWrongCAOrAMissingClientCertificateFailsNamingIt(t *testing.T) {
	k := testenv.KafkaEnv(t)
	k.NeedTLS(t)
	topic := k.NewTopic(t, "kcee-tls", 1)
	other := testenv.NewPKI(t) // a CA the broker's certificate is not of
	for _, tc := range []struct {
		name    string
		brokers string
		tls     kafkasink.TLS
		want    []string // in the error; none: produced
	}{
		{"TLS", k.TLSBrokers, kafkasink.TLS{CAFile: k.CAFile}, nil},
		{"mutual TLS", k.MTLSBrokers, kafkasink.TLS{CAFile: k.CAFile, CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile}, nil},
		{"a CA the broker's certificate is not of", k.TLSBrokers, kafkasink.TLS{CAFile: other.CAFile},
			[]string{"TLS", "broker's certificate", other.CAFile}},
		{"no client certificate where the broker requires one", k.MTLSBrokers, kafkasink.TLS{CAFile: k.CAFile},
			[]string{"TLS", "client certificate"}},
		{"a client certificate of another CA", k.MTLSBrokers, kafkasink.TLS{CAFile: k.CAFile, CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile},
			[]string{"TLS", "client certificate", other.ClientCertFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProducer(t, k, topic, func(c *kafkasink.Config) {
				c.Brokers = strings.Split(tc.brokers, ",")
				c.TLS = &tc.tls
				if tc.want != nil {
					c.DeliveryTimeout = 3 * time.Second
				}
			})
			start := time.Now()
			err := p.Produce(context.Background(), []kafkasink.Message{{Value: []byte(tc.name)}})[0]
			t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("produce: %v", err)
				}
				if recs := consume(t, k, topic, 1); len(recs) == 0 {
					t.Fatal("nothing consumed")
				}
				return
			}
			var pe interface{ Permanent() bool }
			switch {
			case err == nil:
				t.Fatal("produced")
			case errors.As(err, &pe) && pe.Permanent():
				t.Errorf("%v is permanent: a TLS setup is the operator's to fix, the events wait", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestOAuthBearerAuthenticatesWithAClientCredentialsTokenTheBrokerValidatesAndARefusedTokenRequestFailsClearly(t *testing.T) {
	k := testenv.KafkaEnv(t)
	k.NeedOAuth(t)
	topic := k.NewTopic(t, "kcee-oauth", 1)
	const clientID, secret = "kcee-emitter", "s3cret-of-the-client"
	te := k.StartTokenEndpoint(t, clientID, secret, "", time.Hour)
	otherAudience := k.StartTokenEndpoint(t, clientID, secret, "not-"+k.OAuthAudience, time.Hour)
	for _, tc := range []struct {
		name   string
		te     *testenv.TokenEndpoint
		secret string
		want   []string // in the error; none: produced
	}{
		{"the right secret", te, secret, nil},
		{"a secret the token endpoint refuses", te, "wrong-" + secret, []string{"OAUTHBEARER", te.URL, "401 Unauthorized", clientID}},
		{"a token for another audience, which the broker refuses", otherAudience, secret, []string{"SASL_AUTHENTICATION_FAILED"}},
	} {
		te := tc.te
		t.Run(tc.name, func(t *testing.T) {
			issued, refused := te.Issued.Load(), te.Refused.Load()
			p := newProducer(t, k, topic, func(c *kafkasink.Config) {
				c.Brokers = strings.Split(k.OAuthBrokers, ",")
				c.SASL = kafkasink.SASL{Mechanism: kafkasink.MechanismOAuthBearer, TokenURL: te.URL, ClientID: clientID, ClientSecret: tc.secret}
				if tc.want != nil {
					c.DeliveryTimeout = 3 * time.Second
				}
			})
			start := time.Now()
			err := p.Produce(context.Background(), []kafkasink.Message{{Value: []byte(tc.name)}})[0]
			t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("produce: %v", err)
				}
				if te.Issued.Load() == issued {
					t.Error("produced without a token of the endpoint")
				}
				consume(t, k, topic, 1)
				return
			}
			var pe interface{ Permanent() bool }
			switch {
			case err == nil:
				t.Fatal("produced")
			case errors.As(err, &pe) && pe.Permanent():
				t.Errorf("%v is permanent: a credential is the setup's, the events wait", err)
			case tc.secret != secret && te.Refused.Load() == refused:
				t.Error("the token endpoint refused nothing")
			case tc.secret == secret && te.Issued.Load() == issued:
				t.Error("the token endpoint issued no token")
			case strings.Contains(err.Error(), tc.secret):
				t.Errorf("the error shows the secret: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestOAuthBearerTokenTheBrokerRefusesIsForgottenAndTheNextProduceGetsANewOne(t *testing.T) {
	k := testenv.KafkaEnv(t)
	k.NeedOAuth(t)
	topic := k.NewTopic(t, "kcee-oauth-stale", 1)
	const clientID, secret = "kcee-emitter", "s3cret-of-the-client"
	te := k.StartTokenEndpoint(t, clientID, secret, "", time.Hour)
	te.Stale.Store(1) // the first token is refused, as after a rotation of the broker's keys
	p := newProducer(t, k, topic, func(c *kafkasink.Config) {
		c.Brokers = strings.Split(k.OAuthBrokers, ",")
		c.SASL = kafkasink.SASL{Mechanism: kafkasink.MechanismOAuthBearer, TokenURL: te.URL, ClientID: clientID, ClientSecret: secret}
		c.DeliveryTimeout = 3 * time.Second
	})
	err := p.Produce(context.Background(), []kafkasink.Message{{Value: []byte("first")}})[0]
	if err == nil || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
		t.Fatalf("produce with the refused token: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if err := p.Produce(context.Background(), []kafkasink.Message{{Value: []byte("second")}})[0]; err != nil {
		t.Fatalf("produce after the refusal: %v; want a new token (the cached one expires in an hour)", err)
	}
	if n := te.Issued.Load(); n != 2 {
		t.Errorf("%d tokens issued, want 2: the refused one and its replacement", n)
	}
	consume(t, k, topic, 1)
}
