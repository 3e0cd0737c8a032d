package main

import (
	"database/sql"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// newTestDatabase creates a database on the cluster at KCEE_TEST_PG_URL and
// drops it when the test ends (see testenv.NewDatabase).
func newTestDatabase(tb testing.TB) string { return testenv.NewDatabase(tb) }

// TestBinaryStoresInPostgresWithTheURLFromTheEnvironment runs the receiver
// with --store postgres and the URL (with a password: the test cluster
// trusts any) in KC_RECEIVER_STORE_URL: the event is stored, and the start
// line names the store with its password masked.
func TestBinaryStoresInPostgresWithTheURLFromTheEnvironment(t *testing.T) {
	const pw = "Pw-in-env-7f3a"
	dsn := newTestDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	c := startChild(t, []string{"KC_RECEIVER_STORE_URL=" + u.String()}, "--store", "postgres")
	if got := post(t, c.url+"/event/receiver", "", "", loginJSON); got != 200 {
		t.Fatalf("status %d, want 200", got)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	<-c.done
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM kc_received_event WHERE uid = 4242").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows with uid 4242: %d, %v; want 1", n, err)
	}
	masked := u.Redacted()
	if !strings.Contains(c.stderr.String(), `store="postgres:`+masked+`"`) {
		t.Errorf("the start line does not name the store as postgres:%s:\n%s", masked, c.stderr)
	}
	if strings.Contains(c.stderr.String(), pw) {
		t.Errorf("stderr shows the password:\n%s", c.stderr)
	}
}
