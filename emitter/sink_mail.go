package emitter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/mailsink"
)

// MailConfig is the mail sink's settings: the SMTP server, who mails whom,
// which events, and the digest. In a flags-only run the server comes from
// --targetUri smtp://host:port (STARTTLS) or smtps://host:port (implicit
// TLS).
type MailConfig struct {
	Server   string           // host:port
	TLS      mailsink.TLSMode // starttls (default), tls, or none (loopback only)
	CAFile   string
	Username string // AUTH; empty: no AUTH
	Password string // secret
	Auth     string // PLAIN (default) or LOGIN
	From     string
	To       []string
	Zone     string // IANA time zone shown next to UTC
	// Types are the event types mailed: Event types (REGISTER) and, for
	// admin events, RESOURCE:OPERATION (USER:CREATE); "*" globs as in
	// TypeFilter. Default REGISTER.
	Types           []string
	DigestThreshold int           // more than this many within DigestWindow: a digest per batch; < 0: never
	DigestWindow    time.Duration // default 10m
	Timeout         time.Duration // dial, TLS and each SMTP command; default 30s
}

// defaultMailConfig returns the defaults of MailConfig (DefaultConfig
// holds them).
func defaultMailConfig() MailConfig {
	return MailConfig{
		TLS:             mailsink.StartTLS,
		Auth:            mailsink.AuthPlain,
		Types:           []string{"REGISTER"},
		DigestThreshold: mailsink.DefaultDigestThreshold,
		DigestWindow:    mailsink.DefaultDigestWindow,
		Timeout:         mailsink.DefaultTimeout,
	}
}

// Validate returns the first problem of m as a *FieldError naming the flag.
func (m MailConfig) Validate() error {
	return m.validate(func(k string) string { return flagKey("sink.mail." + k) })
}

// validate returns the first problem of m as a *FieldError; key names a
// field of m by its key in a configuration file (server, from, ...).
func (m MailConfig) validate(key func(string) string) error {
	bad := func(field, value string, format string, args ...any) error {
		return &FieldError{Field: key(field), Value: value, Err: fmt.Errorf(format, args...)}
	}
	if host, _, err := net.SplitHostPort(m.Server); err != nil || host == "" {
		return bad("server", m.Server, "want host:port (a flag: smtp://host:port or smtps://host:port)")
	}
	if _, err := mailsink.ParseTLSMode(string(m.TLS)); err != nil {
		return bad("tls", string(m.TLS), "want starttls, tls or none")
	}
	if m.From == "" {
		return bad("from", "", "missing: the sender's address")
	}
	if len(m.To) == 0 {
		return bad("to", "", "missing: the administrator's address (several: a list, or comma-separated in a flag)")
	}
	if len(m.Types) == 0 {
		return bad("types", "", "missing: the types to mail (default REGISTER; * mails every event)")
	}
	for _, p := range m.Types {
		if strings.TrimSpace(p) == "" {
			return bad("types", strings.Join(m.Types, ","), "empty type")
		}
	}
	if m.DigestThreshold == 0 || m.DigestThreshold < -1 {
		return bad("digestThreshold", strconv.Itoa(m.DigestThreshold), "want a count >= 1, or -1: never digest")
	}
	if m.DigestWindow <= 0 {
		return bad("digestWindow", m.DigestWindow.String(), "want a duration > 0")
	}
	if m.Timeout <= 0 {
		return bad("timeout", m.Timeout.String(), "want a duration > 0")
	}
	// The rest (addresses, zone, TLS off loopback, CA file, AUTH
	// mechanism) is checked by mailsink itself, once.
	if _, err := mailsink.New(m.options()); err != nil {
		if oe, ok := errors.AsType[*mailsink.OptionError](err); ok {
			return &FieldError{Field: key(mailKeys[oe.Option]), Value: oe.Value, Err: oe.Err}
		}
		return &FieldError{Field: key("server"), Value: m.Server, Err: err}
	}
	return nil
}

// mailKeys names the key (of sink.mail in a file) of each mailsink option.
var mailKeys = map[string]string{
	"Addr": "server", "TLS": "tls", "From": "from", "To": "to", "Auth": "auth",
	"Username": "username", "Zone": "zone", "DigestWindow": "digestWindow", "CAFile": "caFile",
}

// options are m's mailsink options.
func (m MailConfig) options() mailsink.Options {
	return mailsink.Options{
		Addr: m.Server, TLS: m.TLS, CAFile: m.CAFile, Username: m.Username, Password: m.Password, Auth: m.Auth,
		From: m.From, To: m.To, Zone: m.Zone, DigestThreshold: m.DigestThreshold, DigestWindow: m.DigestWindow,
		Timeout: m.Timeout,
	}
}

// keeps tells whether r is of a type m mails.
func (m MailConfig) keeps(r Record) bool {
	return TypeFilter{Include: m.Types}.Match(mailTypeName(r))
}

// mailTypeName is the type a mail names and the mail route filters on: the
// Event's type, or RESOURCE:OPERATION for an AdminEvent (USER:CREATE, as an
// operator says it). Record.TypeName, for logs, is OPERATION:RESOURCE.
func mailTypeName(r Record) string {
	if a := r.Admin; a != nil {
		return a.ResourceType + ":" + a.OperationType
	}
	return r.Event.Type
}

// mailServerOf returns the server and TLS mode of a mail target URI:
// smtp://host:port (STARTTLS) or smtps://host:port (implicit TLS); ok is
// false for any other scheme.
func mailServerOf(targetURI string) (server string, mode mailsink.TLSMode, ok bool) {
	u, err := url.Parse(targetURI)
	if err != nil {
		return "", "", false
	}
	switch u.Scheme {
	case "smtp":
		return u.Host, mailsink.StartTLS, true
	case "smtps":
		return u.Host, mailsink.ImplicitTLS, true
	}
	return "", "", false
}

// checkMailURI refuses what a mail target URI must not hold: credentials
// (they come from --mailUsername and the environment or a file), a path or
// a query.
func checkMailURI(targetURI string) error {
	u, err := url.Parse(targetURI)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.User != nil:
		return errors.New("no credentials in the URI: --mailUsername, and the password in KC_EMITTER_MAIL_PASSWORD or --mailPasswordFile")
	case u.Path != "" && u.Path != "/", u.RawQuery != "":
		return errors.New("want smtp://host:port or smtps://host:port, without a path or a query")
	}
	return nil
}

// isMailTarget tells whether targetURI names an SMTP server.
func isMailTarget(targetURI string) bool {
	_, _, ok := mailServerOf(targetURI)
	return ok
}

// mailNotification is the Body of a mail route's envelope: the fields of
// mailsink.Notification, encoded by mailEncoder, decoded by mailSink.
type mailNotification struct {
	UID       int64  `json:"uid"`
	Kind      Kind   `json:"kind"`
	Time      int64  `json:"time"` // ms since the Unix epoch
	RealmName string `json:"realmName,omitempty"`
	RealmID   string `json:"realmId,omitempty"`
	Type      string `json:"type"`
	Username  string `json:"username,omitempty"`
	Email     string `json:"email,omitempty"`
	UserID    string `json:"userId,omitempty"`
	Client    string `json:"client,omitempty"`
	IPAddress string `json:"ipAddress,omitempty"`
	Error     string `json:"error,omitempty"`
}

// mailEncoder encodes a record as the JSON of its mailNotification.
type mailEncoder struct{}

// newMailEncoder returns the Encoder of a mail route.
func newMailEncoder() Encoder { return mailEncoder{} }

// Encode appends the JSON of r's notification to dst. The username is
// the enricher's; the email is the "email" detail (REGISTER, UPDATE_EMAIL
// carry it) or, for an admin event on a user, the representation's.
func (mailEncoder) Encode(dst []byte, r Record) ([]byte, error) {
	var n mailNotification
	switch {
	case r.Event != nil:
		e := r.Event
		n = mailNotification{UID: e.UID, Kind: KindEvent, Time: e.Time, RealmName: e.RealmName, RealmID: e.RealmID,
			Type: e.Type, Username: e.Details["username"], Email: e.Details["email"], UserID: e.UserID,
			Client: e.ClientID, IPAddress: e.IPAddress, Error: e.Error}
	case r.Admin != nil:
		a := r.Admin
		n = mailNotification{UID: a.UID, Kind: KindAdminEvent, Time: a.Time, RealmName: a.RealmName, RealmID: a.RealmID,
			Type: mailTypeName(r), Username: a.Details["username"], UserID: a.Details["user_id"],
			Client: a.AuthDetails.ClientID, IPAddress: a.AuthDetails.IPAddress, Error: a.Error}
		if a.ResourceType == "USER" && a.Representation != "" {
			var rep struct {
				ID       string `json:"id"`
				Username string `json:"username"`
				Email    string `json:"email"`
			}
			if json.Unmarshal([]byte(a.Representation), &rep) == nil { // a representation that is not a user's: none
				n.Email = rep.Email
				if n.Username == "" {
					n.Username = rep.Username // a deleted user, or one created in the same page
				}
				if n.UserID == "" {
					n.UserID = rep.ID
				}
			}
		}
	default:
		return dst, errNoEvent
	}
	b, err := json.Marshal(n)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// mailSink is the adapter from envelopes to mailsink: it decodes each
// envelope's mailNotification and mails them in one call, so that a batch
// over the digest threshold goes as one digest.
type mailSink struct {
	s        *mailsink.Sender
	log      *slog.Logger
	min, max time.Duration // Send's backoff
	failed   atomic.Bool
}

var _ batchSink = (*mailSink)(nil)

// newMailSink returns the mail sink of m; Send retries transient failures
// waiting from retryMin, doubling, up to retryMax.
func newMailSink(m MailConfig, retryMin, retryMax time.Duration, log *slog.Logger) (*mailSink, error) {
	s, err := mailsink.New(m.options())
	if err != nil {
		return nil, &FieldError{Field: "targetUri", Value: m.Server, Err: err}
	}
	return &mailSink{s: s, log: log, min: retryMin, max: retryMax}, nil
}

// SendBatch mails envs (one mail each, or one digest) and returns each
// one's error: a permanent refusal (Permanent() true) for a mail the
// server refused, a plain error to retry otherwise. An envelope whose body
// is not a notification is refused for good: it cannot be mailed.
func (m *mailSink) SendBatch(ctx context.Context, envs []envelope) []error {
	errs := make([]error, len(envs))
	ns := make([]mailsink.Notification, 0, len(envs))
	at := make([]int, 0, len(envs)) // index in envs of ns[i]
	for i, env := range envs {
		var n mailNotification
		if err := json.Unmarshal(env.Body, &n); err != nil {
			errs[i] = undecodable{fmt.Errorf("mail sink: envelope uid %d is not a notification: %w", env.UID, err)}
			continue
		}
		ns = append(ns, mailsink.Notification{UID: n.UID, Kind: string(n.Kind), Time: time.UnixMilli(n.Time),
			RealmName: n.RealmName, RealmID: n.RealmID, Type: n.Type, Username: n.Username, Email: n.Email,
			UserID: n.UserID, Client: n.Client, IPAddress: n.IPAddress, Error: n.Error})
		at = append(at, i)
	}
	failed := false
	for j, err := range m.s.Send(ctx, ns) {
		errs[at[j]] = err
		failed = failed || (err != nil && !permanent(err))
	}
	m.failed.Store(failed)
	return errs
}

// Send mails one envelope, trying again with backoff after a transient
// failure until the server accepts it, refuses it for good (the error is
// returned) or ctx ends (ctx's error).
func (m *mailSink) Send(ctx context.Context, env envelope) error {
	wait := m.min
	for {
		err := m.SendBatch(ctx, []envelope{env})[0]
		if err == nil || permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.log.Warn("mail not sent, trying again", "uid", env.UID, "error", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, m.max)
	}
}

// Failing tells whether the last attempt failed for a reason other than a
// refusal of one mail.
func (m *mailSink) Failing() bool { return m.failed.Load() }

// undecodable is an envelope the mail sink cannot read: refused for good.
type undecodable struct{ error }

func (undecodable) Permanent() bool { return true }

func (u undecodable) Unwrap() error { return u.error }

// permanent tells whether err is a refusal for good (contract 2).
func permanent(err error) bool {
	p, ok := errors.AsType[interface {
		error
		Permanent() bool
	}](err)
	return ok && p.Permanent()
}

// mail returns c.Mail with the server and TLS mode of an smtp:// or
// smtps:// TargetURI: smtps is implicit TLS; smtp is STARTTLS unless
// Mail.TLS says none (a loopback relay).
func (c Config) mail() MailConfig {
	m := c.Mail
	server, mode, ok := mailServerOf(c.TargetURI)
	if !ok {
		return m
	}
	m.Server = server
	if mode == mailsink.ImplicitTLS || m.TLS == "" {
		m.TLS = mode
	}
	return m
}
