// Package kafkasink produces encoded events to Apache Kafka with franz-go:
// an idempotent producer with acks=all, one topic per route or a template of
// the realm and the kind, records keyed by the caller. Produce hands a batch
// to the client at once, in order, and returns once the broker acknowledged
// (or refused) every record; a refusal for good is an *Error whose Permanent
// method says so.
package kafkasink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/nametmpl"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/tlsfiles"
)

// The SASL mechanisms Config.SASL.Mechanism accepts.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
	MechanismOAuthBearer = "OAUTHBEARER"
)

// The codecs Config.Compression accepts.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// Defaults of Config's zero values.
const (
	DefaultMaxBytes            = 1_000_000
	DefaultDeliveryTimeout     = 30 * time.Second
	DefaultUnknownTopicRetries = 6
	DefaultCompression         = "snappy"
)

// Config is what a Producer needs.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Topic is the topic, or a template of {{realm}} (the realm's name) and
	// {{kind}} (as the caller names it); see Topic.
	Topic string
	// ClientID names the producer to the brokers; empty: kc-event-emitter.
	ClientID string
	// Linger is how long the client waits to fill a record batch; 0 sends
	// what it has.
	Linger time.Duration
	// MaxBytes bounds a record batch (and so a record), before compression;
	// keep it at or below the broker's message.max.bytes (and the topic's
	// max.message.bytes). 0: DefaultMaxBytes.
	MaxBytes int32
	// Compression is the codec of record batches, one of Compressions;
	// empty: DefaultCompression. MaxBytes bounds a batch before it, the
	// broker's limit after it.
	Compression string
	// DeliveryTimeout is how long a record may wait for the broker (broker
	// down, no leader) before Produce returns a passing error for it; 0:
	// DefaultDeliveryTimeout.
	DeliveryTimeout time.Duration
	// UnknownTopicRetries is how many metadata loads may say that a topic
	// does not exist before its records are refused for good; 0:
	// DefaultUnknownTopicRetries.
	UnknownTopicRetries int
	SASL                SASL
	// TLS, when not nil, connects with TLS.
	TLS    *TLS
	Logger *slog.Logger // nil: slog.Default()
}

// SASL are the credentials of the SASL mechanism; an empty Mechanism
// authenticates nobody.
type SASL struct {
	Mechanism          string // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER
	Username, Password string // PLAIN and SCRAM
	// OAUTHBEARER: a token from TokenURL by the client credentials grant.
	TokenURL, ClientID, ClientSecret string
	Scopes                           []string
}

// TLS is the TLS setup: the CAs to trust (none: the system's), and a
// client certificate for mutual TLS.
type TLS struct {
	CAFile            string
	CertFile, KeyFile string
	ServerName        string // empty: the broker's host
}

// Header is a record header.
type Header = kgo.RecordHeader

// Message is one record to produce.
type Message struct {
	// Realm and Kind fill the topic template.
	Realm, Kind string
	// Key is the record's key; empty: no key (the client spreads such
	// records over the partitions).
	Key     []byte
	Value   []byte
	Headers []Header
}

// Error is a record the producer could not deliver.
type Error struct {
	Topic     string
	Err       error
	permanent bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("kafka topic %q: %v", e.Topic, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent tells whether the broker refused the record for good: sending
// it again cannot succeed.
func (e *Error) Permanent() bool { return e.permanent }

// Producer produces Messages.
type Producer struct {
	cl       *kgo.Client
	topic    nametmpl.Template
	maxBytes int32
	tls      *TLS    // nil: no TLS
	tokens   *tokens // OAUTHBEARER's; nil for another mechanism
}

// New returns a producer for cfg. It does not connect: the first Produce
// does, and a broker that is not reachable is a passing error.
func New(cfg Config) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	topic, err := parseTemplate(cfg.Topic)
	if err != nil {
		return nil, err
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxBytes < 1024 {
		return nil, fmt.Errorf("kafka: max bytes %d: want at least 1024", cfg.MaxBytes)
	}
	if cfg.DeliveryTimeout == 0 {
		cfg.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if cfg.UnknownTopicRetries == 0 {
		cfg.UnknownTopicRetries = DefaultUnknownTopicRetries
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "kc-event-emitter"
	}
	codec, err := compression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()), // and idempotent, franz-go's default
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchMaxBytes(cfg.MaxBytes),
		kgo.ProducerBatchCompression(codec),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout + cfg.Linger),
		kgo.UnknownTopicRetries(cfg.UnknownTopicRetries),
		kgo.MaxBufferedRecords(100_000),
		kgo.WithLogger(slogger{log}),
	}
	if cfg.TLS != nil {
		tc, err := tlsConfig(*cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	m, toks, err := mechanism(cfg.SASL)
	if err != nil {
		return nil, err
	} else if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return &Producer{cl: cl, topic: topic, maxBytes: cfg.MaxBytes, tls: cfg.TLS, tokens: toks}, nil
}

// Close flushes nothing (Produce waits for its records) and closes the
// connections.
func (p *Producer) Close() { p.cl.Close() }

// Topic returns the topic of m.
func (p *Producer) Topic(m Message) string { return p.topic.Expand(m.Realm, m.Kind, topicRune) }

// recordOverhead bounds what a record batch adds to a record's key, value
// and headers (the batch header and the record's own varints).
const recordOverhead = 128

// Produce produces msgs in order and returns one error per message, nil
// for those the broker acknowledged, once every record is done. Records
// with the same key go to the same partition in the order given; the
// idempotent producer keeps that order under its retries.
func (p *Producer) Produce(ctx context.Context, msgs []Message) []error {
	return p.Start(ctx, msgs).Wait()
}

// Sent is a batch handed to the client, answered record by record.
type Sent struct {
	wg     sync.WaitGroup
	errs   []error
	failed atomic.Bool
}

// Wait blocks until the broker answered each record of the batch and
// returns what Produce does.
func (s *Sent) Wait() []error {
	s.wg.Wait()
	return s.errs
}

// Failed tells, without waiting, whether a record of the batch failed
// already.
func (s *Sent) Failed() bool { return s.failed.Load() }

// Start hands msgs to the client in order, after those of the calls
// before, and returns at once.
func (p *Producer) Start(ctx context.Context, msgs []Message) *Sent {
	sent := &Sent{errs: make([]error, len(msgs))}
	errs := sent.errs
	// The records are one allocation, held until every record is done;
	// they take the messages' headers as they are.
	recs := make([]kgo.Record, len(msgs))
	for i, m := range msgs {
		topic := p.Topic(m)
		if n := size(m); n+recordOverhead > int(p.maxBytes) {
			errs[i] = &Error{Topic: topic, permanent: true,
				Err: fmt.Errorf("%w: the record's %d bytes exceed the producer's max bytes %d", kerr.MessageTooLarge, n, p.maxBytes)}
			sent.failed.Store(true)
			continue
		}
		rec := &recs[i]
		rec.Topic, rec.Value, rec.Headers = topic, m.Value, m.Headers
		if len(m.Key) > 0 {
			rec.Key = m.Key
		}
		sent.wg.Add(1)
		p.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			if err != nil {
				errs[i] = p.classify(r.Topic, err)
				sent.failed.Store(true)
			}
			sent.wg.Done()
		})
	}
	return sent
}

func size(m Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// classify wraps err, a record's failure, as an *Error, permanent when the
// broker refused the record for good; a TLS failure says which side's
// certificate failed.
func (p *Producer) classify(topic string, err error) error {
	e := &Error{Topic: topic, Err: err}
	if p.tokens != nil && errors.Is(err, kerr.SaslAuthenticationFailed) {
		p.tokens.forget() // the next connection asks for a new token
	}
	if p.tls != nil {
		if hint := (tlsfiles.Setup{Peer: "the broker", CAFile: p.tls.CAFile, CertFile: p.tls.CertFile}).Describe(err, false); hint != "" {
			e.Err = fmt.Errorf("%w: %s", err, hint)
			return e
		}
	}
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		// The record itself fits the producer's max bytes (Produce refused
		// it otherwise), so the broker refused the batch it was in: its
		// limit is below the producer's. Not this record's fault: passing,
		// so that no event is dead-lettered for a setting, and said so.
		e.Err = fmt.Errorf("%w: the broker's message.max.bytes (or the topic's max.message.bytes) is below the producer's max bytes: lower it to the broker's", err)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		e.permanent = true
		e.Err = fmt.Errorf("%w: the topic does not exist and the broker does not create it", err)
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.InvalidRecord):
		e.permanent = true
	}
	return e
}

// compression returns the codec named name (empty: DefaultCompression).
func compression(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "", "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("kafka compression %q: want one of %s", name, strings.Join(Compressions, ", "))
}

// CheckCompression checks a codec name as New would.
func CheckCompression(name string) error {
	_, err := compression(name)
	return err
}

func parseTemplate(s string) (nametmpl.Template, error) {
	if s == "" {
		return nametmpl.Template{}, errors.New("kafka: no topic")
	}
	t, err := nametmpl.Parse(s, "kafka topic")
	if err != nil {
		return nametmpl.Template{}, err
	}
	for _, p := range t.Literals() {
		if strings.IndexFunc(p, notTopicRune) >= 0 {
			return nametmpl.Template{}, fmt.Errorf("kafka topic %q: %q holds a character a topic name cannot (letters, digits, '.', '_', '-')", s, p)
		}
	}
	if t.Fixed() && (len(s) > 249 || s == "." || s == "..") {
		return nametmpl.Template{}, fmt.Errorf("kafka topic %q: not a valid topic name", s)
	}
	return t, nil
}

// topicRune maps a character of a realm's name that a topic name cannot
// hold to '_'.
func topicRune(r rune) rune {
	if notTopicRune(r) {
		return '_'
	}
	return r
}

func notTopicRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
}

// CheckTopic checks a topic or topic template as New would.
func CheckTopic(topic string) error {
	_, err := parseTemplate(topic)
	return err
}

// IsTemplate tells whether topic holds a placeholder.
func IsTemplate(topic string) bool { return strings.Contains(topic, "{{") }

func tlsConfig(t TLS) (*tls.Config, error) {
	tc, err := tlsfiles.Files{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}.Config()
	if err != nil {
		return nil, fmt.Errorf("kafka TLS: %w", err)
	}
	tc.ServerName = t.ServerName
	return tc, nil
}

// tokenTimeout bounds a request to the OAUTHBEARER token endpoint.
const tokenTimeout = 15 * time.Second

func mechanism(s SASL) (sasl.Mechanism, *tokens, error) {
	switch strings.ToUpper(s.Mechanism) {
	case "":
		return nil, nil, nil
	case MechanismPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil, nil
	case MechanismSCRAMSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil, nil
	case MechanismSCRAMSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil, nil
	case MechanismOAuthBearer:
		if s.TokenURL == "" || s.ClientID == "" {
			return nil, nil, errors.New("kafka OAUTHBEARER: needs a token URL and a client id")
		}
		cc := &clientcredentials.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret, TokenURL: s.TokenURL, Scopes: s.Scopes}
		// The token source caches the token until it expires; its client
		// bounds a fetch, so that a token endpoint that does not answer
		// fails the connection rather than hanging it.
		hc := &http.Client{Timeout: tokenTimeout}
		toks := &tokens{fresh: func() oauth2.TokenSource {
			return cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc))
		}}
		toks.forget()
		return oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
			tok, err := toks.token()
			var re *oauth2.RetrieveError
			if errors.As(err, &re) && re.Response != nil {
				return oauth.Auth{}, fmt.Errorf("kafka OAUTHBEARER token from %s: the token endpoint answered %s to client %q: %w", s.TokenURL, re.Response.Status, s.ClientID, err)
			}
			if err != nil {
				return oauth.Auth{}, fmt.Errorf("kafka OAUTHBEARER token from %s: %w", s.TokenURL, err)
			}
			return oauth.Auth{Token: tok.AccessToken}, nil
		}), toks, nil
	}
	return nil, nil, fmt.Errorf("kafka SASL mechanism %q: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", s.Mechanism)
}

// tokens is the OAUTHBEARER token cache: a token is used until it expires,
// or until the broker refuses it (a signing key rotated, a token revoked),
// when forget drops it.
type tokens struct {
	fresh func() oauth2.TokenSource
	mu    sync.Mutex
	src   oauth2.TokenSource
}

func (t *tokens) token() (*oauth2.Token, error) {
	t.mu.Lock()
	src := t.src
	t.mu.Unlock()
	return src.Token()
}

// forget drops the cached token: the next connection asks for a new one.
func (t *tokens) forget() {
	src := t.fresh()
	t.mu.Lock()
	t.src = src
	t.mu.Unlock()
}

// slogger passes the client's warnings and errors to slog.
type slogger struct{ log *slog.Logger }

func (l slogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l slogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelInfo
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelDebug:
		lv = slog.LevelDebug
	}
	for i := 0; i+1 < len(keyvals); i += 2 {
		if keyvals[i] == "err" {
			keyvals[i] = "error" // the project's key
		}
	}
	l.log.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
