package emitter

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/natssink"
)

// NATSConfig are the settings of a NATS JetStream target. In a flags-only
// run --targetUri nats://host:port[,host:port]/subject gives Servers and
// Subject; Subject may be a template of {{realm}} (the realm's name) and
// {{kind}} (event or admin-event). A JetStream stream must listen on the
// subjects: a message no stream takes is dead-lettered.
type NATSConfig struct {
	Servers []string // nats://host:port (tls://host:port for TLS)
	Subject string
	// BatchSize is the most events published at once (asynchronously);
	// Linger how long a batch that is not full waits for more events.
	BatchSize int
	Linger    time.Duration
	// AckTimeout is how long a message waits for JetStream's
	// acknowledgement before the delivery backs off and tries again.
	AckTimeout time.Duration
	// Credentials: Username and Password, or Token, or a .creds file.
	Username  string
	Password  string // secret
	Token     string // secret
	CredsFile string
	// TLS: CAFile to trust, ClientCertFile and ClientKeyFile for mTLS.
	CAFile                        string
	ClientCertFile, ClientKeyFile string
}

// defaultNATSConfig holds the NATS defaults (DefaultConfig takes them).
func defaultNATSConfig() NATSConfig {
	return NATSConfig{BatchSize: 1000, Linger: 5 * time.Millisecond, AckTimeout: natssink.DefaultAckTimeout}
}

// Validate returns the first problem of n as a *FieldError naming the flag.
func (n NATSConfig) Validate() error {
	return n.validate(func(f string) string { return flagKey("sink.nats." + f) })
}

// validate returns the first problem of n as a *FieldError; key names a
// field of n by its key in a configuration file (servers, subject, ...).
func (n NATSConfig) validate(key func(string) string) error {
	bad := func(field string, value any, format string, args ...any) error {
		return &FieldError{Field: key(field), Value: fmt.Sprint(value), Err: fmt.Errorf(format, args...)}
	}
	if len(n.Servers) == 0 {
		return bad("servers", "", "missing: no server (want nats://host:port; a flag: nats://host:port[,host:port]/subject)")
	}
	for _, s := range n.Servers {
		hp := s
		for _, scheme := range []string{"nats://", "tls://"} {
			hp = strings.TrimPrefix(hp, scheme)
		}
		host, port, err := net.SplitHostPort(hp)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
			return bad("servers", s, "a NATS server: want nats://host:port")
		}
	}
	if err := natssink.CheckSubject(n.Subject); err != nil {
		return bad("subject", n.Subject, "the subject: %v", err)
	}
	if n.BatchSize < 1 {
		return bad("batchSize", n.BatchSize, "want a count > 0")
	}
	if n.Linger < 0 {
		return bad("linger", n.Linger, "want a duration >= 0")
	}
	if n.AckTimeout <= 0 {
		return bad("ackTimeout", n.AckTimeout, "want a duration > 0")
	}
	if n.Username != "" && n.Password == "" {
		return bad("password", "", "missing: the user name needs a password (KC_EMITTER_NATS_PASSWORD or --natsPasswordFile; in a file: passwordFile or passwordEnv)")
	}
	if (n.ClientCertFile == "") != (n.ClientKeyFile == "") {
		return bad("clientCertFile", n.ClientCertFile, "the client certificate and its key (clientKeyFile) go together")
	}
	return nil
}

// natsConfig returns c.NATS with the servers and subject of a nats://
// targetUri; ok is false for another target.
func (c Config) natsConfig() (n NATSConfig, ok bool) {
	rest, ok := strings.CutPrefix(c.TargetURI, "nats://")
	if !ok {
		return NATSConfig{}, false
	}
	n = c.NATS
	hosts, subject, _ := strings.Cut(rest, "/")
	if len(n.Servers) == 0 {
		for h := range strings.SplitSeq(hosts, ",") {
			if h = strings.TrimSpace(h); h != "" {
				n.Servers = append(n.Servers, "nats://"+h)
			}
		}
	}
	if n.Subject == "" {
		n.Subject = subject
	}
	return n, true
}

// natsSink is the batchSink over a JetStream publisher: each envelope a
// message with Nats-Msg-Id = uid, its data the encoded body as is, with
// the headers of a Kafka record.
type natsSink struct {
	p *natssink.Publisher
}

func newNATSSink(n NATSConfig, log *slog.Logger) (*natsSink, error) {
	p, err := natssink.New(natssink.Config{
		Servers: n.Servers, Subject: n.Subject, AckTimeout: n.AckTimeout,
		Username: n.Username, Password: n.Password, Token: n.Token, CredsFile: n.CredsFile,
		CAFile: n.CAFile, CertFile: n.ClientCertFile, KeyFile: n.ClientKeyFile, Logger: log,
	})
	if err != nil {
		return nil, &FieldError{Field: "targetUri", Value: strings.Join(n.Servers, ",") + "/" + n.Subject, Err: err}
	}
	return &natsSink{p: p}, nil
}

func natsMessage(env envelope) natssink.Message {
	uid := strconv.FormatInt(env.UID, 10)
	return natssink.Message{
		Realm: env.RealmName, Kind: kindToken(env.Kind), ID: uid, Data: env.Body,
		Headers: map[string]string{
			headerUID: uid, headerKind: string(env.Kind), headerType: env.Type,
			headerRealm: env.RealmName, headerRealmID: env.RealmID, headerID: env.ID,
		},
	}
}

// SendBatch publishes envs in order and waits for JetStream's
// acknowledgement of each; a refusal for good is an error whose Permanent
// method says so.
func (s *natsSink) SendBatch(ctx context.Context, envs []envelope) []error {
	return s.StartBatch(ctx, envs).Wait()
}

// StartBatch publishes envs in order and returns at once.
func (s *natsSink) StartBatch(ctx context.Context, envs []envelope) sentBatch {
	msgs := make([]natssink.Message, len(envs))
	for i, env := range envs {
		msgs[i] = natsMessage(env)
	}
	return s.p.Start(ctx, msgs)
}

// Send sends one envelope as a batch of one.
func (s *natsSink) Send(ctx context.Context, env envelope) error {
	return s.SendBatch(ctx, []envelope{env})[0]
}

func (s *natsSink) Close() { s.p.Close() }

var _ pipelinedSink = (*natsSink)(nil)
