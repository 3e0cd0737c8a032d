package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// xactCommits returns pg_stat_database.xact_commit of db's database.
func xactCommits(tb testing.TB, db *sql.DB) int64 {
	tb.Helper()
	var n int64
	if err := db.QueryRow(`SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// cpuSeconds returns the user+system CPU time of pid from /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// BenchmarkStateWritesAt1000EventsPerSecond streams 1,000 events/s into
// Keycloak's event table and runs one emitter for 20 s, first with the file
// checkpoint, then in cluster mode with its state in a database of its own,
// so that that database's xact_commit counts only the state writes and the
// lock's pings. It reports, per mode, the transactions per second on
// Keycloak's database beyond the inserts (the emitter's reads), on the
// state database, the emitter's CPU and, in cluster mode, the size of the
// snapshot each save rewrites; cluster-idle is cluster mode with
// no events (the lock's pings and the standby-free leader's idle loop).
//
//	go test -run '^$' -bench StateWrites -benchtime 1x ./emitter/e2e/
func BenchmarkStateWritesAt1000EventsPerSecond(b *testing.B) {
	for _, mode := range []string{"file", "cluster", "cluster-idle"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				benchStateWrites(b, mode)
			}
		})
	}
}

func benchStateWrites(b *testing.B, mode string) {
	db, dbURL := newKeycloakDB(b, "r-bench")
	stateURL := testenv.NewDatabase(b)
	stateDB, err := sql.Open("postgres", stateURL)
	if err != nil {
		b.Fatal(err)
	}
	defer stateDB.Close()
	stateDB.SetMaxOpenConns(1)
	rcv := startClusterReceiver(b)
	dir := b.TempDir()
	listen := freeAddr(b)
	args := emitterArgs(fmt.Sprintf("http://%s/m1", rcv.addr), filepath.Join(dir, "cp.json"), listen, "--from", "now")
	env := []string{"KC_EMITTER_DB_URL=" + dbURL}
	if strings.HasPrefix(mode, "cluster") {
		args = append(args, "--cluster", "bench")
		env = append(env, "KC_EMITTER_STATE_DB_URL="+stateURL)
	}
	em := start(b, "kc-event-emitter", args, env...)
	waitFor(b, time.Minute, "the emitter to be ready", func() bool {
		n, ok := metric(listen, "kc_event_emitter_leader")
		return ok && n == 1
	})
	const perSecond, batch = 1000, 50
	stop := make(chan struct{})
	inserts := make(chan int64, 1)
	go func() {
		var n, stmts int64
		tick := time.NewTicker(time.Second * batch / perSecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				inserts <- stmts
				return
			case <-tick.C:
			}
			if mode == "cluster-idle" {
				continue
			}
			var values []string
			var vals []any
			now := time.Now().UnixMilli()
			for j := range batch {
				values = append(values, fmt.Sprintf("($%d, 'r-bench', $%d, 'LOGIN', 'u1', 'c1', '{}')", 2*j+1, 2*j+2))
				vals = append(vals, fmt.Sprintf("ev-%09d", n), now)
				n++
			}
			if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type, user_id, client_id, details_json) VALUES `+
				strings.Join(values, ","), vals...); err != nil {
				b.Error(err)
			}
			stmts++
		}
	}()
	time.Sleep(5 * time.Second) // warm up
	kc0, st0, cpu0 := xactCommits(b, db), xactCommits(b, stateDB), cpuSeconds(em.cmd.Process.Pid)
	del0, _ := metric(listen, "kc_event_emitter_events_delivered_total")
	start := time.Now()
	time.Sleep(20 * time.Second)
	kc1, st1, cpu1 := xactCommits(b, db), xactCommits(b, stateDB), cpuSeconds(em.cmd.Process.Pid)
	del1, _ := metric(listen, "kc_event_emitter_events_delivered_total")
	secs := time.Since(start).Seconds()
	close(stop)
	stmts := <-inserts
	// The inserter's statements (about 20/s) are counted over its whole run; scale to the window.
	insertRate := float64(stmts) / (secs + 5)
	b.ReportMetric((del1-del0)/secs, "delivered/s")
	b.ReportMetric(float64(kc1-kc0)/secs-insertRate, "kc-db-xact/s")
	b.ReportMetric(float64(st1-st0)/secs, "state-db-xact/s")
	b.ReportMetric((cpu1-cpu0)/secs*100, "emitter-cpu-%")
	var snapshot float64 // bytes rewritten by each save
	stateDB.QueryRow(`SELECT coalesce(max(octet_length(snapshot)), 0) FROM kc_event_emitter.state`).Scan(&snapshot)
	b.ReportMetric(snapshot/1024, "snapshot-KiB")
	em.stop(30 * time.Second)
}
