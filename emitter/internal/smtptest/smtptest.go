// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp's)
// in a test process: STARTTLS (or implicit TLS) with a certificate made for
// the test, AUTH PLAIN required before MAIL, and every accepted message
// recorded.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Server is an SMTP server in the test process that records the messages
// it accepts. It offers STARTTLS with a certificate made for the test, and
// requires AUTH PLAIN or LOGIN (as User, Password) over TLS before MAIL.
type Server struct {
	Addr   string
	CAFile string // the PEM the client verifies the server with

	cfg      *tls.Config
	implicit bool
	srv      *smtp.Server
	ln       net.Listener

	mu       sync.Mutex
	received []Received
	// DataErr, when set before the first message, answers the end of
	// DATA of a message (nil: accepted).
	DataErr func(data []byte) error
}

// Received is one accepted message.
type Received struct {
	From string
	To   []string
	Data []byte
	TLS  bool   // the session was over TLS
	User string // who authenticated
	Mech string // with which SASL mechanism
}

const (
	User     = "mailer"
	Password = "s3cret-pass"
)

// testTLS makes a self-signed certificate for 127.0.0.1 and writes it to a
// CA file.
func testTLS(t testing.TB) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailsink test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, caFile
}

// Start starts a Server on addr ("" picks a free port), stopped when the
// test ends; with implicit it speaks TLS from the first byte.
func Start(t testing.TB, addr string, implicit bool) *Server {
	t.Helper()
	cfg, caFile := testTLS(t)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ts := &Server{Addr: addr, CAFile: caFile, cfg: cfg, implicit: implicit}
	ts.listen(t)
	t.Cleanup(ts.Stop)
	return ts
}

// listen serves on ts.Addr.
func (ts *Server) listen(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", ts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if ts.implicit {
		ln = tls.NewListener(ln, ts.cfg)
	}
	ts.Addr = ln.Addr().String()
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{ts: ts, c: c}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = ts.cfg
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	ts.mu.Lock()
	ts.srv, ts.ln = srv, ln
	ts.mu.Unlock()
	go srv.Serve(ln)
}

// Restart serves again on the same address with the same certificate,
// after Stop.
func (ts *Server) Restart(t testing.TB) { ts.listen(t) }

// Messages returns what the server accepted so far.
func (ts *Server) Messages() []Received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]Received(nil), ts.received...)
}

// Stop stops the server: it accepts no connection until Restart.
func (ts *Server) Stop() {
	ts.mu.Lock()
	srv, ln := ts.srv, ts.ln
	ts.mu.Unlock()
	ln.Close() // also when Serve has not begun yet
	srv.Close()
}

type session struct {
	ts   *Server
	c    *smtp.Conn
	user string
	mech string
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(username, password string) error {
		if username != User || password != Password {
			return smtp.ErrAuthFailed
		}
		s.user, s.mech = username, mech
		return nil
	}
	if mech == sasl.Login {
		return &loginServer{check: check}, nil
	}
	return sasl.NewPlainServer(func(_, username, password string) error { return check(username, password) }), nil
}

// loginServer is the server side of AUTH LOGIN (go-sasl has only the
// client's): it asks for the username, then the password.
type loginServer struct {
	check    func(username, password string) error
	step     int
	username string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // the username sent with AUTH LOGIN
			l.username, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.username, string(response))
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if f := s.ts.DataErr; f != nil {
		if err := f(b); err != nil {
			return err
		}
	}
	_, isTLS := s.c.TLSConnectionState()
	s.ts.mu.Lock()
	s.ts.received = append(s.ts.received, Received{From: s.from, To: s.to, Data: b, TLS: isTLS, User: s.user, Mech: s.mech})
	s.ts.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
