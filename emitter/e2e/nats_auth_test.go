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

// natsStream creates the stream KC on kc.> through a connection of opts
// and returns it with its connection open until the test ends.
func natsStream(t *testing.T, url string, opts ...nats.Option) jetstream.Stream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "KC", Subjects: []string{"kc.>"}, Duplicates: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestEmitterToNATSWithAPasswordATokenACredsFileAndMutualTLSByItsFlags runs
// the binary with --once against NATS servers that require a user and
// password (the password from the environment and from a file), a token,
// a .creds file of an operator's account, and a client certificate: every
// event arrives each time. A wrong password or a missing client
// certificate delivers nothing and says why, and no secret is logged.
func TestEmitterToNATSWithAPasswordATokenACredsFileAndMutualTLSByItsFlags(t *testing.T) {
	const user, password, token = "kcee", "nats-e2e-pass-word", "nats-e2e-token"
	dir := t.TempDir()
	secretFile := func(name, value string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	passwordFile, tokenFile := secretFile("password", password), secretFile("token", token)

	users := testenv.StartNATSWith(t, func(o *server.Options) { o.Users = []*server.User{{Username: user, Password: password}} })
	usersStream := natsStream(t, users.URL(), nats.UserInfo(user, password))
	tokens := testenv.StartNATSWith(t, func(o *server.Options) { o.Authorization = token })
	tokensStream := natsStream(t, tokens.URL(), nats.Token(token))
	op := testenv.NewNATSOperator(t)
	creds := testenv.StartNATSWith(t, op.Configure)
	credsStream := natsStream(t, creds.URL(), nats.UserCredentials(op.CredsFile))
	pki := testenv.NewPKI(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.ServerCertFile, KeyFile: pki.ServerKeyFile, CaFile: pki.CAFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	mtls := testenv.StartNATSWith(t, func(o *server.Options) { o.TLSConfig, o.TLSVerify, o.TLSTimeout = tc, true, 5 })
	mtlsStream := natsStream(t, "tls://"+mtls.HostPort(), nats.RootCAs(pki.CAFile), nats.ClientCert(pki.ClientCertFile, pki.ClientKeyFile))

	for _, c := range []struct {
		name   string
		server string
		st     jetstream.Stream
		flags  []string
		env    []string
		fail   []string // in the log when nothing may arrive
	}{
		{"user, the password in the environment", users.URL(), usersStream, []string{"--natsUsername", user},
			[]string{"KC_EMITTER_NATS_PASSWORD=" + password}, nil},
		{"user, the password in a file", users.URL(), usersStream, []string{"--natsUsername", user, "--natsPasswordFile", passwordFile}, nil, nil},
		{"token in a file", tokens.URL(), tokensStream, []string{"--natsTokenFile", tokenFile}, nil, nil},
		{"creds file", creds.URL(), credsStream, []string{"--natsCredsFile", op.CredsFile}, nil, nil},
		{"mutual TLS", mtls.URL(), mtlsStream, []string{"--natsCaFile", pki.CAFile,
			"--natsClientCertFile", pki.ClientCertFile, "--natsClientKeyFile", pki.ClientKeyFile}, nil, nil},
		{"a wrong password", users.URL(), usersStream, []string{"--natsUsername", user},
			[]string{"KC_EMITTER_NATS_PASSWORD=wrong-" + password}, []string{"the server refused the credentials"}},
		{"mutual TLS without the client certificate", mtls.URL(), mtlsStream, []string{"--natsCaFile", pki.CAFile}, nil,
			[]string{"client certificate"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			realm := fmt.Sprintf("r-%d", time.Now().UnixNano())
			db, dbURL := newKeycloakDB(t, realm)
			name := strings.TrimPrefix(realm, "r-") // the realm's name, in the headers
			now := time.Now().UnixMilli()
			var want []string
			for i := range 5 {
				id := fmt.Sprintf("%s-ev-%d", realm, i)
				want = append(want, id)
				if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, details_json) VALUES ($1, $2, $3, 'LOGIN', 'u1', '{}')`,
					id, realm, now+int64(i)); err != nil {
					t.Fatal(err)
				}
			}
			before := storedOf(t, c.st, name)
			args := emitterArgs(c.server+"/kc.{{realm}}.{{kind}}", filepath.Join(t.TempDir(), "checkpoint.json"), freeAddr(t),
				append([]string{"--once", "--natsAckTimeout", "3s", "--retryWaitMax", "500ms"}, c.flags...)...)
			em := start(t, "kc-event-emitter", args, append([]string{"KC_EMITTER_DB_URL=" + dbURL}, c.env...)...)
			if c.fail != nil {
				for _, f := range c.fail {
					waitFor(t, time.Minute, "the log to say "+f, func() bool { return strings.Contains(em.output(), f) })
				}
				em.quiet = true
				em.kill()
				if n := len(storedOf(t, c.st, name)) - len(before); n != 0 {
					t.Errorf("%d events delivered", n)
				}
			} else {
				if code := em.wait(2 * time.Minute); code != 0 {
					t.Fatalf("emitter --once exit status %d, want 0:\n%s", code, tail(em.output(), 20))
				}
				checkOnceInOrder(t, storedOf(t, c.st, name), want, true)
			}
			for _, secret := range []string{password, token} {
				if strings.Contains(em.output(), secret) {
					t.Errorf("the log shows a secret (%d bytes)", len(secret))
				}
			}
		})
	}
}

// storedOf returns the messages of st of the realm named realm.
func storedOf(t *testing.T, st jetstream.Stream, realm string) []streamRecord {
	t.Helper()
	var out []streamRecord
	for _, r := range natsRecords(t, st) {
		if r.realm == realm {
			out = append(out, r)
		}
	}
	return out
}
