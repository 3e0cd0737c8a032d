package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/receiver"
)

const signingSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// arrivals is a target that counts every request it answered 200, by
// webhook-id, after checking the signature and that the body carries that
// uid.
type arrivals struct {
	mu    sync.Mutex
	byUID map[int64]int
	total int
	bad   []string
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key, _ := receiver.ParseSecret(signingSecret)
	var ev struct{ UID int64 }
	json.Unmarshal(body, &ev)
	id := r.Header.Get("webhook-id")
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := receiver.VerifySignature([][]byte{key}, r.Header, body, time.Now(), time.Minute); err != nil || id != strconv.FormatInt(ev.UID, 10) {
		a.bad = append(a.bad, fmt.Sprintf("webhook-id %q, body uid %d, signature %v", id, ev.UID, err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	a.byUID[ev.UID]++
	a.total++
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

// TestDeadLetterReplayKilledAtRandomPointsDeliversEveryEventWithItsUID
// replays a dead-letter file of 1,000 events (rotated into parts) with the
// binary, killed with SIGKILL at random points (some early, in the rotation
// or a compaction, most in the middle of the sends) and started again until
// it ends: every event arrives, with its uid as webhook-id, and at most one
// per kill arrives twice (the one in flight).
func TestDeadLetterReplayKilledAtRandomPointsDeliversEveryEventWithItsUID(t *testing.T) {
	const n = 1000
	dir := t.TempDir()
	path := filepath.Join(dir, "dead.jsonl")
	f, err := deadletter.Open(path, 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("a", 400)
	for uid := int64(1); uid <= n; uid++ {
		body := fmt.Sprintf(`{"uid":%d,"time":1700000000000,"type":"LOGIN","realmId":"r1","details":{"pad":%q}}`, uid, pad)
		if err := f.Append(deadletter.Record{UID: uid, Kind: "Event", ID: fmt.Sprint("e", uid), Type: "LOGIN",
			Status: 401, At: time.Now(), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if parts, _ := deadletter.Parts(path); len(parts) < 3 {
		t.Fatalf("%d parts, want the file rotated a few times", len(parts))
	}
	tg := &arrivals{byUID: map[int64]int{}}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	args := []string{"deadletters", "replay", "--deadLetterFile", path, "--targetUri", srv.URL, "--logLevel", "WARN"}
	env := "KC_EMITTER_SIGNING_SECRET=" + signingSecret

	kills := 0
	for round := 0; ; round++ {
		p := start(t, "kc-event-emitter", args, env)
		if round < 12 {
			if round%3 == 0 {
				time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond) // early: rotation, first sends
			} else {
				target := tg.count() + 1 + rand.IntN(150)
				waitFor(t, time.Minute, "arrivals or the end", func() bool {
					select {
					case <-p.done:
						return true
					default:
					}
					return tg.count() >= target
				})
			}
			select {
			case <-p.done:
			default:
				p.kill()
				p.quiet = true
				kills++
				continue
			}
		}
		if code := p.wait(2 * time.Minute); code != 0 {
			t.Fatalf("the last replay exited %d:\n%s", code, p.output())
		}
		break
	}
	if len(tg.bad) > 0 {
		t.Fatalf("%d bad requests, the first: %s", len(tg.bad), tg.bad[0])
	}
	repeated := tg.total - len(tg.byUID)
	for uid := int64(1); uid <= n; uid++ {
		if tg.byUID[uid] == 0 {
			t.Errorf("uid %d never arrived", uid)
		}
	}
	if repeated > kills {
		t.Errorf("%d arrivals repeated after %d kills, want at most one per kill", repeated, kills)
	}
	t.Logf("%d kills, %d arrivals, %d repeated", kills, tg.total, repeated)
	if files, _ := deadletter.Files(path); len(files) != 0 {
		t.Errorf("files left after the replay: %v", files)
	}

	// The same 1,000 once more, uninterrupted, to see what it costs.
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if f, err = deadletter.Open(path, 64<<20); err != nil {
		t.Fatal(err)
	}
	for uid := int64(1); uid <= n; uid++ {
		f.Append(deadletter.Record{UID: uid, Kind: "Event", Status: 401, At: time.Now(),
			Body: fmt.Sprintf(`{"uid":%d,"pad":%q}`, uid, pad)})
	}
	began := time.Now()
	if code := start(t, "kc-event-emitter", args, env).wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d", code)
	}
	t.Logf("an uninterrupted replay of %d dead letters took %s (process start included)", n, time.Since(began).Round(time.Millisecond))
}

// TestEmitterHoldsOnAWrongPasswordAndDeliversEverythingWithTheRightOne runs
// the binaries against a real PostgreSQL: the receiver wants another
// password than the emitter sends. The route holds (block mode): /readyz
// answers 503 naming the 401, target_held is 1, nothing is dead-lettered,
// also for events written meanwhile. Restarted with the right secret, the
// emitter delivers every event once and is ready.
func TestEmitterHoldsOnAWrongPasswordAndDeliversEverythingWithTheRightOne(t *testing.T) {
	db, dbURL := newKeycloakDB(t, "r-acme")
	dir := t.TempDir()
	insert := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ($1, 'r-acme', $2, 'LOGIN')`,
				fmt.Sprintf("e%03d", i), 1700000000000+int64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(0, 20)
	passFile := filepath.Join(dir, "receiver-password")
	if err := os.WriteFile(passFile, []byte("rotated-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "received.jsonl")
	rcv := startReceiver(t, "", store, "--password-file", passFile)
	listen := freeAddr(t)
	cp := filepath.Join(dir, "cp.json")
	args := emitterArgs(rcv.url(), cp, listen, "--retryWaitMax", "500ms", "--bufferCapacity", "5", "--shutdownTimeout", "2s")
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + listen + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	em := start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+dbURL, "HOSTNAME=kc-0", "CT_KEYCLOAK_BRIDGE_SECRET_TOKEN=old-secret")
	waitFor(t, 60*time.Second, "/readyz naming the 401", func() bool {
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "401 Unauthorized") && strings.Contains(body, "wrong secret")
	})
	insert(20, 30)
	waitFor(t, 10*time.Second, "target_held", func() bool { v, _ := metric(listen, "kc_event_emitter_target_held"); return v == 1 })
	if rows := readStore(t, store); len(rows) != 0 {
		t.Errorf("%d events stored while the password is wrong", len(rows))
	}
	if _, err := os.Stat(cp + ".deadletter.jsonl"); !os.IsNotExist(err) { // emitterArgs' --deadLetterFile
		t.Errorf("the dead-letter file exists (%v): a wrong password must hold, not dead-letter", err)
	}
	if code := em.stop(20 * time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM while held = %d, want 0", code)
	}
	if out := em.output(); strings.Count(out, "the target refuses every event: the route holds") != 1 || strings.Contains(out, "old-secret") {
		t.Errorf("the hold logged %d times (want once) or the secret logged:\n%s", strings.Count(out, "the target refuses every event: the route holds"), tail(out, 20))
	}

	em = start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+dbURL, "HOSTNAME=kc-0", "CT_KEYCLOAK_BRIDGE_SECRET_TOKEN=rotated-secret")
	waitFor(t, 60*time.Second, "30 events stored", func() bool { return len(readStore(t, store)) == 30 })
	waitFor(t, 20*time.Second, "/readyz", func() bool { code, _ := get("/readyz"); return code == 200 })
	seen := map[string]int{}
	for _, r := range readStore(t, store) {
		seen[r.ID]++
	}
	for i := range 30 {
		if id := fmt.Sprintf("e%03d", i); seen[id] != 1 {
			t.Errorf("event %s stored %d times", id, seen[id])
		}
	}
	if v, _ := metric(listen, "kc_event_emitter_dead_letter_bytes"); v != 0 {
		t.Errorf("dead_letter_bytes = %v, want 0", v)
	}
	if code := em.stop(20 * time.Second); code != 0 {
		t.Errorf("exit status = %d", code)
	}
}
