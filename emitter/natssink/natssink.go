// Package natssink publishes encoded events to NATS JetStream: one subject
// per route or a template of the realm and the kind, each message with the
// id the caller gives (Nats-Msg-Id), so that JetStream's duplicate window
// drops a message sent again. Publish hands a batch over asynchronously, in
// order, and returns once JetStream acknowledged (or refused) each message;
// a refusal for good is an *Error whose Permanent method says so.
package natssink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/nametmpl"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/tlsfiles"
)

// DefaultAckTimeout is Config.AckTimeout's default.
const DefaultAckTimeout = 10 * time.Second

// Config is what a Publisher needs.
type Config struct {
	// Servers are the NATS URLs, nats://host:port (or tls://).
	Servers []string
	// Subject is the subject, or a template of {{realm}} (the realm's
	// name) and {{kind}} (as the caller names it); see Subject.
	Subject string
	// Name names the connection to the server; empty: kc-event-emitter.
	Name string
	// AckTimeout is how long a message waits for JetStream's
	// acknowledgement (server down, no leader) before Publish returns a
	// passing error for it; 0: DefaultAckTimeout.
	AckTimeout time.Duration
	// Credentials: a user and password, a token, or a .creds file (JWT and
	// NKey seed).
	Username, Password string
	Token              string
	CredsFile          string
	// TLS: the CAs to trust and a client certificate; TLS is used when
	// either is set or a server URL is tls://.
	CAFile            string
	CertFile, KeyFile string
	Logger            *slog.Logger // nil: slog.Default()
}

// Message is one message to publish.
type Message struct {
	// Realm and Kind fill the subject template.
	Realm, Kind string
	// ID is the Nats-Msg-Id: JetStream drops a message whose id it saw
	// within the stream's duplicate window.
	ID      string
	Data    []byte
	Headers map[string]string
}

// Error is a message JetStream did not take.
type Error struct {
	Subject   string
	Err       error
	permanent bool
}

func (e *Error) Error() string { return fmt.Sprintf("nats subject %q: %v", e.Subject, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Permanent tells whether the message was refused for good.
func (e *Error) Permanent() bool { return e.permanent }

// Publisher publishes Messages.
type Publisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject nametmpl.Template
	timeout time.Duration
	// The TLS files, named when the handshake fails.
	caFile, certFile string
}

// New returns a publisher for cfg. A server that is not reachable yet is
// not an error: the connection is retried in the background and Publish
// returns passing errors meanwhile.
func New(cfg Config) (*Publisher, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("nats: no server")
	}
	subject, err := parseTemplate(cfg.Subject)
	if err != nil {
		return nil, err
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.Name == "" {
		cfg.Name = "kc-event-emitter"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats: disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted()) }),
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.Username != "":
		opts = append(opts, nats.UserInfo(cfg.Username, cfg.Password))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("nats TLS: a client certificate needs both its certificate and key files")
	}
	if cfg.CertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.CertFile, cfg.KeyFile))
	}
	nc, err := nats.Connect(strings.Join(cfg.Servers, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.AckTimeout), jetstream.WithPublishAsyncMaxPending(100_000))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	return &Publisher{nc: nc, js: js, subject: subject, timeout: cfg.AckTimeout, caFile: cfg.CAFile, certFile: cfg.CertFile}, nil
}

// Close closes the connection.
func (p *Publisher) Close() { p.nc.Close() }

// Subject returns the subject of m.
func (p *Publisher) Subject(m Message) string { return p.subject.Expand(m.Realm, m.Kind, subjectRune) }

// Publish publishes msgs in order, each with its Nats-Msg-Id, and returns
// one error per message, nil for those JetStream acknowledged, once every
// message is done.
func (p *Publisher) Publish(ctx context.Context, msgs []Message) []error {
	return p.Start(ctx, msgs).Wait()
}

// Sent is a batch published, answered message by message. Its methods are
// for one goroutine.
type Sent struct {
	p        *Publisher
	ctx      context.Context
	errs     []error
	futures  []jetstream.PubAckFuture
	subjects []string
	next     int // the messages before it are answered (errs says how)
	failed   bool
}

// Start publishes msgs in order, after those of the calls before, and
// returns at once.
func (p *Publisher) Start(ctx context.Context, msgs []Message) *Sent {
	s := &Sent{p: p, ctx: ctx, errs: make([]error, len(msgs)), futures: make([]jetstream.PubAckFuture, len(msgs)),
		subjects: make([]string, len(msgs))}
	for i, m := range msgs {
		s.subjects[i] = p.Subject(m)
		msg := nats.NewMsg(s.subjects[i])
		msg.Data = m.Data
		for k, v := range m.Headers {
			msg.Header.Set(k, v)
		}
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(m.ID))
		if err != nil {
			s.fail(i, err)
			continue
		}
		s.futures[i] = f
	}
	return s
}

// answer takes the answer to message i, waiting for it (or for the end of
// ctx) when wait; it tells whether there was one.
func (s *Sent) answer(i int, wait bool) bool {
	f := s.futures[i]
	if f == nil {
		return true
	}
	if !wait {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			s.fail(i, err)
		default:
			return false
		}
		return true
	}
	select {
	case <-f.Ok():
	case err := <-f.Err():
		s.fail(i, err)
	case <-s.ctx.Done():
		s.errs[i] = &Error{Subject: s.subjects[i], Err: s.ctx.Err()}
	}
	return true
}

func (s *Sent) fail(i int, err error) {
	s.errs[i], s.failed = s.p.classify(s.ctx, s.subjects[i], err), true
}

// Wait blocks until JetStream answered each message (or ctx ended) and
// returns what Publish does.
func (s *Sent) Wait() []error {
	for ; s.next < len(s.futures); s.next++ {
		s.answer(s.next, true)
	}
	return s.errs
}

// Failed tells, without waiting, whether a message answered so far (in
// order) failed.
func (s *Sent) Failed() bool {
	for s.next < len(s.futures) && s.answer(s.next, false) {
		s.next++
	}
	return s.failed
}

// classify wraps err as an *Error, permanent when JetStream refused the
// message for good: no stream listens on its subject (asked of JetStream
// itself, so that a server still starting is not taken for one without
// the stream), or it is larger than the server or the stream takes.
func (p *Publisher) classify(ctx context.Context, subject string, err error) error {
	e := &Error{Subject: subject, Err: err}
	var ae *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		e.permanent = true
	case errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		e.permanent = true
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, serr := p.js.StreamNameBySubject(lctx, subject); errors.Is(serr, jetstream.ErrStreamNotFound) {
			e.permanent = true
			e.Err = fmt.Errorf("%w: no JetStream stream listens on the subject", err)
		}
	}
	if !e.permanent {
		if cerr := p.downBecause(); cerr != nil {
			e.Err = fmt.Errorf("%w: not connected: %w", err, cerr)
		}
	}
	return e
}

// downBecause returns why the connection is down (the server refused the
// credentials, a TLS handshake failed, ...), or nil when it is up or the
// client knows no reason.
func (p *Publisher) downBecause() error {
	if p.nc.IsConnected() {
		return nil
	}
	err := p.nc.LastError()
	if err == nil {
		return nil
	}
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
		return fmt.Errorf("the server refused the credentials: %w", err)
	}
	// nats.ErrTLS: the connection closed right after the handshake (the
	// same refusal as an alert, as the timing goes).
	setup := tlsfiles.Setup{Peer: "the server", CAFile: p.caFile, CertFile: p.certFile}
	if hint := setup.Describe(err, errors.Is(err, nats.ErrTLS)); hint != "" {
		return fmt.Errorf("%s: %w", hint, err)
	}
	return err
}

func parseTemplate(s string) (nametmpl.Template, error) {
	if s == "" {
		return nametmpl.Template{}, errors.New("nats: no subject")
	}
	t, err := nametmpl.Parse(s, "nats subject")
	if err != nil {
		return nametmpl.Template{}, err
	}
	sample := t.Expand("realm", "kind", subjectRune)
	if strings.ContainsAny(sample, " \t\r\n*>") || strings.HasPrefix(sample, ".") || strings.HasSuffix(sample, ".") || strings.Contains(sample, "..") {
		return nametmpl.Template{}, fmt.Errorf("nats subject %q: want dot-separated tokens without spaces or wildcards (* >)", s)
	}
	return t, nil
}

// CheckSubject checks a subject or subject template as New would.
func CheckSubject(subject string) error {
	_, err := parseTemplate(subject)
	return err
}

// subjectRune maps a character of a realm's name that a subject token
// cannot hold ('.', '*', '>', white space) to '_'.
func subjectRune(r rune) rune {
	switch r {
	case '.', '*', '>', ' ', '\t', '\r', '\n':
		return '_'
	}
	return r
}
