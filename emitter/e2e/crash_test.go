package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// emitterArgs are the flags of an emitter reading the database at
// KC_EMITTER_DB_URL from the beginning and sending JSON to target.
func emitterArgs(target, checkpoint, listen string, extra ...string) []string {
	return append([]string{"--format", "JSON", "--targetUri", target, "--bufferCapacity", "1000",
		"--keycloakId", "7", "--datacenterId", "1", "--checkpoint", checkpoint, "--from", "beginning",
		"--listen", listen, "--pollInterval", "50ms", "--overflow", "block",
		"--deadLetterFile", checkpoint + ".deadletter.jsonl", "--logLevel", "INFO"}, extra...)
}

// newKeycloakDB creates a database with Keycloak's event tables as a real
// Keycloak 26 created them, and realms with the given ids (named without
// their "r-" prefix).
func newKeycloakDB(t testing.TB, realmIDs ...string) (*sql.DB, string) {
	t.Helper()
	dbURL := testenv.NewDatabase(t)
	testenv.LoadSchema(t, dbURL, "26.5.6")
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, r := range realmIDs {
		if _, err := db.Exec(`INSERT INTO realm (id, name, enabled) VALUES ($1, $2, true)`, r, strings.TrimPrefix(r, "r-")); err != nil {
			t.Fatal(err)
		}
	}
	return db, dbURL
}

// TestEmitterKilledAtRandomPointsDeliversEveryEventOnceWithItsUID streams
// 50,000 events into Keycloak's tables (three realms, concurrent
// transactions, same-millisecond bursts) while the emitter is killed with
// SIGKILL at random points and restarted: the receiver, which keeps each uid
// once, ends with every event exactly once. An event replayed after a crash
// with a new uid would be stored twice.
func TestEmitterKilledAtRandomPointsDeliversEveryEventOnceWithItsUID(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 50,000 events through the binaries")
	}
	realms := []string{"r-acme", "r-demo", "r-ops"}
	db, dbURL := newKeycloakDB(t, realms...)
	dir := t.TempDir()
	rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
	checkpoint, listen := filepath.Join(dir, "checkpoint.json"), freeAddr(t)
	env := "KC_EMITTER_DB_URL=" + dbURL
	em := start(t, "kc-event-emitter", emitterArgs(rcv.url(), checkpoint, listen), env)

	const total, batch = 50000, 50
	var wg sync.WaitGroup
	errs := make(chan error, len(realms))
	base := time.Now().UnixMilli()
	for ri, realm := range realms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := ri * batch; i < total; i += len(realms) * batch {
				var values []string
				var args []any
				for j := i; j < min(i+batch, total); j++ {
					// Ten events per millisecond: same-ms bursts within and across realms.
					values = append(values, fmt.Sprintf("($%d, $%d, $%d, 'LOGIN', 'u1', 'c1', '{\"auth_method\":\"openid-connect\"}')",
						len(args)+1, len(args)+2, len(args)+3))
					args = append(args, fmt.Sprintf("ev-%06d", j), realm, base+int64(j/10))
				}
				_, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, client_id, details_json) VALUES `+
					strings.Join(values, ","), args...)
				if err != nil {
					errs <- err
					return
				}
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
			}
		}()
	}
	inserted := make(chan struct{})
	go func() { wg.Wait(); close(inserted) }()

	kills := 0
	for done := false; !done; {
		select {
		case <-inserted:
			done = true
		case <-time.After(time.Duration(200+rand.IntN(1300)) * time.Millisecond):
			em = em.restart()
			kills++
		}
	}
	close(errs)
	for err := range errs {
		t.Fatalf("insert: %v", err)
	}
	// Two more kills after the last insert: the tail of the stream is replayed too.
	for range 2 {
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		em = em.restart()
		kills++
	}
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d events at the receiver", total), func() bool {
		return countLines(rcv.store) >= total
	})
	time.Sleep(time.Second) // anything stored twice would arrive now
	if code := em.stop(30 * time.Second); code != 0 {
		t.Errorf("emitter exit status after SIGTERM = %d, want 0", code)
	}
	rows := readStore(t, rcv.store)
	seen := map[string]int64{}
	for _, r := range rows {
		if uid, dup := seen[r.ID]; dup {
			t.Errorf("event %s stored twice: uid %d and uid %d (a replay must carry the same uid)", r.ID, uid, r.UID)
		}
		seen[r.ID] = r.UID
	}
	for i := range total {
		if _, ok := seen[fmt.Sprintf("ev-%06d", i)]; !ok {
			t.Errorf("event ev-%06d never arrived", i)
		}
	}
	rcv.stop(10 * time.Second)
	t.Logf("%d kills; receiver: %s", kills, tail(rcv.output(), 1))
}
