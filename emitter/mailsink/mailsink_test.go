package mailsink

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/smtptest"
)

// clock is a stepped clock for the digest window.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 12, 1, 22, 30, 0, 0, time.UTC)

// newTestSender returns a Sender to ts with STARTTLS and AUTH PLAIN, and
// its clock.
func newTestSender(t *testing.T, ts *smtptest.Server, edit func(*Options)) (*Sender, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	o := Options{
		Addr: ts.Addr, CAFile: ts.CAFile, Username: smtptest.User, Password: smtptest.Password,
		From: "Keycloak <keycloak@example.com>", To: []string{"admin@example.com", "Second Admin <ops@example.com>"},
		Zone: "Europe/Berlin", DigestThreshold: 3, DigestWindow: time.Minute,
		Timeout: 5 * time.Second, Now: clk.now,
	}
	if edit != nil {
		edit(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func registration(uid int64, user string) Notification {
	return Notification{
		UID: uid, Kind: "Event", Time: time.Date(2026, 12, 1, 22, 29, 23, 0, time.UTC),
		RealmName: "demo", RealmID: "7e1c0b3a-realm", Type: "REGISTER", Username: user,
		Email: user + "@example.org", UserID: "u-" + user, Client: "kcee-app", IPAddress: "127.0.0.9",
	}
}

// parsed is a received message read back as a mail reader would.
type parsed struct {
	header  mail.Header
	subject string
	body    string
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a mail: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject %q: %v", m.Header.Get("Subject"), err)
	}
	if cte := m.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding %q, want quoted-printable", cte)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	for i, line := range bytes.Split(data, []byte("\r\n")) {
		if len(line) > 998 {
			t.Errorf("line %d is %d bytes long (RFC 5322: at most 998)", i+1, len(line))
		}
	}
	return parsed{header: m.Header, subject: subject, body: strings.ReplaceAll(string(body), "\r\n", "\n")}
}

func sendOK(t *testing.T, s *Sender, ns ...Notification) {
	t.Helper()
	for i, err := range s.Send(context.Background(), ns) {
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
	}
}

func TestSendMailsARegistrationWithEveryFieldOverSTARTTLSAndAuthPlain(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	s, _ := newTestSender(t, ts, nil)
	sendOK(t, s, registration(7301234567890123, "alice"))

	got := ts.Messages()
	if len(got) != 1 {
		t.Fatalf("%d messages, want 1", len(got))
	}
	r := got[0]
	if !r.TLS || r.User != smtptest.User || r.Mech != "PLAIN" {
		t.Errorf("session TLS %v, user %q, %s: want STARTTLS and AUTH PLAIN as %q", r.TLS, r.User, r.Mech, smtptest.User)
	}
	if r.From != "keycloak@example.com" || strings.Join(r.To, ",") != "admin@example.com,ops@example.com" {
		t.Errorf("envelope from %q to %q", r.From, r.To)
	}
	m := parse(t, r.Data)
	if m.subject != "Keycloak demo: REGISTER alice" {
		t.Errorf("subject %q", m.subject)
	}
	for name, want := range map[string]string{
		"Date":         "Tue, 01 Dec 2026 22:30:00 +0000",
		"Message-Id":   "<7301234567890123.kc-event-emitter@example.com>",
		"Mime-Version": "1.0",
		"Content-Type": "text/plain; charset=utf-8",
		"From":         `"Keycloak" <keycloak@example.com>`,
		"To":           `<admin@example.com>, "Second Admin" <ops@example.com>`,
	} {
		if v := m.header.Get(name); v != want {
			t.Errorf("%s: %q, want %q", name, v, want)
		}
	}
	for _, line := range []string{
		"Time:       2026-12-01 22:29:23 UTC (2026-12-01 23:29:23 CET, Europe/Berlin)",
		"Realm:      demo (id 7e1c0b3a-realm)",
		"Type:       REGISTER",
		"Username:   alice",
		"Email:      alice@example.org",
		"User ID:    u-alice",
		"Client:     kcee-app",
		"IP address: 127.0.0.9",
		"Event:      Event, uid 7301234567890123",
	} {
		if !strings.Contains(m.body, "\n"+line+"\n") {
			t.Errorf("body lacks the line %q:\n%s", line, m.body)
		}
	}
	if strings.Contains(m.body, "Error:") {
		t.Errorf("an event without an error shows an Error line:\n%s", m.body)
	}
}

func TestSendMailsAnAdminEventWithItsErrorAndMissingValuesAsDashes(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	s, _ := newTestSender(t, ts, func(o *Options) { o.Zone = "" })
	sendOK(t, s, Notification{UID: 5, Kind: "AdminEvent", Time: t0, RealmID: "r-id", Type: "USER:CREATE",
		Username: "bob", Error: "conflict"})
	m := parse(t, ts.Messages()[0].Data)
	if m.subject != "Keycloak r-id: USER:CREATE bob" {
		t.Errorf("subject %q", m.subject)
	}
	for _, line := range []string{"Time:       2026-12-01 22:30:00 UTC", "Realm:      - (id r-id)", "Email:      -",
		"Client:     -", "Error:      conflict", "Event:      AdminEvent, uid 5"} {
		if !strings.Contains(m.body, "\n"+line+"\n") {
			t.Errorf("body lacks the line %q:\n%s", line, m.body)
		}
	}
}

func TestSendKeepsCRLFInEventValuesOutOfTheHeadersAndLines(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	s, _ := newTestSender(t, ts, nil)
	n := registration(9, "eve\r\nBcc: victim@example.net\r\n\r\nforged body")
	n.RealmName = "demo\nX-Injected: yes"
	n.Email = "eve@example.org\r\nIP address: 10.0.0.1"
	n.Username += " \u00e9t\u00e9 \xff" // non-ASCII and invalid UTF-8: encoded, replaced
	sendOK(t, s, n)

	r := ts.Messages()[0]
	if strings.Join(r.To, ",") != "admin@example.com,ops@example.com" {
		t.Errorf("recipients %q: the event added one", r.To)
	}
	m := parse(t, r.Data)
	for _, h := range []string{"Bcc", "X-Injected"} {
		if v := m.header.Get(h); v != "" {
			t.Errorf("header %s: %q injected by the event", h, v)
		}
	}
	want := "Keycloak demo X-Injected: yes: REGISTER eve  Bcc: victim@example.net    forged body été \uFFFD"
	if m.subject != want {
		t.Errorf("subject %q, want %q", m.subject, want)
	}
	if !strings.HasPrefix(m.header.Get("Subject"), "=?utf-8?q?") {
		t.Errorf("raw subject %q is not Q-encoded", m.header.Get("Subject"))
	}
	for _, line := range strings.Split(m.body, "\n") {
		if strings.HasPrefix(line, "IP address: 10.") || strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "forged") {
			t.Errorf("the event forged the line %q", line)
		}
	}
	if !strings.Contains(m.body, "\nEmail:      eve@example.org  IP address: 10.0.0.1\n") {
		t.Errorf("body does not keep the email on its line:\n%s", m.body)
	}
}

func TestSendDigestsTheBatchWhileMoreThanTheThresholdArriveWithinTheWindow(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	s, clk := newTestSender(t, ts, nil) // threshold 3 within 1m

	sendOK(t, s, registration(1, "u1"), registration(2, "u2"))
	clk.add(10 * time.Second)
	sendOK(t, s, registration(3, "u3")) // 3 within the window: not more than the threshold
	if n := len(ts.Messages()); n != 3 {
		t.Fatalf("%d messages up to the threshold, want 3 single mails", n)
	}

	clk.add(10 * time.Second)
	burst := []Notification{registration(4, "u4"), registration(5, "u5"), registration(6, "u6"), registration(7, "u7")}
	burst[2].Type, burst[2].Username = "LOGIN_ERROR", "mallory"
	burst[0].Time = burst[0].Time.Add(-time.Minute) // the oldest event names the digest's start
	sendOK(t, s, burst...)
	got := ts.Messages()
	if len(got) != 4 {
		t.Fatalf("%d messages, want 3 singles and 1 digest", len(got))
	}
	m := parse(t, got[3].Data)
	if want := "Keycloak demo: 4 events (REGISTER ×3, LOGIN_ERROR ×1) since 2026-12-01 22:28:23 UTC"; m.subject != want {
		t.Errorf("digest subject %q, want %q", m.subject, want)
	}
	if id := m.header.Get("Message-Id"); id != "<digest.4.4.kc-event-emitter@example.com>" {
		t.Errorf("digest Message-ID %q", id)
	}
	for i, user := range []string{"u4", "u5", "mallory", "u7"} {
		block := "--- " + string(rune('1'+i)) + " of 4\n"
		at := strings.Index(m.body, block)
		if at < 0 || !strings.Contains(m.body[at:], "Username:   "+user+"\n") {
			t.Errorf("digest lacks block %q with user %s:\n%s", block, user, m.body)
		}
	}
	if !strings.Contains(m.body, "more than 3 arrived within 1m0s") {
		t.Errorf("digest does not say why:\n%s", m.body)
	}

	// Within the window still: a single one goes alone (a digest of one
	// says less); once the window has passed, mails are single again.
	clk.add(10 * time.Second)
	sendOK(t, s, registration(8, "u8"))
	clk.add(2 * time.Minute)
	sendOK(t, s, registration(9, "u9"), registration(10, "u10"))
	got = ts.Messages()
	if len(got) != 7 {
		t.Fatalf("%d messages, want 7", len(got))
	}
	for i, want := range []string{"Keycloak demo: REGISTER u8", "Keycloak demo: REGISTER u9", "Keycloak demo: REGISTER u10"} {
		if m := parse(t, got[4+i].Data); m.subject != want {
			t.Errorf("message %d: subject %q, want %q", 5+i, m.subject, want)
		}
	}
}

func TestSendCountsARetriedBatchOnceTowardsTheThreshold(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	ts.Stop()
	s, clk := newTestSender(t, ts, nil) // threshold 3 within 1m
	batch := []Notification{registration(1, "a"), registration(2, "b")}
	for range 3 { // the server down: three failed attempts of the same two
		if err := s.Send(context.Background(), batch)[0]; err == nil {
			t.Fatal("sent to a stopped server")
		}
		clk.add(time.Second)
	}
	ts.Restart(t)
	sendOK(t, s, batch...)
	if got := ts.Messages(); len(got) != 2 {
		t.Fatalf("%d mails, want the two single ones: failed attempts do not count", len(got))
	}
}

func TestDigestSubjectNamesTheThreeCommonestTypesAndNoRealmWhenSeveral(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	s, _ := newTestSender(t, ts, func(o *Options) { o.DigestThreshold = 1 })
	var ns []Notification
	for i, typ := range []string{"REGISTER", "REGISTER", "LOGIN", "LOGIN", "LOGIN", "LOGOUT", "USER:CREATE"} {
		n := registration(int64(i+1), "u")
		n.Type = typ
		ns = append(ns, n)
	}
	ns[6].RealmName = "other"
	sendOK(t, s, ns...)
	m := parse(t, ts.Messages()[0].Data)
	if want := "Keycloak: 7 events (LOGIN ×3, REGISTER ×2, LOGOUT ×1, …) since 2026-12-01 22:29:23 UTC"; m.subject != want {
		t.Errorf("subject %q, want %q", m.subject, want)
	}
	if !strings.Contains(m.body, "USER:CREATE ×1") {
		t.Errorf("body's tally lacks the fourth type:\n%s", m.body)
	}
}

func TestSendClassifiesTheServersAnswers(t *testing.T) {
	tests := []struct {
		name      string
		dataErr   error
		password  string
		permanent bool
		mention   string
	}{
		{"5xx to the message is permanent", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}, smtptest.Password, true, "554 5.6.0 content rejected"},
		{"4xx to the message is transient", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}, smtptest.Password, false, "451"},
		{"5xx to AUTH is transient: no event mends it", nil, "wrong", false, "AUTH: SMTP error 535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := smtptest.Start(t, "", false)
			ts.DataErr = func([]byte) error { return tt.dataErr }
			s, _ := newTestSender(t, ts, func(o *Options) { o.Password = tt.password })
			err := s.Send(context.Background(), []Notification{registration(1, "alice")})[0]
			if err == nil {
				t.Fatal("no error")
			}
			var p interface{ Permanent() bool }
			if got := errors.As(err, &p) && p.Permanent(); got != tt.permanent {
				t.Errorf("permanent = %v, want %v (%v)", got, tt.permanent, err)
			}
			if !strings.Contains(err.Error(), tt.mention) || !strings.Contains(err.Error(), ts.Addr) {
				t.Errorf("error %q does not name the server and %q", err, tt.mention)
			}
			if strings.Contains(err.Error(), smtptest.Password) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestSendRefusalOfOneMailLeavesTheOthersOfTheBatchDelivered(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	ts.DataErr = func(b []byte) error {
		if bytes.Contains(b, []byte("Username:   bad")) {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "policy"}
		}
		return nil
	}
	s, _ := newTestSender(t, ts, func(o *Options) { o.DigestThreshold = 10 })
	errs := s.Send(context.Background(), []Notification{registration(1, "a"), registration(2, "bad"), registration(3, "c")})
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("errors %v: want the first and third delivered", errs)
	}
	if p, ok := errs[1].(*RefusedError); !ok || !p.Permanent() || p.MessageID != "2.kc-event-emitter@example.com" {
		t.Errorf("second error %v: want a permanent refusal of message 2", errs[1])
	}
	if n := len(ts.Messages()); n != 2 {
		t.Errorf("%d messages accepted, want 2", n)
	}
}

func TestSendFailsTransientlyWhileTheServerIsDownAndDeliversOnceItIsUp(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	ts.Stop()
	s, _ := newTestSender(t, ts, nil)
	err := s.Send(context.Background(), []Notification{registration(1, "alice")})[0]
	var p interface{ Permanent() bool }
	if err == nil || (errors.As(err, &p) && p.Permanent()) || !strings.Contains(err.Error(), ts.Addr) {
		t.Fatalf("server down: error %v, want a transient error naming %s", err, ts.Addr)
	}

	ts.Restart(t)
	sendOK(t, s, registration(1, "alice"))
	if n := len(ts.Messages()); n != 1 {
		t.Errorf("%d messages once up, want 1", n)
	}
}

func TestSendAuthenticatesWithLOGINWhenAsked(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	s, _ := newTestSender(t, ts, func(o *Options) { o.Auth = AuthLogin })
	sendOK(t, s, registration(1, "alice"))
	if got := ts.Messages(); len(got) != 1 || got[0].Mech != "LOGIN" || got[0].User != smtptest.User {
		t.Errorf("messages %+v, want one after AUTH LOGIN", got)
	}
}

func TestSendOverImplicitTLS(t *testing.T) {
	ts := smtptest.Start(t, "", true)
	s, _ := newTestSender(t, ts, func(o *Options) { o.TLS = ImplicitTLS })
	sendOK(t, s, registration(1, "alice"))
	if got := ts.Messages(); len(got) != 1 || !got[0].TLS {
		t.Errorf("messages %v, want one over TLS", got)
	}
}

func TestSendRefusesAServerWhoseCertificateDoesNotVerify(t *testing.T) {
	ts := smtptest.Start(t, "", false)
	other := smtptest.Start(t, "", false) // another test CA
	s, _ := newTestSender(t, ts, func(o *Options) { o.CAFile = other.CAFile })
	err := s.Send(context.Background(), []Notification{registration(1, "alice")})[0]
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("error %v: want the certificate's verification error, wrapped", err)
	}
	if n := len(ts.Messages()); n != 0 {
		t.Errorf("%d messages sent to an unverified server", n)
	}
}

func TestSendStopsWhenTheContextEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never greets
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, _ := newTestSender(t, &smtptest.Server{Addr: ln.Addr().String()}, func(o *Options) { o.CAFile = ""; o.Timeout = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Send(ctx, []Notification{registration(1, "alice")})[0]; err == nil {
		t.Fatal("no error from a server that never greets")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Send returned %s after its context ended", d)
	}
}

func TestNewRefusesBadOptionsNamingTheValue(t *testing.T) {
	good := Options{Addr: "127.0.0.1:25", From: "k@example.com", To: []string{"a@example.com"}}
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no port", func(o *Options) { o.Addr = "mail.example.com" }, `Addr "mail.example.com"`},
		{"plain text off loopback", func(o *Options) { o.Addr, o.TLS = "192.0.2.1:25", NoTLS }, "loopback"},
		{"unknown TLS mode", func(o *Options) { o.TLS = "ssl" }, `TLS "ssl"`},
		{"bad from", func(o *Options) { o.From = "keycloak" }, `From "keycloak"`},
		{"no recipient", func(o *Options) { o.To = nil }, "no recipient"},
		{"bad recipient", func(o *Options) { o.To = []string{"a@example.com", "oops"} }, `To "oops"`},
		{"unknown zone", func(o *Options) { o.Zone = "Mars/Olympus" }, `Zone "Mars/Olympus"`},
		{"unknown auth", func(o *Options) { o.Auth = "CRAM-MD5" }, `Auth "CRAM-MD5"`},
		{"user without password", func(o *Options) { o.Username = "u" }, "without a password"},
		{"CA file missing", func(o *Options) { o.CAFile = "/nonexistent/ca.pem" }, "/nonexistent/ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			_, err := New(o)
			var oe *OptionError
			if !errors.As(err, &oe) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
	o := good
	o.TLS = NoTLS
	if _, err := New(o); err != nil {
		t.Errorf("plain text to 127.0.0.1: %v", err)
	}
}
