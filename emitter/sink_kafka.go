package emitter

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/kafkasink"
)

// KafkaConfig are the settings of a Kafka target. In a flags-only run
// --targetUri kafka://host:port[,host:port]/topic gives Brokers and Topic;
// Topic may be a template of {{realm}} (the realm's name) and {{kind}}
// (event or admin-event).
type KafkaConfig struct {
	Brokers []string
	Topic   string
	// BatchSize is the most events handed to the producer at once; Linger
	// how long a batch that is not full waits for more events.
	BatchSize int
	Linger    time.Duration
	// MaxBytes bounds a record batch, and so a record: keep it at or below
	// the broker's message.max.bytes. A larger record is dead-lettered.
	MaxBytes int32
	// Compression is the codec of record batches: none, gzip, snappy, lz4
	// or zstd.
	Compression string
	// DeliveryTimeout is how long the producer tries a record (broker
	// down, no leader) before the delivery backs off and tries again.
	DeliveryTimeout time.Duration
	// SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with Username and
	// Password; OAUTHBEARER with a token from OAuthTokenURL (client
	// credentials of OAuthClientID and OAuthClientSecret). Empty: none.
	SASLMechanism     string
	Username          string
	Password          string // secret
	OAuthTokenURL     string
	OAuthClientID     string
	OAuthClientSecret string // secret
	// TLS connects with TLS, trusting CAFile (else the system's CAs), with
	// the client certificate ClientCertFile and ClientKeyFile for mTLS.
	TLS                           bool
	CAFile                        string
	ClientCertFile, ClientKeyFile string
}

// defaultKafkaConfig holds the Kafka defaults (DefaultConfig takes them).
func defaultKafkaConfig() KafkaConfig {
	return KafkaConfig{BatchSize: 1000, Linger: 5 * time.Millisecond, MaxBytes: kafkasink.DefaultMaxBytes,
		Compression: kafkasink.DefaultCompression, DeliveryTimeout: kafkasink.DefaultDeliveryTimeout}
}

// Validate returns the first problem of k as a *FieldError naming the flag.
func (k KafkaConfig) Validate() error {
	return k.validate(func(f string) string { return flagKey("sink.kafka." + f) })
}

// validate returns the first problem of k as a *FieldError; key names a
// field of k by its key in a configuration file (brokers, topic, ...).
func (k KafkaConfig) validate(key func(string) string) error {
	bad := func(field string, value any, format string, args ...any) error {
		return &FieldError{Field: key(field), Value: fmt.Sprint(value), Err: fmt.Errorf(format, args...)}
	}
	if len(k.Brokers) == 0 {
		return bad("brokers", "", "missing: no broker (want host:port; a flag: kafka://host:port[,host:port]/topic)")
	}
	for _, b := range k.Brokers {
		host, port, err := net.SplitHostPort(b)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
			return bad("brokers", b, "a Kafka broker: want host:port")
		}
	}
	if err := kafkasink.CheckTopic(k.Topic); err != nil {
		return bad("topic", k.Topic, "the topic: %v", err)
	}
	if k.BatchSize < 1 {
		return bad("batchSize", k.BatchSize, "want a count > 0")
	}
	if k.Linger < 0 {
		return bad("linger", k.Linger, "want a duration >= 0")
	}
	if k.MaxBytes < 1024 {
		return bad("maxBytes", k.MaxBytes, "want at least 1024 bytes")
	}
	if err := kafkasink.CheckCompression(k.Compression); err != nil || k.Compression == "" {
		return bad("compression", k.Compression, "want one of %s", strings.Join(kafkasink.Compressions, ", "))
	}
	if k.DeliveryTimeout <= 0 {
		return bad("deliveryTimeout", k.DeliveryTimeout, "want a duration > 0")
	}
	switch strings.ToUpper(k.SASLMechanism) {
	case "":
	case kafkasink.MechanismPlain, kafkasink.MechanismSCRAMSHA256, kafkasink.MechanismSCRAMSHA512:
		if k.Username == "" {
			return bad("username", "", "missing: SASL %s needs a user", k.SASLMechanism)
		}
		if k.Password == "" {
			return bad("password", "", "missing: SASL %s needs a password (KC_EMITTER_KAFKA_PASSWORD or --kafkaPasswordFile; in a file: passwordFile or passwordEnv)", k.SASLMechanism)
		}
	case kafkasink.MechanismOAuthBearer:
		if err := checkHTTPURL(k.OAuthTokenURL); err != nil {
			return bad("oauthTokenUrl", k.OAuthTokenURL, "%v", err)
		}
		if k.OAuthClientID == "" {
			return bad("oauthClientId", "", "missing: OAUTHBEARER needs a client id")
		}
		if k.OAuthClientSecret == "" {
			return bad("oauthClientSecret", "", "missing: OAUTHBEARER needs a client secret (KC_EMITTER_KAFKA_OAUTH_CLIENT_SECRET or --kafkaOAuthClientSecretFile; in a file: oauthClientSecretFile or oauthClientSecretEnv)")
		}
	default:
		return bad("saslMechanism", k.SASLMechanism, "want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
	}
	if (k.ClientCertFile == "") != (k.ClientKeyFile == "") {
		return bad("clientCertFile", k.ClientCertFile, "the client certificate and its key (clientKeyFile) go together")
	}
	if !k.TLS && (k.CAFile != "" || k.ClientCertFile != "") {
		return bad("tls", false, "a CA or client certificate is set: set TLS on too (--kafkaTls; in a file: tls: true)")
	}
	return nil
}

// parseKafkaURI splits kafka://host:port[,host:port]/topic.
func parseKafkaURI(uri string) (brokers []string, topic string, ok bool) {
	rest, ok := strings.CutPrefix(uri, "kafka://")
	if !ok {
		return nil, "", false
	}
	hosts, topic, _ := strings.Cut(rest, "/")
	for h := range strings.SplitSeq(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			brokers = append(brokers, h)
		}
	}
	return brokers, topic, true
}

// kafkaConfig returns c.Kafka with the brokers and topic of a kafka://
// targetUri; ok is false for another target.
func (c Config) kafkaConfig() (k KafkaConfig, ok bool) {
	brokers, topic, ok := parseKafkaURI(c.TargetURI)
	if !ok {
		return KafkaConfig{}, false
	}
	k = c.Kafka
	if len(k.Brokers) == 0 {
		k.Brokers = brokers
	}
	if k.Topic == "" {
		k.Topic = topic
	}
	return k, true
}

// kafkaSink is the batchSink over a Kafka producer: each envelope a record
// keyed by envelope.Key, its value the encoded body as is, with headers.
type kafkaSink struct {
	p *kafkasink.Producer
}

func newKafkaSink(k KafkaConfig, log *slog.Logger) (*kafkaSink, error) {
	cfg := kafkasink.Config{
		Brokers: k.Brokers, Topic: k.Topic, MaxBytes: k.MaxBytes, Compression: k.Compression, DeliveryTimeout: k.DeliveryTimeout,
		SASL: kafkasink.SASL{Mechanism: k.SASLMechanism, Username: k.Username, Password: k.Password,
			TokenURL: k.OAuthTokenURL, ClientID: k.OAuthClientID, ClientSecret: k.OAuthClientSecret},
		Logger: log,
	}
	if k.TLS {
		cfg.TLS = &kafkasink.TLS{CAFile: k.CAFile, CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile}
	}
	p, err := kafkasink.New(cfg)
	if err != nil {
		return nil, &FieldError{Field: "targetUri", Value: "kafka://" + strings.Join(k.Brokers, ",") + "/" + k.Topic, Err: err}
	}
	return &kafkaSink{p: p}, nil
}

// Kafka record headers: what a consumer needs without decoding the value.
const (
	headerUID     = "uid"      // the snowflake uid, decimal: dedupe on it
	headerKind    = "kind"     // Event or AdminEvent
	headerType    = "type"     // the event type, or operation:resource of an admin event
	headerRealm   = "realm"    // the realm's name (empty when unknown)
	headerRealmID = "realm_id" // the realm's id
	headerID      = "id"       // Keycloak's id of the event
)

// kindToken is the {{kind}} of topic and subject templates.
func kindToken(k Kind) string {
	if k == KindAdminEvent {
		return "admin-event"
	}
	return "event"
}

// kafkaMessages returns the records of envs. Their keys and header values
// are slices of one buffer, and their headers of one slice, so that a
// batch of a thousand costs three allocations, not eight a record.
func kafkaMessages(envs []envelope) []kafkasink.Message {
	const nHeaders = 6
	size := 0
	for _, env := range envs {
		size += len(env.Key) + 20 + len(env.Kind) + len(env.Type) + len(env.RealmName) + len(env.RealmID) + len(env.ID)
	}
	buf := make([]byte, 0, size)
	// since returns what buf gained since start, capped so that no append
	// to one value can write over the next.
	since := func(start int) []byte { return buf[start:len(buf):len(buf)] }
	add := func(s string) []byte {
		start := len(buf)
		buf = append(buf, s...)
		return since(start)
	}
	headers := make([]kafkasink.Header, nHeaders*len(envs))
	msgs := make([]kafkasink.Message, len(envs))
	for i, env := range envs {
		h := headers[nHeaders*i : nHeaders*(i+1) : nHeaders*(i+1)]
		start := len(buf)
		buf = strconv.AppendInt(buf, env.UID, 10)
		h[0] = kafkasink.Header{Key: headerUID, Value: since(start)}
		h[1] = kafkasink.Header{Key: headerKind, Value: add(string(env.Kind))}
		h[2] = kafkasink.Header{Key: headerType, Value: add(env.Type)}
		h[3] = kafkasink.Header{Key: headerRealm, Value: add(env.RealmName)}
		h[4] = kafkasink.Header{Key: headerRealmID, Value: add(env.RealmID)}
		h[5] = kafkasink.Header{Key: headerID, Value: add(env.ID)}
		msgs[i] = kafkasink.Message{Realm: env.RealmName, Kind: kindToken(env.Kind), Key: add(env.Key), Value: env.Body, Headers: h}
	}
	return msgs
}

// SendBatch produces envs in order and waits until the broker answered
// each; a refusal for good is an error whose Permanent method says so.
func (s *kafkaSink) SendBatch(ctx context.Context, envs []envelope) []error {
	return s.StartBatch(ctx, envs).Wait()
}

// StartBatch hands envs to the producer in order and returns at once.
func (s *kafkaSink) StartBatch(ctx context.Context, envs []envelope) sentBatch {
	return s.p.Start(ctx, kafkaMessages(envs))
}

// Send sends one envelope as a batch of one.
func (s *kafkaSink) Send(ctx context.Context, env envelope) error {
	return s.SendBatch(ctx, []envelope{env})[0]
}

func (s *kafkaSink) Close() { s.p.Close() }

var _ pipelinedSink = (*kafkaSink)(nil)
