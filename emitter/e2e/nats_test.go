package e2e

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// natsRecords reads every message of stream st, in stream order.
func natsRecords(t *testing.T, st jetstream.Stream) []streamRecord {
	t.Helper()
	ctx := context.Background()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var recs []streamRecord
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		uid, _ := strconv.ParseInt(m.Header.Get("uid"), 10, 64)
		if m.Header.Get(nats.MsgIdHdr) != m.Header.Get("uid") {
			t.Fatalf("message %d: Nats-Msg-Id %q, uid %q: want the uid", seq, m.Header.Get(nats.MsgIdHdr), m.Header.Get("uid"))
		}
		// The subject is the key: kc.<realm>.<kind>.
		recs = append(recs, streamRecord{key: m.Subject, id: m.Header.Get("id"), realm: m.Header.Get("realm"), uid: uid})
	}
	return recs
}

// TestEmitterToNATSKilledAndServerRestartedStoresEveryEventOnce streams
// 10,000 events while the emitter (the binary, target nats://) is killed
// with SIGKILL at random points and the NATS server, in this process, is
// restarted: the stream holds every event exactly once (JetStream drops a
// replay by its Nats-Msg-Id, the uid). Order per subject is counted, not
// required: across the server's restart a message lost in flight is
// published again after newer ones (the README says so).
func TestEmitterToNATSKilledAndServerRestartedStoresEveryEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 10,000 events through the binary and restarts the server")
	}
	srv := testenv.StartNATS(t, 0)
	st := natsStream(t, srv.URL(), nats.MaxReconnects(-1))
	realms := []string{"r-acme", "r-demo"}
	db, dbURL := newKeycloakDB(t, realms...)
	dir := t.TempDir()
	checkpoint := filepath.Join(dir, "checkpoint.json")
	args := emitterArgs("nats://"+srv.HostPort()+"/kc.{{realm}}.{{kind}}", checkpoint, freeAddr(t),
		"--retryWaitMax", "1s", "--natsAckTimeout", "2s")
	em := start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+dbURL)

	const total, batch = 10000, 50
	var ids []string
	for i := range total {
		ids = append(ids, fmt.Sprintf("ev-%06d", i))
	}
	inserted := make(chan error, 1)
	go func() {
		base := time.Now().UnixMilli()
		for i := 0; i < total; i += batch {
			var values []string
			var args []any
			for j := i; j < min(i+batch, total); j++ {
				values = append(values, fmt.Sprintf("($%d, $%d, $%d, 'LOGIN', 'u1', 'c1', '{}')", len(args)+1, len(args)+2, len(args)+3))
				args = append(args, ids[j], realms[j%len(realms)], base+int64(j/10))
			}
			if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, client_id, details_json) VALUES `+
				strings.Join(values, ","), args...); err != nil {
				inserted <- err
				return
			}
			time.Sleep(time.Duration(1+mrand.IntN(4)) * time.Millisecond)
		}
		inserted <- nil
	}()
	kills, restarted := 0, false
	for done := false; !done; {
		select {
		case err := <-inserted:
			if err != nil {
				t.Fatalf("insert: %v", err)
			}
			done = true
		case <-time.After(time.Duration(200+mrand.IntN(800)) * time.Millisecond):
			if kills == 1 && !restarted {
				restarted = true
				srv.Restart(time.Second)
				continue
			}
			em = em.restart()
			kills++
		}
	}
	if !restarted {
		srv.Restart(time.Second)
	}
	em = em.restart()
	kills++
	var recs []streamRecord
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d events in the stream", total), func() bool {
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs >= total
	})
	time.Sleep(time.Second) // a duplicate would be stored now
	if code := em.stop(30 * time.Second); code != 0 {
		t.Errorf("emitter exit status after SIGTERM = %d, want 0", code)
	}
	recs = natsRecords(t, st)
	dups, unordered := checkOnceInOrder(t, recs, ids, false)
	if dups != 0 {
		t.Errorf("%d events stored twice: JetStream's duplicate window should drop a replay", dups)
	}
	t.Logf("%d SIGKILLs, 1 server restart: %d messages for %d events, %d stored after newer ones of their subject",
		kills, len(recs), total, unordered)
}
