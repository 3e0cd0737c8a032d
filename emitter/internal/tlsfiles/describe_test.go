package tlsfiles

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestDescribeNamesTheCertificateThatFailed pins each failure's words:
// the CA file trusted, the client certificate presented, or nothing for an
// error that is not a failed handshake.
func TestDescribeNamesTheCertificateThatFailed(t *testing.T) {
	withCA := Setup{Peer: "the broker", CAFile: "/etc/ca.pem"}
	withCert := Setup{Peer: "the server", CAFile: "/etc/ca.pem", CertFile: "/etc/client.pem"}
	alert := &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}
	for _, c := range []struct {
		name    string
		s       Setup
		err     error
		refused bool
		want    []string // in the description; none: ""
	}{
		{"an unknown CA", withCA, fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), false, []string{"the broker's certificate", "/etc/ca.pem"}},
		{"the system's CAs", Setup{Peer: "the broker"}, x509.UnknownAuthorityError{}, false, []string{"the system's CAs"}},
		{"another host", withCA, x509.HostnameError{Host: "127.0.0.1", Certificate: &x509.Certificate{}}, false, []string{"not for the address dialed"}},
		{"an alert, no client certificate", withCA, alert, false, []string{"the broker refused the handshake", "none is set"}},
		{"an alert, a client certificate", withCert, alert, false, []string{"the server refused the handshake", "/etc/client.pem"}},
		{"refused, as the caller tells", withCert, errors.New("nats: TLS handshake"), true, []string{"/etc/client.pem"}},
		{"not a handshake", withCert, errors.New("connection refused"), false, nil},
	} {
		got := c.s.Describe(c.err, c.refused)
		if c.want == nil && got != "" {
			t.Errorf("%s: %q, want nothing", c.name, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q, want it to name %q", c.name, got, w)
			}
		}
	}
}
