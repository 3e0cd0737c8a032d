package pgsource

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

func newLocker(t *testing.T, dbURL, key string) *Locker {
	t.Helper()
	l, err := NewLocker(LockOptions{URL: dbURL, Key: key, AppName: "kc-event-emitter test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func tryLock(t *testing.T, l *Locker) *Lease {
	t.Helper()
	h, err := l.TryLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitLock retries l every 100 ms until it gets the lock and returns how
// long that took.
func waitLock(t *testing.T, l *Locker, within time.Duration) (*Lease, time.Duration) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if h, err := l.TryLock(context.Background()); err == nil && h != nil {
			return h, time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the lock was not released within %s", within)
	return nil, 0
}

func TestLockIsHeldByOneSessionUntilReleased(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	a, b := newLocker(t, dbURL, "k"), newLocker(t, dbURL, "k")
	ha := tryLock(t, a)
	if ha == nil {
		t.Fatal("the first locker did not get a free lock")
	}
	if hb := tryLock(t, b); hb != nil {
		t.Fatal("two lockers hold the lock")
	}
	if other := tryLock(t, newLocker(t, dbURL, "another key")); other == nil {
		t.Fatal("a lock of another key is taken too")
	}
	time.Sleep(time.Second) // several pings
	if !ha.Valid() || ha.Err() != nil {
		t.Fatalf("a held lock with its session up is not valid: %v", ha.Err())
	}
	ha.Release()
	if ha.Valid() {
		t.Fatal("a released lease is still valid")
	}
	if hb := tryLock(t, b); hb == nil {
		t.Fatal("the lock was not free after Release")
	} else {
		hb.Release()
	}
	// The released locker can take it again on a new session.
	if h := tryLock(t, a); h == nil {
		t.Fatal("the first locker cannot take the lock again")
	} else {
		h.Release()
	}
}

// TestLockSessionIsSetUpToEndWithinSeconds: the lock's session has the
// server-side timeouts that release a lost holder's lock.
func TestLockSessionIsSetUpToEndWithinSeconds(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	a := newLocker(t, dbURL, "k")
	h := tryLock(t, a)
	defer h.Release()
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pid int
	if err := db.QueryRow(`SELECT pid FROM pg_stat_activity WHERE application_name = 'kc-event-emitter test'`).Scan(&pid); err != nil {
		t.Fatalf("the lock's session is not named in pg_stat_activity: %v", err)
	}
	var held bool
	if err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = $1 AND granted)`, pid).Scan(&held); err != nil || !held {
		t.Fatalf("pg_locks shows no advisory lock of the session %d (%v)", pid, err)
	}
	if a.ServerVersion() < 140000 {
		t.Skipf("server %d has no idle_session_timeout", a.ServerVersion())
	}
	// The settings are the session's own: read them on it.
	var idle, user string
	if err := h.conn.QueryRowContext(context.Background(), `SELECT current_setting('idle_session_timeout'), current_setting('tcp_user_timeout')`).Scan(&idle, &user); err != nil {
		t.Fatal(err)
	}
	if idle != "3s" || user != "3000" {
		t.Fatalf("idle_session_timeout %s, tcp_user_timeout %s; want 3s and 3000 (ms)", idle, user)
	}
}

// TestLockLostWhenTheServerEndsTheSession: a holder whose session is
// terminated loses its lease within about a ping, and another takes the
// lock.
func TestLockLostWhenTheServerEndsTheSession(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	a, b := newLocker(t, dbURL, "k"), newLocker(t, dbURL, "k")
	h := tryLock(t, a)
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	if _, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kc-event-emitter test' AND pid IN
		(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the lease was not lost 5 s after its session ended")
	}
	lostAfter := time.Since(start)
	if h.Valid() || h.Err() == nil {
		t.Fatalf("a lost lease is valid (%v)", h.Err())
	}
	h.Release()
	hb, _ := waitLock(t, b, 5*time.Second)
	hb.Release()
	t.Logf("lease lost %s after the session was terminated", lostAfter.Round(time.Millisecond))
}

// TestLockCutNetworkStopsTheHolderBeforeTheServerFreesTheLock cuts the
// holder's network path (a proxy that stops passing bytes but keeps the
// connections open, as a cut link does): the holder's lease is lost within
// about its lease (1 s), and the server ends the silent session and frees
// the lock within seconds (idle_session_timeout), never before the holder
// stopped.
func TestLockCutNetworkStopsTheHolderBeforeTheServerFreesTheLock(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	proxy := testenv.StartProxy(t, testenv.TargetOf(t, dbURL))
	a, b := newLocker(t, proxy.ProxyURL(t, dbURL), "k"), newLocker(t, dbURL, "k")
	h := tryLock(t, a)
	if h == nil {
		t.Fatal("no lock")
	}
	time.Sleep(500 * time.Millisecond)
	cut := time.Now()
	proxy.Cut()
	lostAt := make(chan time.Duration, 1)
	go func() {
		<-h.Lost()
		lostAt <- time.Since(cut)
	}()
	hb, freed := waitLock(t, b, 30*time.Second)
	defer hb.Release()
	var lost time.Duration
	select {
	case lost = <-lostAt:
	case <-time.After(100 * time.Millisecond):
		t.Fatalf("the lock was freed %s after the cut while the holder's lease still holds", freed)
	}
	if lost >= freed {
		t.Fatalf("the holder lost its lease %s after the cut, the lock was free at %s: two holders at once", lost, freed)
	}
	if !strings.Contains(h.Err().Error(), "ping") {
		t.Errorf("loss reason %q does not name the ping", h.Err())
	}
	h.Release()
	t.Logf("cut network: holder stopped after %s, server freed the lock after %s (at most +100 ms of retry)",
		lost.Round(time.Millisecond), freed.Round(time.Millisecond))
}
