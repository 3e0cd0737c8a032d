package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/lib/pq"
)

// ErrFenced is the error of a write by a leader whose epoch is no longer
// the newest: another emitter of the cluster took over (or the state was
// imported) since, and the write was refused.
var ErrFenced = errors.New("a newer leader holds the state")

// Postgres keeps the state of every emitter of a cluster in PostgreSQL, in
// two tables of its own schema (created when absent):
//
//	<schema>.state    one row per cluster name: the snapshot, the epoch of
//	                  the current leader, who it is and when it took over
//	<schema>.journal  the journal lines appended since the snapshot, a row
//	                  per Append
//
// Only the leader writes, through the Term that Lead returns: every write
// carries the Term's epoch and is refused with ErrFenced once a newer
// epoch was raised, so a deposed leader can never overwrite the position
// of the one that followed it. Each write is a single statement, so that a
// crash at any point leaves the old state or the new one.
type Postgres struct {
	db      *sql.DB
	schema  string // quoted
	name    string // the schema's name, unquoted, for messages
	cluster string
}

// schemaName is what --stateSchema accepts: a plain lower-case SQL
// identifier, so that it never needs quoting rules in messages and grants.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CheckSchemaName returns an error when name is not a plain lower-case SQL
// identifier.
func CheckSchemaName(name string) error {
	if !schemaName.MatchString(name) {
		return fmt.Errorf("want a lower-case SQL identifier (a-z, 0-9, _; at most 63 characters)")
	}
	return nil
}

// OpenPostgres connects to the database at url (a lib/pq URL or key=value
// string, never part of an error message: it may hold a password), and
// creates schema and its tables when they are absent. cluster names the
// state (one row per name).
func OpenPostgres(ctx context.Context, url, schema, cluster string) (*Postgres, error) {
	if err := CheckSchemaName(schema); err != nil {
		return nil, fmt.Errorf("schema %q: %w", schema, err)
	}
	if cluster == "" {
		return nil, errors.New("checkpoint: the cluster name is empty")
	}
	connector, err := pq.NewConnector(url)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL connection string: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	p := &Postgres{db: db, schema: pq.QuoteIdentifier(schema), name: schema, cluster: cluster}
	if err := p.create(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return p, nil
}

// WithCluster returns the store of the state named cluster in the same
// schema, on p's connection pool (closing it closes p's pool).
func (p *Postgres) WithCluster(cluster string) *Postgres {
	q := *p
	q.cluster = cluster
	return &q
}

// String names the store in messages.
func (p *Postgres) String() string {
	return fmt.Sprintf("PostgreSQL %s.state cluster %q", p.name, p.cluster)
}

// create makes the schema (only when it is absent: creating it needs the
// CREATE privilege on the database, using it only USAGE and CREATE on the
// schema) and the tables. A transaction-level advisory lock serializes the
// emitters that start at once: concurrent CREATE TABLE IF NOT EXISTS of the
// same table may otherwise fail.
func (p *Postgres) create(ctx context.Context) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state database: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "kc-event-emitter:schema:"+p.name); err != nil {
		return fmt.Errorf("state database: %w", err)
	}
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, p.name).Scan(&exists); err != nil {
		return fmt.Errorf("state database: %w", err)
	}
	if !exists {
		if _, err := tx.ExecContext(ctx, `CREATE SCHEMA `+p.schema); err != nil {
			return fmt.Errorf("create schema %s (or have it created: CREATE SCHEMA %s; GRANT USAGE, CREATE ON SCHEMA %s TO <the emitter's role>): %w",
				p.name, p.name, p.name, err)
		}
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS ` + p.schema + `.state (
			cluster  text PRIMARY KEY,
			epoch    bigint NOT NULL DEFAULT 0,
			snapshot bytea,
			leader   text,
			led_at   timestamptz,
			saved_at timestamptz)`,
		`CREATE TABLE IF NOT EXISTS ` + p.schema + `.journal (
			cluster text NOT NULL REFERENCES ` + p.schema + `.state ON DELETE CASCADE,
			seq     bigint GENERATED ALWAYS AS IDENTITY,
			lines   bytea NOT NULL,
			PRIMARY KEY (cluster, seq))`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create the tables of schema %s: %w", p.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create the tables of schema %s: %w", p.name, err)
	}
	return nil
}

// Close closes the connection pool.
func (p *Postgres) Close() error { return p.db.Close() }

// Lead raises the cluster's epoch and returns the Term of that epoch: the
// Store through which the new leader reads and writes the state. Call it
// only while holding the cluster's lock; leader names the caller (its host
// name) in the state row, for operators.
func (p *Postgres) Lead(ctx context.Context, leader string) (*Term, error) {
	var epoch int64
	err := p.db.QueryRowContext(ctx, `INSERT INTO `+p.schema+`.state AS s (cluster, epoch, leader, led_at)
		VALUES ($1, 1, $2, now())
		ON CONFLICT (cluster) DO UPDATE SET epoch = s.epoch + 1, leader = EXCLUDED.leader, led_at = now()
		RETURNING epoch`, p.cluster, leader).Scan(&epoch)
	if err != nil {
		return nil, fmt.Errorf("%v: raise the epoch: %w", p, err)
	}
	return &Term{p: p, epoch: epoch}, nil
}

// Epoch returns the cluster's current epoch, 0 when it has no state row.
func (p *Postgres) Epoch(ctx context.Context) (int64, error) {
	var epoch int64
	err := p.db.QueryRowContext(ctx, `SELECT epoch FROM `+p.schema+`.state WHERE cluster = $1`, p.cluster).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%v: %w", p, err)
	}
	return epoch, nil
}

// load returns the snapshot and the journal in one consistent read.
func (p *Postgres) load(ctx context.Context) ([]byte, []byte, error) {
	tx, err := p.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	var snap []byte
	err = tx.QueryRowContext(ctx, `SELECT snapshot FROM `+p.schema+`.state WHERE cluster = $1`, p.cluster).Scan(&snap)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT lines FROM `+p.schema+`.journal WHERE cluster = $1 ORDER BY seq`, p.cluster)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var journal []byte
	for rows.Next() {
		var lines []byte
		if err := rows.Scan(&lines); err != nil {
			return nil, nil, err
		}
		journal = append(journal, lines...)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return snap, journal, tx.Commit()
}

// Has tells whether the cluster has a saved state: a snapshot or journal
// lines.
func (p *Postgres) Has(ctx context.Context) (bool, error) {
	var has bool
	err := p.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+p.schema+`.state WHERE cluster = $1 AND snapshot IS NOT NULL)
		OR EXISTS (SELECT 1 FROM `+p.schema+`.journal WHERE cluster = $1)`, p.cluster).Scan(&has)
	if err != nil {
		return false, fmt.Errorf("%v: %w", p, err)
	}
	return has, nil
}

// Import replaces the cluster's state with snap and journal (a file
// checkpoint being moved in) and raises the epoch, so that a leader
// running meanwhile is fenced off and the next one loads what was
// imported. Without force a cluster that already has a state is left alone
// and the error says so.
func (p *Postgres) Import(ctx context.Context, snap, journal []byte, force bool) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	defer tx.Rollback()
	var epoch int64
	err = tx.QueryRowContext(ctx, `INSERT INTO `+p.schema+`.state AS s (cluster, epoch, leader, led_at)
		VALUES ($1, 1, 'state import', now())
		ON CONFLICT (cluster) DO UPDATE SET epoch = s.epoch + 1, leader = EXCLUDED.leader, led_at = now()
		RETURNING epoch`, p.cluster).Scan(&epoch)
	if err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	if !force {
		var has bool
		var savedAt sql.NullTime
		err := tx.QueryRowContext(ctx, `SELECT snapshot IS NOT NULL OR EXISTS (SELECT 1 FROM `+p.schema+`.journal WHERE cluster = $1), saved_at
			FROM `+p.schema+`.state WHERE cluster = $1`, p.cluster).Scan(&has, &savedAt)
		if err != nil {
			return fmt.Errorf("%v: %w", p, err)
		}
		if has {
			at := "never saved, journal only"
			if savedAt.Valid {
				at = "saved " + savedAt.Time.UTC().Format(time.RFC3339)
			}
			return fmt.Errorf("%v already has a state (%s): --force replaces it", p, at)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+p.schema+`.journal WHERE cluster = $1`, p.cluster); err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+p.schema+`.state SET snapshot = $2, saved_at = now() WHERE cluster = $1`,
		p.cluster, nonNil(snap)); err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	if len(journal) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+p.schema+`.journal (cluster, lines) VALUES ($1, $2)`, p.cluster, journal); err != nil {
			return fmt.Errorf("%v: %w", p, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	return nil
}

// nonNil makes an empty snapshot a non-NULL value: an imported empty
// state is still a state.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Term is the Store of one leader of a cluster: the epoch it raised at
// Lead, carried by every write. Once a newer epoch exists, Append and Save
// return an error wrapping ErrFenced. Closing a Term leaves the pool of
// its Postgres open (a standby keeps its connections).
type Term struct {
	p     *Postgres
	epoch int64
}

// Epoch returns the term's epoch.
func (t *Term) Epoch() int64 { return t.epoch }

// String names the store in messages.
func (t *Term) String() string { return fmt.Sprintf("%v epoch %d", t.p, t.epoch) }

// Load returns the snapshot and the journal appended since.
func (t *Term) Load(ctx context.Context) ([]byte, []byte, error) {
	snap, journal, err := t.p.load(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	return snap, journal, nil
}

// Append adds lines to the journal when the term's epoch is still the
// cluster's. The epoch row is locked FOR SHARE within the statement: an
// epoch raised concurrently either waits for the append (and then its
// Load sees the lines) or is seen by it (and the append is refused).
func (t *Term) Append(ctx context.Context, lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	p := t.p
	res, err := p.db.ExecContext(ctx, `WITH f AS (SELECT 1 FROM `+p.schema+`.state WHERE cluster = $1 AND epoch = $2 FOR SHARE)
		INSERT INTO `+p.schema+`.journal (cluster, lines) SELECT $1, $3 FROM f`, p.cluster, t.epoch, lines)
	if err != nil {
		return fmt.Errorf("append to the journal: %w", err)
	}
	return t.check(ctx, res)
}

// Save replaces the snapshot and empties the journal in one statement,
// when the term's epoch is still the cluster's.
func (t *Term) Save(ctx context.Context, snap []byte) error {
	p := t.p
	var updated int64
	err := p.db.QueryRowContext(ctx, `WITH u AS (
			UPDATE `+p.schema+`.state SET snapshot = $3, saved_at = now() WHERE cluster = $1 AND epoch = $2 RETURNING 1),
		d AS (DELETE FROM `+p.schema+`.journal WHERE cluster = $1 AND EXISTS (SELECT 1 FROM u))
		SELECT count(*) FROM u`, p.cluster, t.epoch, nonNil(snap)).Scan(&updated)
	if err != nil {
		return fmt.Errorf("save the snapshot: %w", err)
	}
	if updated == 0 {
		return t.fenced(ctx)
	}
	return nil
}

// check returns nil when the write res touched a row, else the fencing
// error.
func (t *Term) check(ctx context.Context, res sql.Result) error {
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return nil
	}
	return t.fenced(ctx)
}

// fenced is the error of a write refused for the term's epoch, naming the
// cluster's.
func (t *Term) fenced(ctx context.Context) error {
	now, err := t.p.Epoch(ctx)
	if err != nil {
		return fmt.Errorf("epoch %d refused: %w", t.epoch, ErrFenced)
	}
	return fmt.Errorf("epoch %d, the cluster's is %d: %w", t.epoch, now, ErrFenced)
}

// Close does nothing: the pool belongs to the Postgres.
func (t *Term) Close() error { return nil }

// Leader returns who took the cluster's lead last and its epoch ("", 0
// when none did).
func (p *Postgres) Leader(ctx context.Context) (string, int64, error) {
	var leader sql.NullString
	var epoch int64
	err := p.db.QueryRowContext(ctx, `SELECT leader, epoch FROM `+p.schema+`.state WHERE cluster = $1`, p.cluster).Scan(&leader, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("%v: %w", p, err)
	}
	return leader.String, epoch, nil
}
