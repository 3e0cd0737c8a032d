package emitter

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/buffer"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// newSQLASCIIKCDB is newKCDB on a database whose encoding is SQL_ASCII (what
// initdb makes under the C locale): it stores any bytes, and a value whose
// bytes are not UTF-8 cannot be returned to a client that reads UTF-8, as
// lib/pq does: the statement fails at that row with SQLSTATE 22021.
func newSQLASCIIKCDB(t *testing.T) *kcDB {
	t.Helper()
	cluster := testenv.PostgresURL(t)
	admin, err := sql.Open("postgres", cluster)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "kcee_ascii_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name + " ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(cluster)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return newKCDBOn(t, u.String())
}

// onceTarget is a local target that records the ids of the events it took.
type onceTarget struct {
	mu  sync.Mutex
	ids []string
}

func (o *onceTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.ids = append(o.ids, ev.ID)
	o.mu.Unlock()
}

// runOnce runs Run with Once over the database at dbURL to a local target
// and returns what the target took, the dead letters, the logs and the
// metrics.
func runOnce(t *testing.T, dbURL string, change func(*Config)) (ids []string, dead []deadletter.Record, logs string, reg *prometheus.Registry) {
	t.Helper()
	target := &onceTarget{}
	srv := httptest.NewServer(target)
	defer srv.Close()
	dir := t.TempDir()
	cfg := validConfig()
	cfg.DatabaseURL, cfg.TargetURI, cfg.Once, cfg.From, cfg.ListenAddr = dbURL, srv.URL, true, "beginning", ""
	cfg.CheckpointPath, cfg.DeadLetterPath = filepath.Join(dir, "cp.json"), filepath.Join(dir, "dead.jsonl")
	if change != nil {
		change(&cfg)
	}
	var buf syncBuffer
	reg = prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Run(ctx, cfg, RunOptions{Logger: slog.New(slog.NewTextHandler(&buf, nil)), Registry: reg}); err != nil {
		t.Fatalf("Run = %v; logs:\n%s", err, buf.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("Run with Once did not end by itself within a minute; logs:\n%s", buf.String())
	}
	data, err := os.ReadFile(cfg.DeadLetterPath)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		var r deadletter.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("dead-letter line %q: %v", line, err)
		}
		dead = append(dead, r)
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	return slices.Clone(target.ids), dead, buf.String(), reg
}

// seriesValue returns the value of the series of metric name with the
// given labels in reg, and false when there is none.
func seriesValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A row whose text the database cannot return (bytes that are not UTF-8 in
// a SQL_ASCII database) used to fail its stream's every read, and --once
// never ended. Now the rows around it are delivered, it is dead-lettered
// with the database's error, counted and logged at ERROR, and the run ends.
func TestRunOnceSetsAsideARowTheDatabaseCannotReturnAndDeliversTheOthers(t *testing.T) {
	k := newSQLASCIIKCDB(t)
	k.realm("r", "acme")
	for i, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		k.admin(id, "r", 1700000000000+int64(i))
	}
	for i, id := range []string{"e1", "e2", "e3"} {
		k.event(id, "r", 1700000000000+int64(i), "LOGIN")
	}
	// E'\xe9' is one byte 0xe9: Latin-1 é, not UTF-8.
	k.exec(`UPDATE admin_event_entity SET representation = E'{"name":"caf\xe9"}' WHERE id = 'a3'`)
	k.exec(`UPDATE event_entity SET details_json = E'{"k":"\xff"}' WHERE id = 'e1'`)
	// A username the database cannot return: e3's user's.
	k.exec(`INSERT INTO user_entity (id, username, realm_id) VALUES ('u-bad', E'jos\xe9', 'r'), ('u-ok', 'alice', 'r')`)
	k.exec(`UPDATE event_entity SET user_id = 'u-bad' WHERE id = 'e3'`)
	k.exec(`UPDATE event_entity SET user_id = 'u-ok' WHERE id = 'e2'`)

	ids, dead, logs, reg := runOnce(t, k.url, nil)
	slices.Sort(ids)
	if want := []string{"a1", "a2", "a4", "a5", "e2", "e3"}; !slices.Equal(ids, want) {
		t.Errorf("target took %v, want %v (e3 without its username)", ids, want)
	}
	var deadIDs []string
	for _, d := range dead {
		deadIDs = append(deadIDs, d.ID)
		if !strings.Contains(d.Reason, "invalid byte sequence") || !strings.Contains(d.Reason, "cannot return") || d.Status != 0 {
			t.Errorf("dead letter %s: status %d, reason %q; want 0 and the database's error", d.ID, d.Status, d.Reason)
		}
	}
	slices.Sort(deadIDs)
	if want := []string{"a3", "e1"}; !slices.Equal(deadIDs, want) {
		t.Errorf("dead-lettered %v, want %v", deadIDs, want)
	}
	for _, kind := range []string{"AdminEvent", "Event"} {
		if v, _ := seriesValue(t, reg, "kc_event_emitter_rows_unreadable_total", map[string]string{"kind": kind, "reason": "encoding"}); v != 1 {
			t.Errorf("rows_unreadable_total{kind=%q,reason=encoding} = %v, want 1", kind, v)
		}
	}
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "cannot return a stored event") || !strings.Contains(logs, "id=a3") {
		t.Errorf("no ERROR line naming the row; logs:\n%s", logs)
	}
	if !strings.Contains(logs, "cannot return a username") || !strings.Contains(logs, "user_id=u-bad") {
		t.Errorf("no ERROR line naming the user whose name cannot be read; logs:\n%s", logs)
	}
}

// Rows with a NULL time, or of a realm id that has no realm row, are
// outside every read; they were skipped without a word. Now they are
// counted by kind and reason and logged at ERROR with the realm id, and
// the rows around them are delivered as before.
func TestRunOnceCountsAndLogsRowsNoReadReaches(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	k.event("e1", "r", 1700000000000, "LOGIN")
	k.event("gone-1", "deleted-realm", 1700000000000, "LOGIN")
	k.event("gone-2", "deleted-realm", 1700000000001, "LOGIN")
	k.exec(`INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ('nt', 'r', NULL, 'LOGIN')`)
	k.admin("a1", "r", 1700000000000)
	k.exec(`INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type) VALUES ('ant', 'r', NULL, 'CREATE', 'USER')`)

	ids, dead, logs, reg := runOnce(t, k.url, nil)
	slices.Sort(ids)
	if want := []string{"a1", "e1"}; !slices.Equal(ids, want) || len(dead) != 0 {
		t.Errorf("target took %v and %d were dead-lettered, want %v and none", ids, len(dead), want)
	}
	for _, c := range []struct {
		kind, reason string
		want         float64
	}{
		{"Event", "no_realm", 2}, {"Event", "null_time", 1}, {"AdminEvent", "null_time", 1},
		{"AdminEvent", "no_realm", 0}, {"Event", "null_realm", 0},
	} {
		v, ok := seriesValue(t, reg, "kc_event_emitter_rows_unreachable", map[string]string{"kind": c.kind, "reason": c.reason})
		if !ok || v != c.want {
			t.Errorf("rows_unreachable{kind=%q,reason=%q} = %v (present %v), want %v", c.kind, c.reason, v, ok, c.want)
		}
	}
	for _, line := range []string{
		"realm_id=deleted-realm rows=2", "kind=Event reason=null_time realm_id=r rows=1", "kind=AdminEvent reason=null_time realm_id=r rows=1",
	} {
		if !strings.Contains(logs, line) {
			t.Errorf("no log line with %q; logs:\n%s", line, logs)
		}
	}
	if n := strings.Count(logs, "level=ERROR msg=\"stored events are never read"); n != 3 {
		t.Errorf("%d ERROR lines about rows never read, want 3; logs:\n%s", n, logs)
	}
}

// An event heavier than --maxEventBytes is never read whole (an 800 MB
// representation would take the process with it, restart after restart):
// it is dead-lettered with its size, counted and logged, and the others
// are delivered.
func TestRunOnceDeadLettersAnEventAboveMaxEventBytesWithoutReadingIt(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	for i, id := range []string{"a1", "a2", "a3"} {
		k.admin(id, "r", 1700000000000+int64(i))
	}
	k.exec(`UPDATE admin_event_entity SET representation = repeat('x', 1 << 20) WHERE id = 'a2'`)
	k.exec(`UPDATE admin_event_entity SET representation = repeat('y', 100 << 10) WHERE id = 'a3'`)

	ids, dead, logs, reg := runOnce(t, k.url, func(c *Config) { c.MaxEventBytes = 512 << 10 })
	slices.Sort(ids)
	if want := []string{"a1", "a3"}; !slices.Equal(ids, want) {
		t.Errorf("target took %v, want %v", ids, want)
	}
	if len(dead) != 1 || dead[0].ID != "a2" || !strings.Contains(dead[0].Reason, "above --maxEventBytes 524288") {
		t.Errorf("dead letters %+v, want a2 with its size above --maxEventBytes", dead)
	}
	if v, _ := seriesValue(t, reg, "kc_event_emitter_rows_unreadable_total", map[string]string{"kind": "AdminEvent", "reason": "too_large"}); v != 1 {
		t.Errorf("rows_unreadable_total{kind=AdminEvent,reason=too_large} = %v, want 1", v)
	}
	if !strings.Contains(logs, "level=ERROR msg=\"a stored event is too large to be read") || !strings.Contains(logs, "id=a2") {
		t.Errorf("no ERROR line naming a2; logs:\n%s", logs)
	}
}

// Pages cut by --pageBytes are shorter than --pageSize although more rows
// follow: the run reads on until every row is delivered, in order, through
// a buffer of --bufferBytes smaller than one event.
func TestRunOnceDrainsEveryRowThroughPagesAndABufferCutByBytes(t *testing.T) {
	k := newKCDB(t)
	k.realm("r", "acme")
	var want []string
	for i := range 6 {
		id := fmt.Sprintf("a%d", i)
		want = append(want, id)
		k.admin(id, "r", 1700000000000+int64(i))
	}
	k.exec(`UPDATE admin_event_entity SET representation = repeat('x', 200 << 10)`)
	for _, overflow := range []buffer.Policy{buffer.Block, buffer.DropOldest} {
		t.Run(overflow.String(), func(t *testing.T) {
			ids, dead, logs, _ := runOnce(t, k.url, func(c *Config) {
				c.PageBytes, c.BufferBytes, c.Overflow, c.Kinds = 64<<10, 64<<10, overflow, []Kind{KindAdminEvent}
			})
			if !slices.Equal(ids, want) || len(dead) != 0 {
				t.Errorf("target took %v (%d dead-lettered), want %v in order; logs:\n%s", ids, len(dead), want, logs)
			}
		})
	}
}
