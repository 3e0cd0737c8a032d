package pgsource

import (
	"context"
	"database/sql"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// BenchmarkReadBatchBacklog reads a backlog of 200,000 events over 10 realms
// (a LOGIN's details each) from the start, page after page as the tailer
// does (pages of 500 rows of every realm in one statement), with and without
// byte caps (the budget shared by the event pages, as the emitter shares it
// when the admin pages stay empty), and reports rows/s: what reading the table alone costs,
// the limit of a drain through this source on the machine; and the CPU of
// this process per row (cpu-ns/row): what the read costs the emitter, the
// database's part left out.
//
//	go test -run '^$' -bench BenchmarkReadBatchBacklog -benchtime 1x ./emitter/pgsource/
func BenchmarkReadBatchBacklog(b *testing.B) {
	url := testenv.NewDatabase(b)
	testenv.LoadSchema(b, url, schemaVersion)
	db, err := sql.Open("postgres", url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const rows, realms = 200000, 10
	if _, err := db.Exec(fmt.Sprintf(`INSERT INTO event_entity (id, client_id, details_json, ip_address, realm_id, session_id, event_time, type, user_id)
		SELECT gen_random_uuid()::text, 'account', '{"auth_method":"openid-connect","redirect_uri":"http://localhost/x","code_id":"c"}',
			'127.0.0.1', 'realm-' || (g %% %d), gen_random_uuid()::text, 1764600000000 + g / 4, 'LOGIN', gen_random_uuid()::text
		FROM generate_series(1, %d) g`, realms, rows)); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec("ANALYZE event_entity"); err != nil {
		b.Fatal(err)
	}
	s, err := Open(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, budget := range []int64{8 << 20, 0} {
		b.Run(fmt.Sprint("pageBytes=", budget), func(b *testing.B) {
			cpu0 := processCPU(b)
			for b.Loop() {
				batch := Batch{Limit: 500, MaxRowBytes: 16 << 20}
				for r := range realms {
					rg := Range{RealmID: fmt.Sprint("realm-", r)}
					ev, ad := rg, rg
					if budget > 0 {
						ev.MaxBytes, ad.MaxBytes = budget/realms, 1
					}
					batch.EventPages, batch.AdminPages = append(batch.EventPages, ev), append(batch.AdminPages, ad)
				}
				n := 0
				for {
					res, err := s.ReadBatch(context.Background(), batch)
					if err != nil {
						b.Fatal(err)
					}
					got := 0
					for i, p := range res.EventPages {
						got += len(p)
						if len(p) > 0 {
							batch.EventPages[i].AfterTime, batch.EventPages[i].AfterID = p[len(p)-1].Time, p[len(p)-1].ID
						}
					}
					if n += got; got == 0 {
						break
					}
				}
				if n != rows {
					b.Fatalf("read %d rows, want %d", n, rows)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(rows*b.N), "cpu-ns/row")
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReadBatchManyRealms times one poll of 1,000 realms (both kinds:
// 2,000 pages in one statement) near the end of 100,000 events, on the
// source's connections (JIT off) and on a plain connection with the
// server's defaults (JIT on, jit_above_cost 100,000, which the statement's
// estimated cost passes).
//
//	go test -run '^$' -bench BenchmarkReadBatchManyRealms ./emitter/pgsource/
func BenchmarkReadBatchManyRealms(b *testing.B) {
	url := testenv.NewDatabase(b)
	testenv.LoadSchema(b, url, schemaVersion)
	plain, err := sql.Open("postgres", url)
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	const rows, realms = 100000, 1000
	if _, err := plain.Exec(fmt.Sprintf(`INSERT INTO event_entity (id, client_id, details_json, ip_address, realm_id, session_id, event_time, type, user_id)
		SELECT gen_random_uuid()::text, 'account', '{"auth_method":"openid-connect"}', '127.0.0.1', 'realm-' || (g %% %d),
			gen_random_uuid()::text, 1764600000000 + g * 10, 'LOGIN', gen_random_uuid()::text
		FROM generate_series(1, %d) g`, realms, rows)); err != nil {
		b.Fatal(err)
	}
	if _, err := plain.Exec("ANALYZE event_entity"); err != nil {
		b.Fatal(err)
	}
	s, err := Open(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := Batch{Limit: 500, MaxRowBytes: 16 << 20}
	for r := range realms {
		rg := Range{RealmID: fmt.Sprint("realm-", r), AfterTime: 1764600000000 + rows*10 - 5000, MaxBytes: 8 << 20 / (2 * realms)}
		batch.EventPages, batch.AdminPages = append(batch.EventPages, rg), append(batch.AdminPages, rg)
	}
	stmt, args, err := s.batchSQL(batch)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		db   *sql.DB
	}{{"source", s.db}, {"jit-default", plain}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				r, err := c.db.Query(stmt, args...)
				if err != nil {
					b.Fatal(err)
				}
				for r.Next() {
				}
				if err := r.Err(); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}
