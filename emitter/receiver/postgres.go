package receiver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	"github.com/lib/pq"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
)

// PostgresTable is the table a PostgresStore writes to.
const PostgresTable = "kc_received_event"

const createTable = `CREATE TABLE IF NOT EXISTS ` + PostgresTable + ` (
	uid         BIGINT PRIMARY KEY,
	kind        TEXT NOT NULL,
	keycloak_id TEXT NOT NULL,
	event_time  BIGINT NOT NULL,
	type        TEXT NOT NULL,
	realm_id    TEXT NOT NULL,
	payload     JSONB NOT NULL,
	received_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// insertRows inserts a whole batch in one statement from parallel arrays and
// returns the uids that were new; a uid already stored is skipped.
const insertRows = `INSERT INTO ` + PostgresTable + ` (uid, kind, keycloak_id, event_time, type, realm_id, payload)
SELECT u, k, i, t, ty, r, p::jsonb
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[]) AS x(u, k, i, t, ty, r, p)
ON CONFLICT (uid) DO NOTHING
RETURNING uid`

// PostgresStore keeps rows in the PostgreSQL table PostgresTable, each uid
// once (the uid is the primary key). Concurrent Puts share one INSERT.
type PostgresStore struct {
	db   *sql.DB
	stmt *sql.Stmt
	b    *batcher
	name string // for String: the connection string without its secrets
}

// OpenPostgres connects to the database at dsn (a lib/pq URL or key=value
// string), creates PostgresTable when it is missing, and returns the store.
func OpenPostgres(ctx context.Context, dsn string, opts StoreOptions) (*PostgresStore, error) {
	connStr := dsn
	if opts.NoSync {
		var err error
		if connStr, err = withRuntimeParam(dsn, "synchronous_commit", "off"); err != nil {
			return nil, err
		}
	}
	// lib/pq's and net/url's errors may quote the connection string.
	db, err := sql.Open("postgres", connStr)
	if err != nil {
		return nil, redact.Error(fmt.Errorf("open postgres %s: %w", redact.ConnString(dsn), err), dsn, connStr)
	}
	if _, err := db.ExecContext(ctx, createTable); err != nil {
		db.Close()
		return nil, redact.Error(fmt.Errorf("create table %s on %s: %w", PostgresTable, redact.ConnString(dsn), err), dsn, connStr)
	}
	stmt, err := db.PrepareContext(ctx, insertRows)
	if err != nil {
		db.Close()
		return nil, redact.Error(fmt.Errorf("prepare insert into %s: %w", PostgresTable, err), dsn, connStr)
	}
	s := &PostgresStore{db: db, stmt: stmt, name: "postgres:" + redact.ConnString(dsn)}
	s.b = newBatcher(s.write, 1024)
	return s, nil
}

// Put stores row unless its uid is already stored, and returns whether it
// was new. It returns once the row is committed.
func (s *PostgresStore) Put(ctx context.Context, row Row) (bool, error) {
	return s.b.put(ctx, row)
}

func (s *PostgresStore) write(ctx context.Context, rows []Row) ([]bool, error) {
	fresh, err := s.insert(ctx, rows)
	if err == nil || len(rows) == 1 {
		return fresh, err
	}
	// One bad row fails the whole statement: insert one by one, so that
	// only that row is refused and the others are stored.
	fresh = make([]bool, len(rows))
	errs := make(rowErrors, len(rows))
	for i := range rows {
		f, err := s.insert(ctx, rows[i:i+1])
		if err != nil {
			errs[i] = err
			continue
		}
		fresh[i] = f[0]
	}
	return fresh, errs
}

// insert writes rows in one statement.
func (s *PostgresStore) insert(ctx context.Context, rows []Row) ([]bool, error) {
	n := len(rows)
	uids, times := make([]int64, n), make([]int64, n)
	kinds, ids, types, realms, payloads := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		uids[i], kinds[i], ids[i], times[i], types[i], realms[i], payloads[i] = r.UID, r.Kind, r.ID, r.Time, r.Type, r.RealmID, string(r.Payload)
	}
	res, err := s.stmt.QueryContext(ctx, pq.Array(uids), pq.Array(kinds), pq.Array(ids), pq.Array(times),
		pq.Array(types), pq.Array(realms), pq.Array(payloads))
	if err != nil {
		return nil, insertError(uids, err)
	}
	defer res.Close()
	inserted := make(map[int64]bool, n)
	for res.Next() {
		var uid int64
		if err := res.Scan(&uid); err != nil {
			return nil, fmt.Errorf("read inserted uids: %w", err)
		}
		inserted[uid] = true
	}
	if err := res.Err(); err != nil {
		return nil, insertError(uids, err)
	}
	fresh := make([]bool, n)
	for i, uid := range uids {
		// A uid twice in one batch is inserted once: only its first row is new.
		fresh[i] = inserted[uid]
		delete(inserted, uid)
	}
	return fresh, nil
}

// insertError wraps err, the failure of inserting uids. A data exception
// (SQLSTATE class 22, e.g. a NUL character that text cannot hold) will
// fail again on every delivery: it wraps ErrRejected too.
func insertError(uids []int64, err error) error {
	what := fmt.Sprintf("insert uid %d", uids[0])
	if len(uids) > 1 {
		what = fmt.Sprintf("insert %d rows (uids %d..%d)", len(uids), uids[0], uids[len(uids)-1])
	}
	if pqErr, ok := errors.AsType[*pq.Error](err); ok && pqErr.Code.Class() == "22" {
		return fmt.Errorf("%s: %w: %w", what, ErrRejected, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// String returns "postgres:" and the connection string with its password
// and secret parameters masked, for logs.
func (s *PostgresStore) String() string { return s.name }

// Close writes what was handed over and closes the connections.
func (s *PostgresStore) Close() error {
	s.b.close()
	s.stmt.Close()
	return s.db.Close()
}

// withRuntimeParam adds a run-time parameter to dsn; lib/pq sends the
// settings it does not know itself to the server at connection start.
func withRuntimeParam(dsn, key, value string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return dsn + " " + key + "=" + value, nil // key=value form
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
