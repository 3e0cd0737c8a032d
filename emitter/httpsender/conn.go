package httpsender

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// dialer opens the Sender's connections: the TCP connect and, for https,
// the TLS handshake together are bounded by the connect timeout, and every
// connection is wrapped so that silence while reading is bounded by the
// socket timeout.
type dialer struct {
	connect time.Duration
	socket  time.Duration
	tls     *tls.Config
	net     net.Dialer
}

// dial opens a plain TCP connection (http targets, and proxies).
func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, d.connect)
	defer cancel()
	c, err := d.net.DialContext(dctx, network, addr)
	if err != nil {
		return nil, d.connectError(ctx, addr, err)
	}
	ic := &idleConn{Conn: c, timeout: d.socket}
	ic.armed.Store(true)
	return ic, nil
}

// dialTLS opens a TCP connection and completes the TLS handshake on it,
// both within the connect timeout.
func (d *dialer) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, d.connect)
	defer cancel()
	c, err := d.net.DialContext(dctx, network, addr)
	if err != nil {
		return nil, d.connectError(ctx, addr, err)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("target address %q: %w", addr, err)
	}
	cfg := d.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	// The socket timeout starts to apply once the handshake is done; until
	// then only the connect timeout does.
	ic := &idleConn{Conn: c, timeout: d.socket}
	tc := tls.Client(ic, cfg)
	if err := tc.HandshakeContext(dctx); err != nil {
		tc.Close()
		return nil, d.connectError(ctx, addr, fmt.Errorf("TLS handshake: %w", err))
	}
	ic.armed.Store(true)
	return tc, nil
}

// connectError marks err with ErrConnectTimeout when the connect timeout,
// not the caller's context, ended the attempt.
func (d *dialer) connectError(parent context.Context, addr string, err error) error {
	if parent.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)) {
		return &timeoutError{kind: ErrConnectTimeout, limit: d.connect, err: fmt.Errorf("connecting to %s: %w", addr, err)}
	}
	return err
}

// idleConn bounds silence on a connection: once armed, every Read must
// receive data within timeout, and every Write restarts that clock for a
// Read already waiting (the transport reads ahead on idle connections), so
// the wait for a response counts from the end of the request. An idle
// pooled connection is thus closed after timeout as well. Writes are
// bounded the same way, so a peer that stops reading cannot hang a request.
type idleConn struct {
	net.Conn
	timeout time.Duration
	armed   atomic.Bool
}

func (c *idleConn) Read(p []byte) (int, error) {
	armed := c.armed.Load()
	if armed {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	if err != nil && armed && errors.Is(err, os.ErrDeadlineExceeded) {
		err = &timeoutError{kind: ErrSocketTimeout, limit: c.timeout, err: err}
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	armed := c.armed.Load()
	if armed {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Write(p)
	if armed {
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			err = &timeoutError{kind: ErrSocketTimeout, limit: c.timeout, err: err}
		}
		if derr := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); derr != nil && err == nil {
			err = derr
		}
	}
	return n, err
}

// timeoutError is an attempt that one of the Sender's three timeouts ended.
// It is a net.Error whose Timeout is true, and errors.Is matches it with
// its kind (ErrConnectTimeout, ErrRequestTimeout or ErrSocketTimeout).
type timeoutError struct {
	kind  error
	limit time.Duration
	err   error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%v (%s): %v", e.kind, e.limit, e.err)
}

func (e *timeoutError) Unwrap() []error { return []error{e.kind, e.err} }

// Timeout reports true: the error is a timeout.
func (e *timeoutError) Timeout() bool { return true }

// Temporary reports true: the next attempt may succeed.
func (e *timeoutError) Temporary() bool { return true }
