// Package tlsfiles is the TLS of the emitter's clients (the HTTP target,
// Kafka, NATS) set up from files: the CAs to trust, the client certificate
// of mutual TLS, and what failed in a handshake, in the words an operator
// fixing the setup needs (which certificate, of which file).
package tlsfiles

import (
	"crypto/x509"
	"errors"
	"net"
)

// Setup is what the client trusted and presented.
type Setup struct {
	Peer     string // what the server is, as a message names it: "the broker", "the server"
	CAFile   string // empty: the system's CAs
	CertFile string // the client certificate; empty: none
}

// Describe returns what failed when err is a failed handshake, else "".
// refused tells that the server ended the handshake although err does not
// say so (a connection closed right after it): with mutual TLS, it did not
// take the client's certificate.
func (s Setup) Describe(err error, refused bool) string {
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		host      x509.HostnameError
		op        *net.OpError
	)
	trusted := "the system's CAs"
	if s.CAFile != "" {
		trusted = "the CA file " + s.CAFile
	}
	switch {
	case errors.As(err, &unknownCA):
		return "TLS: " + s.Peer + "'s certificate is not signed by a CA of " + trusted
	case errors.As(err, &host):
		return "TLS: " + s.Peer + "'s certificate is not for the address dialed (want a certificate naming it, or set the server name)"
	case errors.As(err, &invalid):
		return "TLS: " + s.Peer + "'s certificate is not valid (expired, or not for a server): " + invalid.Error()
	case refused || errors.As(err, &op) && op.Op == "remote error":
		// An alert ending the handshake.
		if s.CertFile == "" {
			return "TLS: " + s.Peer + " refused the handshake: it requires a client certificate and none is set"
		}
		return "TLS: " + s.Peer + " refused the handshake: it does not take the client certificate " + s.CertFile + " (not of a CA it trusts?)"
	}
	return ""
}
