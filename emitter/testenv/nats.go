package testenv

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is a NATS server with JetStream running in the test's process, on
// 127.0.0.1, its store in a temporary folder kept across restarts.
type NATS struct {
	t    testing.TB
	opts server.Options
	mu   sync.Mutex
	srv  *server.Server
}

// StartNATS starts a NATS server with JetStream (maxPayload: the largest
// message it takes; 0 is the server's default), stopped with the test.
func StartNATS(t testing.TB, maxPayload int32) *NATS {
	t.Helper()
	return StartNATSWith(t, func(o *server.Options) { o.MaxPayload = maxPayload })
}

// StartNATSWith starts a NATS server with JetStream whose options edit
// sets (users, a token, TLS), stopped with the test.
func StartNATSWith(t testing.TB, edit func(*server.Options)) *NATS {
	t.Helper()
	n := &NATS{t: t, opts: server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	}}
	if edit != nil {
		edit(&n.opts)
	}
	n.start()
	// Keep the port that was given for the restarts.
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.Stop)
	return n
}

func (n *NATS) start() {
	n.t.Helper()
	opts := n.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		n.t.Fatal("the NATS server did not get ready in 30s")
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
}

// URL returns nats://127.0.0.1:port.
func (n *NATS) URL() string { return "nats://" + n.HostPort() }

// HostPort returns 127.0.0.1:port.
func (n *NATS) HostPort() string { return "127.0.0.1:" + strconv.Itoa(n.opts.Port) }

// Stop shuts the server down (its store stays).
func (n *NATS) Stop() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart stops the server, waits down, and starts it again on the same
// port with the same store.
func (n *NATS) Restart(down time.Duration) {
	n.t.Helper()
	n.Stop()
	time.Sleep(down)
	n.start()
}
