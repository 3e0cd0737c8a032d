package pgsource

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// LockOptions configure a Locker. URL and Key are required; zero durations
// take the defaults.
type LockOptions struct {
	// URL is the database holding the lock (lib/pq URL or key=value; never
	// part of an error message).
	URL string
	// Key names the lock; its 64-bit hash (hashtextextended) is the
	// advisory lock's key, so every process giving the same Key contends
	// for one lock.
	Key string
	// AppName is the session's application_name, which operators see in
	// pg_stat_activity next to the lock in pg_locks.
	AppName string
	// Ping is the pause between two confirmations of a held lock (300 ms).
	Ping time.Duration
	// Lease is how long a held lock counts as confirmed after the start of
	// the last ping that succeeded (1 s): past it the Lease is lost.
	Lease time.Duration
	// IdleSessionTimeout is set on the lock's session (PostgreSQL 14+):
	// the server ends the session, and so releases the lock, when no ping
	// arrived for that long (3 s). It must be larger than Lease, so that
	// a holder stops before the server lets another take the lock.
	IdleSessionTimeout time.Duration
	// Log receives what does not stop the lock (an old server); nil drops it.
	Log func(msg string, args ...any)
}

func (o *LockOptions) defaults() {
	if o.Ping <= 0 {
		o.Ping = 300 * time.Millisecond
	}
	if o.Lease <= 0 {
		o.Lease = time.Second
	}
	if o.IdleSessionTimeout <= 0 {
		o.IdleSessionTimeout = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
}

// Locker contends for one session-level advisory lock (pg_try_advisory_lock)
// on a connection of its own. Between tries it keeps the connection open
// (a hot standby). The session is set up so that the server releases the
// lock within seconds of losing its holder, even when the network is cut
// rather than closed: idle_session_timeout (PostgreSQL 14+; the holder's
// pings keep it from firing), and TCP keepalives and tcp_user_timeout of a
// few seconds on both ends. A Locker is used by one goroutine at a time.
type Locker struct {
	o      LockOptions
	dialer *trackingDialer
	db     *sql.DB
	conn   *sql.Conn // the session; nil between a loss and the next try
	// ServerVersion is server_version_num of the last session (e.g. 170002).
	serverVersion int
}

// NewLocker returns a Locker for o; nothing is connected yet.
func NewLocker(o LockOptions) (*Locker, error) {
	if o.Key == "" {
		return nil, errors.New("pgsource: the lock key is empty")
	}
	o.defaults()
	if o.IdleSessionTimeout <= o.Lease {
		return nil, fmt.Errorf("pgsource: idle session timeout %s must exceed the lease %s", o.IdleSessionTimeout, o.Lease)
	}
	connector, err := pq.NewConnector(o.URL)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL connection string: %w", err)
	}
	d := newTrackingDialer(o.IdleSessionTimeout)
	connector.Dialer(d)
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1) // the lock's session, and only it
	db.SetMaxIdleConns(1)
	return &Locker{o: o, dialer: d, db: db}, nil
}

// ServerVersion returns server_version_num of the last session, 0 before
// the first.
func (l *Locker) ServerVersion() int { return l.serverVersion }

// session returns the lock's session, connecting and setting it up if
// needed.
func (l *Locker) session(ctx context.Context) (*sql.Conn, error) {
	if l.conn != nil {
		return l.conn, nil
	}
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := l.setup(ctx, conn); err != nil {
		drop(conn)
		return nil, err
	}
	l.conn = conn
	return conn, nil
}

// setup sets the session's timeouts for the server's side.
func (l *Locker) setup(ctx context.Context, conn *sql.Conn) error {
	var v int
	if err := conn.QueryRowContext(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&v); err != nil {
		return fmt.Errorf("read the server version: %w", err)
	}
	if l.serverVersion == 0 && v < 140000 {
		l.o.Log("PostgreSQL before 14 has no idle_session_timeout: a frozen lock holder keeps the lock until it is killed or resumes; a network cut releases it through TCP keepalives",
			"server_version_num", v)
	}
	l.serverVersion = v
	ms := func(d time.Duration) string { return fmt.Sprint(d.Milliseconds()) }
	sets := []struct {
		name, value string
		since       int
	}{
		{"application_name", l.o.AppName, 0},
		{"tcp_keepalives_idle", "1", 0}, // seconds
		{"tcp_keepalives_interval", "1", 0},
		{"tcp_keepalives_count", "2", 0},
		{"tcp_user_timeout", ms(l.o.IdleSessionTimeout), 120000},
		{"idle_session_timeout", ms(l.o.IdleSessionTimeout), 140000},
		{"statement_timeout", ms(l.o.IdleSessionTimeout), 0},
	}
	for _, s := range sets {
		if v < s.since || (s.name == "application_name" && s.value == "") {
			continue
		}
		if _, err := conn.ExecContext(ctx, `SELECT set_config($1, $2, false)`, s.name, s.value); err != nil {
			return fmt.Errorf("set %s: %w", s.name, err)
		}
	}
	return nil
}

// TryLock tries the lock once. It returns a Lease when it got it, nil
// when another session holds it, and an error when the database did not
// answer (the session is dropped; the next try connects again).
func (l *Locker) TryLock(ctx context.Context) (*Lease, error) {
	conn, err := l.session(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var got bool
	err = conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, l.o.Key).Scan(&got)
	if err != nil {
		l.drop()
		return nil, fmt.Errorf("try the lock: %w", err)
	}
	if !got {
		return nil, nil
	}
	h := &Lease{l: l, conn: conn, base: start, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	h.confirmed.Store(0) // confirmed at start
	go h.keep()
	return h, nil
}

// drop ends the session: the server releases any lock it held.
func (l *Locker) drop() {
	if l.conn == nil {
		return
	}
	l.dialer.closeAll() // unblocks a read waiting on a cut network
	drop(l.conn)
	l.conn = nil
}

// drop closes conn so that the pool discards it rather than reusing it.
func drop(conn *sql.Conn) {
	conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// Close ends the session and closes the Locker.
func (l *Locker) Close() error {
	l.drop()
	return l.db.Close()
}

// Lease is a held lock, confirmed by a ping of its session every
// LockOptions.Ping. It is lost, for good, when a ping fails or when no
// ping was confirmed for LockOptions.Lease (a slow or cut network, a
// process that was frozen): Lost is then closed and Valid false at once,
// measured on the monotonic clock, so a process resumed after a freeze
// knows before anything else runs that it may no longer act as leader.
type Lease struct {
	l         *Locker
	conn      *sql.Conn
	base      time.Time    // monotonic origin
	confirmed atomic.Int64 // ns since base at the start of the last ping that succeeded

	lostOnce sync.Once
	lost     chan struct{}
	err      error // why; set before lost is closed
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // keep returned
}

// Lost is closed when the lease is lost.
func (h *Lease) Lost() <-chan struct{} { return h.lost }

// Err returns why the lease was lost, nil while it holds.
func (h *Lease) Err() error {
	select {
	case <-h.lost:
		return h.err
	default:
		return nil
	}
}

// Valid tells whether the lock is held and was confirmed within the lease.
func (h *Lease) Valid() bool {
	select {
	case <-h.lost:
		return false
	default:
	}
	return time.Duration(int64(time.Since(h.base))-h.confirmed.Load()) < h.l.o.Lease
}

// lose marks the lease lost for err and closes the session's connection
// at once: a holder that could not confirm the lock in time gives it up
// rather than keep it until the server's idle_session_timeout. Release
// then only cleans up.
func (h *Lease) lose(err error) {
	h.lostOnce.Do(func() {
		h.err = err
		close(h.lost)
		h.l.dialer.closeAll()
	})
}

// keep pings the session every Ping and watches the lease until it is
// lost or released.
func (h *Lease) keep() {
	defer close(h.done)
	o := h.l.o
	pinged := make(chan error, 1)
	ping := func() {
		start := int64(time.Since(h.base))
		ctx, cancel := context.WithTimeout(context.Background(), o.Lease)
		err := h.conn.PingContext(ctx)
		cancel()
		if err == nil {
			h.confirmed.Store(max(h.confirmed.Load(), start))
		}
		pinged <- err
	}
	watch := time.NewTicker(min(o.Ping, o.Lease/10))
	defer watch.Stop()
	next := time.NewTimer(o.Ping)
	defer next.Stop()
	inFlight := false
	for {
		select {
		case <-h.stop:
			return
		case <-h.lost:
			return
		case <-next.C:
			if !inFlight {
				inFlight = true
				go ping()
			}
		case err := <-pinged:
			inFlight = false
			if err != nil {
				h.lose(fmt.Errorf("the lock's session failed a ping: %w", err))
				return
			}
			next.Reset(o.Ping)
		case <-watch.C:
			if since := time.Duration(int64(time.Since(h.base)) - h.confirmed.Load()); since >= o.Lease {
				h.lose(fmt.Errorf("no ping confirmed the lock for %s (lease %s)", since.Round(time.Millisecond), o.Lease))
				return
			}
		}
	}
}

// Release gives the lock up (or, when lost, ends what is left of it): the
// pings stop and the session is ended, so the server releases the lock at
// once; the Locker connects again at its next TryLock. Call it once the
// lease is no longer wanted or Lost is closed, from the Locker's goroutine.
func (h *Lease) Release() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
	if h.Err() == nil {
		// Unlock first: the server notices a closed connection a moment
		// later, and the next holder should not wait for that.
		ctx, cancel := context.WithTimeout(context.Background(), h.l.o.Lease)
		h.conn.ExecContext(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, h.l.o.Key)
		cancel()
	}
	h.lose(errors.New("released"))
	h.l.drop()
}

// trackingDialer dials TCP with keepalives and TCP_USER_TIMEOUT set to a
// few seconds, and remembers its open connections so that a lost lock can
// close them at once, even when the network is cut and a read would wait.
type trackingDialer struct {
	d     net.Dialer
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newTrackingDialer(userTimeout time.Duration) *trackingDialer {
	t := &trackingDialer{conns: map[*trackedConn]struct{}{}}
	t.d = net.Dialer{
		Timeout:         userTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 2},
		Control:         tcpUserTimeout(userTimeout),
	}
	return t
}

func (t *trackingDialer) Dial(network, address string) (net.Conn, error) {
	return t.DialContext(context.Background(), network, address)
}

func (t *trackingDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.DialContext(ctx, network, address)
}

func (t *trackingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := t.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, owner: t}
	t.mu.Lock()
	t.conns[tc] = struct{}{}
	t.mu.Unlock()
	return tc, nil
}

// closeAll closes every connection dialed and still open.
func (t *trackingDialer) closeAll() {
	t.mu.Lock()
	conns := t.conns
	t.conns = map[*trackedConn]struct{}{}
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	owner *trackingDialer
}

func (c *trackedConn) Close() error {
	c.owner.mu.Lock()
	delete(c.owner.conns, c)
	c.owner.mu.Unlock()
	return c.Conn.Close()
}
