package natssink_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/natssink"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// addStream creates the stream KC on kc.> through a connection of opts.
func addStream(t *testing.T, url string, opts ...nats.Option) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "KC", Subjects: []string{"kc.>"}}); err != nil {
		t.Fatal(err)
	}
}

// publishOne publishes one message with cfg and returns its error.
func publishOne(t *testing.T, cfg natssink.Config) error {
	t.Helper()
	cfg.Subject, cfg.AckTimeout = "kc.{{realm}}.{{kind}}", 3*time.Second
	p, err := natssink.New(cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Publish(context.Background(), messages(0, 1))[0]
}

func TestUserPasswordAndTokenAuthenticateAndAWrongOneFailsSayingTheServerRefusedIt(t *testing.T) {
	const user, password, token = "kcee", "nats-pass-word", "nats-token-value"
	users := testenv.StartNATSWith(t, func(o *server.Options) { o.Users = []*server.User{{Username: user, Password: password}} })
	addStream(t, users.URL(), nats.UserInfo(user, password))
	tokens := testenv.StartNATSWith(t, func(o *server.Options) { o.Authorization = token })
	addStream(t, tokens.URL(), nats.Token(token))
	for _, tc := range []struct {
		name   string
		cfg    natssink.Config
		secret string
		ok     bool
	}{
		{"user and password", natssink.Config{Servers: []string{users.URL()}, Username: user, Password: password}, password, true},
		{"a wrong password", natssink.Config{Servers: []string{users.URL()}, Username: user, Password: "wrong-" + password}, "wrong-" + password, false},
		{"no credentials", natssink.Config{Servers: []string{users.URL()}}, "", false},
		{"token", natssink.Config{Servers: []string{tokens.URL()}, Token: token}, token, true},
		{"a wrong token", natssink.Config{Servers: []string{tokens.URL()}, Token: "wrong-" + token}, "wrong-" + token, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := publishOne(t, tc.cfg)
			t.Logf("%v", err)
			var pe interface{ Permanent() bool }
			switch {
			case tc.ok && err != nil:
				t.Fatalf("publish: %v", err)
			case tc.ok:
			case err == nil:
				t.Fatal("published")
			case errors.As(err, &pe) && pe.Permanent():
				t.Errorf("%v is permanent: a credential is the setup's, the events wait", err)
			case !strings.Contains(err.Error(), "the server refused the credentials"):
				t.Errorf("error %q does not say that the server refused the credentials", err)
			case tc.secret != "" && strings.Contains(err.Error(), tc.secret):
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestTLSWithTheServersCAAndMutualTLSPublishAndAnotherCAOrNoClientCertificateFailsNamingIt(t *testing.T) {
	pki, other := testenv.NewPKI(t), testenv.NewPKI(t)
	start := func(verify bool) *testenv.NATS {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.ServerCertFile, KeyFile: pki.ServerKeyFile, CaFile: pki.CAFile, Verify: verify})
		if err != nil {
			t.Fatal(err)
		}
		srv := testenv.StartNATSWith(t, func(o *server.Options) { o.TLSConfig, o.TLSVerify, o.TLSTimeout = tc, verify, 5 })
		opts := []nats.Option{nats.RootCAs(pki.CAFile)}
		if verify {
			opts = append(opts, nats.ClientCert(pki.ClientCertFile, pki.ClientKeyFile))
		}
		addStream(t, "tls://"+srv.HostPort(), opts...)
		return srv
	}
	tlsSrv, mtlsSrv := start(false), start(true)
	for _, tc := range []struct {
		name string
		cfg  natssink.Config
		want []string // in the error; none: published
	}{
		{"TLS", natssink.Config{Servers: []string{"tls://" + tlsSrv.HostPort()}, CAFile: pki.CAFile}, nil},
		{"TLS of a nats:// URL with a CA", natssink.Config{Servers: []string{tlsSrv.URL()}, CAFile: pki.CAFile}, nil},
		{"mutual TLS", natssink.Config{Servers: []string{"tls://" + mtlsSrv.HostPort()}, CAFile: pki.CAFile,
			CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}, nil},
		{"another CA", natssink.Config{Servers: []string{"tls://" + tlsSrv.HostPort()}, CAFile: other.CAFile},
			[]string{"certificate", other.CAFile}},
		{"no client certificate where the server requires one", natssink.Config{Servers: []string{"tls://" + mtlsSrv.HostPort()}, CAFile: pki.CAFile},
			[]string{"client certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := publishOne(t, tc.cfg)
			t.Logf("%v", err)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("publish: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("published")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestACredsFileOfTheOperatorsAccountAuthenticatesAndOneOfAnUnknownAccountFails(t *testing.T) {
	op := testenv.NewNATSOperator(t)
	srv := testenv.StartNATSWith(t, op.Configure)
	addStream(t, srv.URL(), nats.UserCredentials(op.CredsFile))
	if err := publishOne(t, natssink.Config{Servers: []string{srv.URL()}, CredsFile: op.CredsFile}); err != nil {
		t.Fatalf("publish with the account's user: %v", err)
	}
	err := publishOne(t, natssink.Config{Servers: []string{srv.URL()}, CredsFile: op.OtherCredsFile})
	t.Logf("%v", err)
	if err == nil || !strings.Contains(err.Error(), "the server refused the credentials") {
		t.Errorf("a user of an unknown account: %v, want the server refusing the credentials", err)
	}
}
