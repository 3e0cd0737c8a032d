// Package mailsink mails Keycloak events to an administrator over SMTP: one
// plain-text mail per event, or one digest mail for a batch while more
// events than a threshold arrived within a window, so that a burst of
// registrations does not flood a mailbox or trip a provider's limits.
//
// A Sender dials the server for each call of Send (STARTTLS, implicit TLS,
// or plain on a loopback address only), authenticates (PLAIN or LOGIN),
// sends every mail of the call over that one connection and quits. A 5xx
// answer to a message is a permanent refusal (the error's Permanent()
// reports true); everything else (4xx, a refused connection, a 5xx to the
// session's setup: AUTH, MAIL FROM, RCPT TO, which no event can mend) is
// transient and left to the caller to retry.
//
// The package does not import package emitter: the emitter's adapter turns
// its envelopes into Notifications.
package mailsink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Notification is one event to mail, with the fields the mail shows.
type Notification struct {
	UID       int64     // the emitter's snowflake uid; the Message-ID is made of it
	Kind      string    // "Event" or "AdminEvent"
	Time      time.Time // when Keycloak recorded the event
	RealmName string
	RealmID   string
	// Type is the Event's type (REGISTER) or, for an AdminEvent,
	// RESOURCE:OPERATION (USER:CREATE).
	Type      string
	Username  string
	Email     string
	UserID    string
	Client    string
	IPAddress string
	Error     string
}

// TLSMode is how the connection to the server is secured.
type TLSMode string

// The TLS modes.
const (
	// StartTLS connects in plain text and upgrades with STARTTLS before
	// anything else; a server that does not offer it is an error (the
	// default, port 587 or 25).
	StartTLS TLSMode = "starttls"
	// ImplicitTLS speaks TLS from the first byte (port 465).
	ImplicitTLS TLSMode = "tls"
	// NoTLS sends in plain text; allowed only to a loopback address (a
	// local relay, tests).
	NoTLS TLSMode = "none"
)

// ParseTLSMode returns the TLSMode named s ("" is StartTLS).
func ParseTLSMode(s string) (TLSMode, error) {
	switch TLSMode(s) {
	case "":
		return StartTLS, nil
	case StartTLS, ImplicitTLS, NoTLS:
		return TLSMode(s), nil
	}
	return "", fmt.Errorf("TLS mode %q: want starttls, tls or none", s)
}

// The SASL mechanisms a Sender can authenticate with.
const (
	AuthPlain = sasl.Plain
	AuthLogin = sasl.Login
)

// Defaults of Options.
const (
	DefaultDigestThreshold = 10
	DefaultDigestWindow    = 10 * time.Minute
	DefaultTimeout         = 30 * time.Second
)

// Options configure a Sender. Addr, From and To are required.
type Options struct {
	// Addr is the server's host:port.
	Addr string
	// TLS is the TLS mode; "" is StartTLS.
	TLS TLSMode
	// CAFile names a PEM file of the CAs that verify the server instead of
	// the system's.
	CAFile string
	// Username and Password authenticate with Auth (AuthPlain when
	// empty); an empty Username does not authenticate. The password is
	// never logged nor put in an error.
	Username, Password string
	Auth               string
	// From is the sender's address (net/mail syntax, "Keycloak
	// <keycloak@example.com>" or a bare address); To the recipients.
	From string
	To   []string
	// Zone is an IANA time zone name (Europe/Berlin): times are shown in
	// UTC and in it. "" or "UTC" shows UTC only.
	Zone string
	// When the notifications mailed (or refused) within the last
	// DigestWindow and those of the current call are more than
	// DigestThreshold, the call's notifications go as one digest mail (a
	// call of one goes alone). Attempts that failed do not count. 0 takes
	// the defaults; a negative threshold never digests.
	DigestThreshold int
	DigestWindow    time.Duration
	// Timeout bounds the dial, the TLS handshake and each command's
	// answer; 0 is DefaultTimeout.
	Timeout time.Duration
	// LocalName is the name said in EHLO; "" is the host's name.
	LocalName string
	// Now is the clock of the digest window and the Date header; nil is
	// time.Now.
	Now func() time.Time
}

// Sender mails notifications. It is safe for concurrent use; calls of Send
// run one at a time.
type Sender struct {
	o        Options
	host     string
	from     *mail.Address
	to       []*mail.Address
	zone     *time.Location
	tls      *tls.Config
	msgIDDom string

	mu      sync.Mutex
	arrived []arrival // per call of Send within the window, oldest first: the notifications it finished
}

// arrival is how many notifications one call of Send finished, and when.
type arrival struct {
	at time.Time
	n  int
}

// OptionError is a bad value of Options.
type OptionError struct {
	Option string // the field of Options: Addr, TLS, From, To, Auth, Username, Zone, DigestWindow or CAFile
	Value  string
	Err    error
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("mailsink: %s %q: %v", e.Option, e.Value, e.Err)
}

func (e *OptionError) Unwrap() error { return e.Err }

// New checks o and returns a Sender, or an *OptionError; it does not
// connect.
func New(o Options) (*Sender, error) {
	s := &Sender{o: o}
	bad := func(option, value string, err error) (*Sender, error) {
		return nil, &OptionError{Option: option, Value: value, Err: err}
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil || host == "" {
		return bad("Addr", o.Addr, errors.New("want host:port"))
	}
	s.host = host
	if s.o.TLS, err = ParseTLSMode(string(o.TLS)); err != nil {
		return bad("TLS", string(o.TLS), errors.New("want starttls, tls or none"))
	}
	if s.o.TLS == NoTLS && !loopback(host) {
		return bad("TLS", string(o.TLS), fmt.Errorf("plain text only to a loopback address, not %s: use starttls or tls", host))
	}
	if s.from, err = mail.ParseAddress(o.From); err != nil {
		return bad("From", o.From, err)
	}
	if len(o.To) == 0 {
		return bad("To", "", errors.New("no recipient"))
	}
	for _, t := range o.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return bad("To", t, err)
		}
		s.to = append(s.to, a)
	}
	switch s.o.Auth {
	case "":
		s.o.Auth = AuthPlain
	case AuthPlain, AuthLogin:
	default:
		return bad("Auth", o.Auth, fmt.Errorf("want %s or %s", AuthPlain, AuthLogin))
	}
	if o.Username != "" && o.Password == "" {
		return bad("Username", o.Username, errors.New("set without a password"))
	}
	s.zone = time.UTC
	if o.Zone != "" {
		if s.zone, err = time.LoadLocation(o.Zone); err != nil {
			return bad("Zone", o.Zone, errors.New("not an IANA time zone name such as Europe/Berlin"))
		}
	}
	if s.o.DigestThreshold == 0 {
		s.o.DigestThreshold = DefaultDigestThreshold
	}
	if s.o.DigestWindow == 0 {
		s.o.DigestWindow = DefaultDigestWindow
	}
	if s.o.DigestWindow < 0 {
		return bad("DigestWindow", o.DigestWindow.String(), errors.New("want a duration > 0"))
	}
	if s.o.Timeout <= 0 {
		s.o.Timeout = DefaultTimeout
	}
	if s.o.LocalName == "" {
		if s.o.LocalName, err = os.Hostname(); err != nil || s.o.LocalName == "" {
			s.o.LocalName = "localhost"
		}
	}
	if s.o.Now == nil {
		s.o.Now = time.Now
	}
	s.msgIDDom = s.from.Address[strings.LastIndexByte(s.from.Address, '@')+1:]
	if s.o.TLS != NoTLS {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return bad("CAFile", o.CAFile, err)
			}
			s.tls.RootCAs = x509.NewCertPool()
			if !s.tls.RootCAs.AppendCertsFromPEM(pem) {
				return bad("CAFile", o.CAFile, errors.New("holds no PEM certificate"))
			}
		}
	}
	return s, nil
}

// loopback tells whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send mails ns and returns one error per notification (nil: the server
// accepted the mail that carries it): one mail each, or one digest for all
// of them while the digest threshold is passed. An error whose Permanent()
// is true is the server's refusal of that mail; any other error is
// transient (the whole call may be tried again: the Message-IDs stay the
// same).
func (s *Sender) Send(ctx context.Context, ns []Notification) []error {
	errs := make([]error, len(ns))
	if len(ns) == 0 {
		return errs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	digest := s.over(now, len(ns)) && len(ns) > 1
	var msgs []message
	if digest {
		msgs = []message{s.digest(ns, now)}
	} else {
		for _, n := range ns {
			msgs = append(msgs, s.single(n, now))
		}
	}
	results := s.deliver(ctx, msgs)
	if digest {
		for i := range errs {
			errs[i] = results[0]
		}
	} else {
		copy(errs, results)
	}
	s.record(now, errs)
	return errs
}

// over tells whether more than the threshold arrived within the window
// before now, counting n more.
func (s *Sender) over(now time.Time, n int) bool {
	cut := now.Add(-s.o.DigestWindow)
	i := 0
	for i < len(s.arrived) && !s.arrived[i].at.After(cut) {
		i++
	}
	s.arrived = s.arrived[i:]
	if s.o.DigestThreshold < 0 {
		return false
	}
	total := n
	for _, a := range s.arrived {
		total += a.n
	}
	return total > s.o.DigestThreshold
}

// record counts the notifications of a call that are done (mailed or
// refused for good): those to be tried again count when they are done, so
// that retries after a failure do not count twice.
func (s *Sender) record(now time.Time, errs []error) {
	n := 0
	for _, err := range errs {
		if err == nil || isPermanent(err) {
			n++
		}
	}
	if n > 0 {
		s.arrived = append(s.arrived, arrival{at: now, n: n})
	}
}

// deliver sends msgs over one connection, in order, and returns each
// one's error. Once the session fails, the messages not yet sent get that
// error.
func (s *Sender) deliver(ctx context.Context, msgs []message) []error {
	errs := make([]error, len(msgs))
	c, stop, err := s.open(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer stop()
	for i, m := range msgs {
		if err = s.transaction(c, m); err != nil && !isPermanent(err) {
			// The session is in doubt: the rest waits for the next call.
			for j := i; j < len(msgs); j++ {
				errs[j] = err
			}
			c.Close()
			return errs
		}
		errs[i] = err
		if err != nil {
			// Refused: RSET before the next mail.
			if rerr := c.Reset(); rerr != nil {
				for j := i + 1; j < len(msgs); j++ {
					errs[j] = s.fail("RSET", rerr)
				}
				c.Close()
				return errs
			}
		}
	}
	if err := c.Quit(); err != nil {
		c.Close() // every mail was answered: a failed QUIT loses nothing
	}
	return errs
}

// open dials the server, secures the connection as configured and
// authenticates. Until stop is called, the end of ctx closes the
// connection, which ends any command waiting for an answer.
func (s *Sender) open(ctx context.Context) (*smtp.Client, func(), error) {
	setup, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(setup, "tcp", s.o.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("mail server %s: %w", s.o.Addr, err)
	}
	// The setup (greeting, EHLO, STARTTLS, AUTH) within Timeout in all.
	stopSetup := context.AfterFunc(setup, func() { conn.Close() })
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var c *smtp.Client
	fail := func(step string, err error) (*smtp.Client, func(), error) {
		stop()
		stopSetup()
		conn.Close()
		if setup.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w (no answer within %s)", err, s.o.Timeout)
		}
		return nil, nil, s.fail(step, err)
	}
	switch s.o.TLS {
	case ImplicitTLS:
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(setup); err != nil {
			return fail("TLS", err)
		}
		conn = tc
		c = smtp.NewClient(conn)
	case StartTLS:
		// go-smtp upgrades only while it makes the client: it says EHLO
		// as "localhost" before TLS, and LocalName after.
		if c, err = smtp.NewClientStartTLS(conn, s.tls); err != nil {
			return fail("STARTTLS", err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout, c.SubmissionTimeout = s.o.Timeout, s.o.Timeout
	if err := c.Hello(s.o.LocalName); err != nil {
		step := "EHLO"
		if s.o.TLS == StartTLS {
			step = "EHLO after STARTTLS" // the first use of the TLS connection: its handshake
		}
		return fail(step, err)
	}
	if s.o.Username != "" {
		if !c.SupportsAuth(s.o.Auth) {
			_, offered := c.Extension("AUTH")
			return fail("AUTH", fmt.Errorf("the server does not offer AUTH %s (it offers %q)", s.o.Auth, offered))
		}
		var a sasl.Client
		if s.o.Auth == AuthLogin {
			a = sasl.NewLoginClient(s.o.Username, s.o.Password)
		} else {
			a = sasl.NewPlainClient("", s.o.Username, s.o.Password)
		}
		if err := c.Auth(a); err != nil {
			return fail("AUTH", err)
		}
	}
	if !stopSetup() {
		return fail("setup", errors.New("timed out"))
	}
	return c, func() { stop() }, nil
}

// transaction sends m: MAIL FROM, RCPT TO each recipient, DATA.
func (s *Sender) transaction(c *smtp.Client, m message) error {
	if err := c.Mail(s.from.Address, nil); err != nil {
		return s.fail("MAIL FROM", err)
	}
	for _, t := range s.to {
		if err := c.Rcpt(t.Address, nil); err != nil {
			return s.fail("RCPT TO "+t.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return s.fail("DATA", err)
	}
	if _, err := w.Write(m.data); err != nil {
		w.Close()
		return s.fail("DATA", err)
	}
	if err := w.Close(); err != nil {
		if se, ok := errors.AsType[*smtp.SMTPError](err); ok && se.Code >= 500 && se.Code < 600 {
			return &RefusedError{Addr: s.o.Addr, MessageID: m.id, Err: se}
		}
		return s.fail("end of DATA", err)
	}
	return nil
}

// fail wraps a transient error of step.
func (s *Sender) fail(step string, err error) error {
	return fmt.Errorf("mail server %s: %s: %w", s.o.Addr, step, err)
}

// RefusedError is the server's permanent (5xx) refusal of a message.
type RefusedError struct {
	Addr      string
	MessageID string
	Err       *smtp.SMTPError
}

func (e *RefusedError) Error() string {
	code := fmt.Sprintf("%d", e.Err.Code)
	if ec := e.Err.EnhancedCode; ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode {
		code += fmt.Sprintf(" %d.%d.%d", ec[0], ec[1], ec[2])
	}
	return fmt.Sprintf("mail server %s refused message %s: %s %s", e.Addr, e.MessageID, code, e.Err.Message)
}

// Permanent reports true: the server refused this message for good.
func (e *RefusedError) Permanent() bool { return true }

func (e *RefusedError) Unwrap() error { return e.Err }

func isPermanent(err error) bool {
	p, ok := errors.AsType[interface {
		error
		Permanent() bool
	}](err)
	return ok && p.Permanent()
}
